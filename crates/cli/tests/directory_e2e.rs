//! The private directory over real processes: a `triad devnet` runs three
//! `triad directory-node` processes, the coordinator publishes a new
//! study through its own node, `triad discover` finds and verifies the
//! record by the study's directory id alone (the keys are the devnet's),
//! an unknown id fails cleanly, and `triad share --study-id` contributes
//! knowing only the id, a directory node and its trust anchors.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{triad, DevnetProcess};
use serde_json::Value;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json_file(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The last line of stdout that parses as JSON.
fn last_json(o: &Output) -> Value {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON line in:\n{}", text(o)))
}

#[test]
fn a_study_is_found_by_its_id_and_contributed_to() {
    let dn = DevnetProcess::start("directory", 20);
    let dir = dn.dir.clone();
    let info = json_file(&dir.join("devnet.json"));
    let network = json_file(&dir.join("network.json"));
    let nodes: Vec<String> = info["directory"]
        .as_array()
        .expect("devnet.json lists the directory nodes")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 3, "{info}");
    for n in &nodes {
        assert!(
            n.starts_with("/ip4/127.0.0.1/tcp/") && n.contains("/p2p/"),
            "{n}"
        );
    }
    let services: Vec<&str> = info["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for i in 0..3 {
        assert!(
            services.contains(&format!("directory{i}").as_str()),
            "{services:?}"
        );
    }

    // The operator creates a study: its directory id comes back.
    let o = triad()
        .args(["study", "create", "--devnet"])
        .arg(&dir)
        .args([
            "--id",
            "eth",
            "--name",
            "ETH balances",
            "--field",
            "balances.ETH",
        ])
        .args(["--scale", "4", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let created = last_json(&o);
    let id = created["directory_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no directory id in {created}"))
        .to_string();
    assert_eq!(id.len(), 64);

    // `triad discover`: published in the background, so retried a while.
    let deadline = Instant::now() + Duration::from_secs(90);
    let record = loop {
        let o = triad()
            .args(["discover", "--study", &id, "--json", "--devnet"])
            .arg(&dir)
            .output()
            .unwrap();
        if o.status.success() {
            break last_json(&o);
        }
        assert!(
            Instant::now() < deadline,
            "the study never appeared in the directory: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let body = &record["body"];
    assert_eq!(body["kind"], "study");
    assert_eq!(body["name"], "eth");
    assert_eq!(
        body["coordinator"]["key"], network["coordinator_key"],
        "{record}"
    );
    assert_eq!(body["coordinator"]["url"], network["coordinator"]);
    for i in 0..3 {
        assert_eq!(
            body["parties"][i]["key"], network["parties"][i]["sign_key"],
            "party {i}: {record}"
        );
        assert_eq!(body["parties"][i]["url"], network["parties"][i]["url"]);
        assert_eq!(
            body["parties"][i]["mpc_addr"],
            network["parties"][i]["mpc_addr"]
        );
        assert_eq!(record["party_sigs"][i].as_str().unwrap().len(), 128);
    }
    assert_eq!(body["notary_key"], network["notary_key"]);
    assert_eq!(body["spec"]["notary"], network["notary"]);
    assert_eq!(body["spec"]["study"]["data_spec"]["field"], "balances.ETH");

    // The human-readable form, through one node named explicitly.
    let o = triad()
        .args(["discover", "--study", &id, "--directory", &nodes[1]])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("endorsed by all three parties"), "{out}");

    // An id nobody published: a clean failure.
    let unknown = "ab".repeat(32);
    let o = triad()
        .args(["discover", "--study", &unknown, "--devnet"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = text(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("Error:") && err.contains("directory"), "{err}");
    // Not an id at all.
    let o = triad()
        .args(["discover", "--study", "eth", "--devnet"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("not a directory id"), "{}", text(&o));

    // A provider who knows only the id, one directory node and its trust
    // anchors (the services' CA, its data source's CA) contributes.
    let api_keys = json_file(&dir.join("datasource/datasource.json"));
    let key_file = dir.join("provider.key");
    std::fs::write(&key_file, api_keys["api_keys"][0].as_str().unwrap()).unwrap();
    let o = triad()
        .args(["share", "--study-id", &id, "--directory", &nodes[2], "--ca"])
        .arg(dir.join("tls/ca.pem"))
        .arg("--datasource-ca")
        .arg(network["datasource"]["ca_cert"].as_str().unwrap())
        .arg("--api-key-file")
        .arg(&key_file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let outcome = last_json(&o);
    assert_eq!(outcome["accepted"], true, "{outcome}");
    assert_eq!(outcome["study_id"], "eth");

    // A CA other than the one the record names is refused before any
    // contact with the services.
    let o = triad()
        .args(["share", "--study-id", &id, "--directory", &nodes[0], "--ca"])
        .arg(network["datasource"]["ca_cert"].as_str().unwrap())
        .arg("--api-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not the one the record names"),
        "{}",
        text(&o)
    );
}
