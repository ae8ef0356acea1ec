use std::path::Path;

use clap::Parser;
use triad_notary::DataSpec;
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
        ca_cert: dir.join("ca.pem"),
        coordinator: "https://127.0.0.1:1".into(),
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
