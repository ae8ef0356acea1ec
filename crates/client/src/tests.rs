use std::path::Path;

use clap::Parser;
use triad_attestation::DataSpec;
use triad_stats::StatsSpec;
use triad_wire::release::{sign_release, Release, RELEASE_VERSION};
use triad_wire::{NetworkConfig, PartyEndpoint, PartySigningKey, VerifiedRelease};

use super::*;

fn keys() -> [PartySigningKey; 3] {
    [21u8, 22, 23].map(|s| PartySigningKey::from_seed([s; 32]))
}

fn network(dir: &Path) -> NetworkConfig {
    let k = keys();
    NetworkConfig {
        mpc_latency_us: 0,
        ca_cert: dir.join("ca.pem"),
        coordinator: "https://127.0.0.1:1".into(),
        coordinator_key: None,
        parties: [0, 1, 2].map(|i| PartyEndpoint {
            url: format!("https://127.0.0.1:{}", 10 + i),
            mpc_addr: "127.0.0.1:2".parse().unwrap(),
            mpc_cert: String::new(),
            sign_key: k[i].public_key().to_hex(),
        }),
        notary: "http://127.0.0.1:3".into(),
        notary_key: "00".repeat(32),
        api: "https://127.0.0.1:4".into(),
        datasource: None,
    }
}

fn release(study: &str, count: i64) -> Release {
    let values: Vec<i64> = (0..count).map(|v| v * 100 - 250).collect();
    Release {
        version: RELEASE_VERSION,
        study_id: study.into(),
        release_no: 4,
        created_at: 1_700_000_000,
        count: count as u64,
        as_of_batch: 1,
        results: triad_stats::oracle(&values, &StatsSpec::default()).unwrap(),
        security: None,
    }
}

fn signed(r: &Release) -> VerifiedRelease {
    let k = keys();
    VerifiedRelease {
        release: r.clone(),
        signatures: (0..3).map(|i| sign_release(&k[i], i as u8, r)).collect(),
    }
}

#[test]
fn load_network_paths_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path());
    net.save(&dir.path().join("network.json")).unwrap();

    assert_eq!(load_network(Some(dir.path()), None).unwrap(), net);
    assert_eq!(
        load_network(None, Some(&dir.path().join("network.json"))).unwrap(),
        net
    );
    assert!(matches!(
        load_network(None, None),
        Err(ClientError::Usage(_))
    ));
    assert!(matches!(
        load_network(Some(dir.path()), Some(&dir.path().join("network.json"))),
        Err(ClientError::Usage(_))
    ));
    let missing = dir.path().join("nowhere");
    let e = load_network(Some(&missing), None).unwrap_err();
    assert!(matches!(
        e,
        ClientError::Config(triad_wire::config::ConfigError::Io { .. })
    ));
    assert!(e.to_string().contains("network.json"), "{e}");
    std::fs::write(dir.path().join("bad.json"), "{\"coordinator\": 1}").unwrap();
    assert!(matches!(
        load_network(None, Some(&dir.path().join("bad.json"))),
        Err(ClientError::Config(
            triad_wire::config::ConfigError::Parse { .. }
        ))
    ));
}

