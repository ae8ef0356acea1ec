//! Writes the seed corpus `fuzz/corpus/<target>/seed-*` from real runs:
//! the demo data source, the recording proxy and the prover over loopback
//! sockets (real TLS 1.2 transcripts, the notary's real attestation, the
//! prover's real `POST /v1/attest` bodies), the client's real share
//! uploads, and the messages of a real three-party statistics run.
//!
//! ```sh
//! TRIAD_WRITE_CORPUS=1 cargo run -p triad-fuzzing --example write_corpus
//! ```
//!
//! Without `TRIAD_WRITE_CORPUS=1` it only prints what it would write. Seeds
//! differ from run to run (fresh keys and randomness); crash inputs the
//! fuzzer found (`crash-*`) are never touched.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::OsRng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use triad_attestation::{extract_claim, DataSpec};
use triad_client::{commit_shares, random_fr, split_shares};
use triad_fuzzing::{fuzz_notary_key, TranscriptCase, WIRE_TYPES};
use triad_mpc::protocols::mul;
use triad_mpc::share::share_plain;
use triad_mpc::testing::run3_on;
use triad_mpc::{Fr, NetError, NetStats, Network, PartyId, Shares, Z128};
use triad_notary::api::AttestApiRequest;
use triad_notary::http::response_body;
use triad_notary::proxy::SessionOutcome;
use triad_notary::{
    attest_session, launch_proxy, prover_client_config, root_store, run_session,
    AttestationRequest, ProveTarget, ProxyConfig,
};
use triad_stats::StatsSpec;
use triad_testsite::{ground_truth, launch_datasource, DatasourceConfig};
use triad_wire::messages::*;
use triad_wire::receipt::{commitments_digest, ShareReceipt, RECEIPT_VERSION};
use triad_wire::release::sign_release;
use triad_wire::{PartySigningKey, Release, VerifiedRelease};

