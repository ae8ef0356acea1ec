//! The malicious-secure shuffle (`protocols::shuffle_bits`): honest runs
//! permute the rows; a cheating party (every message it sends flipped,
//! replaced or dropped; its own share changed) makes at least one honest
//! party abort, and no honest party returns rows that are not a
//! permutation of the input.

use std::time::Duration;

use proptest::prelude::*;
use triad_mpc::network::MemNetwork;
use triad_mpc::protocols::{open, shuffle_bits};
use triad_mpc::share::share_plain;
use triad_mpc::testing::{run3, run3_cheating, run3_on, test_rng, Fault};
use triad_mpc::{Bits, MpcError, Network, Party, PartyId, Security, Shares};

type Rows = Vec<Vec<u64>>;

/// Distinct rows (the last column is the row's index, as in the sort
/// keys) of `cols` columns.
fn rows(n: usize, cols: usize, seed: u8) -> Rows {
    let mut prg = triad_mpc::prg::Prg::new([seed; 16]);
    (0..n)
        .map(|k| {
            let mut r: Vec<u64> = (0..cols - 1).map(|_| prg.next_u64()).collect();
            r.push(k as u64);
            r
        })
        .collect()
}

fn share_columns(rows: &Rows) -> Vec<[Shares<Bits>; 3]> {
    let cols = rows.first().map(|r| r.len()).unwrap_or(1);
    let mut rng = test_rng();
    (0..cols)
        .map(|c| {
            let col: Vec<Bits> = rows.iter().map(|r| Bits(r[c])).collect();
            share_plain(&col, &mut rng)
        })
        .collect()
}

/// Shuffles and opens; the rows as opened.
fn shuffle_and_open(p: &mut Party, cols: &[[Shares<Bits>; 3]]) -> Result<Rows, MpcError> {
    p.security = Security::Malicious;
    let i = p.id.index();
    let mine: Vec<Shares<Bits>> = cols.iter().map(|c| c[i].clone()).collect();
    let out = shuffle_bits(p, &mine)?;
    let opened: Vec<Vec<Bits>> = out.iter().map(|c| open(p, c)).collect::<Result<_, _>>()?;
    let n = opened.first().map(|c| c.len()).unwrap_or(0);
    Ok((0..n)
        .map(|k| opened.iter().map(|c| c[k].0).collect())
        .collect())
}

fn sorted(mut r: Rows) -> Rows {
    r.sort();
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// One to three columns, any length (0 included): the output is a
    /// permutation of the input rows, the same at all three parties.
    #[test]
    fn honest_shuffles_permute_the_rows(n in 0usize..80, cols in 1usize..4, seed in any::<u8>()) {
        let input = rows(n, cols, seed);
        let shared = share_columns(&input);
        let out = run3(|p| shuffle_and_open(p, &shared).unwrap());
        prop_assert_eq!(&out[0], &out[1]);
        prop_assert_eq!(&out[1], &out[2]);
        prop_assert_eq!(sorted(out[0].clone()), sorted(input));
    }
}

#[test]
fn large_shuffles_move_rows() {
    let input = rows(500, 2, 3);
    let shared = share_columns(&input);
    let out = run3(|p| shuffle_and_open(p, &shared).unwrap());
    assert_ne!(out[0], input, "500 rows left in place");
    assert_eq!(sorted(out[0].clone()), sorted(input));
}

/// Every message of every party after the seed exchange, with a bit
/// flipped (two positions), a value replaced, or dropped: at least one
/// honest party aborts, and every honest party that finishes holds a
/// permutation of the input rows.
#[test]
fn every_tampered_shuffle_message_aborts_the_run() {
    let input = rows(24, 3, 7);
    let shared = share_columns(&input);
    let sent = run3(|p| {
        shuffle_and_open(p, &shared).unwrap();
        p.net.stats().messages_sent
    });
    let mut runs = 0;
    for who in PartyId::ALL {
        let total = sent[who.index()];
        for nth in 2..=total {
            for fault in [
                Fault::Flip { at: 1, mask: 0x10 },
                Fault::Flip {
                    at: 13 + 5 * nth as usize,
                    mask: 0x01,
                },
                Fault::Replace { at: 16 },
                Fault::Drop,
            ] {
                runs += 1;
                let out = run3_cheating(who, fault, nth, Duration::from_millis(500), |p| {
                    shuffle_and_open(p, &shared)
                });
                assert!(
                    out.iter().any(|r| r.is_err()),
                    "{who} {fault:?} on message {nth}/{total}: no honest party aborted"
                );
                for r in out.iter().flatten() {
                    assert_eq!(
                        sorted(r.clone()),
                        sorted(input.clone()),
                        "{who} {fault:?} on message {nth}/{total}: rows changed"
                    );
                }
            }
        }
    }
    assert!(runs > 50, "only {runs} runs");
}

/// A party that changes its own component of a row before the shuffle
/// (every party, both components, data or index column) is caught by the
/// check of the tags' products.
#[test]
fn a_party_changing_its_own_share_before_the_shuffle_is_caught() {
    let input = rows(20, 2, 9);
    let shared = share_columns(&input);
    for cheat in PartyId::ALL {
        for component in 0..2 {
            for col in 0..2 {
                let out = run3_on(
                    MemNetwork::triple(Duration::from_secs(2))
                        .map(|n| Box::new(n) as Box<dyn Network>),
                    |p| {
                        let mut mine = shared.clone();
                        if p.id == cheat {
                            let s = &mut mine[col][cheat.index()];
                            let v = if component == 0 { &mut s.a } else { &mut s.b };
                            v[5].0 ^= 1 << 33;
                        }
                        shuffle_and_open(p, &mine)
                    },
                );
                let caught = out.iter().enumerate().any(|(i, r)| {
                    i != cheat.index() && matches!(r, Err(MpcError::CheatingDetected { .. }))
                });
                assert!(
                    caught,
                    "{cheat} component {component} column {col}: {out:?}"
                );
                for (i, r) in out.iter().enumerate() {
                    assert!(i == cheat.index() || r.is_err(), "P{i} finished: {r:?}");
                }
            }
        }
    }
}

/// No rows: nothing to shuffle, and the check still runs at all three.
#[test]
fn an_empty_shuffle_is_empty() {
    for cols in 1..3 {
        let shared = share_columns(&rows(0, cols, 1));
        let out = run3(|p| shuffle_and_open(p, &shared).unwrap());
        assert!(out.iter().all(|o| o.is_empty()));
    }
}