#[test]
fn query_reverification_accepts_good_and_refuses_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path());
    let r = release("eth", 9);
    let good = signed(&r);
    let v = reverify_release(&net, "eth", &good).unwrap();
    assert_eq!(v.signatures, good.signatures);
    assert_eq!((v.release.release_no, v.release.count), (4, 9));
    triad_stats::agrees(&v.release.results, &r.results).unwrap();
    // What the API serves went through one more JSON round trip.
    let via_api: VerifiedRelease =
        serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
    reverify_release(&net, "eth", &via_api).unwrap();

    // The API states different results than the parties signed.
    let mut lying = good.clone();
    lying.release.count = 10;
    assert_eq!(
        reverify_release(&net, "eth", &lying),
        Err(VerifyError::BodyMismatch)
    );
    lying = good.clone();
    lying.release.results.max += 1;
    assert_eq!(
        reverify_release(&net, "eth", &lying),
        Err(VerifyError::BodyMismatch)
    );

    // A tampered signed copy.
    let mut tampered = good.clone();
    tampered.signatures[2].release_json = tampered.signatures[2]
        .release_json
        .replace("\"count\":9", "\"count\":10");
    assert_eq!(
        reverify_release(&net, "eth", &tampered),
        Err(VerifyError::Signatures(ReleaseError::BadSignature(2)))
    );

    // Tampered consistently (document and all copies) but not re-signable.
    let mut forged = signed(&release("eth", 10));
    forged.signatures[0].signature = good.signatures[0].signature.clone();
    assert!(reverify_release(&net, "eth", &forged).is_err());

    // Signed by a key the network does not trust.
    let mut wrong_key = good.clone();
    wrong_key.signatures[1] = sign_release(&PartySigningKey::from_seed([77; 32]), 1, &r);
    assert_eq!(
        reverify_release(&net, "eth", &wrong_key),
        Err(VerifyError::Signatures(ReleaseError::BadSignature(1)))
    );

    // Only two copies.
    let mut two = good.clone();
    two.signatures.pop();
    assert_eq!(
        reverify_release(&net, "eth", &two),
        Err(VerifyError::Signatures(ReleaseError::WrongParties))
    );

    // A genuine release of another study.
    let other = signed(&release("btc", 9));
    assert_eq!(
        reverify_release(&net, "eth", &other),
        Err(VerifyError::WrongStudy("btc".into()))
    );
}

#[test]
fn fixed_point_display() {
    assert_eq!(cli::fixed(12500, 4), "1.2500");
    assert_eq!(cli::fixed(-5, 2), "-0.05");
    assert_eq!(cli::fixed(7, 0), "7");
    assert_eq!(cli::fixed(i64::MIN as i128, 3), "-9223372036854775.808");
    let text = cli::describe_release(&signed(&release("eth", 9)), Some(2));
    assert!(text.contains("release #4"));
    assert!(text.contains("count   9"));
}

#[derive(Parser)]
struct Cmd {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    Share(ShareArgs),
    Query(QueryArgs),
    Create(StudyCreateArgs),
}

#[test]
fn cli_arguments_parse() {
    let c = Cmd::try_parse_from([
        "t",
        "share",
        "--study",
        "eth",
        "--api-key",
        "k",
        "--devnet",
        "/d",
    ])
    .unwrap();
    match c.verb {
        Verb::Share(a) => {
            assert_eq!(a.timeout_secs, 120);
            assert_eq!(a.net.devnet.as_deref(), Some(Path::new("/d")));
            assert_eq!(a.api_key(None).unwrap(), "k");
        }
        _ => panic!(),
    }
    assert!(Cmd::try_parse_from([
        "t",
        "query",
        "--study",
        "eth",
        "--devnet",
        "/d",
        "--network",
        "/n.json",
    ])
    .is_err());
    let c = Cmd::try_parse_from([
        "t",
        "create",
        "--devnet",
        "/d",
        "--id",
        "eth",
        "--name",
        "ETH",
        "--field",
        "balances.ETH",
        "--scale",
        "4",
        "--quantile",
        "0.5",
        "--quantile",
        "0.9",
        "--histogram-bound",
        "-100",
        "--histogram-bound",
        "0",
    ])
    .unwrap();
    match c.verb {
        Verb::Create(a) => {
            assert_eq!(a.quantiles, vec![0.5, 0.9]);
            assert_eq!(a.histogram_bounds, vec![-100, 0]);
            assert_eq!(a.account_field, "uid");
            assert!(a.admin_token_file.is_none());
        }
        _ => panic!(),
    }
}