type Seeds = Vec<(&'static str, String, Vec<u8>)>;

fn main() {
    let write = std::env::var("TRIAD_WRITE_CORPUS").is_ok_and(|v| v == "1");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let dir = std::env::temp_dir().join(format!("triad-corpus-{}", std::process::id()));
    let mut seeds = Seeds::new();
    notary_seeds(&dir, &mut seeds);
    let _ = std::fs::remove_dir_all(&dir);
    mpc_seeds(&mut seeds);
    maci_seeds(&mut seeds);
    poll_seeds(&mut seeds);
    directory_seeds(&mut seeds);
    // TRIAD_CORPUS_TARGETS=a,b writes only those targets' seeds.
    if let Ok(only) = std::env::var("TRIAD_CORPUS_TARGETS") {
        let only: Vec<&str> = only.split(',').collect();
        seeds.retain(|s| only.contains(&s.0));
    }
    let total: usize = seeds.iter().map(|s| s.2.len()).sum();
    for (target, name, bytes) in &seeds {
        println!("{target}/seed-{name}: {} bytes", bytes.len());
    }
    println!("{} seeds, {total} bytes", seeds.len());
    if !write {
        println!(
            "dry run: set TRIAD_WRITE_CORPUS=1 to write them under {}",
            root.display()
        );
        return;
    }
    for (target, name, bytes) in &seeds {
        let d = root.join(target);
        std::fs::create_dir_all(&d).expect("corpus directory");
        std::fs::write(d.join(format!("seed-{name}")), bytes).expect("seed file");
    }
}

/// MACI key strings: the MACI docs' example pair, the shared vectors' user
/// pair (`shared/vectors/maci/generated.json`), and a public key whose
/// packed form has a leading zero byte (62 hex digits). Fixed keys, so
/// these seeds are the same on every run.
fn maci_seeds(seeds: &mut Seeds) {
    let docs: triad_maci::PrivKey =
        "macisk.08a06aef74c7f6a6f73704e30677418731bc738500f4e6c63dbfe41af8d6719c"
            .parse()
            .expect("MACI docs key");
    let mut user = [0u8; 32];
    user.copy_from_slice(
        &hex::decode("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
            .expect("hex"),
    );
    let mut short = [0u8; 32];
    short[31] = 0x9e;
    for (name, bytes) in [
        ("maci-docs", None),
        ("generated", Some(user)),
        ("short", Some(short)),
    ] {
        let sk = bytes.map_or(docs.clone(), triad_maci::PrivKey::from_bytes);
        if name != "short" {
            add(seeds, "maci_keys", &format!("{name}-sk"), sk.to_macisk());
        }
        add(
            seeds,
            "maci_keys",
            &format!("{name}-pk"),
            sk.public_key().to_string(),
        );
    }
}

/// A poll's bodies: a real share set of a signed vote, and a tally request
/// whose sign-ups carry attestations signed with the fuzz notary key, so
/// the seeds reach `check_tally_request`'s acceptance; plus each poll
/// message of `triad_wire::poll` for `wire_messages`.
fn poll_seeds(seeds: &mut Seeds) {
    use triad_attestation::{sign_attestation, AttestationClaims, DataSource};
    use triad_wire::poll::*;
    let spec = PollSpec {
        id: 1,
        name: "seed poll".into(),
        vote_options: 3,
        mode: PollMode::Quadratic,
        signup_deadline: 1_800_000_000,
        voting_deadline: 1_800_000_100,
        window: 32,
        voice_credits: 100,
        data_spec: DataSpec {
            field: "balances.ETH".into(),
            scale: 4,
            account_field: "uid".into(),
        },
        source: DataSource::named("127.0.0.1"),
        rekey_epoch_secs: 30,
    };
    let notary = fuzz_notary_key();
    let keys: Vec<triad_maci::Keypair> = (0..2).map(|_| triad_maci::Keypair::generate()).collect();
    let signups: Vec<Signup> = keys
        .iter()
        .enumerate()
        .map(|(i, kp)| {
            let claims = AttestationClaims {
                server_name: "127.0.0.1".into(),
                cert_chain_sha256: [1; 32],
                session_time: 1_799_999_000,
                expires_at: 1_800_003_600,
                study_id: poll_study_id(1),
                data_spec: spec.data_spec.clone(),
                commitment: Fr::from(7u64),
                nullifier: Fr::from(100 + i as u64),
                transcript_sha256: [i as u8; 32],
            };
            Signup {
                state_index: i as u64 + 1,
                pub_key: kp.public.to_string(),
                voice_credits: 100,
                timestamp: 1_799_999_500,
                attestation: sign_attestation(&notary, &claims),
            }
        })
        .collect();
    let command = triad_maci::Command {
        state_index: 1,
        vote_option_index: 2,
        new_vote_weight: 5,
        nonce: 1,
        poll_id: 1,
        new_pub_key: keys[0].public,
        salt: Fr::from(9u64),
    };
    let msg = triad_polls::Message::sign_with(command, &keys[0].private, 0).expect("signs");
    let plain = triad_polls::mpc::encode(&msg).expect("encodes");
    let views = triad_polls::mpc::share_messages(&[plain], &mut OsRng);
    let mut uploads = Vec::new();
    let mut commitments: [String; 3] = Default::default();
    let salts: [[u8; 32]; 3] = std::array::from_fn(|j| [j as u8 + 1; 32]);
    for (i, v) in views.iter().enumerate() {
        let set = ShareSet::vote(v);
        commitments[i] = component_commitment(1, i, &salts[i], &set, 0);
        uploads.push(MessageShares::new(
            &"ab".repeat(16),
            &"cd".repeat(32),
            [salts[i], salts[(i + 1) % 3]],
            &set,
        ));
    }
    for (i, u) in uploads.iter().enumerate() {
        add(seeds, "poll_shares", &format!("party{i}"), json(u));
    }
    // A deactivation's and a re-key's share sets (party 0's).
    let secret = Fr::from(77u64);
    let rekey_kind = MessageKind::Rekey {
        new_key: keys[1].public.to_string(),
        nullifier: triad_crypto::fr_to_hex(&triad_polls::rekey::rekey_nullifier(&secret, 1)),
    };
    {
        let d =
            triad_polls::mpc::rekey::share_deactivations(std::slice::from_ref(&msg), &mut OsRng)
                .expect("packs");
        let set = ShareSet::deactivation(&d[0]);
        let up = MessageShares::new(&"ab".repeat(16), &"cd".repeat(32), [[7; 32]; 2], &set);
        add(seeds, "poll_shares", "deactivation", json(&up));
        let r = triad_polls::mpc::rekey::share_rekeys(
            &[triad_polls::rekey::Rekey {
                secret,
                new_key: keys[1].public,
                timestamp: 0,
            }],
            &mut OsRng,
        );
        let set = ShareSet::rekey(rekey_kind.clone(), &r[0]);
        let up = MessageShares::new(&"ab".repeat(16), &"cd".repeat(32), [[8; 32]; 2], &set);
        add(seeds, "poll_shares", "rekey", json(&up));
    }
    let log: Vec<LogEntry> = (0..2)
        .map(|k| LogEntry {
            position: k,
            submission_id: format!("{k:032x}"),
            timestamp: 1_800_000_000 + k,
            commitments: commitments.clone(),
            kind: MessageKind::Vote,
            state_index: None,
        })
        .collect();
    let req = TallyRequest {
        spec: spec.clone(),
        signups: signups.clone(),
        log: log.clone(),
    };
    add(
        seeds,
        "tally_request",
        "two-signups-two-messages",
        json(&req),
    );
    // A deactivation before the sign-up deadline, a re-key after it (leaf
    // 3), a vote.
    let mut rekey_log = log.clone();
    rekey_log[0].kind = MessageKind::Deactivate;
    rekey_log[0].timestamp = 1_799_999_990;
    rekey_log[1].kind = rekey_kind.clone();
    rekey_log[1].state_index = Some(3);
    rekey_log.push(LogEntry {
        position: 2,
        submission_id: format!("{:032x}", 2),
        timestamp: 1_800_000_050,
        ..log[0].clone()
    });
    add(
        seeds,
        "tally_request",
        "deactivation-rekey-vote",
        json(&TallyRequest {
            spec: spec.clone(),
            signups: signups.clone(),
            log: rekey_log,
        }),
    );
    let empty = TallyRequest {
        spec: spec.clone(),
        signups: Vec::new(),
        log: Vec::new(),
    };
    add(seeds, "tally_request", "empty", json(&empty));
    let tally = PollTally {
        version: TALLY_VERSION,
        poll_id: 1,
        signups: 2,
        messages: 2,
        input_sha256: "ab".repeat(32),
        votes: vec![0, 0, 5],
        spent: 25,
        spent_per_option: vec![0, 0, 25],
        deactivations: 1,
        rekeys: 1,
        security: Some(triad_wire::release::SecurityMode::SemiHonest),
    };
    let party_keys = [1u8, 2, 3].map(|s| PartySigningKey::from_seed([s; 32]));
    let signed: Vec<SignedTally> = (0..3)
        .map(|i| sign_tally(&party_keys[i], i as u8, &tally))
        .collect();
    let info = PollInfo {
        spec: spec.clone(),
        created_at: 1_799_999_000,
        signups: 2,
        messages: 2,
        tallied: true,
        directory_id: None,
    };
    let messages: Vec<(&str, String)> = vec![
        ("PollSpec", json(&spec)),
        ("PollInfo", json(&info)),
        (
            "SignupRequest",
            json(&SignupRequest {
                attestation: signups[0].attestation.clone(),
                pub_key: signups[0].pub_key.clone(),
            }),
        ),
        ("Signup", json(&signups[1])),
        (
            "MessageRequest",
            json(&MessageRequest {
                commitments: commitments.clone(),
                kind: rekey_kind.clone(),
            }),
        ),
        (
            "MessageTicket",
            json(&MessageTicket {
                submission_id: "ab".repeat(16),
                token: "cd".repeat(32),
                parties: vec!["https://127.0.0.1:1".into(); 3],
            }),
        ),
        ("MessageShares", json(&uploads[0])),
        (
            "MessageReady",
            json(&MessageReady {
                token: "cd".repeat(32),
            }),
        ),
        ("LogEntry", json(&log[0])),
        (
            "ConfirmMessage",
            json(&ConfirmMessage {
                submission_id: "ab".repeat(16),
                token_sha256: "ef".repeat(32),
                commitment: commitments[0].clone(),
                kind: MessageKind::Deactivate,
            }),
        ),
        ("TallyRequest", json(&req)),
        (
            "TallyProgress",
            json(&TallyProgress {
                signed: Some(signed[0].clone()),
                ..TallyProgress::default()
            }),
        ),
        ("PollTally", json(&tally)),
        ("SignedTally", json(&signed[1])),
        (
            "VerifiedTally",
            json(&VerifiedTally {
                tally: tally.clone(),
                signatures: signed.clone(),
            }),
        ),
    ];
    add_wire_messages(seeds, messages);
}

/// A study record sealed for `triad_fuzzing::fuzz_directory_id`, and the
/// prefix protocol's messages around it.
fn directory_seeds(seeds: &mut Seeds) {
    use triad_directory::derive::kad_position;
    use triad_directory::envelope::seal;
    use triad_directory::node::{PrefixAnswer, PrefixRequest};
    use triad_directory::record::ServiceRecord;
    use triad_directory::SigningKey;
    let now = 1_800_000_000;
    let coordinator = SigningKey::from_seed([1; 32]);
    let parties = [2u8, 3, 4].map(|s| SigningKey::from_seed([s; 32]));
    let body = triad_directory::record::example_body(&coordinator, &parties, [7; 16], now - 10);
    let id = triad_fuzzing::fuzz_directory_id();
    assert_eq!(body.id().expect("an id"), id);
    let mut record = ServiceRecord::sign(body, &coordinator);
    for (i, k) in parties.iter().enumerate() {
        record.endorse(i, k);
    }
    let env = seal(&record, &id, &SigningKey::from_seed([5; 32]), now).expect("seals");
    add(seeds, "directory_envelope", "study", env.clone());
    let req = PrefixRequest::of(&kad_position(&id.dht_key()), 5);
    add(
        seeds,
        "prefix_messages",
        "request",
        [&[0u8][..], &req.to_bytes()].concat(),
    );
    let answer = PrefixAnswer::Envelopes(vec![env]).to_bytes();
    add(
        seeds,
        "prefix_messages",
        "answer",
        [&[1u8][..], &answer].concat(),
    );
    onion_seeds(seeds, &req);
    let many = PrefixAnswer::TooMany(65).to_bytes();
    add(
        seeds,
        "prefix_messages",
        "too-many",
        [&[1u8][..], &many].concat(),
    );
}

/// Packets the fuzz relay receives as first hop, as exit (peeled by two
/// relays before it), and as the reader of a reply.
fn onion_seeds(seeds: &mut Seeds, req: &triad_directory::node::PrefixRequest) {
    use triad_directory::onion::{
        answer, build_request, keypair_from_seed, process, sphinx_secret, Step,
    };
    let fuzz = triad_fuzzing::fuzz_onion_relay();
    let [a, b] = [[21u8; 32], [22; 32]].map(keypair_from_seed);
    let (f, pa, pb) = (
        fuzz.public().to_peer_id(),
        a.public().to_peer_id(),
        b.public().to_peer_id(),
    );
    let first = build_request(req, &[f, pa, pb], &[pa], &pb, None).expect("builds");
    add(seeds, "onion_packet", "first-hop", first.packet);
    let built = build_request(req, &[pa, pb, f], &[pb, pa], &pa, None).expect("builds");
    let peel = |packet: &[u8], key: &triad_directory::onion::Keypair| {
        let me = key.public().to_peer_id();
        match process(packet, &sphinx_secret(key).expect("ed25519"), &me).expect("peels") {
            Step::Forward { packet, .. } => packet,
            _ => panic!("a forward hop"),
        }
    };
    let at_exit = peel(&peel(&built.packet, &a), &b);
    add(seeds, "onion_packet", "exit", at_exit.clone());
    let Step::Exit { surb, .. } =
        process(&at_exit, &sphinx_secret(&fuzz).expect("ed25519"), &f).expect("peels")
    else {
        panic!("the fuzz relay is the exit")
    };
    let (reply, _) = answer(surb, b"reply").expect("seals");
    add(seeds, "onion_packet", "reply", reply);
}

fn add(seeds: &mut Seeds, target: &'static str, name: &str, bytes: impl Into<Vec<u8>>) {
    seeds.push((target, name.to_string(), bytes.into()));
}

fn notary_seeds(dir: &Path, seeds: &mut Seeds) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ds = launch_datasource(
        TcpListener::bind("127.0.0.1:0").expect("bind"),
        DatasourceConfig {
            data_dir: dir.to_path_buf(),
            accounts: 2,
            seed: 7,
            padding_assets: 2,
        },
    )
    .expect("data source");
    let proxy = {
        let _g = rt.enter();
        let l = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let config = ProxyConfig {
            allowed_targets: vec![triad_notary::AllowedTarget::addr(ds.addr)],
            ..ProxyConfig::default()
        };
        launch_proxy(l, config).expect("proxy")
    };
    let client = prover_client_config(Some(ds.ca_pem.as_bytes()), false).expect("client config");
    let ca_der = CertificateDer::pem_slice_iter(ds.ca_pem.as_bytes())
        .next()
        .expect("a CA")
        .expect("CA PEM")
        .to_vec();
    let roots = Arc::new(root_store(Some(ds.ca_pem.as_bytes()), false).expect("roots"));
    let truth = ground_truth(2, 7);
    let spec = DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    };
    let spec_json = serde_json::to_string(&spec).unwrap();
    let key = fuzz_notary_key();
    let mut atts = Vec::new();
    let mut sids = Vec::new();
    let api_keys: Vec<String> = truth
        .accounts
        .iter()
        .map(|a| a.api_key.clone())
        .chain(["not-a-key".to_string()])
        .collect();
    for (i, api_key) in api_keys.iter().enumerate() {
        let sid = format!("{:032x}", 0xfeed_0000 + i);
        let target =
            ProveTarget::from_url(&ds.info.url, vec![("X-API-KEY".into(), api_key.clone())])
                .expect("target");
        add(
            seeds,
            "proxy_preamble",
            &format!("{i}"),
            format!("TRIAD-PROXY/1 {sid} {} {}", target.host, target.port),
        );
        let (resp, disclosure) =
            run_session(proxy.addr, &sid, &target, client.clone()).expect("session");
        let outcome = rt
            .block_on(proxy.wait_session(&sid, Duration::from_secs(5)))
            .expect("session recorded");
        let SessionOutcome::Complete(session) = outcome else {
            panic!("session did not complete");
        };
        let case = TranscriptCase {
            ca_der: ca_der.clone(),
            server_name: session.server_name.clone(),
            disclosure: disclosure.clone(),
            session_time: session.session_time,
            transcript: session.transcript.clone(),
        };
        add(seeds, "tls_transcript", &format!("{i}"), case.encode());
        add(seeds, "http_response", &format!("{i}"), resp.clone());
        let Ok(body) = response_body(&resp) else {
            continue; // the refused API key: a 401 response, no body to read
        };
        add(
            seeds,
            "data_spec",
            &format!("{i}"),
            [spec_json.as_bytes(), b"\n", &body].concat(),
        );
        let claim = extract_claim(&spec, &body).expect("claim");
        let blinder = random_fr(&mut OsRng);
        let ar = AttestationRequest {
            study_id: "eth".into(),
            data_spec: spec.clone(),
            blinder,
            expected_value: claim.value,
        };
        let att = attest_session(&key, roots.clone(), &session, &disclosure, &ar, 3600)
            .expect("attestation");
        add(seeds, "attestation", &format!("{i}"), att.to_json());
        // The body exactly as `NotaryClient::attest` sends it.
        let req = serde_json::to_vec(&AttestApiRequest::new(&sid, &disclosure, &ar)).unwrap();
        add(seeds, "attest_request", &format!("attest-{i}"), req);
        atts.push((att, claim, blinder));
        sids.push(sid);
    }
    rt.block_on(async { proxy.shutdown() });
    ds.shutdown();

    // Responses and values beyond what the data source sends.
    add(
        seeds,
        "http_response",
        "chunked",
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=1\r\n\": 1\r\n1\r\n}\r\n0\r\n\r\n"[..],
    );
    add(
        seeds,
        "http_response",
        "close-delimited",
        &b"HTTP/1.0 200 OK\r\n\r\n{}"[..],
    );
    for (name, value) in [("fixed-point", "1.2500"), ("negative", "-0.01")] {
        add(seeds, "data_spec", name, format!("{spec_json}\n{value}"));
    }
    add(
        seeds,
        "data_spec",
        "numbers",
        format!(
            "{}\n{}",
            r#"{"field":"list.1","scale":18,"account_field":"id"}"#,
            r#"{"id": 123, "list": [0.5, 4611686018.427387903, "x"]}"#
        ),
    );

    // The services' messages, around the real attestations.
    let study = StudyParams {
        id: "eth".into(),
        name: "ETH balances".into(),
        data_spec: spec.clone(),
        source: triad_attestation::DataSource {
            server_name: "127.0.0.1".into(),
            cert_chain_sha256: Some("ab".repeat(32)),
        },
        min_cohort: 3,
        min_new: 1,
        release_interval_secs: 5,
        stats: StatsSpec {
            quantiles: vec![0.5, 0.9],
            histogram_bounds: vec![0, 100_000],
        },
    };
    let mut items = Vec::new();
    for (i, (att, claim, blinder)) in atts.iter().enumerate() {
        let submission_id = format!("{:032x}", 0x5ab_0000 + i);
        let token = hex::encode(Sha256::digest(format!("token {i}")));
        let shares = split_shares(claim.value, *blinder, &mut OsRng);
        let c = commit_shares(&submission_id, &shares, &mut OsRng);
        for (p, s) in shares.iter().enumerate().take(2) {
            let u = s.to_upload(p, &submission_id, &token, &c);
            add(
                seeds,
                "share_upload",
                &format!("{i}-party{p}"),
                serde_json::to_vec(&u).unwrap(),
            );
        }
        let token_sha256 = hex::encode(Sha256::digest(token.as_bytes()));
        let receipts = (0u8..3)
            .map(|p| {
                ShareReceipt {
                    version: RECEIPT_VERSION,
                    submission_id: submission_id.clone(),
                    token_sha256: token_sha256.clone(),
                    commitments: c.commitments.clone(),
                    kept_until: 1_800_000_180 + p as u64,
                }
                .sign(p, &PartySigningKey::from_seed([p + 1; 32]))
            })
            .collect();
        items.push(BatchItem {
            submission_id,
            token_sha256,
            commitment: att.commitment.clone(),
            shares_digest: commitments_digest(&c.commitments),
            attestation: att.clone(),
            receipts,
        });
    }
    let prepare = PrepareBatch {
        batch_id: 1,
        study: study.clone(),
        items: items.clone(),
    };
    add(
        seeds,
        "prepare_batch",
        "2-items",
        serde_json::to_vec(&prepare).unwrap(),
    );
    let one = PrepareBatch {
        batch_id: 2,
        study: study.clone(),
        items: items[..1].to_vec(),
    };
    add(
        seeds,
        "prepare_batch",
        "1-item",
        serde_json::to_vec_pretty(&one).unwrap(),
    );

    let values: Vec<i64> = atts.iter().map(|a| a.1.value).collect();
    let results = triad_stats::oracle(&values, &study.stats).expect("oracle");
    let release = Release {
        version: 1,
        study_id: "eth".into(),
        release_no: 1,
        created_at: 1_800_000_000,
        count: values.len() as u64,
        as_of_batch: 1,
        results,
        security: Some(triad_wire::release::SecurityMode::Malicious),
    };
    let signed: Vec<_> = (0u8..3)
        .map(|p| sign_release(&PartySigningKey::from_seed([p + 1; 32]), p, &release))
        .collect();
    let att0 = atts[0].0.clone();
    let shares = split_shares(values[0], atts[0].2, &mut OsRng);
    let c = commit_shares(&items[0].submission_id, &shares, &mut OsRng);
    let upload = shares[2].to_upload(2, &items[0].submission_id, &hex::encode([7u8; 32]), &c);
    let receipt = ShareReceipt {
        version: RECEIPT_VERSION,
        submission_id: items[0].submission_id.clone(),
        token_sha256: hex::encode(Sha256::digest(hex::encode([7u8; 32]).as_bytes())),
        commitments: c.commitments.clone(),
        kept_until: 1_800_000_180,
    };
    let messages: Vec<(&str, String)> = vec![
        ("StudyParams", json(&study)),
        (
            "CreateStudy",
            json(&CreateStudy {
                id: "eth".into(),
                name: "ETH balances".into(),
                data_spec: spec.clone(),
                source: study.source.clone(),
                min_cohort: Some(3),
                min_new: None,
                release_interval_secs: Some(5),
                stats: study.stats.clone(),
            }),
        ),
        (
            "StudyInfo",
            json(&StudyInfo {
                params: study.clone(),
                created_at: 1_800_000_000,
                contributions: 2,
                releases: 1,
                directory_id: None,
                progress: Some(triad_wire::study::ReleaseProgress {
                    contributions: 2,
                    needed: 8,
                    next_release_at: None,
                }),
            }),
        ),
        (
            "SubmitRequest",
            json(&SubmitRequest {
                attestation: att0.clone(),
                token: Some(hex::encode([7u8; 32])),
            }),
        ),
        (
            "SubmitResponse",
            json(&SubmitResponse {
                submission_id: items[0].submission_id.clone(),
                token: hex::encode([7u8; 32]),
                parties: (0..3)
                    .map(|p| format!("https://127.0.0.1:{}", 9000 + p))
                    .collect(),
            }),
        ),
        (
            "ReadyRequest",
            json(&ReadyRequest {
                token: hex::encode([7u8; 32]),
                receipts: vec![receipt.sign(0, &PartySigningKey::from_seed([5; 32]))],
            }),
        ),
        (
            "SubmissionState",
            json(&SubmissionState {
                submission_id: items[0].submission_id.clone(),
                study_id: "eth".into(),
                status: SubmissionStatus::Rejected,
                reason: Some(RejectReason::CommitmentMismatch),
                batch_id: None,
            }),
        ),
        ("ShareUpload", json(&upload)),
        ("ShareReceipt", json(&receipt)),
        (
            "SignedReceipt",
            json(&receipt.sign(2, &PartySigningKey::from_seed([5; 32]))),
        ),
        ("BatchItem", json(&items[0])),
        ("PrepareBatch", json(&prepare)),
        (
            "PrepareResult",
            json(&PrepareResult {
                batch_id: 1,
                verdicts: vec![None, Some(RejectReason::ValueOutOfRange)],
            }),
        ),
        (
            "BatchDecision",
            json(&BatchDecision {
                batch_id: 1,
                decision: Decision::Commit,
            }),
        ),
        (
            "ReleaseRequest",
            json(&ReleaseRequest {
                study: study.clone(),
                release_no: 1,
                created_at: 1_800_000_000,
                as_of_batch: 1,
            }),
        ),
        ("Release", json(&release)),
        ("SignedRelease", json(&signed[0])),
        (
            "VerifiedRelease",
            json(&VerifiedRelease {
                release: release.clone(),
                signatures: signed.clone(),
            }),
        ),
    ];
    add_wire_messages(seeds, messages);
}

