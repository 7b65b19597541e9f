//! `GET /metrics`: the DORA keys of every service, env and team over the trailing window are
//! exactly what `/api/v1/metrics` gives for that range, and the server's own figures are there.
//! (CI parses the same output with Prometheus' own Python parser: interop/python.)

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app_configured, TestApp};

/// Samples of the text format: `name{labels}` → value (labels as written).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn series(name: &str, service: &str, env: &str, team: &str) -> String {
    format!("{name}{{service=\"{service}\",env=\"{env}\",team=\"{team}\"}}")
}

async fn report(app: &TestApp, from: NaiveDate, to: NaiveDate, by: &str) -> Value {
    let reply = app
        .get(&format!(
            "/api/v1/metrics?from={from}&to={to}&breakdown={by}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn the_dora_keys_are_those_of_the_report() {
    let today = Utc::now().date_naive();
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let window = u32::try_from((today - first).num_days() + 1).unwrap();
    let app = spawn_app_configured(&Default::default(), |mut state| {
        state.telemetry = std::sync::Arc::new(dora_server::telemetry::Telemetry::new(window));
        state
    })
    .await;
    crate::metrics::seed(&app).await;
    assert_eq!(
        first.checked_add_days(Days::new(u64::from(window) - 1)),
        Some(today)
    );

    let unauthenticated = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .header("DD-API-KEY", &app.read)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let got = samples(&text);

    let mut compared = 0;
    for by in ["service", "env", "team"] {
        let report = report(&app, first, today, by).await;
        for group in report["breakdown"]["groups"].as_array().unwrap() {
            let key = group["key"]
                .as_str()
                .unwrap_or(dora_server::telemetry::UNSET);
            let labels = match by {
                "service" => (key, "", ""),
                "env" => ("", key, ""),
                _ => ("", "", key),
            };
            let totals = &group["totals"];
            let at = |name: &str| series(name, labels.0, labels.1, labels.2);
            assert_eq!(
                got[&at("dora_deployments")],
                totals["deployments"].as_f64().unwrap(),
                "{by} {key}"
            );
            assert_eq!(
                got[&at("dora_deployment_frequency_per_day")],
                totals["deployments_per_day"].as_f64().unwrap()
            );
            match totals["change_failure_rate"].as_f64() {
                Some(rate) => assert_eq!(got[&at("dora_change_failure_rate")], rate),
                None => assert!(!got.contains_key(&at("dora_change_failure_rate"))),
            }
            if let Some(median) = totals["time_to_restore_seconds"]["median"].as_f64() {
                let quantile = format!(
                    "dora_time_to_restore_seconds{{service=\"{}\",env=\"{}\",team=\"{}\",quantile=\"0.5\"}}",
                    labels.0, labels.1, labels.2
                );
                assert_eq!(got[&quantile], median);
            }
            compared += 1;
        }
    }
    assert!(compared >= 6, "{compared} groups compared");
    let whole =
        crate::helpers::TestApp::get(&app, &format!("/api/v1/metrics?from={first}&to={today}"))
            .await;
    assert_eq!(
        got[&series("dora_deployments", "", "", "")],
        whole.body["totals"]["deployments"].as_f64().unwrap()
    );
    // The server's own figures.
    for name in [
        "# TYPE dora_http_requests_total counter",
        "# TYPE dora_http_request_duration_seconds histogram",
        "# TYPE dora_store_write_batch_size histogram",
        "# TYPE dora_store_write_queue_depth gauge",
        "# TYPE dora_derivation_stale_streams gauge",
    ] {
        assert!(text.contains(name), "no {name:?} in\n{text}");
    }
    let accepted = "dora_http_requests_total{method=\"POST\",route=\"/api/v2/dora/deployment\",status=\"202\"}";
    assert_eq!(got[accepted], 17.0, "the seed's deployments");
    assert!(got["dora_store_write_batch_size_count"] >= 1.0);
}

conformance!(the_dora_keys_are_those_of_the_report);
