//! Replays every committed corpus file `fuzz/corpus/<target>/*` through its
//! target on stable: the seeds and every past crash stay regression tests.
//! A target without corpus files fails, so a new target cannot ship unseeded.

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_target_replays_its_corpus() {
    let mut failures = Vec::new();
    for (name, target) in triad_fuzzing::TARGETS {
        let dir = corpus_dir(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no corpus files", dir.display());
        for f in files {
            let data = std::fs::read(&f).expect("corpus file");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(f.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "corpus inputs that fail: {failures:#?}"
    );
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in triad_fuzzing::TARGETS {
        let src = std::fs::read_to_string(dir.join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz target {name}: {e}"));
        assert!(
            src.contains(&format!("triad_fuzzing::{name}(")),
            "fuzz/fuzz_targets/{name}.rs does not call triad_fuzzing::{name}"
        );
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    std::fs::read_dir(corpus_dir(target))
        .expect("corpus directory")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        })
        .map(|p| std::fs::read(p).expect("seed"))
        .collect()
}

/// The real seeds get past the parsers into the checks behind them, so the
/// fuzzer starts from accepted sessions and messages, not from rejections.
#[test]
fn real_seeds_are_accepted_inputs() {
    use triad_attestation::verify_attestation;
    let accepted = seeds("tls_transcript")
        .iter()
        .map(|s| triad_fuzzing::TranscriptCase::decode(s))
        .filter(|c| c.check(&c.transcript).is_ok())
        .count();
    assert!(accepted >= 2, "{accepted} accepted transcripts");
    let key = triad_fuzzing::fuzz_notary_key().public_key();
    let verified = seeds("attestation")
        .iter()
        .filter_map(|s| {
            triad_attestation::Attestation::from_json(std::str::from_utf8(s).ok()?).ok()
        })
        .filter(|a| verify_attestation(a, &[key], a.session_time).is_ok())
        .count();
    assert!(verified >= 2, "{verified} verified attestations");
    for s in seeds("attest_request") {
        assert!(
            triad_notary::api::parse_attest(&s).is_ok(),
            "attest body seed"
        );
    }
    // Seeds hold uploads for parties 0 and 1: each opens its commitments
    // for exactly one of them.
    for s in seeds("share_upload") {
        let u = serde_json::from_slice(&s).expect("upload JSON");
        let ok = (0..3)
            .filter(|&p| triad_party::intake::parse_upload(&u, p).is_ok())
            .count();
        assert_eq!(
            ok, 1,
            "a share upload seed opens its commitments for one party"
        );
    }
    for s in seeds("prepare_batch") {
        let b = serde_json::from_slice(&s).expect("batch JSON");
        assert!(triad_party::service::validate_prepare(&b).is_ok());
    }
    let maci = seeds("maci_keys");
    assert!(maci.len() >= 5, "{} maci_keys seeds", maci.len());
    for s in maci {
        let s = String::from_utf8(s).expect("key string");
        assert!(
            s.parse::<triad_maci::PrivKey>().is_ok() || s.parse::<triad_maci::PubKey>().is_ok(),
            "{s} is not a key"
        );
    }
    for s in seeds("directory_envelope") {
        let id = triad_fuzzing::fuzz_directory_id();
        let opened = triad_directory::envelope::open(
            &s,
            &id,
            triad_directory::record::Kind::Study,
            1_800_000_000,
            None,
        );
        assert!(opened.is_ok(), "directory_envelope seed: {opened:?}");
    }
    for s in seeds("prefix_messages") {
        let ok = if s[0] % 2 == 0 {
            triad_directory::node::PrefixRequest::parse(&s[1..]).is_some()
        } else {
            triad_directory::node::PrefixAnswer::parse(&s[1..]).is_some()
        };
        assert!(ok, "prefix_messages seed");
    }
    let relay = triad_fuzzing::fuzz_onion_relay();
    let secret = triad_directory::onion::sphinx_secret(&relay).expect("ed25519");
    let peeled = seeds("onion_packet")
        .iter()
        .filter(|s| {
            triad_directory::onion::process(s, &secret, &relay.public().to_peer_id()).is_ok()
        })
        .count();
    assert_eq!(peeled, 2, "the first-hop and exit seeds peel");
    for s in seeds("poll_shares") {
        let u: triad_wire::poll::MessageShares = serde_json::from_slice(&s).expect("shares JSON");
        assert!(u.parse().is_ok(), "poll_shares seed");
    }
    let notary = triad_fuzzing::fuzz_notary_key().public_key();
    let accepted = seeds("tally_request")
        .iter()
        .filter(|s| {
            let r: triad_wire::poll::TallyRequest = serde_json::from_slice(s).expect("JSON");
            let now = r.spec.voting_deadline;
            triad_party::polls::check_tally_request(&r.spec, &r, &notary, 0, now).is_ok()
        })
        .count();
    assert!(accepted >= 2, "{accepted} accepted tally requests");
    for s in seeds("wire_messages") {
        let name = triad_fuzzing::WIRE_TYPES[usize::from(s[0]) % triad_fuzzing::WIRE_TYPES.len()];
        assert!(
            triad_fuzzing::wire_message_parses(&s),
            "{name} seed does not parse"
        );
    }
}
