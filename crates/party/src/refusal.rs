//! Why the party refuses or fails a request, grouped by whose fault it is.
//! The domain code (pinning, intake, the release rule, batch decisions, the
//! MPC queue) returns a [`Refusal`]; only the HTTP handlers turn it into a
//! status ([`crate::service`]'s `From<Refusal> for ApiError`).

use triad_wire::study::StudyError;
use triad_wire::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    // The caller's fault (the coordinator's or a provider's): the request
    // cannot succeed as sent.
    /// A body or parameter that does not parse or is out of bounds.
    #[error("{0}")]
    Malformed(String),
    /// Share upload that does not parse.
    #[error("{0}")]
    BadShares(String),
    /// Share upload under a key whose held shares are other ones: the
    /// receipt signed for those promises to keep them.
    #[error("other shares of this submission are held here (a signed receipt keeps them)")]
    SharesConflict,
    /// Study parameters out of bounds.
    #[error("{0}")]
    InvalidStudy(StudyError),
    /// Study thresholds below this party's floors, or a release the
    /// output-privacy rule forbids.
    #[error("{0}")]
    BelowThreshold(String),
    /// A request that would loosen a pinned study's protections.
    #[error("study {0} differs from the parameters this party pinned")]
    StudyChanged(String),
    /// A batch or release not in a state that allows the request.
    #[error("{0}")]
    WrongState(String),
    #[error("no batch {0} was prepared here")]
    UnknownBatch(u64),
    #[error("no release of this study yet")]
    NoRelease,
    #[error("no poll {0} is pinned here")]
    UnknownPoll(u64),
    #[error("invalid poll: {0}")]
    InvalidPoll(String),
    #[error("poll {0} differs from the parameters this party pinned")]
    PollChanged(u64),
    #[error("poll {0} is closed")]
    PollClosed(u64),
    #[error("poll {0} is open until its voting deadline")]
    VotingOpen(u64),
    /// A tally request whose sign-ups or log this party does not accept.
    #[error("{0}")]
    BadTallyInput(String),
    #[error("no tally of this poll yet")]
    NoTally,
    /// A directory record this party will not endorse.
    #[error("endorsement refused: {0}")]
    NotEndorsed(crate::directory::EndorseRefusal),
    // Load: the same request may succeed later.
    #[error("{0}")]
    Busy(&'static str),
    #[error("the share intake is full; try again later")]
    IntakeFull,
    // This party's, or the MPC session's, fault.
    #[error("the MPC computation failed: {0}")]
    Mpc(String),
    /// A check caught a party deviating (malicious mode); the job aborted
    /// before opening anything.
    #[error("{0}")]
    Cheating(String),
    #[error("{0}")]
    Internal(String),
}

impl Refusal {
    /// The wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::MalformedBody,
            Self::BadShares(_) => ErrorCode::BadShares,
            Self::SharesConflict => ErrorCode::WrongState,
            Self::InvalidStudy(_) => ErrorCode::InvalidStudy,
            Self::BelowThreshold(_) => ErrorCode::BelowThreshold,
            Self::StudyChanged(_) => ErrorCode::StudyChanged,
            Self::WrongState(_) => ErrorCode::WrongState,
            Self::UnknownBatch(_) => ErrorCode::UnknownBatch,
            Self::NoRelease => ErrorCode::NoRelease,
            Self::UnknownPoll(_) => ErrorCode::UnknownPoll,
            Self::InvalidPoll(_) => ErrorCode::InvalidPoll,
            Self::PollChanged(_) => ErrorCode::StudyChanged,
            Self::PollClosed(_) => ErrorCode::PollClosed,
            Self::VotingOpen(_) => ErrorCode::VotingOpen,
            Self::BadTallyInput(_) => ErrorCode::Unprocessable,
            Self::NoTally => ErrorCode::NoTally,
            Self::NotEndorsed(_) => ErrorCode::EndorsementRefused,
            Self::Busy(_) => ErrorCode::Busy,
            Self::IntakeFull => ErrorCode::IntakeFull,
            Self::Mpc(_) => ErrorCode::MpcFailed,
            Self::Cheating(_) => ErrorCode::CheatingDetected,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// A failure of this party's store or worker.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::UnknownBatch(b) => Self::UnknownBatch(b),
            e => Self::Internal(format!("store: {e}")),
        }
    }
}
