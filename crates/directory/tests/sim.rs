//! The 50-node version of `triad bench directory`: real libp2p nodes in
//! one process, a fifth of them colluding, the four arms on the same
//! lookups (passive adversaries, then droppers). Figures are printed; the
//! assertions are on what the design guarantees, not on timings.

use triad_directory::sim::{run, ArmReport, SimConfig};

fn arm<'a>(r: &'a [ArmReport], name: &str) -> &'a ArmReport {
    r.iter().find(|a| a.arm == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_four_arms_passive_then_active() {
    for active in [false, true] {
        let cfg = SimConfig {
            nodes: 50,
            lookups: 30,
            active,
            ..SimConfig::default()
        };
        let report = run(&cfg).await.unwrap();
        for a in &report.arms {
            eprintln!("{}", serde_json::to_string(a).unwrap());
        }
        let (plain, prefix, onion) = (
            arm(&report.arms, "plain"),
            arm(&report.arms, "prefix"),
            arm(&report.arms, "onion"),
        );
        let cover = arm(&report.arms, "onion_delay_cover");
        if !active {
            for a in &report.arms {
                assert!(a.success_rate >= 0.9, "{a:?}");
            }
        } else {
            for a in [onion, cover] {
                assert!(
                    a.success_rate >= 0.8,
                    "retries route around droppers: {a:?}"
                );
            }
        }
        // Plain kad names the requester and the study whenever it is
        // seen; a prefix hides the study among its candidates; the onion
        // hides the requester unless its first relay is the adversary's.
        assert!(plain.candidates_median == 1);
        assert!(prefix.candidates_median > 1, "{prefix:?}");
        assert!(
            prefix.exact_identification < plain.exact_identification,
            "{prefix:?} {plain:?}"
        );
        assert!(
            onion.exact_identification_perfect_linking < prefix.exact_identification,
            "{onion:?} {prefix:?}"
        );
        assert!(
            onion.requester_anonymity.perfect_linking_mean
                > plain.requester_anonymity.perfect_linking_mean
        );
    }
}
