//! The triad MPC engine: three-party replicated secret sharing (semi-honest,
//! honest majority) over Z_2^64, Z_2^128, packed bits and the BN254 scalar
//! field.
//!
//! Layout:
//! - [`party`]: who is who ([`PartyId`], next/prev) and the party context
//!   ([`Party`]) holding the transport and the pairwise PRGs;
//! - [`ring`]: the element types shares live in;
//! - [`fp61`]: the field the multiplication checks prove in;
//! - [`share`]: replicated shares of a vector and the local (no
//!   communication) operations on them;
//! - [`prg`]: AES-CTR pseudo-random generators seeded pairwise;
//! - [`network`]: the transport trait and the in-memory transport;
//! - [`protocols`]: every interactive protocol, as free functions over a
//!   party context and vectors of shares (a batch costs the rounds of one);
//! - [`testing`]: the one three-party harness the tests use.
#![forbid(unsafe_code)]

pub mod error;
pub mod fp61;
pub mod gf128;
pub mod network;
pub mod party;
pub mod prg;
pub mod protocols;
pub mod ring;
pub mod share;
pub mod testing;

pub use error::MpcError;
pub use network::{NetError, NetStats, Network};
pub use party::{LinkModel, Party, PartyId, Security};
pub use ring::{Bits, Fr, IntRing, Ring, Z128, Z64};
pub use share::Shares;
