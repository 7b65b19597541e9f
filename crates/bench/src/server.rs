//! The dorametrics server under test: this same binary running the product's command line
//! (`dora-bench dorametrics serve …`) in a subprocess, so that its memory is its own and a
//! restart measures a real cold start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

/// How long a server may take to listen and answer `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(600);

pub struct ServerProcess {
    child: Child,
    pub base: String,
    log: PathBuf,
}

/// Creates (and migrates) the database if needed and returns a new admin token for it.
pub async fn create_token(exe: &Path, database: &str) -> Result<String> {
    let output = Command::new(exe)
        .args([
            crate::PRODUCT,
            "token",
            "create",
            "--name",
            "bench",
            "--scope",
            "admin",
            "--database",
            database,
        ])
        .env("DORA_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run `dorametrics token create`")?;
    if !output.status.success() {
        bail!(
            "`dorametrics token create` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

impl ServerProcess {
    /// Starts `serve` on port 0 and returns once `/readyz` answers 200, with the time that took
    /// (the cold start). Request logging stays off (`warn`): one line per request would
    /// measure the terminal, not the server.
    pub async fn start(exe: &Path, database: &str, log: &Path) -> Result<(Self, Duration)> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(exe)
            .args([
                crate::PRODUCT,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                database,
            ])
            // One token sends the whole load, far past what a CI system would.
            .args(["--rate-limit-per-token", "off"])
            // DORA_BENCH_SERVER_LOG: another filter for the server's log (server.log), e.g.
            // `info,dora_engine=debug` to see each stream's derivation.
            .env(
                "DORA_LOG",
                std::env::var("DORA_BENCH_SERVER_LOG")
                    .unwrap_or_else(|_| "warn,dorametrics=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start `dorametrics serve`")?;
        let mut server = Self {
            child,
            base: String::new(),
            log: log.to_path_buf(),
        };
        server.base = format!("http://{}", server.wait_for_address(started).await?);
        let client = super::client::client(Duration::from_secs(5))?;
        loop {
            let ready = client
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok((server, started.elapsed()));
            }
            server.check_running()?;
            if started.elapsed() > START_TIMEOUT {
                bail!("the server did not become ready in {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The address from the server's "listening" log line (it was asked for port 0).
    async fn wait_for_address(&mut self, started: Instant) -> Result<String> {
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(at) = text.find("address=") {
                let rest = &text[at + "address=".len()..];
                let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
                return Ok(rest[..end].to_string());
            }
            self.check_running()?;
            if started.elapsed() > START_TIMEOUT {
                bail!("the server did not listen in {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("the server exited ({status}) before it was ready:\n{log}");
        }
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// SIGKILL, for a server busy with an abandoned request.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM (the server drains and exits 0), SIGKILL if it has not exited in a minute.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("the server exited with {status}");
                }
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the server did not stop within a minute of SIGTERM");
            }
        }
        Ok(())
    }
}
