//! A database that is stuck, gone or wrong, seen from the outside: each failure is its own clear
//! answer (a 503 saying what happened, `Retry-After` where retrying helps), fast, and a request
//! whose client leaves stops using the database. Small timeouts are set for the tests; nothing
//! here waits for a fixed time.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::postgres::{server_url, TestDatabase};
use support::{create_token, Server, BIN};

fn dorametrics(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn deployment(i: usize) -> Value {
    json!({"data": {"attributes": {"service": format!("svc-{i}"), "env": "production",
        "started_at": 1_738_310_000 + i, "finished_at": 1_738_310_400 + i}}})
}

/// Status, `Retry-After` and body of a deployment POST.
async fn post_deployment(base: &str, token: &str, i: usize) -> (StatusCode, Option<String>, Value) {
    let response = client()
        .post(format!("{base}/api/v2/dora/deployment"))
        .header("DD-API-KEY", token)
        .json(&deployment(i))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, response.json().await.unwrap_or(Value::Null))
}

async fn readyz(base: &str) -> (StatusCode, String) {
    let response = client().get(format!("{base}/readyz")).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Backends of `database` waiting for a lock.
async fn lock_waiters(watcher: &tokio_postgres::Client, database: &str) -> i64 {
    watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            &[&database],
        )
        .await
        .unwrap()
        .get(0)
}

async fn wait_for_waiters(
    watcher: &tokio_postgres::Client,
    database: &str,
    done: impl Fn(i64) -> bool,
) {
    while !done(lock_waiters(watcher, database).await) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A session of the test's holding a lock on the deployments table that stops every read and
/// write of it, until the session commits.
async fn lock_deployments(database: &TestDatabase) -> tokio_postgres::Client {
    let holder = database.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    holder
}

#[tokio::test]
async fn a_lock_held_elsewhere_gives_fast_clear_503s() {
    let Some(server) = server_url() else { return };
    let database = TestDatabase::create(&server).await;
    let node = Server::start_with(
        &database.url,
        &["--lock-timeout", "1s", "--pool-wait", "1s"],
    );
    let token = create_token(&database.url, "admin");
    let holder = lock_deployments(&database).await;
    // The writers take them in batches, and wait for the lock.
    let writes: Vec<_> = (0..12)
        .map(|i| {
            let (base, token) = (node.base.clone(), token.clone());
            tokio::spawn(async move { post_deployment(&base, &token, i).await })
        })
        .collect();
    for write in writes {
        let (status, retry, body) = write.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(
            body,
            json!({"errors": ["The database waited too long for a lock; retry later"]})
        );
        assert_eq!(retry.as_deref(), Some("1"));
    }
    // Readiness does not need the locked table, and was never starved of connections.
    assert_eq!(readyz(&node.base).await.0, StatusCode::OK);
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        post_deployment(&node.base, &token, 99).await.0,
        StatusCode::ACCEPTED
    );
    let logs = node
        .logs_until(|line| line.contains("lock_wait"))
        .join("\n");
    assert!(logs.contains("55P03"), "the cause is in the log: {logs}");
}

