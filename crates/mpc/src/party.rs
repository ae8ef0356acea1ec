//! The share convention, written once.
//!
//! A secret `x = x_0 + x_1 + x_2` is held as replicated shares: party `i`
//! holds the components `(x_i, x_{i+1})` (indices mod 3), called `a` and `b`.
//! So party `i`'s `b` is party `next(i)`'s `a`, and party `i`'s `a` is party
//! `prev(i)`'s `b`. Each pair of neighbours shares a PRG seed: party `i`'s
//! `prg_next` equals party `next(i)`'s `prg_prev`.

use std::fmt;

use crate::{network::Network, prg::Prg, MpcError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId(u8);

impl PartyId {
    pub const ALL: [PartyId; 3] = [PartyId(0), PartyId(1), PartyId(2)];

    pub fn new(i: usize) -> Option<Self> {
        (i < 3).then_some(PartyId(i as u8))
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The party holding our `b` component as its `a`.
    pub fn next(self) -> Self {
        PartyId((self.0 + 1) % 3)
    }

    /// The party holding our `a` component as its `b`.
    pub fn prev(self) -> Self {
        PartyId((self.0 + 2) % 3)
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.0)
    }
}

/// Everything a party needs to run protocols: its identity, the transport to
/// the two others and the PRGs shared with each neighbour.
pub struct Party {
    pub id: PartyId,
    pub net: Box<dyn Network>,
    /// Shared with `next()`: same stream as `next()`'s `prg_prev`.
    pub prg_next: Prg,
    /// Shared with `prev()`.
    pub prg_prev: Prg,
    /// Private randomness (e.g. the mask of a zero test).
    pub prg_own: Prg,
}

impl Party {
    /// Agrees on pairwise seeds (one round): each party draws the seed it
    /// shares with `next()` and sends it there over the (confidential)
    /// transport.
    pub fn setup(net: Box<dyn Network>) -> Result<Self, MpcError> {
        let id = net.id();
        let own = Prg::from_entropy();
        let seed_next = own.seed();
        let mut net = net;
        net.send(id.next(), seed_next.to_vec())?;
        let got = net.recv(id.prev())?;
        let seed_prev: [u8; 16] = got
            .as_slice()
            .try_into()
            .map_err(|_| MpcError::WrongLength {
                from: id.prev(),
                expected: 16,
                got: got.len(),
            })?;
        Ok(Self {
            id,
            net,
            prg_next: Prg::new(seed_next),
            prg_prev: Prg::new(seed_prev),
            prg_own: Prg::from_entropy(),
        })
    }

    pub fn next(&self) -> PartyId {
        self.id.next()
    }

    pub fn prev(&self) -> PartyId {
        self.id.prev()
    }
}
