//! `triad probe` against a real `triad devnet` (every service a separate
//! OS process on 127.0.0.1): every hostile request is refused cleanly, no
//! 5xx, no service restarts, and no public counter changes.

mod common;

use common::{triad, DevnetProcess as Devnet};
use serde_json::Value;

#[test]
fn every_hostile_request_is_refused_cleanly() {
    let dn = Devnet::start("probe", 20);
    let out = triad()
        .args(["probe", "--json", "--devnet"])
        .arg(&dn.dir)
        .output()
        .expect("run triad probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!("triad probe printed nothing ({}): {stderr}", out.status);
    });
    let s: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}\n{stderr}"));
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}"));
    let failures = serde_json::to_string_pretty(&s["failures"]).unwrap();
    eprintln!(
        "probe: {} cases, {} refused cleanly, {} server errors, {} restarts, state changed: {}, {:.1} s",
        n("cases"),
        n("refused_cleanly"),
        n("server_errors"),
        n("restarts"),
        s["state_changed"],
        s["seconds"].as_f64().unwrap_or(0.0)
    );
    assert!(n("cases") >= 60, "only {} cases", n("cases"));
    assert_eq!(n("server_errors"), 0, "server errors: {failures}");
    assert_eq!(
        s["state_changed"], false,
        "state changed: {}",
        s["state_diff"]
    );
    assert_eq!(n("restarts"), 0, "restarts: {}", s["restarted"]);
    assert_eq!(
        n("refused_cleanly"),
        n("cases"),
        "not refused cleanly: {failures}"
    );
    assert!(
        out.status.success(),
        "triad probe failed ({}) although every case passed: {stderr}",
        out.status
    );
}