/// Writes queue for the store's few writers, which commit each batch on a connection of their
/// own: with every writer waiting for a lock, the writes no writer takes within the pool-wait
/// are told that every connection is busy, while reads keep connections of their own.
#[tokio::test]
async fn writes_no_writer_takes_are_a_fast_503_and_reads_go_on() {
    let Some(server) = server_url() else { return };
    let database = TestDatabase::create(&server).await;
    let node = Server::start_with(
        &database.url,
        &[
            "--lock-timeout",
            "10min",
            "--statement-timeout",
            "10min",
            "--pool-wait",
            "1s",
        ],
    );
    let token = create_token(&database.url, "admin");
    let holder = lock_deployments(&database).await;
    let watcher = database.client().await;
    let post = |i| {
        let (base, token) = (node.base.clone(), token.clone());
        tokio::spawn(async move { post_deployment(&base, &token, i).await })
    };
    // One write at a time until every writer waits for the lock with one.
    let mut taken = Vec::new();
    for i in 0..dora_store::postgres::WRITERS {
        taken.push(post(i));
        wait_for_waiters(&watcher, &database.name, |n| n > i as i64).await;
    }
    // No writer is left to take these.
    let refused: Vec<_> = (100..110).map(post).collect();
    for write in refused {
        let (status, retry, body) = write.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(
            body,
            json!({"errors": ["Every database connection is busy; retry later"]})
        );
        assert_eq!(retry.as_deref(), Some("1"));
    }
    let (status, said) = readyz(&node.base).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    holder.batch_execute("COMMIT").await.unwrap();
    for write in taken {
        let (status, _, body) = write.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(readyz(&node.base).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_gone_away_has_its_statement_cancelled() {
    let Some(server) = server_url() else { return };
    let database = TestDatabase::create(&server).await;
    let node = Server::start_with(
        &database.url,
        &["--lock-timeout", "10min", "--statement-timeout", "10min"],
    );
    let token = create_token(&database.url, "admin");
    let holder = lock_deployments(&database).await;
    let (base, read_token) = (node.base.clone(), token.clone());
    let request = tokio::spawn(async move {
        client()
            .post(format!("{base}/api/v2/dora/deployments"))
            .header("DD-API-KEY", read_token)
            .json(&json!({"data": {"type": "dora_deployments_list_request", "attributes": {}}}))
            .send()
            .await
    });
    let watcher = database.client().await;
    wait_for_waiters(&watcher, &database.name, |n| n >= 1).await;
    request.abort(); // the client goes away
                     // Its statement is cancelled while the lock is still held.
    wait_for_waiters(&watcher, &database.name, |n| n == 0).await;
    holder.batch_execute("COMMIT").await.unwrap();
    drop(node);
}

#[tokio::test]
async fn a_missing_schema_is_not_ready() {
    let Some(server) = server_url() else { return };
    let database = TestDatabase::create(&server).await;
    let node = Server::start(&database.url);
    assert_eq!(readyz(&node.base).await.0, StatusCode::OK);
    database
        .client()
        .await
        .batch_execute("DROP TABLE schema_migrations")
        .await
        .unwrap();
    let (status, said) = readyz(&node.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(said.contains("schema is missing"), "{said}");
}

#[tokio::test]
async fn postgres_failures_at_start_say_what_happened() {
    let Some(server) = server_url() else { return };
    let unreachable = dorametrics(&["report", "--database", "postgres://postgres@127.0.0.1:1/x"]);
    assert!(!unreachable.status.success());
    assert!(
        stderr(&unreachable).contains("cannot be reached"),
        "{}",
        stderr(&unreachable)
    );

    let absent = TestDatabase::absent(&server);
    let missing = dorametrics(&["report", "--database", &absent.url]);
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );

    // `migrate` creates it, as its help says.
    let migrated = dorametrics(&["migrate", "--database", &absent.url]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(
        stderr(&migrated).contains("created the database"),
        "{}",
        stderr(&migrated)
    );
    let report = dorametrics(&["report", "--database", &absent.url, "--format", "json"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let again = dorametrics(&["migrate", "--database", &absent.url]);
    assert!(
        again.status.success() && !stderr(&again).contains("created"),
        "{}",
        stderr(&again)
    );

    // A role that may not log in: the credentials are refused.
    let role = format!("dora_test_role_{:016x}", rand::random::<u64>());
    let admin = absent.client().await;
    admin
        .batch_execute(&format!("CREATE ROLE {role} NOLOGIN"))
        .await
        .unwrap();
    let url = absent.url.replacen("postgres@", &format!("{role}@"), 1);
    let refused = dorametrics(&["report", "--database", &url]);
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
    assert!(
        stderr(&refused).contains("refused the server's credentials"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn a_sqlite_file_deleted_under_the_server_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.db");
    let database = format!("sqlite://{}", path.display());
    let node = Server::start(&database);
    let token = create_token(&database, "admin");
    assert_eq!(
        post_deployment(&node.base, &token, 0).await.0,
        StatusCode::ACCEPTED
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let (status, retry, body) = post_deployment(&node.base, &token, 1).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("deleted or replaced"),
        "{body}"
    );
    assert_eq!(retry, None, "retrying cannot help");
    let (status, said) = readyz(&node.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(said.contains("deleted or replaced"), "{said}");
}

#[test]
fn commands_that_only_read_refuse_a_missing_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    let url = format!("sqlite://{}", path.display());
    for args in [
        vec!["report", "--database", &url],
        vec!["token", "list", "--database", &url],
        vec!["token", "revoke", "x", "--database", &url],
    ] {
        let output = dorametrics(&args);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains("there is no database at"),
            "{}",
            stderr(&output)
        );
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}
