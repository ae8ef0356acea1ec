//! Polls at the coordinator (docs/polls.md, "Service layer"): the rules
//! that decide, free of HTTP.
//!
//! - [`create_poll`]: the spec is valid and every party pinned it;
//! - [`admit_signup`]: THE sign-up rule: the poll is open for sign-ups, the
//!   key parses, the attestation passes [`check_attestation`] for
//!   `poll-{id}`, and (atomically, in the store) it was never presented
//!   before and its account never signed up to this poll;
//! - [`open_ticket`] and [`log_message`]: a voter's message enters the
//!   public log only once all three parties confirmed they durably hold
//!   their share sets under the logged commitments;
//! - [`Tallier`]: once a poll's voting deadline has passed, asks the three
//!   parties to process it and stores the tally all three signed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use triad_maci::PubKey;
use triad_wire::poll::{
    holder_key, poll_study_id, ConfirmMessage, LogEntry, MessageRequest, PollInfo, PollSpec,
    SignupRequest, TallyRequest, VerifiedTally,
};
use triad_wire::ErrorCode;

use crate::admission::{check_attestation, token_digest, AdmissionError, AdmissionPolicy};
use crate::batcher::{record_cheating, Caught, CheatingReports};
use crate::parties::{Parties, PartyError, PartyFault};
use crate::store::{LogOutcome, NewSignup, NewTicket, SignupRefused, Store, StoreError};

/// Why a poll request was refused, grouped by whose fault it is
/// ([`PollError::fault`]). The handlers pick the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    // The caller's fault: the request can never succeed as it is.
    #[error("no poll {0}")]
    UnknownPoll(u64),
    #[error("poll {0} exists")]
    PollExists(u64),
    #[error("invalid poll: {0}")]
    InvalidPoll(String),
    #[error("sign-ups to poll {0} closed at its sign-up deadline")]
    SignupClosed(u64),
    #[error("poll {0} closed at its voting deadline")]
    PollClosed(u64),
    #[error("poll {0} is open until its voting deadline; no tally before")]
    VotingOpen(u64),
    #[error("not a MACI public key: {0}")]
    BadKey(String),
    #[error(transparent)]
    Attestation(AdmissionError),
    #[error("this account already signed up to the poll")]
    AlreadySignedUp,
    #[error("commitments must be 64 lowercase hex digits each")]
    MalformedCommitment,
    #[error("re-keying in poll {0} opens when its sign-up closes")]
    SignupOpen(u64),
    #[error("a re-key with this nullifier is in the log already (its secret was used)")]
    NullifierUsed,
    #[error("poll {0} holds as many re-keys as sign-ups")]
    RekeyLimit(u64),
    #[error("re-key: {0}")]
    BadRekey(String),
    #[error("no message {0:?}")]
    UnknownMessage(String),
    #[error("wrong message token")]
    WrongToken,
    #[error("a party refused: {0}")]
    PartyRefused(PartyError),
    #[error("no tally of poll {0} yet")]
    NoTally(u64),
    // Load, or the parties' availability: the same request may succeed later.
    #[error("too many messages of this poll await their shares; try again later")]
    QueueFull,
    #[error("a party is unavailable: {0}")]
    PartiesUnavailable(PartyError),
    // The coordinator's fault.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("system RNG failed")]
    Rng,
}

/// Whose fault a [`PollError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollFault {
    Caller,
    Load,
    Coordinator,
}

