//! The presence exchange of the batch check ([`crate::check`]) and the
//! judgment of what the parties claim in it.
//!
//! Each party tells the others, per item, whether it holds the shares and
//! accepts the attestation ([`Holding`]), with its clock. In malicious
//! mode the parties then compare digests of everything they were told
//! ([`echo_verdicts`]), and each honest party weighs its peers' claims
//! against its evidence ([`judge_claims`]): a claim not to hold shares the
//! claimer's own signed receipt keeps past now, or a refusal of an
//! attestation this party's vetting accepts for sure, is a lie and aborts
//! the batch (docs/security.md, "Presence claims are judged").

use triad_mpc::{MpcError, Party, PartyId};

/// What a party tells the others about one item in the presence exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// It holds the item's shares under the batch's digest and accepts
    /// the attestation.
    Held,
    /// It accepts the attestation but does not hold the shares (never
    /// received, expired, or other shares).
    Missing,
    /// Its own vetting refuses the attestation ([`crate::vet`]).
    Refused,
}

impl Holding {
    fn byte(self) -> u8 {
        match self {
            Self::Held => 0,
            Self::Missing => 1,
            Self::Refused => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        [Self::Held, Self::Missing, Self::Refused]
            .get(b as usize)
            .copied()
    }
}

/// How far apart the parties' clocks may be: a claim that a difference of
/// clocks up to this can explain is not judged a lie.
pub const CLOCK_SKEW_SECS: u64 = 30;

/// What an honest party weighs its peers' presence claims against, in
/// malicious mode (built from the batch's forwarded receipts and this
/// party's vetting, [`crate::vet::BatchEvidence`]).
pub trait Evidence {
    /// Until when (unix seconds) `party`'s signed receipt for item `item`'s
    /// shares, under the batch's digest, promised to keep them; `None`
    /// when this party holds no such receipt that verifies.
    fn kept_until(&self, item: usize, party: PartyId) -> Option<u64>;
    /// Whether this party's vetting of item `item`'s attestation could
    /// honestly differ from a peer's (its validity starts or ends within
    /// [`CLOCK_SKEW_SECS`] of now).
    fn vetting_unsure(&self, item: usize) -> bool;
    /// This party's clock, unix seconds.
    fn now(&self) -> u64;
}

/// No evidence: every claim stands (semi-honest runs, tests).
pub struct NoEvidence;

impl Evidence for NoEvidence {
    fn kept_until(&self, _: usize, _: PartyId) -> Option<u64> {
        None
    }
    fn vetting_unsure(&self, _: usize) -> bool {
        true
    }
    fn now(&self) -> u64 {
        0
    }
}

/// What the parties told each other in the presence exchange: each
/// party's holdings and clock, indexed by party.
pub(crate) struct Claims {
    pub(crate) holdings: [Vec<Holding>; 3],
    /// Each party's clock when it sent its holdings (unix seconds).
    pub(crate) clocks: [u64; 3],
}

/// Sends this party's clock and holdings to both peers and receives
/// theirs. 1 round.
pub(crate) fn exchange_holdings(
    p: &mut Party,
    mine: &[Holding],
    clock: u64,
) -> Result<Claims, MpcError> {
    p.rounds += 1;
    let mut bytes = clock.to_le_bytes().to_vec();
    bytes.extend(mine.iter().map(|h| h.byte()));
    let (prev, next) = (p.prev(), p.next());
    for to in [prev, next] {
        p.net.send(to, bytes.clone())?;
    }
    let mut c = Claims {
        holdings: Default::default(),
        clocks: [0; 3],
    };
    c.holdings[p.id.index()] = mine.to_vec();
    c.clocks[p.id.index()] = clock;
    for from in [prev, next] {
        let v = p.net.recv(from)?;
        if v.len() != bytes.len() {
            return Err(MpcError::WrongLength {
                from,
                expected: bytes.len(),
                got: v.len(),
            });
        }
        let (clock, held) = v.split_at(8);
        c.clocks[from.index()] = u64::from_le_bytes(clock.try_into().expect("8 bytes"));
        c.holdings[from.index()] = held
            .iter()
            .map(|&b| Holding::from_byte(b))
            .collect::<Option<_>>()
            .ok_or(MpcError::MalformedElement { from })?;
    }
    Ok(c)
}

/// Weighs each peer's claims against this party's evidence (malicious
/// mode, after the echo, so both honest parties weigh the same claims): a
/// peer that says it lacks shares its own receipt promises to keep until
/// later than now (plus the clock skew), or refuses an attestation this
/// party's vetting accepts for sure, is lying. Both depend on the clock:
/// a peer whose stated clock differs from this party's by more than the
/// skew makes the run abort without an accusation.
pub(crate) fn judge_claims(
    me: PartyId,
    claims: &Claims,
    evidence: &dyn Evidence,
) -> Result<(), MpcError> {
    let now = evidence.now();
    let mine = &claims.holdings[me.index()];
    for peer in [me.prev(), me.next()] {
        let skew = claims.clocks[peer.index()].abs_diff(now);
        let comparable = || {
            if skew > CLOCK_SKEW_SECS {
                Err(MpcError::ClockSkew {
                    from: peer,
                    seconds: skew,
                    limit: CLOCK_SKEW_SECS,
                })
            } else {
                Ok(())
            }
        };
        for (k, claim) in claims.holdings[peer.index()].iter().enumerate() {
            match claim {
                Holding::Held => {}
                Holding::Missing => {
                    if let Some(t) = evidence.kept_until(k, peer) {
                        comparable()?;
                        if now.saturating_add(CLOCK_SKEW_SECS) < t {
                            return Err(MpcError::CheatingDetected {
                                check: "presence claim",
                                detail: format!(
                                    "{peer} claims not to hold item {k}'s shares, which its signed \
                                     receipt keeps until {t} (now {now})"
                                ),
                            });
                        }
                    }
                }
                Holding::Refused => {
                    if mine[k] != Holding::Refused && !evidence.vetting_unsure(k) {
                        comparable()?;
                        return Err(MpcError::CheatingDetected {
                            check: "attestation vetting",
                            detail: format!(
                                "{peer} refuses item {k}'s attestation, which this party's \
                                 vetting accepts"
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Compares the digest of everything the parties told each other so far
/// (all three parties' holdings, the consistency verdicts) with both
/// peers' (1 round): a cheater that sent the two honest parties different
/// claims or bitmaps is caught before their views diverge further.
pub(crate) fn echo_verdicts(
    p: &mut Party,
    claims: &Claims,
    verdicts: &[&[bool]],
) -> Result<(), MpcError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in claims.clocks {
        h.update(c.to_le_bytes());
    }
    for v in &claims.holdings {
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.iter().map(|x| x.byte()).collect::<Vec<u8>>());
    }
    for v in verdicts {
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.iter().map(|&b| b as u8).collect::<Vec<u8>>());
    }
    let mine = h.finalize().to_vec();
    p.rounds += 1;
    let (prev, next) = (p.prev(), p.next());
    for to in [prev, next] {
        p.net.send(to, mine.clone())?;
    }
    for from in [prev, next] {
        if p.net.recv(from)? != mine {
            return Err(MpcError::CheatingDetected {
                check: "verdict echo",
                detail: format!(
                    "{from}'s and {}'s views of the presence claims or consistency verdicts \
                     differ: one of the three told them different things",
                    p.id
                ),
            });
        }
    }
    Ok(())
}
