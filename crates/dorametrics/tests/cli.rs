//! The `dorametrics` command as users run it: first start, tokens, logs, shutdown.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{create_token, Server};

async fn list_status(base: &str, header: (&str, &str), query: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/api/v2/dora/deployments{query}"))
        .header(header.0, header.1)
        .json(&json!({"data": {"type": "dora_deployments_list_request", "attributes": {}}}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn first_start_prints_a_working_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("first.db").display());
    let server = Server::start(&database);
    let said = server.startup.join("\n");
    assert!(said.contains("Created the first admin token"), "{said}");
    let token = server
        .startup
        .iter()
        .map(|line| line.trim())
        .find(|line| line.starts_with("dora_"))
        .expect("the token on a line of its own")
        .to_string();
    assert!(said.contains("curl -H 'DD-API-KEY: "), "{said}");
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", &token), "").await,
        200
    );
    assert_eq!(server.terminate().code(), Some(0));

    // The second start finds a token and prints none.
    let server = Server::start(&database);
    assert!(
        !server.startup.join("\n").contains("dora_"),
        "{:?}",
        server.startup
    );
}

#[tokio::test]
async fn tokens_never_reach_the_logs_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("logs.db").display());
    let read = create_token(&database, "dora_metrics_read");
    // `token create` works while a server runs on the same file.
    let server = Server::start(&database);
    let write = create_token(&database, "dora_metrics_write");
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", &read), "").await,
        200
    );
    assert_eq!(
        list_status(&server.base, ("PRIVATE-TOKEN", &write), "").await,
        403
    );
    assert_eq!(
        list_status(
            &server.base,
            ("Authorization", &format!("Bearer {read}")),
            ""
        )
        .await,
        200
    );
    assert_eq!(
        list_status(
            &server.base,
            ("X-Other", "1"),
            &format!("?private_token={read}")
        )
        .await,
        200
    );
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", "dora_wrong"), "").await,
        401
    );
    let logs = server.logs(Duration::from_millis(300)).join("\n");
    assert!(
        logs.contains("/api/v2/dora/deployments"),
        "requests are logged: {logs}"
    );
    for secret in [&read, &write, "dora_wrong"] {
        assert!(!logs.contains(secret), "a token reached the logs: {logs}");
    }
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn token_create_prints_the_token_alone_and_rejects_unknown_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let token = create_token(&database, "admin");
    assert_eq!(token.len(), 5 + 64);
    let output = std::process::Command::new(support::BIN)
        .args([
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "superuser",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scope"));
}

#[test]
fn database_passwords_stay_out_of_help_and_logs() {
    let url = "postgres://dora:s3cret-pw@127.0.0.1:1/nowhere";
    let help = std::process::Command::new(support::BIN)
        .args(["serve", "--help"])
        .env("DORA_DATABASE", url)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--database"), "{help}");
    assert!(!help.contains("s3cret-pw"), "{help}");
    // A failing start names the database, password masked.
    let failed = std::process::Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", url])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        said.contains("postgres://dora:***@127.0.0.1:1/nowhere"),
        "{said}"
    );
    assert!(!said.contains("s3cret-pw"), "{said}");
}