impl PollError {
    pub fn fault(&self) -> PollFault {
        match self {
            Self::QueueFull | Self::PartiesUnavailable(_) => PollFault::Load,
            Self::Store(_) | Self::Rng => PollFault::Coordinator,
            Self::Attestation(e) if e.fault() != crate::admission::Fault::Provider => {
                PollFault::Coordinator
            }
            _ => PollFault::Caller,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownPoll(_) => ErrorCode::UnknownPoll,
            Self::PollExists(_) => ErrorCode::PollExists,
            Self::InvalidPoll(_) => ErrorCode::InvalidPoll,
            Self::SignupClosed(_) => ErrorCode::SignupClosed,
            Self::PollClosed(_) => ErrorCode::PollClosed,
            Self::VotingOpen(_) => ErrorCode::VotingOpen,
            Self::BadKey(_) => ErrorCode::BadKey,
            Self::Attestation(e) => e.code(),
            Self::AlreadySignedUp => ErrorCode::AlreadySignedUp,
            Self::MalformedCommitment => ErrorCode::MalformedBody,
            Self::SignupOpen(_) => ErrorCode::SignupOpen,
            Self::NullifierUsed => ErrorCode::NullifierUsed,
            Self::RekeyLimit(_) => ErrorCode::RekeyLimit,
            Self::BadRekey(_) => ErrorCode::BadKey,
            Self::UnknownMessage(_) => ErrorCode::UnknownSubmission,
            Self::WrongToken => ErrorCode::WrongToken,
            Self::PartyRefused(_) => ErrorCode::BadShares,
            Self::NoTally(_) => ErrorCode::NoTally,
            Self::QueueFull => ErrorCode::QueueFull,
            Self::PartiesUnavailable(_) => ErrorCode::PartiesUnavailable,
            Self::Store(_) | Self::Rng => ErrorCode::Internal,
        }
    }
}

fn party_error(e: PartyError) -> PollError {
    match e.fault {
        PartyFault::Refused(_) => PollError::PartyRefused(e),
        PartyFault::Unreachable(_) | PartyFault::Cheating(_) => PollError::PartiesUnavailable(e),
    }
}

/// Runs `f` for the three parties at once; the first error wins.
async fn all_three<'a, T, F>(f: F) -> Result<[T; 3], PartyError>
where
    F: Fn(usize) -> crate::parties::BoxFut<'a, Result<T, PartyError>>,
{
    let (a, b, c) = tokio::join!(f(0), f(1), f(2));
    Ok([a?, b?, c?])
}

async fn poll_info(db: &Store, id: u64) -> Result<PollInfo, PollError> {
    db.run(move |s| s.poll(id))
        .await?
        .ok_or(PollError::UnknownPoll(id))
}

/// Creates a poll once every party pinned it, with its directory id
/// (derived from `directory_key` and a fresh salt, stored with it).
pub async fn create_poll(
    db: &Store,
    parties: &Arc<dyn Parties>,
    directory_key: &triad_directory::SigningKey,
    spec: PollSpec,
    now: u64,
) -> Result<PollInfo, PollError> {
    spec.params()
        .map_err(|e| PollError::InvalidPoll(e.to_string()))?;
    if spec.voting_deadline <= now {
        return Err(PollError::InvalidPoll(
            "the voting deadline is in the past".into(),
        ));
    }
    let id = spec.id;
    if db.run(move |s| s.poll(id)).await?.is_some() {
        return Err(PollError::PollExists(id));
    }
    all_three(|i| parties.pin_poll(i, &spec))
        .await
        .map_err(|e| match e.fault {
            PartyFault::Refused(_) => PollError::InvalidPoll(e.to_string()),
            PartyFault::Unreachable(_) | PartyFault::Cheating(_) => {
                PollError::PartiesUnavailable(e)
            }
        })?;
    let entry = crate::directory::new_entry(
        directory_key,
        crate::store::directory::Kind::Poll,
        &id.to_string(),
    )
    .map_err(|_| PollError::Rng)?;
    let info = PollInfo {
        spec,
        created_at: now,
        signups: 0,
        messages: 0,
        tallied: false,
        directory_id: Some(entry.directory_id.clone()),
    };
    let row = info.clone();
    if !db.run(move |s| s.create_poll(&row, &entry)).await? {
        return Err(PollError::PollExists(id));
    }
    Ok(info)
}

/// THE sign-up rule (see the module docs). Returns the state index.
pub async fn admit_signup(
    db: &Store,
    poll: u64,
    req: &SignupRequest,
    policy: &AdmissionPolicy<'_>,
    now: u64,
) -> Result<(u64, u64), PollError> {
    let info = poll_info(db, poll).await?;
    let spec = &info.spec;
    if now >= spec.signup_deadline {
        return Err(PollError::SignupClosed(poll));
    }
    let key: PubKey = req
        .pub_key
        .parse()
        .map_err(|e| PollError::BadKey(format!("{e}")))?;
    let att = &req.attestation;
    check_attestation(
        att,
        policy,
        &poll_study_id(poll),
        &spec.data_spec,
        &spec.source,
        now,
    )
    .map_err(PollError::Attestation)?;
    let row = NewSignup {
        poll,
        pub_key: key.to_string(),
        voice_credits: spec.voice_credits,
        nullifier: att.nullifier.clone(),
        signature: att.signature.clone(),
        attestation_json: att.to_json(),
        timestamp: now,
    };
    let index = db
        .run(move |s| s.insert_signup(&row))
        .await
        .map_err(|e| match e {
            SignupRefused::UnknownPoll => PollError::UnknownPoll(poll),
            SignupRefused::Replayed => PollError::Attestation(AdmissionError::Replayed),
            SignupRefused::AlreadySignedUp => PollError::AlreadySignedUp,
            SignupRefused::Store(e) => PollError::Store(e),
        })?;
    Ok((index, spec.voice_credits))
}

