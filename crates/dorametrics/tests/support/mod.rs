//! Running the real `dorametrics` binary from tests.
// Each test binary uses only part of this module.
#![allow(dead_code)]

pub mod postgres;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_dorametrics");

/// `dorametrics token create`; returns the token it printed.
pub fn create_token(database: &str, scope: &str) -> String {
    let output = Command::new(BIN)
        .args([
            "token",
            "create",
            "--name",
            "test",
            "--scope",
            scope,
            "--database",
            database,
        ])
        .output()
        .expect("run token create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("dora_"), "{token}");
    token
}

/// A running `dorametrics serve` on a port of its choosing.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// What the server said before it listened.
    pub startup: Vec<String>,
    /// Lines of stderr since startup; kept so the reader thread keeps draining the pipe.
    stderr: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(database: &str) -> Server {
        Self::start_with(database, &[])
    }

    /// `serve` with these extra arguments (timeouts, say).
    pub fn start_with(database: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("DORA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let stderr = child.stderr.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start; it said: {seen:#?}");
            };
            if let Some(rest) = line.split("address=").nth(1) {
                let address = rest.split_whitespace().next().unwrap().to_string();
                return Server {
                    child,
                    base: format!("http://{address}"),
                    startup: seen,
                    stderr: lines,
                };
            }
            seen.push(line);
        }
    }

    /// What the server wrote to stderr since it listened, waiting up to `wait` for more.
    pub fn logs(&self, wait: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(wait) {
            lines.push(line);
        }
        lines
    }

    /// What the server wrote to stderr since it listened, up to and including the first line
    /// that satisfies `found`; panics when none comes within a minute.
    pub fn logs_until(&self, found: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.stderr.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let done = found(&line);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(_) => panic!("the server never logged the line waited for; it said {lines:#?}"),
            }
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
