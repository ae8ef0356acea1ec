//! Polls over real processes: `triad demo poll` end to end (devnet,
//! notary, sign-ups, votes as share sets, the briber, the tally signed by
//! all three parties, the consumer API), and the poll verbs of the `triad`
//! binary against a running devnet, with their refusals.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{triad, DevnetProcess};
use serde_json::Value;

fn last_json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "no JSON last line ({e}):\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn demo_poll_matches_the_oracle_over_real_processes() {
    let o = triad()
        .args(["demo", "poll", "--voters", "20", "--exit", "--json"])
        .args(["--deadline-secs", "15"])
        .output()
        .unwrap();
    let v = last_json(&o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v["voters"], 20);
    // Voters 1, 6, 11, 16 sold their keys; 1 and 11 resisted with a key
    // change, 6 and 16 deactivated the sold key and re-keyed.
    assert_eq!(
        (v["bribed"].as_u64(), v["resisted"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(
        (v["deactivations"].as_u64(), v["rekeys"].as_u64()),
        (Some(2), Some(2))
    );
    // 20 votes, 2 key changes, 2 deactivations, 2 re-keys, then a vote
    // with each new key and the briber's with each sold one.
    assert_eq!(v["messages"], 30);
    assert_eq!(v["refused"], 0);
    assert_eq!(v["match"], true);
    assert_eq!(v["api_match"], true);
    // The parties' statistics default to malicious; poll jobs run (and
    // their tally is signed as) semi-honest.
    assert_eq!(v["security"], "semi-honest", "{v}");
    assert_eq!(v["tally"], v["oracle_tally"]);
    assert_eq!(v["tally"]["votes"].as_array().map(Vec::len), Some(4));
}

fn service_pid(dir: &Path, name: &str) -> u32 {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).unwrap()).unwrap();
    info["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["pid"].as_u64())
        .unwrap_or_else(|| panic!("no {name} in devnet.json")) as u32
}

/// `triad vote` on poll 5 with these arguments, then `extra`.
fn vote_args<'a>(
    key_file: &'a str,
    index: &'a str,
    option: &'a str,
    weight: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "vote",
        "--poll",
        "5",
        "--key-file",
        key_file,
        "--state-index",
        index,
        "--option",
        option,
        "--weight",
        weight,
    ];
    a.extend_from_slice(extra);
    a
}

struct Verbs<'a> {
    dir: &'a Path,
}

impl Verbs<'_> {
    fn run(&self, args: &[&str]) -> Output {
        triad()
            .args(args)
            .args(["--devnet"])
            .arg(self.dir)
            .env_remove("TRIAD_API_KEY")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Value {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "triad {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        last_json(&o)
    }

    /// Fails, with `code` in the error message.
    fn refused(&self, args: &[&str], code: &str) {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "triad {args:?} succeeded");
        assert!(err.contains(code), "triad {args:?}: {err}");
    }
}

#[test]
fn poll_verbs_over_a_devnet() {
    poll_verbs(DevnetProcess::start("poll-verbs", 4));
}

/// The same with every service on a PostgreSQL database of its own (the
/// parties' poll routes read their store off the async runtime).
#[test]
fn poll_verbs_over_a_devnet_on_postgres() {
    poll_verbs(DevnetProcess::start_on_postgres("poll-verbs-pg", 4));
}

