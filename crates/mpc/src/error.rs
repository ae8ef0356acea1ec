use crate::{network::NetError, PartyId};

/// Why a protocol failed. Every variant is an error *of the run*, never a
/// wrong answer: protocols return `Err` rather than an unchecked result when a
/// peer's message is missing, truncated or malformed.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("party {from} sent {got} bytes where {expected} were expected")]
    WrongLength {
        from: PartyId,
        expected: usize,
        got: usize,
    },
    #[error("party {from} sent an element that is not a valid encoding")]
    MalformedElement { from: PartyId },
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A check failed: a party deviated from the protocol. The run must
    /// abort; nothing computed after the last successful check is used.
    #[error("cheating detected by the {check} check: {detail}")]
    CheatingDetected { check: &'static str, detail: String },
    /// A peer's clock differs from this party's by more than a protocol
    /// allows for claims that depend on time: the run aborts without
    /// accusing anyone (an operator's clock, or a peer's lie).
    #[error("party {from}'s clock differs from this party's by {seconds} s (more than {limit} s)")]
    ClockSkew {
        from: PartyId,
        seconds: u64,
        limit: u64,
    },
    #[error("{0} has no malicious-secure version yet (run it semi-honest)")]
    NotMaliciousSecure(&'static str),
}
