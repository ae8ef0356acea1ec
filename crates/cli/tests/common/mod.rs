//! The devnet process harness the end-to-end tests share: a `triad devnet`
//! in a temporary directory, its logs on failure, and a teardown that
//! leaves no service behind.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn triad() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triad"))
}

/// A `triad devnet` process in a temporary directory; dropping it stops
/// the devnet (SIGINT, so it stops its services), kills any service left
/// behind by pid, and removes the directory. On a failed test the tails of
/// the service logs are printed first.
pub struct DevnetProcess {
    pub dir: PathBuf,
    pub child: Child,
    /// Started with `--postgres`: its databases are dropped on drop.
    postgres: bool,
}

impl DevnetProcess {
    /// Starts `triad devnet --accounts <accounts>` and waits for its
    /// `devnet.json` (every service up).
    pub fn start(name: &str, accounts: usize) -> Self {
        Self::start_with(name, accounts, &[])
    }

    /// Starts `triad devnet` on PostgreSQL: one database per service on
    /// the test server ([`triad_pg::test_server_url`]), dropped on drop.
    #[allow(dead_code)] // not every test binary uses it
    pub fn start_on_postgres(name: &str, accounts: usize) -> Self {
        Self::start_with(
            name,
            accounts,
            &["--postgres", &triad_pg::test_server_url()],
        )
    }

    /// The databases `triad devnet --postgres` creates for this directory
    /// (named as devnet.rs names them: known even if the devnet failed
    /// before writing devnet.json).
    fn database_names(&self) -> Vec<String> {
        use sha2::Digest;
        let Some(dir) = self.dir.canonicalize().ok().filter(|_| self.postgres) else {
            return Vec::new();
        };
        let tag = hex::encode(&sha2::Sha256::digest(dir.display().to_string().as_bytes())[..4]);
        ["coordinator", "party0", "party1", "party2", "api"]
            .iter()
            .map(|s| format!("triad_{tag}_{s}"))
            .collect()
    }

    /// Starts `triad devnet --accounts <accounts> <extra>`.
    pub fn start_with(name: &str, accounts: usize, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("triad-e2e-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let stderr = std::fs::File::create(dir.join("devnet.stderr")).unwrap();
        let child = triad()
            .args(["devnet", "--accounts", &accounts.to_string(), "--data-dir"])
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start triad devnet");
        let postgres = extra.contains(&"--postgres");
        let mut dn = Self {
            dir,
            child,
            postgres,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !dn.dir.join("devnet.json").exists() {
            if let Ok(Some(status)) = dn.child.try_wait() {
                panic!("triad devnet exited early ({status})");
            }
            assert!(Instant::now() < deadline, "devnet.json never appeared");
            std::thread::sleep(Duration::from_millis(100));
        }
        dn
    }

    pub fn service_pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("devnet.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| {
                v["services"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|s| s["pid"].as_u64().map(|p| p as u32))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    pub fn dump_logs(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir.join("logs")) else {
            return;
        };
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.push(self.dir.join("devnet.stderr"));
        files.sort();
        for f in files {
            let s = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            eprintln!("==== {} (last 30 lines) ====", f.display());
            for l in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for DevnetProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        let services = self.service_pids();
        let databases = self.database_names();
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A service still running after a grace period (its command line
        // names our directory) is killed by pid.
        let ours = |pid: u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&*self.dir.to_string_lossy()))
                .unwrap_or(false)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while services.iter().any(|p| ours(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in services.into_iter().filter(|p| *p != 0 && ours(*p)) {
            eprintln!("killing leftover service pid {pid}");
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for db in databases {
            if let Err(e) = triad_pg::drop_database(&triad_pg::test_server_url(), &db) {
                eprintln!("dropping database {db}: {e}");
            }
        }
    }
}
