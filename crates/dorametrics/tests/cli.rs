//! The `dorametrics` command as users run it: first start, tokens, logs, shutdown.

mod support;

use std::process::Command;
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
    // The log says which credential authenticated a request (and which were tried when none
    // did), never their values.
    let last = "/api/v2/dora/deployments/the-last-request";
    let status = reqwest::Client::new()
        .get(format!("{}{last}", server.base))
        .header("DD-APPLICATION-KEY", "dora_wrong")
        .header("PRIVATE-TOKEN", &read)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let logs = server.logs_until(|line| line.contains(last)).join("\n");
    assert!(
        logs.contains("/api/v2/dora/deployments"),
        "requests are logged: {logs}"
    );
    for said in [
        "auth=\"DD-API-KEY token ",
        "auth=\"private_token token ",
        "auth=\"Authorization: Bearer token ",
        "auth=\"no valid token in DD-API-KEY\"",
        "auth=\"PRIVATE-TOKEN token ",
    ] {
        assert!(logs.contains(said), "no {said:?} in the log: {logs}");
    }
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
    assert_eq!(token.len(), 5 + 16 + 1 + 64);
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

fn run_ok(args: &[&str]) -> String {
    let output = Command::new(support::BIN).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn token_list(database: &str) -> Vec<serde_json::Value> {
    let listed: serde_json::Value = serde_json::from_str(&run_ok(&[
        "token",
        "list",
        "--json",
        "--database",
        database,
    ]))
    .unwrap();
    listed["tokens"].as_array().unwrap().clone()
}

#[tokio::test]
async fn tokens_are_listed_revoked_and_expire_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("lifecycle.db").display());
    let server = Server::start(&database);
    let ci = run_ok(&[
        "token",
        "create",
        "--name",
        "ci",
        "--scope",
        "dora_metrics_read",
        "--expires-in",
        "90d",
        "--project",
        "acme/shop",
        "--database",
        &database,
    ]);
    let ci = ci.trim();
    let soon = run_ok(&[
        "token",
        "create",
        "--name",
        "soon",
        "--scope",
        "dora_metrics_read",
        "--expires-in",
        "2s",
        "--database",
        &database,
    ]);
    let soon = soon.trim();
    // Two tokens of one name: revoking by that name is refused, by id it works.
    let twin_a = create_token(&database, "dora_metrics_read");
    let twin_b = create_token(&database, "dora_metrics_read");
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", &twin_a), "").await,
        200
    );

    let tokens = token_list(&database);
    let listed = serde_json::to_string(&tokens).unwrap();
    for secret in [ci, soon, &twin_a, &twin_b] {
        assert!(
            !listed.contains(&secret[22..]),
            "a secret is listed: {listed}"
        );
    }
    let ci_view = tokens.iter().find(|t| t["name"] == "ci").unwrap();
    assert_eq!(ci_view["scopes"], json!(["dora_metrics_read"]));
    assert_eq!(ci_view["restrictions"], json!(["project:acme/shop"]));
    assert_eq!(ci_view["status"], "active");
    assert!(ci_view["expires_at"].as_str().unwrap() > ci_view["created_at"].as_str().unwrap());
    assert_eq!(
        &ci[5..21],
        ci_view["id"].as_str().unwrap(),
        "the id is in the token"
    );
    // The first use is recorded (in the background: wait for it).
    let twin_a_id = &twin_a[5..21];
    loop {
        let tokens = token_list(&database);
        let view = tokens.iter().find(|t| t["id"] == twin_a_id).unwrap();
        if view["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let table = run_ok(&["token", "list", "--database", &database]);
    assert!(table.starts_with("ID  "), "{table}");
    assert!(
        table.contains("project:acme/shop") && table.contains("active"),
        "{table}"
    );

    let ambiguous = Command::new(support::BIN)
        .args(["token", "revoke", "test", "--database", &database])
        .output()
        .unwrap();
    assert!(!ambiguous.status.success());
    let said = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        said.contains("2 tokens are named \"test\"") && said.contains(twin_a_id),
        "{said}"
    );

    // Revoked: refused at once by the running server.
    run_ok(&["token", "revoke", twin_a_id, "--database", &database]);
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", &twin_a), "").await,
        401
    );
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", &twin_b), "").await,
        200
    );
    // Now only one live token has the name.
    run_ok(&["token", "revoke", "test", "--database", &database]);
    assert_eq!(
        list_status(&server.base, ("DD-API-KEY", &twin_b), "").await,
        401
    );
    let no_such = Command::new(support::BIN)
        .args(["token", "revoke", "nobody", "--database", &database])
        .output()
        .unwrap();
    assert!(!no_such.status.success());

    // Expired: refused once its time has come (waited for, not timed).
    loop {
        if list_status(&server.base, ("DD-API-KEY", soon), "").await == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses: Vec<(String, String)> = token_list(&database)
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, status) in [("soon", "expired"), ("test", "revoked"), ("ci", "active")] {
        assert!(
            statuses.contains(&(name.to_string(), status.to_string())),
            "{statuses:?}"
        );
    }
    let bad = Command::new(support::BIN)
        .args([
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "admin",
            "--expires-in",
            "soon",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--expires-in \"soon\" is not a duration")
    );
}

