//! `GET /api/v1/metrics` (parameters, errors, every bucket, breakdowns, levels) and
//! `GET /api/v1/projects`, `GET /api/v1/groups`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, SHA_A};

/// 2025-01-01T00:00:00Z.
const JAN1: i64 = 1_735_689_600;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

async fn deploy(app: &TestApp, service: &str, env: &str, team: Option<&str>, at: i64, n: usize) {
    let mut attributes = json!({
        "id": format!("{service}-{env}-{n:04}-xxxxxxxx"),
        "service": service, "env": env, "version": format!("v{n}"),
        "started_at": at - 60, "finished_at": at,
    });
    if let Some(team) = team {
        attributes["team"] = json!(team);
    }
    app.deploy(attributes).await;
}

/// Production: `shop` (team backend) twice a day on Jan 1–5, one failure blamed on Jan 3's
/// second deployment (30 min); `api` three times to prod-eu (team platform) and once to
/// production without a team; `gateway` once from git (project acme/platform/api).
/// Not production: `shop` to staging and nonprod.
pub async fn seed(app: &TestApp) {
    let mut n = 0;
    for day in 0..5 {
        for hour in [8, 16] {
            n += 1;
            deploy(
                app,
                "shop",
                "production",
                Some("backend"),
                JAN1 + day * DAY + hour * HOUR,
                n,
            )
            .await;
        }
    }
    app.fail(json!({
        "id": "incident-shop-0001", "services": ["shop"], "env": "production",
        "started_at": JAN1 + 2 * DAY + 17 * HOUR, "finished_at": JAN1 + 2 * DAY + 17 * HOUR + 1800,
    }))
    .await;
    for day in 0..3 {
        n += 1;
        deploy(
            app,
            "api",
            "prod-eu",
            Some("platform"),
            JAN1 + day * DAY + 10 * HOUR,
            n,
        )
        .await;
    }
    n += 1;
    deploy(
        app,
        "api",
        "production",
        None,
        JAN1 + 4 * DAY + 11 * HOUR,
        n,
    )
    .await;
    app.deploy(json!({
        "id": "gateway-0001-xxxxxxxxxx", "service": "gateway", "env": "production",
        "started_at": JAN1 + DAY, "finished_at": JAN1 + DAY + 60,
        "git": {"repository_url": "https://github.com/acme/platform/api.git", "commit_sha": SHA_A},
    }))
    .await;
    n += 1;
    deploy(app, "shop", "staging", Some("backend"), JAN1 + 3 * HOUR, n).await;
    n += 1;
    deploy(app, "shop", "nonprod", Some("backend"), JAN1 + 4 * HOUR, n).await;
}

