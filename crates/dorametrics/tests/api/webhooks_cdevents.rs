//! CDEvents, shaped as the spec's conformance examples (0.4 and 0.5), as plain CDEvents, as
//! structured CloudEvents and in binary mode; with the hook's secret as a bearer token.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const SECRET: &str = "cdevents-bearer-secret-01";

fn service_event(predicate: &str, id: &str, at: &str, artifact: &str) -> Value {
    json!({
        "context": {
            "version": "0.4.1",
            "id": id,
            "chainId": "4c8cb7dd-3448-41de-8768-eec704e2829b",
            "source": "/deploy/argo/cluster-a",
            "type": format!("dev.cdevents.service.{predicate}.0.2.0"),
            "timestamp": at
        },
        "subject": {
            "id": "shop",
            "source": "/deploy/argo/cluster-a",
            "type": "service",
            "content": {
                "environment": {"id": "production"},
                "artifactId": artifact
            }
        }
    })
}

fn incident_event(predicate: &str, id: &str, at: &str) -> Value {
    json!({
        "context": {
            "specversion": "0.5.0",
            "id": id,
            "source": "/monitoring/prod1",
            "type": format!("dev.cdevents.incident.{predicate}.0.3.0"),
            "timestamp": at
        },
        "subject": {
            "id": "incident-123",
            "source": "/monitoring/prod1",
            "content": {
                "description": "Response time above threshold of 100ms",
                "environment": {"id": "production", "source": "/iaas/geo1"},
                "service": {"id": "shop", "source": "/clusterA/namespaceB"},
                "artifactId": "pkg:oci/shop@sha256%3A0b31b1c0"
            }
        },
        "customData": {"metric": "responseTime", "threshold": "100ms", "value": "200ms"},
        "customDataContentType": "application/json"
    })
}

async fn deliver(app: &TestApp, body: &Value, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut all = vec![("Authorization", format!("Bearer {SECRET}"))];
    all.extend(
        headers
            .iter()
            .map(|(name, value)| (*name, value.to_string())),
    );
    app.deliver("cdevents", &all, serde_json::to_vec(body).unwrap())
        .await
}

async fn events_in_every_mode_become_deployments_and_failures() {
    let app = spawn_app().await;
    app.make_hook("cdevents", "cd", SECRET, json!({})).await;
    // A plain CDEvent.
    let v1 = service_event("deployed", "d-1", "2025-03-10T09:00:00Z", "pkg:oci/shop@v1");
    let (status, body) = deliver(&app, &v1, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    // A structured CloudEvent carrying one.
    let v2 = service_event("upgraded", "d-2", "2025-03-10T11:00:00Z", "pkg:oci/shop@v2");
    let structured = json!({
        "specversion": "1.0", "id": "d-2", "source": "/deploy/argo/cluster-a",
        "type": "dev.cdevents.service.upgraded.0.2.0", "time": "2025-03-10T11:00:00Z",
        "datacontenttype": "application/json", "data": v2
    });
    let (status, body) = deliver(
        &app,
        &structured,
        &[("Content-Type", "application/cloudevents+json")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    // Binary mode: the CloudEvent's attributes as headers, the CDEvent as the body.
    let back = service_event(
        "rolledback",
        "d-3",
        "2025-03-10T12:00:00Z",
        "pkg:oci/shop@v1",
    );
    let binary = [
        ("ce-specversion", "1.0"),
        ("ce-id", "d-3"),
        ("ce-source", "/deploy/argo/cluster-a"),
        ("ce-type", "dev.cdevents.service.rolledback.0.2.0"),
    ];
    let (status, body) = deliver(&app, &back, &binary).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    // The same again: a replay.
    let (status, body) = deliver(&app, &back, &binary).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("replayed")),
        "{body:?}"
    );

    // Resolved before detected: the start still follows.
    let (status, body) = deliver(
        &app,
        &incident_event("resolved", "i-2", "2025-03-10T12:30:00Z"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (status, body) = deliver(
        &app,
        &incident_event("detected", "i-1", "2025-03-10T11:30:00Z"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");

    let totals = app.shop_march_totals().await;
    assert_eq!(totals["deployments"], 3, "{totals:?}");
    // v2 failed: rolled back (and the incident came while it was out), and remediated an
    // hour later by the rollback, which is rework.
    assert_eq!(totals["failed_deployments"], 1, "{totals:?}");
    assert_eq!(totals["rework_deployments"], 1, "{totals:?}");
    assert_eq!(
        totals["time_to_restore_seconds"]["median"], 3600.0,
        "{totals:?}"
    );
    assert_eq!(
        totals["failed_deployment_recovery_time_seconds"]["median"], 3600.0,
        "{totals:?}"
    );

    // Not a CDEvent, another predicate: precise answers.
    let (status, body) = deliver(&app, &json!({"context": {"type": "com.example.x", "timestamp": "2025-03-10T12:00:00Z"}, "subject": {}}), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    assert_eq!(body["errors"][0]["source"]["pointer"], "/context/type");
    let mut built = service_event("deployed", "b-1", "2025-03-10T12:00:00Z", "pkg:oci/shop@v3");
    built["context"]["type"] = json!("dev.cdevents.build.finished.0.2.0");
    let (status, _) = deliver(&app, &built, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

conformance!(events_in_every_mode_become_deployments_and_failures);

mod argocd {
    //! Argo CD's notifications, with the README's template body and the hook's bearer.

    use reqwest::StatusCode;
    use serde_json::json;

    use crate::helpers::spawn_app;

    const SECRET: &str = "argocd-bearer-secret-0001";
    const A: &str = "aa0bd1c3e5f7091b2d4f6a8c0e1f3a5b7c9d0e2f";
    const B: &str = "bb1ce2d4f6081a2c3e5f7b9d1f2a4b6c8d0e1f3a";

    pub async fn synced_revisions_become_deployments() {
        let app = spawn_app().await;
        app.make_hook("argocd", "argo", SECRET, json!({})).await;
        // As the template renders it: the app, its synced revision, its repository, when.
        let synced = |revision: &str, started: &str, finished: &str| {
            json!({
                "app": "shop",
                "revision": revision,
                "repo_url": "https://github.com/acme/shop.git",
                "environment": "production",
                "started_at": started,
                "finished_at": finished
            })
        };
        let bearer = [("Authorization", format!("Bearer {SECRET}"))];
        for body in [
            synced(A, "2025-03-10T09:00:00Z", "2025-03-10T09:02:00Z"),
            synced(B, "2025-03-10T11:00:00Z", "2025-03-10T11:02:00Z"),
            // Back to A: another deployment, a rollback.
            synced(A, "2025-03-10T12:00:00Z", "2025-03-10T12:02:00Z"),
        ] {
            let (status, answer) = app
                .deliver("argocd", &bearer, serde_json::to_vec(&body).unwrap())
                .await;
            assert_eq!(status, StatusCode::OK, "{answer:?}");
        }
        let totals = app.shop_march_totals().await;
        assert_eq!(totals["deployments"], 3, "{totals:?}");
        assert_eq!(totals["failed_deployments"], 1, "{totals:?}");
        let bad = json!({"app": "shop", "revision": "HEAD", "repo_url": "https://github.com/acme/shop.git",
            "finished_at": "2025-03-10T12:02:00Z"});
        let (status, answer) = app
            .deliver("argocd", &bearer, serde_json::to_vec(&bad).unwrap())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer:?}");
        assert_eq!(answer["errors"][0]["source"]["pointer"], "/revision");
    }
}

use argocd::synced_revisions_become_deployments;

conformance!(synced_revisions_become_deployments);
