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
}