fn poll_verbs(dn: DevnetProcess) {
    let dir = &dn.dir;
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).unwrap()).unwrap();
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(info["ground_truth"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let key_file = |i: usize| {
        let p = dir.join(format!("voter{i}.key"));
        let o = triad().arg("keygen").output().unwrap();
        assert!(o.status.success());
        std::fs::write(&p, &o.stdout).unwrap();
        p.to_string_lossy().into_owned()
    };
    let api_file = |i: usize| {
        let p = dir.join(format!("voter{i}.api"));
        std::fs::write(&p, truth["accounts"][i]["api_key"].as_str().unwrap()).unwrap();
        p.to_string_lossy().into_owned()
    };
    let v = Verbs { dir };
    let created = v.ok(&[
        "poll",
        "create",
        "--id",
        "5",
        "--name",
        "verbs",
        "--options",
        "3",
        "--signup-secs",
        "20",
        "--voting-secs",
        "40",
        "--json",
    ]);
    assert_eq!(created["id"], 5);
    let deadline = created["voting_deadline"].as_u64().unwrap();
    v.refused(
        &[
            "poll",
            "create",
            "--id",
            "5",
            "--name",
            "again",
            "--options",
            "3",
            "--signup-secs",
            "25",
            "--voting-secs",
            "25",
        ],
        "poll_exists",
    );
    v.refused(
        &[
            "poll",
            "create",
            "--id",
            "6",
            "--name",
            "x",
            "--options",
            "0",
            "--signup-secs",
            "25",
            "--voting-secs",
            "25",
        ],
        "vote option",
    );

    let (k0, k1, k2) = (key_file(0), key_file(1), key_file(2));
    let (a0, a1) = (api_file(0), api_file(1));
    let s0 = v.ok(&[
        "poll",
        "signup",
        "--poll",
        "5",
        "--key-file",
        &k0,
        "--api-key-file",
        &a0,
        "--json",
    ]);
    assert_eq!(s0["state_index"], 1);
    // One sign-up per attested account, whatever the key.
    v.refused(
        &[
            "poll",
            "signup",
            "--poll",
            "5",
            "--key-file",
            &k2,
            "--api-key-file",
            &a0,
        ],
        "already_signed_up",
    );
    v.refused(
        &[
            "poll",
            "signup",
            "--poll",
            "99",
            "--key-file",
            &k2,
            "--api-key-file",
            &a0,
        ],
        "unknown_poll",
    );
    let s1 = v.ok(&[
        "poll",
        "signup",
        "--poll",
        "5",
        "--key-file",
        &k1,
        "--api-key-file",
        &a1,
        "--json",
    ]);
    assert_eq!(s1["state_index"], 2);

    let e0 = v.ok(&vote_args(&k0, "1", "2", "5", &["--json"]));
    assert_eq!(e0["position"], 0);
    let e1 = v.ok(&vote_args(&k1, "2", "1", "3", &["--json"]));
    assert_eq!(e1["position"], 1);
    // Bad input is refused before anything is sent.
    v.refused(
        &vote_args(&k1, "2", "1", "3", &["--new-key", "macipk.zz"]),
        "--new-key",
    );
    v.refused(&vote_args(&a1, "2", "1", "3", &[]), "holds no macisk");
    v.refused(
        &vote_args(&k1, "2", "1", "3", &["--nonce", "1125899906842624"]),
        "does not fit",
    );
    // No tally while the poll is open.
    v.refused(&["poll", "tally", "--poll", "5"], "no_tally");

    // Voter 1 deactivates its key; the secret goes to a new 0600 file,
    // never to stdout unless asked.
    let secret = dir.join("voter1.secret");
    let sf = secret.to_string_lossy().into_owned();
    let deact = [
        "poll",
        "deactivate",
        "--poll",
        "5",
        "--key-file",
        &k1,
        "--state-index",
        "2",
    ];
    let d = v.ok(&[&deact[..], &["--secret-file", &sf, "--json"]].concat());
    assert_eq!(d["kind"]["type"], "deactivate");
    assert!(d.get("secret").is_none());
    let stored = std::fs::read_to_string(&secret).unwrap();
    assert!(!v
        .run(&[&deact[..], &["--secret-file", &sf]].concat())
        .status
        .success());
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        stored,
        "overwritten"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let k3 = key_file(3);
    let rekey = [
        "poll",
        "rekey",
        "--poll",
        "5",
        "--secret-file",
        &sf,
        "--new-key-file",
        &k3,
    ];
    // Re-keying opens when sign-up closes; a secret of another poll is refused.
    v.refused(&rekey, "signup_open");
    v.refused(
        &[
            "poll",
            "rekey",
            "--poll",
            "6",
            "--secret-file",
            &sf,
            "--new-key-file",
            &k3,
        ],
        "not 6",
    );
    let signup_deadline = created["signup_deadline"].as_u64().unwrap();
    while triad_wire::unix_now() < signup_deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = v.ok(&[&rekey[..], &["--json"]].concat());
    assert_eq!(r["state_index"], 3);
    // The same secret again: refused publicly.
    v.refused(&rekey, "nullifier_used");
    // Voter 1 votes with its new key as state index 3.
    v.ok(&vote_args(&k3, "3", "0", "4", &["--json"]));

    while triad_wire::unix_now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    v.refused(&vote_args(&k0, "1", "0", "1", &[]), "poll_closed");
    // kill -9 of a party while the tally runs: the devnet restarts it, the
    // coordinator asks again, and the restarted party computes from the
    // shares it had confirmed (on disk).
    std::thread::sleep(Duration::from_millis(1500));
    let pid = service_pid(dir, "party2");
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    let tally = loop {
        let o = v.run(&["poll", "tally", "--poll", "5", "--json"]);
        if o.status.success() {
            break last_json(&o);
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no tally: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Voter 1's vote with the deactivated key no longer counts; its vote
    // with the re-keyed one does, with its credits.
    assert_eq!(tally["tally"]["votes"], serde_json::json!([4, 0, 5]));
    assert_eq!(tally["tally"]["spent"], 16 + 25);
    assert_eq!(
        (
            tally["tally"]["deactivations"].as_u64(),
            tally["tally"]["rekeys"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(tally["signatures"].as_array().map(Vec::len), Some(3));
    drop(dn);
}