fn random_hex(n: usize) -> Result<String, PollError> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PollError::Rng)?;
    Ok(hex::encode(b))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// How long an unlogged ticket holds one of its poll's `max_open` slots.
const TICKET_OPEN_MS: i64 = 10 * 60 * 1000;

/// A ticket for one message: its submission id and token. At most
/// `max_open` tickets of a poll opened in the last ten minutes await
/// their shares at once.
pub async fn open_ticket(
    db: &Store,
    poll: u64,
    req: &MessageRequest,
    max_open: usize,
    now: u64,
) -> Result<(String, String), PollError> {
    let info = poll_info(db, poll).await?;
    if now >= info.spec.voting_deadline {
        return Err(PollError::PollClosed(poll));
    }
    if !req.commitments.iter().all(|c| is_hex64(c)) {
        return Err(PollError::MalformedCommitment);
    }
    if let Some(parsed) = req.kind.rekey() {
        parsed.map_err(PollError::BadRekey)?;
        if now < info.spec.signup_deadline {
            return Err(PollError::SignupOpen(poll));
        }
    }
    let sid = random_hex(16)?;
    let token = random_hex(32)?;
    let ticket = NewTicket {
        poll,
        submission_id: sid.clone(),
        token_sha256: token_digest(&token),
        commitments: req.commitments.clone(),
        kind: req.kind.clone(),
    };
    let opened = db
        .run(move |s| s.insert_ticket(&ticket, max_open, TICKET_OPEN_MS))
        .await?;
    if !opened {
        return Err(PollError::QueueFull);
    }
    Ok((sid, token))
}

/// Logs a message once the three parties confirmed its shares; a message
/// already logged returns its entry (a voter's retry after a lost answer).
pub async fn log_message(
    db: &Store,
    parties: &Arc<dyn Parties>,
    sid: &str,
    token: &str,
    now: u64,
) -> Result<LogEntry, PollError> {
    let id = sid.to_string();
    let row = db
        .run(move |s| s.message(&id))
        .await?
        .ok_or_else(|| PollError::UnknownMessage(sid.into()))?;
    // Comparing digests keeps the timing independent of the secret token.
    let digest = token_digest(token);
    if digest != row.token_sha256 {
        return Err(PollError::WrongToken);
    }
    if let Some(entry) = row.entry {
        return Ok(entry);
    }
    let info = poll_info(db, row.poll).await?;
    if now >= info.spec.voting_deadline {
        return Err(PollError::PollClosed(row.poll));
    }
    let confirms: [ConfirmMessage; 3] = [0, 1, 2].map(|i| ConfirmMessage {
        submission_id: sid.into(),
        token_sha256: digest.clone(),
        commitment: holder_key(&row.commitments, i),
        kind: row.kind.clone(),
    });
    all_three(|i| parties.confirm_message(i, row.poll, &confirms[i]))
        .await
        .map_err(party_error)?;
    let id = sid.to_string();
    let (signup, voting) = (info.spec.signup_deadline, info.spec.voting_deadline);
    match db.run(move |s| s.log_message(&id, signup, voting)).await? {
        LogOutcome::Logged(e) => Ok(e),
        LogOutcome::Closed => Err(PollError::PollClosed(row.poll)),
        LogOutcome::SignupOpen => Err(PollError::SignupOpen(row.poll)),
        LogOutcome::NullifierUsed => Err(PollError::NullifierUsed),
        LogOutcome::RekeyLimit => Err(PollError::RekeyLimit(row.poll)),
    }
}