/// `wire_messages` seeds: each body after the byte selecting its type.
fn add_wire_messages(seeds: &mut Seeds, messages: Vec<(&str, String)>) {
    for (name, body) in messages {
        let sel = WIRE_TYPES
            .iter()
            .position(|t| *t == name)
            .expect("a wire type") as u8;
        add(
            seeds,
            "wire_messages",
            name,
            [&[sel][..], body.as_bytes()].concat(),
        );
    }
}

fn json<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_string(x).unwrap()
}

/// Messages sent, in order: (from, to, bytes).
type MessageLog = Arc<Mutex<Vec<(usize, usize, Vec<u8>)>>>;

/// A transport that logs every message it sends.
struct Recording {
    inner: Box<dyn Network>,
    log: MessageLog,
}

impl Network for Recording {
    fn id(&self) -> PartyId {
        self.inner.id()
    }
    fn send(&mut self, to: PartyId, msg: Vec<u8>) -> Result<(), NetError> {
        self.log
            .lock()
            .unwrap()
            .push((self.id().index(), to.index(), msg.clone()));
        self.inner.send(to, msg)
    }
    fn recv(&mut self, from: PartyId) -> Result<Vec<u8>, NetError> {
        self.inner.recv(from)
    }
    fn stats(&self) -> NetStats {
        self.inner.stats()
    }
}

