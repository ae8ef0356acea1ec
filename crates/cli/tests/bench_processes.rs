//! End to end: `triad bench` with three OS processes over mutual-TLS TCP on
//! 127.0.0.1, checking the JSON contract and that every result matches the
//! plaintext oracle.

use std::process::Command;

/// Runs `triad <args>`, which must succeed, and parses its last line.
fn triad_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_triad"))
        .args(args)
        .output()
        .expect("run triad");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn bench(op: &str, n: &str, transport: &str) -> serde_json::Value {
    triad_json(&["bench", op, "--n", n, "--transport", transport, "--json"])
}

#[test]
fn every_protocol_bench_is_correct_over_three_processes() {
    for op in ["mul", "cmp", "poseidon", "sort", "stats", "poll-step"] {
        let v = bench(op, "200", "tcp");
        assert_eq!(v["bench"], op);
        assert_eq!(v["n"], 200);
        assert_eq!(v["transport"], "tcp");
        assert_eq!(v["correct"], true, "{op}: {v}");
        assert!(v["seconds"].as_f64().unwrap() > 0.0);
        assert!(v["bytes_sent_per_party"].as_u64().unwrap() > 0);
    }
}

#[test]
fn mem_transport_and_bad_arguments() {
    assert_eq!(bench("stats", "1", "mem")["correct"], true);
    refused(&["bench", "stats", "--n", "0"], "must be at least 1");
}

/// A whole poll over three processes: the tally matches the oracle, and
/// the JSON line carries the poll's figures.
#[test]
fn poll_bench_is_correct_over_three_processes() {
    let v = triad_json(&[
        "bench",
        "poll",
        "--voters",
        "12",
        "--messages",
        "30",
        "--json",
    ]);
    assert_eq!(v["correct"], true, "{v}");
    assert_eq!(v["voters"], 12);
    assert_eq!(v["messages"], 30);
    // The mix has invalid signatures: fewer messages pass phase 1.
    let wf = v["well_formed"].as_u64().unwrap();
    assert!(wf > 0 && wf <= 30, "{v}");
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0);
    for bad in [["--voters", "0"], ["--messages", "0"]] {
        refused(&["bench", "poll", bad[0], bad[1]], "must be at least 1");
    }
}

/// With a re-keying epoch first: still exact against the oracle, the
/// epoch's time reported; more re-keys than voters is refused.
#[test]
fn poll_bench_with_rekeys_is_correct_over_three_processes() {
    let v = triad_json(&[
        "bench",
        "poll",
        "--voters",
        "12",
        "--messages",
        "30",
        "--rekeys",
        "6",
        "--json",
    ]);
    assert_eq!(v["correct"], true, "{v}");
    assert_eq!(v["rekeys"], 6);
    assert!(v["rekey_seconds"].as_f64().unwrap() > 0.0, "{v}");
    refused(
        &["bench", "poll", "--voters", "3", "--rekeys", "4"],
        "at most --voters",
    );
}

/// `triad <args>` fails, saying `why` on stderr.
fn refused(args: &[&str], why: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_triad"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "triad {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "triad {args:?}: {err}");
}
