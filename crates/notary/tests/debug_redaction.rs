//! No secret reaches `Debug` output (logs, panics, `{:?}` in errors): API
//! keys and other request headers, blinders, values, account ids, disclosed
//! keys, decrypted responses, the data source's keys and seed.

use std::path::PathBuf;

use triad_attestation::{DataSpec, ExtractedClaim};
use triad_crypto::{fr_to_hex, Fr};
use triad_notary::api::AttestApiRequest;
use triad_notary::*;
use triad_testsite::{ground_truth, Account, DatasourceConfig, DatasourceInfo};

const API_KEY: &str = "a91f0c3e5b7d2468ace013579bdf2468";
const VALUE: i64 = 31_415_926;
const ACCOUNT: &str = "acct-8675309";

fn blinder() -> Fr {
    Fr::from(123_456_789_987_654_321u64)
}

/// Every way a blinder may be printed.
fn blinder_forms() -> Vec<String> {
    let b = blinder();
    vec![fr_to_hex(&b), format!("{b:?}"), b.to_string()]
}

fn assert_hides(what: &str, debug: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!debug.contains(s.as_str()), "{what}: {debug:?} shows {s:?}");
    }
}

fn spec() -> DataSpec {
    DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    }
}

#[test]
fn prove_target_hides_header_values_and_query() {
    let t = ProveTarget::from_url(
        "https://127.0.0.1:8443/api/v3/account?signature=s1gn4ture",
        vec![
            parse_header(&format!("X-API-KEY: {API_KEY}")).unwrap(),
            ("Authorization".into(), "Bearer t0ken-xyz".into()),
        ],
    )
    .unwrap();
    let d = format!("{t:?} {t:#?}");
    assert_hides(
        "ProveTarget",
        &d,
        &[API_KEY.into(), "t0ken-xyz".into(), "s1gn4ture".into()],
    );
    // Still useful: where it goes and which headers it sends.
    for shown in [
        "127.0.0.1",
        "8443",
        "/api/v3/account",
        "X-API-KEY",
        "Authorization",
    ] {
        assert!(d.contains(shown), "{d}");
    }
}

#[test]
fn attestation_request_hides_blinder_and_value() {
    let r = AttestationRequest {
        study_id: "eth".into(),
        data_spec: spec(),
        blinder: blinder(),
        expected_value: VALUE,
    };
    let d = format!("{r:?} {r:#?}");
    let mut secrets = blinder_forms();
    secrets.push(VALUE.to_string());
    assert_hides("AttestationRequest", &d, &secrets);
    assert!(d.contains("eth") && d.contains("balances.ETH"), "{d}");
}

#[test]
fn api_request_opening_and_disclosure_are_redacted() {
    let key = vec![0xab; 16];
    let iv = vec![0xcd; 4];
    let api = AttestApiRequest {
        session_id: "0".repeat(32),
        server_key: hex::encode(&key),
        server_iv: hex::encode(&iv),
        blinder: fr_to_hex(&blinder()),
        study_id: "eth".into(),
        data_spec: spec(),
        expected_value: VALUE,
    };
    let mut secrets = blinder_forms();
    secrets.extend([VALUE.to_string(), hex::encode(&key), hex::encode(&iv)]);
    assert_hides("AttestApiRequest", &format!("{api:?} {api:#?}"), &secrets);

    let opening = Opening {
        value: VALUE,
        blinder: fr_to_hex(&blinder()),
    };
    assert_hides("Opening", &format!("{opening:?} {opening:#?}"), &secrets);

    let disclosure = ServerKeyDisclosure {
        key: key.clone(),
        iv: iv.clone(),
    };
    let d = format!("{disclosure:?} {disclosure:#?}");
    assert_hides(
        "ServerKeyDisclosure",
        &d,
        &[hex::encode(&key), format!("{key:?}"), format!("{iv:?}")],
    );
    assert!(!d.contains("171"), "{d}"); // 0xab in decimal
}

#[test]
fn extracted_claim_and_checked_response_hide_the_response() {
    let claim = ExtractedClaim {
        value: VALUE,
        account_id: ACCOUNT.as_bytes().to_vec(),
    };
    let d = format!("{claim:?} {claim:#?}");
    assert_hides(
        "ExtractedClaim",
        &d,
        &[
            VALUE.to_string(),
            ACCOUNT.into(),
            format!("{:?}", ACCOUNT.as_bytes()),
        ],
    );
    let body = format!(r#"{{"uid": "{ACCOUNT}", "balances": {{"ETH": "3141.5926"}}}}"#);
    let checked = CheckedResponse {
        cert_chain_sha256: [7; 32],
        cipher_suite: 0xc02b,
        plaintext: body.clone().into_bytes(),
    };
    let d = format!("{checked:?} {checked:#?}");
    assert_hides(
        "CheckedResponse",
        &d,
        &[
            ACCOUNT.into(),
            "3141.5926".into(),
            format!("{:?}", body.as_bytes()),
        ],
    );
    assert!(d.contains(&format!("{} bytes", body.len())), "{d}");
}

#[test]
fn data_source_keys_balances_and_seed_are_redacted() {
    let truth = ground_truth(3, 987_654_321);
    let secrets: Vec<String> = truth
        .accounts
        .iter()
        .flat_map(|a| {
            let mut s = vec![a.api_key.clone()];
            s.extend(a.balances.values().cloned());
            s
        })
        .chain(["987654321".to_string()])
        .collect();
    let a: &Account = &truth.accounts[0];
    assert_hides("Account", &format!("{a:?} {a:#?}"), &secrets);
    assert!(format!("{a:?}").contains(&a.uid.to_string()));
    assert_hides("GroundTruth", &format!("{truth:?} {truth:#?}"), &secrets);

    let info = DatasourceInfo {
        url: "https://127.0.0.1:1/api/v3/account".into(),
        ca_cert: PathBuf::from("/ca.pem"),
        ground_truth: PathBuf::from("/gt.json"),
        api_keys: truth.accounts.iter().map(|a| a.api_key.clone()).collect(),
        source: triad_attestation::DataSource::named("127.0.0.1"),
    };
    assert_hides("DatasourceInfo", &format!("{info:?} {info:#?}"), &secrets);

    let cfg = DatasourceConfig {
        data_dir: PathBuf::from("/ds"),
        accounts: 3,
        seed: 987_654_321,
        padding_assets: 0,
    };
    assert_hides("DatasourceConfig", &format!("{cfg:?} {cfg:#?}"), &secrets);
}
