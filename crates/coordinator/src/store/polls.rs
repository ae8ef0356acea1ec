//! The coordinator's poll records behind [`PollStore`] (a supertrait of
//! [`super::CoordinatorStore`], so every backend implements both): polls,
//! sign-ups with their nullifiers, message tickets and the public log, and
//! the signed tallies.
//!
//! Guarantees every implementation gives:
//! - a sign-up reserves its attestation signature (replay), its nullifier
//!   (one sign-up per attested account and poll) and the next state index
//!   in one transaction; a refusal writes nothing;
//! - a message enters the log ([`PollStore::log_message`]) in one
//!   transaction that assigns the next position; logging the same ticket
//!   again returns its entry unchanged;
//! - every call that returns `Ok` after a change has made it durable.

use triad_wire::poll::{LogEntry, MessageKind, PollInfo, Signup, VerifiedTally};

use super::StoreError;

/// A sign-up as admission inserts it.
#[derive(Clone, Debug)]
pub struct NewSignup {
    pub poll: u64,
    pub pub_key: String,
    pub voice_credits: u64,
    pub nullifier: String,
    pub signature: String,
    pub attestation_json: String,
    pub timestamp: u64,
}

/// Why the sign-up transaction refused (nothing written).
#[derive(Debug, thiserror::Error)]
pub enum SignupRefused {
    #[error("unknown poll")]
    UnknownPoll,
    #[error("attestation already seen")]
    Replayed,
    #[error("this account already signed up")]
    AlreadySignedUp,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A message ticket: what `ready` checks.
#[derive(Clone, Debug)]
pub struct MessageRow {
    pub poll: u64,
    pub token_sha256: String,
    pub commitments: [String; 3],
    pub kind: MessageKind,
    /// Set once the message is in the log.
    pub entry: Option<LogEntry>,
}

/// A message ticket to record.
#[derive(Clone, Debug)]
pub struct NewTicket {
    pub poll: u64,
    pub submission_id: String,
    pub token_sha256: String,
    pub commitments: [String; 3],
    pub kind: MessageKind,
}

/// What [`PollStore::log_message`] did.
#[derive(Clone, Debug)]
pub enum LogOutcome {
    /// In the log (now, or before: a retry).
    Logged(LogEntry),
    /// The voting deadline has passed; nothing written.
    Closed,
    /// A re-key before the sign-up deadline; nothing written.
    SignupOpen,
    /// A re-key whose nullifier is in the log already; nothing written.
    NullifierUsed,
    /// The poll holds as many re-keys as sign-ups; nothing written.
    RekeyLimit,
}

pub trait PollStore: Send + Sync + 'static {
    /// Inserts a poll and its directory entry in one transaction;
    /// `Ok(false)` (and nothing written) if the id exists.
    fn create_poll(
        &self,
        info: &PollInfo,
        entry: &crate::store::DirectoryEntry,
    ) -> Result<bool, StoreError>;

    fn poll(&self, id: u64) -> Result<Option<PollInfo>, StoreError>;

    fn polls(&self) -> Result<Vec<PollInfo>, StoreError>;

    /// The sign-up transaction (see the module docs); returns the state index.
    fn insert_signup(&self, s: &NewSignup) -> Result<u64, SignupRefused>;

    /// Sign-ups in state-index order.
    fn signups(&self, poll: u64) -> Result<Vec<Signup>, StoreError>;

    /// Records a ticket; refuses (`Ok(false)`) when `max_open` tickets of
    /// this poll opened in the last `open_ms` milliseconds are not logged
    /// yet (an abandoned ticket stops holding a slot after `open_ms`).
    fn insert_ticket(
        &self,
        t: &NewTicket,
        max_open: usize,
        open_ms: i64,
    ) -> Result<bool, StoreError>;

    fn message(&self, submission_id: &str) -> Result<Option<MessageRow>, StoreError>;

    /// Appends the ticket to its poll's log at the next position, stamped
    /// with the current time, read inside the transaction; nothing is
    /// written if that time is at or after `deadline`. A re-key is logged
    /// only at or after `signup_deadline` (the sign-ups are final), if its
    /// nullifier is not in the log yet, while the poll holds fewer re-keys
    /// than sign-ups (each adds a leaf that every later step pays for), and
    /// gets the next state index
    /// (sign-ups + re-keys logged before + 1). Idempotent: a logged ticket
    /// returns its entry. Because the checks and the write are one
    /// transaction, a reader that sees the clock past the deadline and then
    /// reads the log sees the final log.
    fn log_message(
        &self,
        submission_id: &str,
        signup_deadline: u64,
        deadline: u64,
    ) -> Result<LogOutcome, StoreError>;

    /// The public log in position order.
    fn log(&self, poll: u64) -> Result<Vec<LogEntry>, StoreError>;

    /// Stores the tally the three parties signed (first one wins).
    fn put_tally(&self, poll: u64, tally: &VerifiedTally) -> Result<(), StoreError>;

    fn tally(&self, poll: u64) -> Result<Option<VerifiedTally>, StoreError>;
}
