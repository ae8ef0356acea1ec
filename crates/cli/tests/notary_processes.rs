//! End to end over real processes: `triad datasource`, `triad notary`,
//! `triad attest`, `triad verify-attestation`, as a user would run them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn triad() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triad"))
}

fn wait_json(path: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str(&s) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triad-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn attest_and_verify_through_real_services() {
    let (ds_dir, no_dir, out) = (tmp("ds"), tmp("notary"), tmp("out"));
    let _ds = Killed(
        triad()
            .args(["datasource", "--accounts", "20", "--data-dir"])
            .arg(&ds_dir)
            .spawn()
            .unwrap(),
    );
    let ds = wait_json(&ds_dir.join("datasource.json"));
    let ca = ds["ca_cert"].as_str().unwrap().to_string();
    // datasource.json's `url` is the account endpoint itself.
    let url = ds["url"].as_str().unwrap().to_string();
    // The data source, `127.0.0.1:port`, is the proxy's one allowed target.
    let ds_target = url["https://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // The notary's API certificate, from a service CA as a devnet's.
    let tls_dir = tmp("tls");
    let service_ca = triad_wire::pki::ServiceCa::create(&tls_dir.join("ca.pem")).unwrap();
    let leaf = service_ca.issue(&tls_dir, "notary").unwrap();
    let _notary = Killed(
        triad()
            .args(["notary", "--trust-ca", &ca, "--allow-target", &ds_target])
            .arg("--data-dir")
            .arg(&no_dir)
            .arg("--tls-cert")
            .arg(&leaf.cert)
            .arg("--tls-key")
            .arg(&leaf.key)
            .spawn()
            .unwrap(),
    );
    let info = wait_json(&no_dir.join("notary.json"));
    let key = ds["api_keys"][0].as_str().unwrap().to_string();
    let attest_at = |url: &str, header: &str, out: &Path| {
        triad()
            .args([
                "attest",
                "--notary",
                info["url"].as_str().unwrap(),
                "--url",
                url,
            ])
            .arg("--notary-ca")
            .arg(tls_dir.join("ca.pem"))
            .args([
                "--header",
                header,
                "--study",
                "eth-holdings",
                "--field",
                "balances.ETH",
            ])
            .args(["--scale", "4", "--trust-ca", &ca, "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let attest = |header: &str, out: &Path| attest_at(&url, header, out);

    let ok = attest(&format!("X-API-KEY: {key}"), &out);
    assert!(ok.status.success(), "{url}: {}", text(&ok));
    let att = out.join("attestation.json");
    assert!(out.join("opening.json").exists());

    let v = triad()
        .arg("verify-attestation")
        .arg(&att)
        .arg("--notary-info")
        .arg(no_dir.join("notary.json"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("eth-holdings"));

    // A key other than the notary's is not trusted.
    let other = "11".repeat(32);
    let v = triad()
        .arg("verify-attestation")
        .arg(&att)
        .args(["--notary-key", &other])
        .output()
        .unwrap();
    assert!(!v.status.success());

    // One modified field breaks the signature.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&att).unwrap()).unwrap();
    doc["study_id"] = "another-study".into();
    let forged = out.join("forged.json");
    std::fs::write(&forged, doc.to_string()).unwrap();
    let v = triad()
        .arg("verify-attestation")
        .arg(&forged)
        .arg("--notary-info")
        .arg(no_dir.join("notary.json"))
        .output()
        .unwrap();
    assert!(!v.status.success());
    assert!(text(&v).contains("signature"), "{}", text(&v));

    // A wrong API key is refused by the site: a clear error, nothing written.
    let out2 = tmp("out2");
    let bad = attest("X-API-KEY: wrong", &out2);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("401"), "{}", text(&bad));
    assert!(!out2.join("attestation.json").exists());

    // The proxy is no open relay: the notary's own API is refused, and
    // the prover says so.
    let api_port = info["url"].as_str().unwrap().rsplit(':').next().unwrap();
    let own = attest_at(
        &format!("https://127.0.0.1:{api_port}/v1/info"),
        &format!("X-API-KEY: {key}"),
        &out2,
    );
    assert!(!own.status.success());
    assert!(
        text(&own).contains("the notary does not relay to this target"),
        "{}",
        text(&own)
    );
    assert!(!out2.join("attestation.json").exists());

    // The API key never reaches the notary's data directory.
    for e in std::fs::read_dir(&no_dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    }
}
