//! The consumer dashboard in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `.ci/run`) against a real devnet, after real
//! providers contributed through the notary. It checks that the plots
//! render with the right number of bars and points, that a study without a
//! release says so with its progress, and that the page's screenshot is
//! not blank (saved under the test's output directory).
//!
//! The same devnet then serves the operator's view: `triad status` and the
//! services' `/metrics`.
//!
//! The test fails, never skips, when Chromium is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{triad, DevnetProcess};
use serde_json::Value;
use triad_client::{contribute, ContributeOptions};
use triad_wire::NetworkConfig;

const STUDY: &str = "eth";
const EMPTY: &str = "empty";

/// Chromium: `TRIAD_CHROMIUM`, or Debian's `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    let p = std::env::var_os("TRIAD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "{} is missing: install Debian's chromium package (.ci/run does)",
        p.display()
    );
    p
}

fn count(dom: &str, class: &str) -> usize {
    dom.matches(&format!("class=\"{class}\"")).count()
}

/// The share of pixels that are not (near) white, and whether the plots'
/// blue (#4a7bd0) appears.
fn ink(png_path: &Path) -> (f64, bool) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let px = &buf[..info.buffer_size()];
    let (mut inked, mut blue, mut total) = (0usize, false, 0usize);
    for p in px.chunks_exact(channels) {
        total += 1;
        if p[..3].iter().any(|&c| c < 240) {
            inked += 1;
        }
        blue |= p[0].abs_diff(0x4a) < 8 && p[1].abs_diff(0x7b) < 8 && p[2].abs_diff(0xd0) < 8;
    }
    (inked as f64 / total as f64, blue)
}

fn create(dir: &Path, id: &str, name: &str) {
    let out = triad()
        .args(["study", "create", "--id", id, "--name", name])
        .args(["--field", "balances.ETH", "--scale", "4"])
        .args(["--min-cohort", "10", "--min-new", "10"])
        .args(["--release-interval-secs", "1"])
        .args(["--quantile", "0.1", "--quantile", "0.25"])
        .args(["--quantile", "0.75", "--quantile", "0.9"])
        .args(["--histogram-bound", "100000", "--histogram-bound", "250000"])
        .args(["--histogram-bound", "500000", "--histogram-bound", "750000"])
        .arg("--devnet")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The devnet data source's accounts (their API keys and balances).
fn ground_truth(dir: &Path) -> triad_testsite::GroundTruth {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).unwrap()).unwrap();
    serde_json::from_str(&std::fs::read_to_string(info["ground_truth"].as_str().unwrap()).unwrap())
        .unwrap()
}