#[test]
fn contribute_refuses_bad_study_ids_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path());
    let http = reqwest::Client::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(contribute(
            &net,
            &http,
            "Bad/Id",
            "k",
            &ContributeOptions::default(),
        ))
        .unwrap_err();
    assert!(matches!(e, ClientError::Usage(_)));
    let _ = DataSpec {
        field: "a".into(),
        scale: 0,
        account_field: "uid".into(),
    };
}

const KEY: &str = "5e3c7a1f9b2d4e6f8a0c1e3b5d7f9a2c";

fn share(extra: &[&str]) -> Result<ShareArgs, clap::Error> {
    let mut args = vec!["t", "share", "--study", "eth", "--devnet", "/d"];
    args.extend_from_slice(extra);
    Cmd::try_parse_from(args).map(|c| match c.verb {
        Verb::Share(a) => a,
        _ => panic!(),
    })
}

#[test]
fn share_takes_the_api_key_from_exactly_one_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let file = file.to_str().unwrap();

    // Each source alone (the file's trailing newline is not part of the key).
    let from_file = share(&["--api-key-file", file]).unwrap();
    assert_eq!(from_file.api_key(None).unwrap(), KEY);
    let from_env = share(&[]).unwrap();
    assert_eq!(from_env.api_key(Some(KEY.into())).unwrap(), KEY);
    let from_flag = share(&["--api-key", KEY]).unwrap();
    assert_eq!(from_flag.api_key(None).unwrap(), KEY);
    // An empty variable counts as unset.
    assert_eq!(from_file.api_key(Some(String::new())).unwrap(), KEY);

    // Two sources: refused, and the message names them, not the key.
    assert!(share(&["--api-key-file", file, "--api-key", KEY]).is_err());
    for (args, env) in [(&from_file, KEY), (&from_flag, "other")] {
        let e = args.api_key(Some(env.into())).unwrap_err().to_string();
        assert!(
            e.contains("more than once") && e.contains(API_KEY_ENV),
            "{e}"
        );
        assert!(!e.contains(KEY) && !e.contains("other"), "{e}");
    }
    // None, an empty file, a missing file, a key of several lines.
    let e = from_env.api_key(None).unwrap_err().to_string();
    assert!(
        e.contains("--api-key-file") && e.contains(API_KEY_ENV),
        "{e}"
    );
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "  \n").unwrap();
    let e = share(&["--api-key-file", empty.to_str().unwrap()])
        .unwrap()
        .api_key(None)
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let missing = dir.path().join("missing.key");
    assert!(share(&["--api-key-file", missing.to_str().unwrap()])
        .unwrap()
        .api_key(None)
        .is_err());
    let two_lines = dir.path().join("two.key");
    std::fs::write(&two_lines, format!("{KEY}\nsecond")).unwrap();
    let e = share(&["--api-key-file", two_lines.to_str().unwrap()])
        .unwrap()
        .api_key(None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("one line") && !e.contains(KEY), "{e}");
}

#[test]
fn share_help_recommends_the_file_or_the_variable() {
    use clap::CommandFactory;
    let mut cmd = Cmd::command();
    let help = cmd
        .find_subcommand_mut("share")
        .unwrap()
        .render_long_help()
        .to_string();
    for needle in [
        "--api-key-file",
        "--api-key <KEY>",
        API_KEY_ENV,
        "(ps, /proc)",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
    assert!(help.contains("Prefer the file or the variable"), "{help}");
}

#[test]
fn share_args_and_outcome_hide_the_key_and_the_value() {
    let a = share(&["--api-key", KEY]).unwrap();
    let d = format!("{a:?} {a:#?}");
    assert!(!d.contains(KEY), "{d}");
    assert!(d.contains("eth") && d.contains("redacted"), "{d}");

    let o = Outcome {
        study_id: "eth".into(),
        submission_id: "sub-1".into(),
        accepted: true,
        reason: None,
        batch_id: Some(3),
        value: 31_415_926,
        scale: 4,
        attempts: 1,
    };
    let d = format!("{o:?} {o:#?}");
    assert!(!d.contains("31415926"), "{d}");
    assert!(d.contains("sub-1"), "{d}");
}