#[tokio::test]
async fn a_busy_port_does_not_use_up_the_first_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("busy.db").display());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let failed = Command::new(support::BIN)
        .args(["serve", "--listen", &address, "--database", &database])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        said.contains(&format!("cannot listen on {address}")),
        "{said}"
    );
    assert!(!said.contains("admin token"), "{said}");
    drop(taken);
    // The next start, on a free port, creates and prints it.
    let server = Server::start(&database);
    let startup = server.startup.join("\n");
    assert!(
        startup.contains("Created the first admin token"),
        "{startup}"
    );
}

#[tokio::test]
async fn a_backup_taken_while_the_server_writes_holds_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("live.db").display());
    let server = Server::start(&database);
    let token = create_token(&database, "admin");
    let client = reqwest::Client::new();
    for i in 0..20 {
        let status = client
            .post(format!("{}/api/v2/dora/deployment", server.base))
            .header("DD-API-KEY", &token)
            .json(
                &json!({"data": {"attributes": {"service": "shop", "env": "production",
                "started_at": 1_735_700_000 + i * 60, "finished_at": 1_735_700_030 + i * 60}}}),
            )
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
    }
    let copy = dir.path().join("copy.db");
    let copy_text = copy.display().to_string();
    let backed = run_ok(&["backup", "--database", &database, &copy_text]);
    assert_eq!(backed, "");
    let report = run_ok(&[
        "report",
        "--database",
        &format!("sqlite://{copy_text}"),
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-31",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["totals"]["deployments"], 20);
    // Never over an existing file; PostgreSQL is pg_dump's job.
    for (args, said) in [
        (
            vec!["backup", "--database", &database, &copy_text],
            "exists already",
        ),
        (
            vec![
                "backup",
                "--database",
                "postgres://postgres@127.0.0.1/x",
                "out.db",
            ],
            "pg_dump",
        ),
    ] {
        let output = Command::new(support::BIN).args(&args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(said), "{stderr}");
    }
    drop(server);
}

#[tokio::test]
async fn metrics_listen_serves_metrics_alone_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("metrics.db").display());
    let server = Server::start_with(&database, &["--metrics-listen", "127.0.0.1:0"]);
    let line = server
        .logs_until(|line| line.contains("/metrics listening"))
        .pop()
        .unwrap();
    let address = line
        .split("address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let open = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    assert!(open
        .text()
        .await
        .unwrap()
        .contains("# TYPE dora_deployments gauge"));
    let other = reqwest::get(format!("http://{address}/api/v2/dora/deployments/x"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "only /metrics is served there");
    let main = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(main.status(), 401, "the API address needs a token");
}
