//! `triad status --devnet <dir>`: one line per service of a devnet — its
//! process, and for the HTTPS services their `GET /healthz` with the
//! dependencies' state. Exits 1 if a service is down or degraded.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::devnet::DevnetInfo;

#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    /// The devnet's data directory (holds devnet.json).
    #[arg(long)]
    pub devnet: PathBuf,
    /// One JSON object per service instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// What `triad status` found about one service.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub pid: u32,
    pub restarts: u32,
    /// `up`, `down` (no process) or `unhealthy` (no health answer).
    pub state: String,
    /// The health answer (JSON), when the service has one.
    pub health: Option<Value>,
}

impl ServiceStatus {
    fn ok(&self) -> bool {
        self.state == "up"
            && self
                .health
                .as_ref()
                .is_none_or(|h| h.get("status").is_none_or(|s| s == "ok"))
    }

    fn line(&self) -> String {
        let details = match &self.health {
            None => String::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    Value::Array(a) => format!(
                        "{k}=[{}]",
                        a.iter()
                            .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    v => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
            Some(v) => v.to_string(),
        };
        format!(
            "{:<12} {:<9} pid {:<8} restarts {:<3} {details}",
            self.name, self.state, self.pid, self.restarts
        )
    }
}

/// The service's HTTPS base URL in the devnet, if it has one the devnet's
/// CA vouches for.
fn url_of(info: &DevnetInfo, name: &str) -> Option<String> {
    let net = &info.network;
    match name {
        "coordinator" => Some(net.coordinator.clone()),
        "api" => Some(net.api.clone()),
        "notary" => Some(net.notary.clone()),
        n => n
            .strip_prefix("party")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| net.parties.get(i))
            .map(|p| p.url.clone()),
    }
}

fn alive(pid: u32) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let path = args.devnet.join("devnet.json");
    let info: DevnetInfo = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let http = triad_wire::https::client(&info.network.ca_pem()?, Duration::from_secs(5))?;
    let rt = tokio::runtime::Runtime::new()?;
    let statuses: Vec<ServiceStatus> = rt.block_on(async {
        let mut out = Vec::new();
        for s in &info.services {
            let mut st = ServiceStatus {
                name: s.name.clone(),
                pid: s.pid,
                restarts: s.restarts,
                state: if alive(s.pid) { "up" } else { "down" }.into(),
                health: None,
            };
            if let (true, Some(url)) = (st.state == "up", url_of(&info, &s.name)) {
                let url = format!("{}/healthz", url.trim_end_matches('/'));
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.unwrap_or_default();
                        st.health = Some(
                            serde_json::from_str(&text)
                                .unwrap_or_else(|_| serde_json::json!({ "status": text.trim() })),
                        );
                    }
                    Ok(r) => {
                        st.state = "unhealthy".into();
                        st.health = Some(serde_json::json!({ "answer": r.status().as_u16() }));
                    }
                    Err(e) => {
                        st.state = "unhealthy".into();
                        st.health = Some(serde_json::json!({ "error": e.to_string() }));
                    }
                }
            }
            out.push(st);
        }
        out
    });
    for s in &statuses {
        if args.json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            println!("{}", s.line());
        }
    }
    let bad: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ok())
        .map(|s| s.name.as_str())
        .collect();
    if !bad.is_empty() {
        anyhow::bail!("not healthy: {}", bad.join(", "));
    }
    Ok(())
}