async fn metrics(app: &TestApp, query: &str) -> Value {
    let reply = app.get(&format!("/api/v1/metrics?{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
    assert_eq!(reply.content_type, "application/vnd.api+json");
    reply.body
}

fn deployments(report: &Value) -> u64 {
    report["totals"]["deployments"].as_u64().unwrap()
}

async fn refusals_name_the_parameter() {
    let app = spawn_app().await;
    for (query, parameter, needle) in [
        ("from=2025-02-30", "from", "must be a date like 2025-01-31"),
        ("to=31.01.2025", "to", "must be a date"),
        (
            "from=2025-02-01&to=2025-01-01",
            "from",
            "must not be after to",
        ),
        ("from=2000-01-01&to=2025-01-01", "from", "at most 3660"),
        (
            "interval=hourly",
            "interval",
            "daily, weekly, monthly or all",
        ),
        ("query=service:(shop", "query", "offset"),
        ("tiers=prod", "tiers", "unknown tier \"prod\""),
        (
            "tiers[]=production&tiers[]=qa",
            "tiers",
            "unknown tier \"qa\"",
        ),
        ("year=2022", "year", "2019, 2021, 2023, 2024"),
        ("breakdown=week", "breakdown", "service, team, env, project"),
        ("service=", "service", "must not be empty"),
        ("colour=red", "colour", "unknown parameter"),
        ("year=2024&year=2023", "year", "more than once"),
    ] {
        let reply = app.get(&format!("/api/v1/metrics?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.content_type, "application/vnd.api+json");
        let error = &reply.body["errors"][0];
        assert_eq!(error["status"], "400");
        assert_eq!(error["title"], "Bad Request");
        assert_eq!(error["source"]["parameter"], parameter, "{query}");
        let detail = error["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{query}: {detail}");
    }
    // Auth first, then lookups.
    let reply = app.call(Method::GET, "/api/v1/metrics", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .call(Method::GET, "/api/v1/metrics", Some(&app.write), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    for (query, message) in [
        ("project=acme/nope", "Project \"acme/nope\" not found"),
        ("project=12345", "Project \"12345\" not found"),
        ("group=nope", "Group \"nope\" not found"),
    ] {
        let reply = app.get(&format!("/api/v1/metrics?{query}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{query}");
        assert_eq!(reply.body, json!({ "errors": [message] }));
    }
    // A read token is enough, and the defaults answer.
    let reply = app
        .call(Method::GET, "/api/v1/metrics", Some(&app.read), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let selection = &reply.body["selection"];
    assert_eq!(selection["interval"], "weekly");
    assert_eq!(selection["tiers"], json!(["production"]));
    assert_eq!(reply.body["levels"]["year"], 2024);
}

async fn every_bucket_is_explicit() {
    let app = spawn_app().await;
    seed(&app).await;
    let daily = metrics(
        &app,
        "from=2024-12-30&to=2025-01-07&interval=daily&service=shop",
    )
    .await;
    let series = daily["series"].as_array().unwrap();
    let dates: Vec<&str> = series.iter().map(|b| b["date"].as_str().unwrap()).collect();
    assert_eq!(
        dates,
        [
            "2024-12-30",
            "2024-12-31",
            "2025-01-01",
            "2025-01-02",
            "2025-01-03",
            "2025-01-04",
            "2025-01-05",
            "2025-01-06",
            "2025-01-07"
        ]
    );
    let counts: Vec<u64> = series
        .iter()
        .map(|b| b["deployments"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 0, 2, 2, 2, 2, 2, 0, 0]);
    let empty = &series[0];
    assert_eq!(empty["from"], "2024-12-30");
    assert_eq!(empty["to"], "2024-12-30");
    assert_eq!(empty["days"], 1);
    assert_eq!(empty["deployments_per_day"], 0.0);
    assert_eq!(empty["change_failure_rate"], Value::Null);
    assert_eq!(empty["rework_rate"], Value::Null);
    assert_eq!(
        empty["lead_time_seconds"],
        json!({"count": 0, "median": null, "p75": null, "p90": null})
    );
    // Jan 3: the failed deployment and the failure resolved that day.
    assert_eq!(series[4]["change_failure_rate"], 0.5);
    assert_eq!(series[4]["time_to_restore_seconds"]["median"], 1800.0);
    assert_eq!(daily["selection"]["days"], 9);

    let weekly = metrics(&app, "from=2025-01-01&to=2025-01-14&service=shop").await;
    let shape: Vec<(String, String, String, u64, u64)> = weekly["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["date"].as_str().unwrap().to_string(),
                b["from"].as_str().unwrap().to_string(),
                b["to"].as_str().unwrap().to_string(),
                b["days"].as_u64().unwrap(),
                b["deployments"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("2024-12-30", "2025-01-01", "2025-01-05", 5, 10),
        ("2025-01-06", "2025-01-06", "2025-01-12", 7, 0),
        ("2025-01-13", "2025-01-13", "2025-01-14", 2, 0),
    ];
    assert_eq!(
        shape,
        expected.map(|(a, b, c, d, e)| (a.into(), b.into(), c.into(), d, e))
    );

    let monthly = metrics(&app, "from=2024-12-15&to=2025-02-10&interval=monthly").await;
    let months: Vec<(&str, u64)> = monthly["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["date"].as_str().unwrap(), b["days"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        months,
        [("2024-12-01", 17), ("2025-01-01", 31), ("2025-02-01", 10)]
    );

    let all = metrics(&app, "from=2025-01-01&to=2025-01-31&interval=all").await;
    let series = all["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["days"], 31);
    assert_eq!(series[0]["deployments"], all["totals"]["deployments"]);
    // A range with nothing in it: every bucket, all empty.
    let nothing = metrics(&app, "from=2023-01-01&to=2023-01-03&interval=daily").await;
    assert_eq!(nothing["series"].as_array().unwrap().len(), 3);
    assert_eq!(deployments(&nothing), 0);
    assert_eq!(nothing["totals"]["change_failure_rate"], Value::Null);
}

async fn selections_tiers_and_breakdowns() {
    let app = spawn_app().await;
    seed(&app).await;
    let range = "from=2025-01-01&to=2025-01-05";
    // Production by default: staging and nonprod (a staging tier, never production) left out.
    assert_eq!(deployments(&metrics(&app, range).await), 15);
    assert_eq!(
        deployments(&metrics(&app, &format!("{range}&tiers=staging")).await),
        2
    );
    assert_eq!(
        deployments(&metrics(&app, &format!("{range}&tiers=production,staging")).await),
        17
    );
    assert_eq!(
        deployments(&metrics(&app, &format!("{range}&tiers=all")).await),
        17
    );
    // Shorthands AND each other, their values OR.
    assert_eq!(
        deployments(
            &metrics(
                &app,
                &format!("{range}&service=api&service=shop&env=prod-eu")
            )
            .await
        ),
        3
    );
    let queried = metrics(&app, &format!("{range}&query=service:api%20-team:*")).await;
    assert_eq!(deployments(&queried), 1);
    assert_eq!(queried["selection"]["query"], "service:api -team:*");

    let by_service = metrics(&app, &format!("{range}&breakdown=service")).await;
    let groups = &by_service["breakdown"]["groups"];
    assert_eq!(by_service["breakdown"]["by"], "service");
    let rows: Vec<(Value, u64, u64)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].clone(),
                g["totals"]["deployments"].as_u64().unwrap(),
                g["totals"]["time_to_restore_seconds"]["count"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("api"), 4, 0),
            (json!("gateway"), 1, 0),
            (json!("shop"), 10, 1)
        ]
    );
    assert_eq!(
        groups[2]["levels"]["change_failure_rate"]["level"],
        "medium"
    );

    let keys = |report: &Value| -> Vec<(Value, u64)> {
        report["breakdown"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["key"].clone(),
                    g["totals"]["deployments"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(&metrics(&app, &format!("{range}&breakdown=team")).await),
        [
            (json!("backend"), 10),
            (json!("platform"), 3),
            (Value::Null, 2)
        ]
    );
    assert_eq!(
        keys(&metrics(&app, &format!("{range}&breakdown=env")).await),
        [(json!("prod-eu"), 3), (json!("production"), 12)]
    );
    assert_eq!(
        keys(&metrics(&app, &format!("{range}&breakdown=project&tiers=all")).await),
        [
            (json!("acme/platform/api"), 1),
            (json!("api"), 4),
            (json!("shop"), 12)
        ]
    );
    assert_eq!(metrics(&app, range).await["breakdown"], Value::Null);

    // Projects and groups, by path or numeric id.
    let projects = app.get("/api/v1/projects").await;
    assert_eq!(projects.status, StatusCode::OK);
    let list = projects.body["projects"].as_array().unwrap();
    let paths: Vec<&str> = list.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["acme/platform/api", "api", "shop"]);
    let gateway = &list[0];
    assert_eq!(gateway["name"], "api");
    assert_eq!(gateway["services"], json!(["gateway"]));
    assert_eq!(
        gateway["repository_ids"],
        json!(["github.com/acme/platform/api"])
    );
    assert_eq!(gateway["group_paths"], json!(["acme/platform", "acme"]));
    assert_eq!(list[2]["group_ids"], json!([]));
    let groups = app.get("/api/v1/groups").await.body;
    let groups = groups["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["path"], "acme");
    assert_eq!(groups[0]["parent_id"], Value::Null);
    assert_eq!(groups[1]["path"], "acme/platform");
    assert_eq!(groups[1]["parent_path"], "acme");
    assert_eq!(groups[1]["parent_id"], groups[0]["id"]);
    assert_eq!(
        gateway["group_ids"],
        json!([groups[1]["id"], groups[0]["id"]])
    );

    let project_id = gateway["id"].as_i64().unwrap();
    let by_id = metrics(&app, &format!("{range}&project={project_id}")).await;
    assert_eq!(deployments(&by_id), 1);
    assert_eq!(
        by_id["selection"]["project"],
        json!({"id": project_id, "path": "acme/platform/api"})
    );
    assert_eq!(
        deployments(&metrics(&app, &format!("{range}&project=shop")).await),
        10
    );
    let group_id = groups[1]["id"].as_i64().unwrap();
    assert_eq!(
        deployments(&metrics(&app, &format!("{range}&group={group_id}")).await),
        1
    );
    assert_eq!(
        deployments(&metrics(&app, &format!("{range}&group=acme")).await),
        1
    );
    let write_only = app
        .call(Method::GET, "/api/v1/projects", Some(&app.write), None)
        .await;
    assert_eq!(write_only.status, StatusCode::FORBIDDEN);
}

async fn levels_follow_the_report_year() {
    let app = spawn_app().await;
    seed(&app).await;
    // shop: 10 deployments in 5 days (2/day), 1 failed (10%), no commits, one failure of 30 min.
    let query = "from=2025-01-01&to=2025-01-05&service=shop";
    let report = metrics(&app, query).await;
    let totals = &report["totals"];
    assert_eq!(totals["deployments"], 10);
    assert_eq!(totals["deployments_per_day"], 2.0);
    assert_eq!(totals["failed_deployments"], 1);
    assert_eq!(totals["change_failure_rate"], 0.1);
    assert_eq!(totals["rework_rate"], 0.0);
    assert_eq!(totals["time_to_restore_seconds"]["median"], 1800.0);
    assert_eq!(
        totals["failed_deployment_recovery_time_seconds"]["count"],
        0
    );

    let levels = &report["levels"];
    assert_eq!(levels["year"], 2024);
    assert!(levels["source"].as_str().unwrap().contains("2024"));
    assert!(levels["rule"].as_str().unwrap().contains("lowest"));
    assert_eq!(
        levels["deployment_frequency"],
        json!({"level": "elite", "value": 2.0, "band": "More than once per day",
               "published_band": "On demand (multiple deploys per day)"})
    );
    assert_eq!(levels["lead_time"], Value::Null);
    // 10% is Medium in 2024 (whose High fails at 20%), High in 2023, Elite in 2021.
    assert_eq!(
        levels["change_failure_rate"],
        json!({"level": "medium", "value": 0.1, "band": "More than 7.5%, less than 15%",
               "published_band": "10%"})
    );
    // No failed deployment was remediated: the failure's time to restore stands in.
    assert_eq!(
        levels["restore"],
        json!({"level": "elite", "value": 1800.0, "band": "Less than one hour",
               "published_band": "Less than one hour", "measure": "time_to_restore"})
    );
    assert_eq!(levels["overall"], "medium");
    assert_eq!(
        levels["bands"]["change_failure_rate"]["high"],
        "From 15% up to 30%"
    );
    assert_eq!(
        levels["published_bands"]["change_failure_rate"]["high"],
        "20%"
    );

    for (year, cfr, overall) in [
        (2023, "high", "high"),
        (2021, "elite", "elite"),
        (2019, "elite", "elite"),
    ] {
        let levels = metrics(&app, &format!("{query}&year={year}")).await["levels"].clone();
        assert_eq!(levels["year"], year);
        assert_eq!(levels["change_failure_rate"]["level"], cfr, "{year}");
        assert_eq!(levels["overall"], overall, "{year}");
    }
    // A week without deployments: frequency 0 is Low, and nothing else is measured.
    let quiet = metrics(&app, "from=2025-01-06&to=2025-01-12&service=shop").await;
    assert_eq!(quiet["levels"]["deployment_frequency"]["level"], "low");
    assert_eq!(quiet["levels"]["overall"], "low");
    assert_eq!(quiet["levels"]["change_failure_rate"], Value::Null);
}

conformance!(
    refusals_name_the_parameter,
    every_bucket_is_explicit,
    selections_tiers_and_breakdowns,
    levels_follow_the_report_year,
);
