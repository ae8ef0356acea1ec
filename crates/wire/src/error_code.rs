//! The one vocabulary of machine-readable error codes, shared by every
//! service (in the `error` field of the JSON error body) and every client
//! that reacts to one. A code says what went wrong; the HTTP status that
//! carries it is chosen by the handler.

use serde::{Deserialize, Serialize};

/// A stable error code. Serialised in `snake_case`; a code this build does
/// not know (a newer peer) reads as [`ErrorCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a parameter does not parse.
    MalformedBody,
    /// The request itself is malformed (HTTP level).
    BadRequest,
    /// No study with this id.
    UnknownStudy,
    /// A study with this id already exists.
    StudyExists,
    /// Study parameters out of bounds or inconsistent.
    InvalidStudy,
    /// Study thresholds below a party's floors.
    BelowThreshold,
    /// The attestation is for another study or data spec.
    StudyMismatch,
    /// A request changes a pinned study's protections.
    StudyChanged,
    /// The attestation comes from another data source than the study names.
    WrongSource,
    /// The attestation does not verify.
    AttestationInvalid,
    /// The attestation is outside its validity window.
    AttestationExpired,
    /// The attested TLS session is too old.
    AttestationStale,
    /// This attestation was already used.
    AttestationReplayed,
    /// This account already contributed to the study.
    AlreadyContributed,
    /// Too many requests from this client.
    RateLimited,
    /// The admission queue is full; retry later.
    QueueFull,
    /// A party's intake is full; retry later.
    IntakeFull,
    /// The service is busy; retry later.
    Busy,
    /// No submission with this id.
    UnknownSubmission,
    /// The submission's token does not match.
    WrongToken,
    /// The submission or batch is not in a state that allows this.
    WrongState,
    /// The uploaded shares do not open the commitment or do not parse.
    BadShares,
    /// The parties' share receipts are missing, forged or disagree.
    BadReceipts,
    /// No batch with this id.
    UnknownBatch,
    /// No release yet.
    NoRelease,
    /// Missing or wrong credential.
    Unauthorized,
    /// The credential does not allow this.
    Forbidden,
    /// No such endpoint.
    NotFound,
    /// The endpoint does not serve this method.
    MethodNotAllowed,
    /// The body is larger than this endpoint accepts.
    PayloadTooLarge,
    /// The request was not received in time.
    RequestTimeout,
    /// The request needs a length.
    LengthRequired,
    /// The request target is too long.
    UriTooLong,
    /// The request headers are too large.
    HeadersTooLarge,
    /// The body's content type is not accepted.
    UnsupportedMediaType,
    /// The request parsed but cannot be processed.
    Unprocessable,
    /// An internal error of the service.
    Internal,
    /// A network error talking to another service.
    Transport,
    /// A computation party could not be reached or refused.
    PartiesUnavailable,
    /// The computation between the parties failed.
    MpcFailed,
    /// The parties' checks caught a party deviating from the protocol
    /// (malicious mode): the computation aborted and nothing was opened.
    CheatingDetected,
    /// The service is temporarily unavailable.
    Unavailable,
    /// Another service answered something unexpected.
    BadAnswer,
    /// An error answer without the JSON error shape.
    HttpError,
    /// No notary session with this id (notary).
    UnknownSession,
    /// The notary may not connect to this target (notary).
    TargetRefused,
    /// The notarised TLS session failed (notary).
    SessionFailed,
    /// The session's transcript did not pass the notary's checks (notary).
    CheckFailed,
    /// No poll with this id.
    UnknownPoll,
    /// A poll with this id already exists.
    PollExists,
    /// Poll parameters out of bounds or inconsistent.
    InvalidPoll,
    /// The poll's sign-up deadline has passed.
    SignupClosed,
    /// The poll's voting deadline has passed.
    PollClosed,
    /// The poll is still open: no tally before its voting deadline.
    VotingOpen,
    /// This account already signed up to the poll.
    AlreadySignedUp,
    /// A MACI key string does not parse.
    BadKey,
    /// The poll has no signed tally yet.
    NoTally,
    /// Re-keying opens when the poll's sign-up closes.
    SignupOpen,
    /// A re-key with this nullifier is in the poll's log already (the
    /// voter reused the secret of a deactivation).
    NullifierUsed,
    /// The poll holds as many re-keys as sign-ups already.
    RekeyLimit,
    /// A party refuses to endorse a directory record (it does not name
    /// this party as it is, or comes from a coordinator it does not trust).
    EndorsementRefused,
    /// A code this build does not know.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Every known code (all but [`ErrorCode::Other`]).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedBody,
        ErrorCode::BadRequest,
        ErrorCode::UnknownStudy,
        ErrorCode::StudyExists,
        ErrorCode::InvalidStudy,
        ErrorCode::BelowThreshold,
        ErrorCode::StudyMismatch,
        ErrorCode::StudyChanged,
        ErrorCode::WrongSource,
        ErrorCode::AttestationInvalid,
        ErrorCode::AttestationExpired,
        ErrorCode::AttestationStale,
        ErrorCode::AttestationReplayed,
        ErrorCode::AlreadyContributed,
        ErrorCode::RateLimited,
        ErrorCode::QueueFull,
        ErrorCode::IntakeFull,
        ErrorCode::Busy,
        ErrorCode::UnknownSubmission,
        ErrorCode::WrongToken,
        ErrorCode::WrongState,
        ErrorCode::BadShares,
        ErrorCode::BadReceipts,
        ErrorCode::UnknownBatch,
        ErrorCode::NoRelease,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::LengthRequired,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unprocessable,
        ErrorCode::Internal,
        ErrorCode::Transport,
        ErrorCode::PartiesUnavailable,
        ErrorCode::MpcFailed,
        ErrorCode::CheatingDetected,
        ErrorCode::Unavailable,
        ErrorCode::BadAnswer,
        ErrorCode::HttpError,
        ErrorCode::UnknownSession,
        ErrorCode::TargetRefused,
        ErrorCode::SessionFailed,
        ErrorCode::CheckFailed,
        ErrorCode::UnknownPoll,
        ErrorCode::PollExists,
        ErrorCode::InvalidPoll,
        ErrorCode::SignupClosed,
        ErrorCode::PollClosed,
        ErrorCode::VotingOpen,
        ErrorCode::AlreadySignedUp,
        ErrorCode::BadKey,
        ErrorCode::NoTally,
        ErrorCode::SignupOpen,
        ErrorCode::NullifierUsed,
        ErrorCode::RekeyLimit,
        ErrorCode::EndorsementRefused,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownStudy => "unknown_study",
            ErrorCode::StudyExists => "study_exists",
            ErrorCode::InvalidStudy => "invalid_study",
            ErrorCode::BelowThreshold => "below_threshold",
            ErrorCode::StudyMismatch => "study_mismatch",
            ErrorCode::StudyChanged => "study_changed",
            ErrorCode::WrongSource => "wrong_source",
            ErrorCode::AttestationInvalid => "attestation_invalid",
            ErrorCode::AttestationExpired => "attestation_expired",
            ErrorCode::AttestationStale => "attestation_stale",
            ErrorCode::AttestationReplayed => "attestation_replayed",
            ErrorCode::AlreadyContributed => "already_contributed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::IntakeFull => "intake_full",
            ErrorCode::Busy => "busy",
            ErrorCode::UnknownSubmission => "unknown_submission",
            ErrorCode::WrongToken => "wrong_token",
            ErrorCode::WrongState => "wrong_state",
            ErrorCode::BadShares => "bad_shares",
            ErrorCode::BadReceipts => "bad_receipts",
            ErrorCode::UnknownBatch => "unknown_batch",
            ErrorCode::NoRelease => "no_release",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::LengthRequired => "length_required",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unprocessable => "unprocessable",
            ErrorCode::Internal => "internal",
            ErrorCode::Transport => "transport",
            ErrorCode::PartiesUnavailable => "parties_unavailable",
            ErrorCode::MpcFailed => "mpc_failed",
            ErrorCode::CheatingDetected => "cheating_detected",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadAnswer => "bad_answer",
            ErrorCode::HttpError => "http_error",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::TargetRefused => "target_refused",
            ErrorCode::SessionFailed => "session_failed",
            ErrorCode::CheckFailed => "check_failed",
            ErrorCode::UnknownPoll => "unknown_poll",
            ErrorCode::PollExists => "poll_exists",
            ErrorCode::InvalidPoll => "invalid_poll",
            ErrorCode::SignupClosed => "signup_closed",
            ErrorCode::PollClosed => "poll_closed",
            ErrorCode::VotingOpen => "voting_open",
            ErrorCode::AlreadySignedUp => "already_signed_up",
            ErrorCode::BadKey => "bad_key",
            ErrorCode::NoTally => "no_tally",
            ErrorCode::SignupOpen => "signup_open",
            ErrorCode::NullifierUsed => "nullifier_used",
            ErrorCode::RekeyLimit => "rekey_limit",
            ErrorCode::EndorsementRefused => "endorsement_refused",
            ErrorCode::Other => "other",
        }
    }

    /// The code for a wire string; unknown strings give [`ErrorCode::Other`].
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Other)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde name, `as_str` and `parse` agree for every code, and no
    /// two codes share a name.
    #[test]
    fn wire_names_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
            assert_eq!(ErrorCode::parse(c.as_str()), c);
            assert!(seen.insert(c.as_str()), "duplicate {c}");
        }
    }

    #[test]
    fn unknown_codes_read_as_other() {
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"from_the_future\"").unwrap(),
            ErrorCode::Other
        );
        assert_eq!(ErrorCode::parse(""), ErrorCode::Other);
    }
}
