//! Clients that hold connections without finishing requests: idle ones, slowloris, bodies that
//! never end, more connections than the cap. Small timeouts are set for the tests; each waits
//! for the server to act (a closed socket, an answer, a log line), never for a fixed time.

mod support;

use std::time::Duration;

use support::{create_token, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A failing test must not hang CI: what the server should do in a second or two gets a minute.
const PATIENCE: Duration = Duration::from_secs(60);

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("connections.db").display())
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the server never closed the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let database = sqlite(&dir);
    let server = Server::start_with(
        &database,
        &["--header-timeout", "1s", "--body-timeout", "1s"],
    );
    let token = create_token(&database, "dora_metrics_write");

    // Connected, silent.
    let mut idle = connect(&server).await;
    assert_eq!(until_closed(&mut idle).await, "");

    // Slowloris: a head that never ends.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .await
        .unwrap();
    until_closed(&mut slow).await;

    // A body that never ends: 408, and the connection closed.
    let mut stalled = connect(&server).await;
    let head = format!(
        "POST /api/v2/dora/deployment HTTP/1.1\r\nHost: x\r\nDD-API-KEY: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"data\":"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1s"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // Keep-alive: answered, then closed once idle.
    let mut kept = connect(&server).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}

#[tokio::test]
async fn past_the_connection_cap_clients_wait_and_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &sqlite(&dir),
        &["--max-connections", "4", "--header-timeout", "2s"],
    );
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&server).await);
    }
    // The fifth waits in the backlog until an idle one is cut off, then is served.
    let mut fifth = connect(&server).await;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let logs = server.logs_until(|line| line.contains("connection cap reached"));
    assert!(
        logs.last().unwrap().contains("max_connections=4"),
        "{logs:?}"
    );
    for mut stream in idle {
        assert_eq!(until_closed(&mut stream).await, "");
    }
}

#[tokio::test]
async fn a_cap_above_the_descriptor_limit_is_lowered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&sqlite(&dir), &["--max-connections", "100000000"]);
    let said = server.startup.join("\n");
    assert!(said.contains("lowered"), "{said}");
    let status = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
