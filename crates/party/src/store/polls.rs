//! The party's poll records behind [`PollShareStore`] (a supertrait of
//! [`super::PartyStore`]): pinned polls, each message's share set as this
//! party received it, whether the coordinator confirmed it, and this
//! party's signed tallies.
//!
//! Guarantees: an upload is durable when [`PollShareStore::put_message_shares`]
//! returns `Ok`; a confirmed share set never changes or disappears;
//! confirmation and tallies are single durable writes.

use triad_wire::poll::{MessageKind, PollSpec, ShareSet, SignedTally};

use super::StoreError;

/// What happened to an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutShares {
    Stored,
    /// A share set for this message was confirmed already: never replaced.
    AlreadyConfirmed,
    /// Too many unconfirmed uploads are waiting.
    Full,
}

pub trait PollShareStore: Send + Sync + 'static {
    /// The poll as this party first saw it (stored on first sight).
    fn pin_poll(&self, spec: &PollSpec) -> Result<PollSpec, StoreError>;

    fn poll(&self, id: u64) -> Result<Option<PollSpec>, StoreError>;

    /// Stores (or replaces, while unconfirmed) a message's share set with
    /// its token digest and commitment. Unconfirmed uploads older than
    /// `ttl_ms` are dropped first; at most `max_unconfirmed` are kept.
    #[allow(clippy::too_many_arguments)]
    fn put_message_shares(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitment: &str,
        shares: &ShareSet,
        ttl_ms: i64,
        max_unconfirmed: usize,
    ) -> Result<PutShares, StoreError>;

    /// Marks the upload confirmed if its token digest, commitment and kind
    /// match (the kind the coordinator will log); `Ok(false)` if there is
    /// no such upload. Idempotent.
    fn confirm_message(
        &self,
        poll: u64,
        submission_id: &str,
        token_sha256: &str,
        commitment: &str,
        kind: &MessageKind,
    ) -> Result<bool, StoreError>;

    /// The confirmed share sets of `ids`, in order: `None` for an id this
    /// party holds no confirmed upload of, or whose commitment differs.
    fn confirmed_shares(
        &self,
        poll: u64,
        ids: &[(String, String)],
    ) -> Result<Vec<Option<ShareSet>>, StoreError>;

    /// Stores this party's signed tally (the first one stays).
    fn put_tally(&self, poll: u64, input_sha256: &str, t: &SignedTally) -> Result<(), StoreError>;

    /// (input digest, signed tally).
    fn tally(&self, poll: u64) -> Result<Option<(String, SignedTally)>, StoreError>;
}
