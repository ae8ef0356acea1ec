//! TCP transport with mutual TLS between the three parties.
//!
//! - Identity: each party has a key pair and a self-signed certificate
//!   ([`Identity::generate`]); every party *pins* the exact certificates of
//!   the other two ([`pin`]): a peer is accepted only if it presents that
//!   certificate and proves possession of its key in the TLS handshake.
//! - Topology: party `j` connects to every party `i < j` and announces its
//!   id; the listener checks the announced id against the pinned
//!   certificate.
//! - Framing: `u32` big-endian length, then the payload; frames above
//!   [`TcpConfig::max_frame`] are refused. TLS authenticates every byte, so a
//!   corrupted or truncated stream is an error, never a wrong value.
//! - I/O runs on a small tokio runtime; per link one reader and one writer
//!   task with bounded queues, so all three parties can send large messages
//!   at once without deadlocking. Protocol code stays synchronous.
#![forbid(unsafe_code)]

mod pin;
mod tcp;

pub use pin::Identity;
#[doc(hidden)]
pub use tcp::read_frame;
pub use tcp::{TcpConfig, TcpNetwork};
