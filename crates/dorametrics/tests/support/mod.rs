//! Running the real `dorametrics` binary from tests.

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
    /// Kept so the reader thread keeps draining the pipe (a full pipe would block the server).
    _stderr: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(database: &str) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
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
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("server did not start; it said: {seen:#?}"));
            if let Some(rest) = line.split("address=").nth(1) {
                let address = rest.split_whitespace().next().unwrap().to_string();
                return Server {
                    child,
                    base: format!("http://{address}"),
                    _stderr: lines,
                };
            }
            seen.push(line);
        }
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
