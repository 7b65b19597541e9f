//! `dorametrics report` as users run it: against a database and against a running server, as
//! a table, JSON and CSV — the same numbers as `GET /api/v1/metrics` every way — and refusals
//! naming the flag.

mod support;

use std::process::{Command, Output};

use serde_json::{json, Value};
use support::postgres::{server_url, TestDatabase};
use support::{create_token, Server, BIN};

/// 2025-01-01T00:00:00Z
const T0: i64 = 1_735_689_600;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

const RANGE: [&str; 4] = ["--from", "2025-01-01", "--to", "2025-01-14"];

async fn post(server: &Server, token: &str, path: &str, attributes: Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .header("DD-API-KEY", token)
        .json(&json!({ "data": { "attributes": attributes } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

/// shop (backend) to production daily at 10:00 on Jan 1–9, with v3 rolled back by v2 four
/// hours later on Jan 3; api (platform) twice; a staging deployment; a 2-hour failure on Jan 7.
async fn seed(server: &Server, token: &str) {
    let shop = [
        (0, 10, "v1"),
        (1, 10, "v2"),
        (2, 10, "v3"),
        (2, 14, "v2"),
        (3, 10, "v4"),
        (4, 10, "v5"),
        (5, 10, "v6"),
        (6, 10, "v7"),
        (7, 10, "v8"),
        (8, 10, "v9"),
    ];
    for (n, (day, hour, version)) in shop.iter().enumerate() {
        let finished = T0 + day * DAY + hour * HOUR;
        post(
            server,
            token,
            "/api/v2/dora/deployment",
            json!({
            "id": format!("shop-{n:02}-0000000000"), "service": "shop", "env": "production",
            "team": "backend", "version": version, "started_at": finished - 300,
            "finished_at": finished}),
        )
        .await;
    }
    for day in [2, 9] {
        let finished = T0 + day * DAY + 15 * HOUR;
        post(
            server,
            token,
            "/api/v2/dora/deployment",
            json!({
            "id": format!("api-{day:02}-00000000000"), "service": "api", "env": "production",
            "team": "platform", "version": format!("a{day}"), "started_at": finished - 60,
            "finished_at": finished}),
        )
        .await;
    }
    post(
        server,
        token,
        "/api/v2/dora/deployment",
        json!({
        "id": "shop-staging-000000", "service": "shop", "env": "staging", "team": "backend",
        "started_at": T0 + HOUR, "finished_at": T0 + 2 * HOUR}),
    )
    .await;
    post(
        server,
        token,
        "/api/v2/dora/failure",
        json!({
        "id": "incident-0000000001", "services": ["shop"], "env": "production",
        "started_at": T0 + 6 * DAY + 12 * HOUR, "finished_at": T0 + 6 * DAY + 14 * HOUR}),
    )
    .await;
}

fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

fn report(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command.arg("report").args(args).env_remove("DORA_TOKEN");
    if let Some(token) = token {
        command.env("DORA_TOKEN", token);
    }
    command.output().expect("run dorametrics report")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn refused(output: &Output) -> String {
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).to_string()
}

async fn endpoint(server: &Server, token: &str, query: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/metrics?{query}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn scenario(database: &str) {
    let admin = create_token(database, "admin");
    let read = create_token(database, "dora_metrics_read");
    let server = Server::start(database);
    seed(&server, &admin).await;
    let db = ["--database", database];
    let url = ["--url", server.base.as_str()];
    let with = |source: &[&str], extra: &[&str]| -> Vec<String> {
        RANGE
            .iter()
            .chain(source)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };

    // JSON: the database, the server and the endpoint agree exactly.
    let extra = [
        "--service",
        "shop",
        "--breakdown",
        "env",
        "--format",
        "json",
    ];
    let local: Value =
        serde_json::from_str(&stdout_of(&report(&args(&with(&db, &extra)), None))).unwrap();
    let remote: Value =
        serde_json::from_str(&stdout_of(&report(&args(&with(&url, &extra)), Some(&read)))).unwrap();
    let direct = endpoint(
        &server,
        &read,
        "from=2025-01-01&to=2025-01-14&service=shop&breakdown=env",
    )
    .await;
    assert_eq!(local, direct);
    assert_eq!(remote, direct);
    let totals = &local["totals"];
    assert_eq!(totals["deployments"], 10);
    assert_eq!(totals["failed_deployments"], 2); // v3 rolled back; Jan 7's deployment
    assert_eq!(totals["rework_deployments"], 1);
    assert_eq!(totals["time_to_restore_seconds"]["median"], 7200.0);
    assert_eq!(local["series"].as_array().unwrap().len(), 3);
    assert_eq!(local["levels"]["year"], 2024);

    // The table: the keys with their levels, the series, the breakdown.
    let table = stdout_of(&report(
        &args(&with(&db, &["--breakdown", "service"])),
        None,
    ));
    for needle in [
        "DORA metrics 2025-01-01 .. 2025-01-14 (14 days), tiers: production",
        "Levels: DORA 2024 bands",
        "Deployment frequency",
        "0.86 per day (12 deployments)",
        "Change failure rate",
        "16.7% (2 of 12)",
        "Time to restore service",
        "median 2h 0m",
        "Rework rate",
        "Overall",
        "Weekly series",
        "2024-12-30",
        "2025-01-13",
        "By service",
    ] {
        assert!(table.contains(needle), "{needle:?} in\n{table}");
    }
    let level_of = |label: &str| {
        table
            .lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(level_of("Deployment frequency"), "high");
    assert_eq!(level_of("Change failure rate"), "high");
    assert_eq!(level_of("Overall"), "high");
    let remote_table = stdout_of(&report(
        &args(&with(&url, &["--breakdown", "service"])),
        Some(&read),
    ));
    assert_eq!(remote_table, table);

    // CSV: a totals row, a row per bucket, a row per breakdown group.
    let csv = stdout_of(&report(
        &args(&with(
            &db,
            &["--format", "csv", "--breakdown", "team", "--year", "2021"],
        )),
        None,
    ));
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let header = &rows[0];
    assert_eq!(header[0], "scope");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{csv}");
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let scopes: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(
        scopes,
        [
            ("total", ""),
            ("series", "2024-12-30"),
            ("series", "2025-01-06"),
            ("series", "2025-01-13"),
            ("team", "backend"),
            ("team", "platform"),
        ]
    );
    let total = &rows[1];
    assert_eq!(total[column("deployments")], "12");
    assert_eq!(total[column("failed_deployments")], "2");
    assert_eq!(total[column("time_to_restore_median_seconds")], "7200.0");
    // 16.7% is past 2021's Elite band (0–15%) and inside High's (16–30%).
    assert_eq!(total[column("level_change_failure_rate")], "high");
    assert_eq!(rows[5][column("deployments")], "10");
    let remote_csv = stdout_of(&report(
        &args(&with(
            &url,
            &["--format", "csv", "--breakdown", "team", "--year", "2021"],
        )),
        Some(&read),
    ));
    assert_eq!(remote_csv, csv);

    // Refusals name the flag, from the database and from the server alike.
    for source in [&db[..], &url[..]] {
        let err = refused(&report(
            &args(&with(source, &["--year", "2022"])),
            Some(&read),
        ));
        assert!(
            err.contains("--year: year must be a DORA report year"),
            "{err}"
        );
        let err = refused(&report(
            &args(&with(source, &["--tier", "prod"])),
            Some(&read),
        ));
        assert!(err.contains("--tier: unknown tier \"prod\""), "{err}");
        let err = refused(&report(
            &args(&with(source, &["--project", "nope"])),
            Some(&read),
        ));
        assert!(err.contains("Project \"nope\" not found"), "{err}");
    }
    // The server derived the stored facts with its window (the default 24h): a report from
    // the database with another would read verdicts of the wrong window, so it is refused.
    let err = refused(&report(
        &args(&with(&db, &["--failure-window", "48h"])),
        None,
    ));
    assert!(
        err.contains("--failure-window 2days: the facts in this database were derived with a failure window of 1day"),
        "{err}"
    );
    stdout_of(&report(
        &args(&with(&db, &["--failure-window", "24h"])),
        None,
    ));
    let err = refused(&report(&args(&with(&url, &[])), None));
    assert!(err.contains("DORA_TOKEN"), "{err}");
    let err = refused(&report(&args(&with(&url, &[])), Some("dora_wrong")));
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn report_from_a_database_and_a_server_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "sqlite://{}",
        dir.path().join("report.db").display()
    ))
    .await;
}

#[tokio::test]
async fn report_from_a_database_and_a_server_postgres() {
    let Some(server) = server_url() else {
        return;
    };
    let database = TestDatabase::create(&server).await;
    scenario(&database.url).await;
}

#[test]
fn report_has_help() {
    let help = stdout_of(&report(&["--help"], None));
    for flag in [
        "--from",
        "--to",
        "--interval",
        "--service",
        "--team",
        "--env",
        "--tier",
        "--project",
        "--group",
        "--query",
        "--year",
        "--breakdown",
        "--format",
        "--database",
        "--url",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
}
