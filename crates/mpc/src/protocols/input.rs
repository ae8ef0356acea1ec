//! Input from an external client (a data provider). The client splits each
//! value into three components and sends party `i` the pair
//! `(x_i, x_{i+1})` ([`crate::share::share_plain`]); a faulty or malicious
//! client could send pairs that do not overlap consistently, which would
//! make every later result garbage. The parties therefore compare the
//! overlapping component: party `i` sends `H(id, x_i)` to `prev`, which
//! holds `x_i` as its `b`. The receiver already knows `x_i`, so the hash
//! reveals nothing; the verdicts are then exchanged so that all three
//! parties agree on the accepted set. 2 rounds.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::{MpcError, Party, PartyId, Ring, Shares};

/// One client submission: its id and the elements it occupies in `shares`.
#[derive(Clone, Debug)]
pub struct Submission {
    pub id: u64,
    pub range: Range<usize>,
}

fn digest<T: Ring>(id: u64, xs: &[T]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"triad/input-check/v1");
    h.update(id.to_le_bytes());
    h.update((xs.len() as u64).to_le_bytes());
    h.update(crate::ring::encode_vec(xs));
    h.finalize().into()
}

/// Returns, identically at all parties, whether each submission's
/// components are consistent.
pub fn check_client_input<T: Ring>(
    p: &mut Party,
    shares: &Shares<T>,
    submissions: &[Submission],
) -> Result<Vec<bool>, MpcError> {
    if submissions
        .iter()
        .any(|s| s.range.end > shares.len() || s.range.start > s.range.end)
    {
        return Err(MpcError::InvalidArgument(
            "submission range outside the shares",
        ));
    }
    let m = submissions.len();
    let mine: Vec<u8> = submissions
        .iter()
        .flat_map(|s| digest(s.id, &shares.a[s.range.clone()]))
        .collect();
    let (prev, next) = (p.prev(), p.next());
    p.rounds += 2;
    p.net.send(prev, mine)?;
    let theirs = p.net.recv(next)?;
    if theirs.len() != 32 * m {
        return Err(MpcError::WrongLength {
            from: next,
            expected: 32 * m,
            got: theirs.len(),
        });
    }
    let ok: Vec<u8> = submissions
        .iter()
        .zip(theirs.chunks_exact(32))
        .map(|(s, h)| (digest(s.id, &shares.b[s.range.clone()]) == h) as u8)
        .collect();
    // Agree on the verdicts: each party's check covers one component.
    let mut all = ok.clone();
    for to in [prev, next] {
        p.net.send(to, ok.clone())?;
    }
    for from in [prev, next] {
        let v = p.net.recv(from)?;
        check_verdicts(&v, m, from)?;
        all.iter_mut().zip(v).for_each(|(a, b)| *a &= b);
    }
    Ok(all.into_iter().map(|v| v == 1).collect())
}

fn check_verdicts(v: &[u8], m: usize, from: PartyId) -> Result<(), MpcError> {
    if v.len() != m {
        return Err(MpcError::WrongLength {
            from,
            expected: m,
            got: v.len(),
        });
    }
    if v.iter().any(|b| *b > 1) {
        return Err(MpcError::MalformedElement { from });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::share_plain;
    use crate::testing::{run3, test_rng};
    use crate::{Fr, Z64};
    use proptest::prelude::*;
    use std::num::Wrapping;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn inconsistent_submissions_are_rejected(v in prop::collection::vec(any::<u64>(), 3..30), bad in prop::collection::vec((any::<usize>(), 0usize..3, any::<bool>()), 0..4)) {
            let x: Vec<Z64> = v.iter().map(|&a| Wrapping(a)).collect();
            let mut sh = share_plain(&x, &mut test_rng());
            // Submissions of 3 elements each.
            let subs: Vec<Submission> = (0..v.len() / 3)
                .map(|k| Submission { id: 100 + k as u64, range: 3 * k..3 * k + 3 })
                .collect();
            let mut want = vec![true; subs.len()];
            for (pos, party, which) in bad {
                let s = pos % subs.len();
                if !want[s] {
                    // A second change to the same submission could undo the
                    // first (both copies of one component); one per submission.
                    continue;
                }
                let e = subs[s].range.start + pos % 3;
                let sh = &mut sh[party];
                if which { sh.a[e] += Wrapping(1) } else { sh.b[e] += Wrapping(1) }
                want[s] = false;
            }
            let out = run3(|p| check_client_input(p, &sh[p.id.index()], &subs).unwrap());
            for o in out {
                prop_assert_eq!(&o, &want);
            }
        }
    }

    #[test]
    fn field_inputs_check_too() {
        let x = vec![Fr::from(3u64), Fr::from(4u64)];
        let mut sh = share_plain(&x, &mut test_rng());
        sh[2].b[1] = Fr::from(9u64);
        let subs = [
            Submission { id: 1, range: 0..1 },
            Submission { id: 2, range: 1..2 },
        ];
        let out = run3(|p| check_client_input(p, &sh[p.id.index()], &subs).unwrap());
        assert_eq!(out[1], vec![true, false]);
    }
}
