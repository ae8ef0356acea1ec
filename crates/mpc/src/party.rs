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
    /// Communication rounds this party has taken part in so far: every
    /// protocol step that sends and then waits for a peer counts one
    /// (streamed chunks of one exchange count once).
    pub rounds: u64,
    /// What a round and a byte cost on the links to the peers; protocols
    /// with a choice of circuit (fewer rounds or fewer bytes) ask it.
    pub link: LinkModel,
    /// Whether every AND is recorded and checked before an opening
    /// (docs/security.md). All three parties must agree.
    pub security: Security,
    /// AND gates not yet checked ([`crate::protocols::dzkp`]); every
    /// opening checks them first, whatever `security` says. Private to the
    /// engine so no caller can drop gates before their check.
    pub(crate) ands: crate::protocols::dzkp::AndLog,
    /// `F_r` products not yet checked ([`crate::protocols::mulcheck`]),
    /// under the same rule.
    pub(crate) products: crate::protocols::mulcheck::ProductLog<crate::Fr>,
    /// GF(2^128) products (the shuffle's tags) not yet checked.
    pub(crate) tag_products: crate::protocols::mulcheck::ProductLog<crate::gf128::Gf128>,
    /// What the checks cost so far.
    pub checks: crate::protocols::dzkp::CheckStats,
    /// Why a check failed, once one has: the party refuses every later
    /// check and opening.
    pub(crate) failed_check: Option<String>,
}

/// The adversary the protocols are secure against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Security {
    /// Parties follow the protocol; none learns anything beyond its
    /// output.
    #[default]
    SemiHonest,
    /// One party may deviate arbitrarily: it is caught before anything
    /// depending on its deviation is opened, and the run aborts. Protocols
    /// without a malicious-secure version refuse to run.
    Malicious,
}

/// The cost of communication as protocols see it when they choose between
/// a circuit with fewer rounds and one with fewer bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    /// Seconds one round costs beyond its bytes (one-way delay plus the
    /// fixed cost of a message).
    pub round_seconds: f64,
    /// Bytes per second a party can send (after TLS and framing).
    pub bytes_per_second: f64,
}

impl Default for LinkModel {
    /// Three processes on one machine over mutual-TLS TCP on 127.0.0.1
    /// (docs/benchmarks.md): about 150 µs per round, 400 MB/s.
    fn default() -> Self {
        Self {
            round_seconds: 150e-6,
            bytes_per_second: 400e6,
        }
    }
}

impl LinkModel {
    /// The model for `delay` of one-way latency between parties.
    pub fn with_delay(delay: std::time::Duration) -> Self {
        let base = Self::default();
        Self {
            round_seconds: base.round_seconds + delay.as_secs_f64(),
            ..base
        }
    }

    /// Estimated seconds for `rounds` rounds sending `bytes` in all.
    pub fn cost(&self, rounds: u64, bytes: f64) -> f64 {
        rounds as f64 * self.round_seconds + bytes / self.bytes_per_second
    }
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
            rounds: 1,
            link: LinkModel::default(),
            security: Security::SemiHonest,
            ands: Default::default(),
            products: Default::default(),
            tag_products: Default::default(),
            checks: Default::default(),
            failed_check: None,
        })
    }

    pub fn next(&self) -> PartyId {
        self.id.next()
    }

    /// What one AND gate's check costs in wall time in this party's mode
    /// (0 when semi-honest): protocols with a choice of circuit weigh
    /// gates with it.
    pub fn check_seconds_per_gate(&self) -> f64 {
        match self.security {
            Security::SemiHonest => 0.0,
            Security::Malicious => crate::protocols::dzkp::CHECKED_GATE_SECONDS,
        }
    }

    /// AND gates recorded and not yet checked.
    pub fn unchecked_gates(&self) -> u64 {
        64 * self.ands.words() as u64
    }

    /// Test hook: changes this party's copy of one recorded AND output, as
    /// a cheating prover would (the check must fail).
    #[doc(hidden)]
    pub fn cheat_flip_recorded_output(&mut self, word: usize, bit: u32) {
        self.ands.flip_recorded_output(word, bit);
    }

    /// `F_r` multiplications and dot products recorded and not yet checked.
    pub fn unchecked_products(&self) -> u64 {
        self.products.gates() as u64
    }

    /// Test hook: adds one to this party's copy of one recorded `F_r`
    /// product output (the check must fail).
    #[doc(hidden)]
    pub fn cheat_shift_recorded_product(&mut self, gate: usize) {
        self.products.shift_recorded_output(gate);
    }

    /// Refuses to run `protocol` in malicious mode: it has no check yet.
    pub fn semi_honest_only(&self, protocol: &'static str) -> Result<(), MpcError> {
        match self.security {
            Security::SemiHonest => Ok(()),
            Security::Malicious => Err(MpcError::NotMaliciousSecure(protocol)),
        }
    }

    pub fn prev(&self) -> PartyId {
        self.id.prev()
    }
}