fn query(dir: &Path, study: &str) -> Output {
    triad()
        .args(["query", "--study", study, "--devnet"])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn the_dashboard_renders_verified_plots_in_chromium_and_operators_see_health_and_metrics() {
    let _ = chromium();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(dashboard());
}

async fn dashboard() {
    let dn = DevnetProcess::start("browser", 12);
    let net = NetworkConfig::load(&dn.dir.join("network.json")).unwrap();
    let http = triad_wire::https::client(&net.ca_pem().unwrap(), Duration::from_secs(60)).unwrap();
    let truth = ground_truth(&dn.dir);
    create(&dn.dir, STUDY, "ETH balances");
    create(&dn.dir, EMPTY, "Nobody yet");

    // A study without a release: the CLI and the API say so, with the
    // progress; an unknown study is told apart.
    let out = query(&dn.dir, EMPTY);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("has no release yet"), "{err}");
    assert!(
        err.contains("0 contributions accepted, 10 more needed"),
        "{err}"
    );
    let out = query(&dn.dir, "no-such-study");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no study \"no-such-study\""), "{err}");

    // Ten providers through the real flow; then the first release.
    let opts = ContributeOptions {
        timeout: Duration::from_secs(120),
        submit_timeout: Duration::from_secs(90),
        ..ContributeOptions::default()
    };
    let tasks: Vec<_> = truth.accounts[..10]
        .iter()
        .map(|a| {
            let (net, http, key, opts) =
                (net.clone(), http.clone(), a.api_key.clone(), opts.clone());
            tokio::spawn(async move { contribute(&net, &http, STUDY, &key, &opts).await })
        })
        .collect();
    for t in tasks {
        let o = t.await.unwrap().expect("contribution");
        assert!(o.accepted, "{:?}", o.reason);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let releases: Vec<Value> = loop {
        let r = http
            .get(format!("{}/v1/studies/{STUDY}/releases", net.api))
            .send()
            .await
            .unwrap();
        let v: Vec<Value> = r.json().await.unwrap_or_default();
        if !v.is_empty() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no release at the API within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let api_empty = http
        .get(format!("{}/v1/studies/{EMPTY}/release/latest", net.api))
        .send()
        .await
        .unwrap();
    assert_eq!(api_empty.status().as_u16(), 404);
    let body: Value = api_empty.json().await.unwrap();
    assert_eq!(body["error"], "no_release");
    assert!(
        body["message"].as_str().unwrap().contains("10 more needed"),
        "{body}"
    );

    // The page, rendered by Chromium.
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = tempfile_dir(&dn.dir, "chromium-profile");
    let mut b = Browser::start(&profile);
    b.call("Page.navigate", serde_json::json!({ "url": net.api }));
    // The page marks itself ready once its first refresh has drawn
    // everything.
    let dom = b.wait_for(
        "document.body?.dataset.ready === '1' ? document.documentElement.outerHTML : null",
        60,
    );
    let dom = dom.as_str().unwrap().to_string();
    let study_box = section(&dom, &format!("id=\"study-{STUDY}\""));
    assert_eq!(
        count(study_box, "hist-bar"),
        5,
        "one bar per histogram bucket"
    );
    assert_eq!(count(study_box, "q-point"), 6, "min, 4 quantiles, max");
    assert_eq!(
        count(study_box, "lorenz-point"),
        6,
        "the Lorenz curve's knots"
    );
    assert_eq!(count(study_box, "count-point"), releases.len());
    assert_eq!(count(study_box, "mean-point"), releases.len());
    assert!(study_box.contains("verified by three signatures"));
    assert!(
        study_box.contains("Gini 0."),
        "the Gini coefficient next to the curve"
    );
    let empty_box = section(&dom, &format!("id=\"study-{EMPTY}\""));
    assert!(empty_box.contains("no release yet"));
    assert!(empty_box.contains("10 more needed before the next release"));
    assert_eq!(count(empty_box, "hist-bar"), 0);

    let shot = out_dir.join("dashboard.png");
    b.screenshot(&shot);
    let (share, blue) = ink(&shot);
    eprintln!(
        "dashboard screenshot: {} ({:.1} % of pixels inked)",
        shot.display(),
        share * 100.0
    );
    assert!(share > 0.01, "the screenshot is blank ({share})");
    assert!(blue, "no plot colour in the screenshot");

    operators_view(&dn.dir, &net, &http).await;
}

/// What an operator sees of the same devnet: `triad status` and the
/// services' metrics after the contributions and the release.
async fn operators_view(dir: &Path, net: &NetworkConfig, http: &reqwest::Client) {
    let out = triad()
        .args(["status", "--devnet"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["coordinator", "party0", "party1", "party2", "api", "notary"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"));
        assert!(line.contains(" up "), "{line}");
    }
    let coord = text.lines().find(|l| l.starts_with("coordinator")).unwrap();
    assert!(coord.contains("parties=[ok, ok, ok]"), "{coord}");
    assert!(coord.contains("status=ok"), "{coord}");

    let metrics = |url: String| async move {
        let r = http.get(format!("{url}/metrics")).send().await.unwrap();
        assert!(r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        r.text().await.unwrap()
    };
    let coord = metrics(net.coordinator.clone()).await;
    for want in [
        "# TYPE triad_http_responses_total counter",
        "triad_http_responses_total{route=\"/v1/studies/{id}/submissions\",status=\"202\",code=\"\"}",
        "# TYPE triad_batch_seconds histogram",
        "triad_batch_seconds_count{outcome=\"committed\"}",
        "triad_releases_total{study=\"eth\"}",
        "triad_queue_depth ",
        "triad_store_seconds_bucket{service=\"coordinator\",le=\"+Inf\"}",
    ] {
        assert!(coord.contains(want), "coordinator metrics lack {want}:\n{coord}");
    }
    let party = metrics(net.parties[1].url.clone()).await;
    for want in [
        "triad_mpc_bytes_sent_total{job=\"prepare\"}",
        "triad_mpc_bytes_received_total{job=\"release\"}",
        "triad_mpc_job_seconds_count{job=\"release\"}",
        "triad_http_responses_total{route=\"/v1/shares\",status=\"202\",code=\"\"}",
    ] {
        assert!(party.contains(want), "party metrics lack {want}:\n{party}");
    }
    // Refusals are counted by their code: a malformed upload.
    let r = http
        .post(format!("{}/v1/shares", net.parties[1].url))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let party = metrics(net.parties[1].url.clone()).await;
    assert!(
        party.contains(
            "triad_http_responses_total{route=\"/v1/shares\",status=\"400\",code=\"malformed_body\"} 1"
        ),
        "{party}"
    );
}

/// The part of `dom` from the element with `marker` to the next study box.
fn section<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page"));
    let rest = &dom[start..];
    let end = rest[1..]
        .find("class=\"study")
        .map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

fn tempfile_dir(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Chromium under the DevTools protocol: one page, driven by JavaScript.
struct Browser {
    child: std::process::Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium with a debugging port and attaches to its page.
    fn start(profile: &Path) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1200,1600",
                "--hide-scrollbars",
                // The devnet's certificates come from its own CA, which
                // the browser does not know; the pages are on 127.0.0.1.
                "--ignore-certificate-errors",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let browser_ws = loop {
            let line = lines
                .next()
                .expect("chromium exited before its DevTools port")
                .unwrap();
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stderr so Chromium never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        let port = browser_ws
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let list: Value = {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(
                s,
                "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            )
            .unwrap();
            // Headers, then exactly Content-Length bytes (the DevTools
            // server keeps the connection open).
            let mut r = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut buf).expect("DevTools /json/list");
                assert!(n > 0, "DevTools closed: {}", String::from_utf8_lossy(&r));
                r.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&r).to_string();
                let Some(h) = text.find("\r\n\r\n") else {
                    continue;
                };
                let len: usize = text[..h]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("a Content-Length");
                if r.len() >= h + 4 + len {
                    break r[h + 4..h + 4 + len].to_vec();
                }
            };
            serde_json::from_slice(&body).unwrap()
        };
        let page = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (mut ws, _) = tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap())
            .expect("DevTools websocket");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        Browser {
            child,
            ws,
            next_id: 0,
        }
    }

    /// Sends one DevTools command and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let m = self.ws.read().expect("DevTools message");
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": js, "awaitPromise": true, "returnByValue": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `js` until it yields a non-null value.
    fn wait_for(&mut self, js: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(js);
            if !v.is_null() {
                return v;
            }
            assert!(Instant::now() < deadline, "waited {secs} s for {js}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG of the page, saved to `path`.
    fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self.call(
            "Page.captureScreenshot",
            serde_json::json!({ "format": "png" }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// A child process killed when dropped (also when the test panics).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `triad ui` on 127.0.0.1 and the URL it printed.
fn start_ui(dir: &Path) -> (Killed, String) {
    let url_file = dir.join("ui.url");
    let _ = std::fs::remove_file(&url_file);
    let mut child = triad()
        .args(["ui", "--devnet"])
        .arg(dir)
        .arg("--url-file")
        .arg(&url_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            if !url.is_empty() {
                return (Killed(child), url);
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("triad ui exited: {st}");
        }
        assert!(Instant::now() < deadline, "triad ui printed no URL");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_provider_contributes_through_the_local_page_in_chromium() {
    let dn = DevnetProcess::start("provider-page", 4);
    let truth = ground_truth(&dn.dir);
    create(&dn.dir, STUDY, "ETH balances");
    let (_ui, url) = start_ui(&dn.dir);
    eprintln!("triad ui at {url}");
    let profile = tempfile_dir(&dn.dir, "chromium-devtools");
    let mut b = Browser::start(&profile);
    eprintln!("chromium attached");
    b.call("Page.navigate", serde_json::json!({ "url": url }));
    eprintln!("navigated");
    b.wait_for(
        "document.querySelectorAll('#study option').length > 0 ? true : null",
        30,
    );
    let info_line = b.eval("document.getElementById('study-info').textContent");
    assert!(
        info_line.as_str().unwrap().contains("10 more needed"),
        "{info_line}"
    );

    // An invalid key: a clear error, nothing submitted.
    b.eval(
        "document.getElementById('study').value = 'eth'; \
         document.getElementById('key').value = 'not-a-key'; \
         document.getElementById('go').click(); true",
    );
    let failed = b.wait_for(
        "document.getElementById('failed') ? document.getElementById('failed').textContent : null",
        60,
    );
    assert!(
        failed.as_str().unwrap().contains("refused this API key"),
        "{failed}"
    );

    // A real key: every step, then accepted.
    let key = &truth.accounts[0].api_key;
    b.eval(&format!(
        "document.getElementById('key').value = {}; document.getElementById('go').click(); true",
        serde_json::to_string(key).unwrap()
    ));
    let verdict = b.wait_for(
        "document.getElementById('accepted') ? document.getElementById('accepted').textContent \
         : (document.getElementById('rejected') ? 'REJECTED ' + document.getElementById('rejected').textContent : null)",
        120,
    );
    let verdict = verdict.as_str().unwrap().to_string();
    assert!(verdict.starts_with("✔ accepted"), "{verdict}");
    let done = b.eval("document.querySelectorAll('#steps li.done').length");
    assert_eq!(done, 5, "every step shown done");
    let release = b.wait_for(
        "document.getElementById('release').hidden ? null : document.getElementById('release').textContent",
        30,
    );
    assert!(
        release
            .as_str()
            .unwrap()
            .contains("has no verified release yet")
            || release.as_str().unwrap().contains("no release"),
        "one contribution of a cohort of 10: no release yet, said so: {release}"
    );
    // The key field was cleared once handed to the local process.
    assert_eq!(b.eval("document.getElementById('key').value"), "");

    // The coordinator counted it.
    let out = triad()
        .args(["query", "--study", STUDY, "--devnet"])
        .arg(&dn.dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 contribution accepted, 9 more needed"),
        "{err}"
    );

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shot = out_dir.join("provider.png");
    b.screenshot(&shot);
    let (share, blue) = ink(&shot);
    eprintln!(
        "provider page screenshot: {} ({:.1} % of pixels inked)",
        shot.display(),
        share * 100.0
    );
    assert!(share > 0.01 && blue, "blank screenshot");

    // The page's API refuses calls without the session token or from
    // another Host.
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    for (host, token) in [
        ("127.0.0.1", ""),
        ("evil.example", url.split("token=").nth(1).unwrap()),
    ] {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            s,
            "GET /api/studies HTTP/1.1\r\nHost: {host}:{port}\r\nx-triad-ui-token: {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 401") || r.starts_with("HTTP/1.1 403"),
            "{host}: {r}"
        );
    }
}