/// What party 0 sends during `run` (to both peers, in order), framed as
/// the TCP transport frames it, behind the `mpc_frame` size-limit byte.
fn mpc_stream<R: Send>(run: impl Fn(&mut triad_mpc::Party) -> R + Sync) -> Vec<u8> {
    let log = MessageLog::default();
    let nets = triad_mpc::network::MemNetwork::triple(Duration::from_secs(10)).map(|n| {
        Box::new(Recording {
            inner: Box::new(n),
            log: log.clone(),
        }) as Box<dyn Network>
    });
    for r in run3_on(nets, |p| Ok(run(p))) {
        r.expect("party run");
    }
    let mut out = vec![u8::MAX];
    for (from, _, msg) in log.lock().unwrap().iter() {
        if *from == 0 && out.len() + msg.len() < 16 * 1024 {
            out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            out.extend_from_slice(msg);
        }
    }
    out
}

fn mpc_seeds(seeds: &mut Seeds) {
    let values: Vec<Z128> = [12500u128, 3, 99_000, 3].map(std::num::Wrapping).to_vec();
    let shared = share_plain(&values, &mut OsRng);
    let spec = StatsSpec {
        quantiles: vec![0.5],
        histogram_bounds: vec![0, 50_000],
    };
    let stats = mpc_stream(|p| {
        let mine: Shares<Z128> = shared[p.id.index()].clone();
        triad_stats::compute(p, &mine, &spec).expect("statistics")
    });
    add(seeds, "mpc_frame", "stats", stats);
    let xs: Vec<Fr> = (0..4).map(|_| random_fr(&mut OsRng)).collect();
    let fx = share_plain(&xs, &mut OsRng);
    let field = mpc_stream(|p| {
        let mine = fx[p.id.index()].clone();
        mul(p, &mine, &mine).expect("mul")
    });
    add(seeds, "mpc_frame", "field-mul", field);
}