/// The tally of a poll, if the three parties signed one.
pub async fn tally(db: &Store, poll: u64) -> Result<VerifiedTally, PollError> {
    poll_info(db, poll).await?;
    db.run(move |s| s.tally(poll))
        .await?
        .ok_or(PollError::NoTally(poll))
}

/// Tallies closed polls: every `tick`, for each poll past its voting
/// deadline without a tally, asks the three parties (idempotently) and
/// stores the tally once all three signed the same one.
pub struct Tallier {
    pub db: Store,
    pub parties: Arc<dyn Parties>,
    pub party_keys: [String; 3],
    pub tick: Duration,
    /// Where a party's report that its checks caught a deviation in a
    /// tally goes (shared with the status endpoint).
    pub cheating: CheatingReports,
}

/// Longest pause between two requests for one poll's tally: a large poll
/// takes minutes, and each request carries the whole log and sign-ups.
const MAX_TALLY_BACKOFF: Duration = Duration::from_secs(10);

impl Tallier {
    pub async fn run(self) {
        // Per poll: when to ask next, and the current pause.
        let mut next: HashMap<u64, (tokio::time::Instant, Duration)> = HashMap::new();
        loop {
            if let Err(e) = self.round(triad_wire::unix_now(), &mut next).await {
                tracing::warn!(error = %e, "poll tally round failed");
            }
            tokio::time::sleep(self.tick).await;
        }
    }

    async fn round(
        &self,
        now: u64,
        next: &mut HashMap<u64, (tokio::time::Instant, Duration)>,
    ) -> Result<(), PollError> {
        let polls = self.db.run(|s| s.polls()).await?;
        for info in polls {
            let id = info.spec.id;
            if info.tallied || now < info.spec.voting_deadline {
                continue;
            }
            let t = tokio::time::Instant::now();
            let (at, pause) = next.get(&id).copied().unwrap_or((t, self.tick));
            if t < at {
                continue;
            }
            match self.tally_poll(info.spec).await {
                Ok(true) => {
                    next.remove(&id);
                }
                Ok(false) => {
                    let pause = pause.mul_f64(1.5).min(MAX_TALLY_BACKOFF);
                    next.insert(id, (t + pause, pause));
                }
                Err(e) => {
                    tracing::warn!(poll = id, error = %e, "poll tally not done yet");
                    let pause = pause.mul_f64(1.5).min(MAX_TALLY_BACKOFF);
                    next.insert(id, (t + pause, pause));
                }
            }
        }
        Ok(())
    }

    /// Asks the three parties once; `Ok(true)` once the tally is stored.
    async fn tally_poll(&self, spec: PollSpec) -> Result<bool, PollError> {
        let id = spec.id;
        let signups = self.db.run(move |s| s.signups(id)).await?;
        let log = self.db.run(move |s| s.log(id)).await?;
        let req = TallyRequest { spec, signups, log };
        let (a, b, c) = tokio::join!(
            self.parties.tally_poll(0, &req),
            self.parties.tally_poll(1, &req),
            self.parties.tally_poll(2, &req)
        );
        // Every answer's failure is read before any error counts: a party
        // reports a failed run once, and a cheater that makes its own
        // request fail must not make an honest party's report vanish.
        for (i, r) in [&a, &b, &c].into_iter().enumerate() {
            match r {
                Ok(p) => match &p.failed {
                    Some(why) if p.cheating => {
                        record_cheating(&self.cheating, Caught::PollTally(id), i, why)
                    }
                    Some(why) => {
                        tracing::warn!(poll = id, party = i, %why, "a party's tally failed; retrying")
                    }
                    None => {}
                },
                Err(e) => tracing::warn!(poll = id, party = i, error = %e, "tally request failed"),
            }
        }
        let mut signed = Vec::with_capacity(3);
        for r in [a, b, c] {
            match r.map_err(party_error)?.signed {
                Some(s) => signed.push(s),
                None => return Ok(false),
            }
        }
        match triad_wire::poll::verify_tally(&signed, &self.party_keys) {
            Ok(v) => {
                tracing::info!(poll = id, messages = v.tally.messages, "poll tallied");
                self.db.run(move |s| s.put_tally(id, &v)).await?;
                Ok(true)
            }
            Err(e) => {
                tracing::error!(poll = id, error = %e, "the parties' tallies do not verify");
                Ok(false)
            }
        }
    }
}
