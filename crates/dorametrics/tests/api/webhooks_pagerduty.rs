//! PagerDuty v3 deliveries, shaped as PagerDuty's v3 webhook docs show them and signed with
//! `X-PagerDuty-Signature` (several signatures while a secret rotates).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const SECRET: &str = "pagerduty-signing-secret-0001";
const OLD_SECRET: &str = "pagerduty-signing-secret-0000";
const FAILURE: &str = "/api/v2/dora/failures/pagerduty:PGR0VU2";

fn event(kind: &str, id: &str, occurred: &str) -> Value {
    let status = kind.trim_start_matches("incident.");
    json!({
        "event": {
            "id": id,
            "event_type": kind,
            "resource_type": "incident",
            "occurred_at": occurred,
            "agent": {"html_url": "https://acme.pagerduty.com/users/PLH1HKV", "id": "PLH1HKV",
                      "self": "https://api.pagerduty.com/users/PLH1HKV", "summary": "Tenex Engineer",
                      "type": "user_reference"},
            "client": null,
            "data": {
                "id": "PGR0VU2",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/PGR0VU2",
                "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                "number": 2,
                "status": status,
                "incident_key": "d3640fbd41094207a1c11e58e46b1662",
                "created_at": "2025-03-10T11:30:00Z",
                "title": "Checkout answers 500",
                "service": {"html_url": "https://acme.pagerduty.com/services/PF9KMXH", "id": "PF9KMXH",
                            "self": "https://api.pagerduty.com/services/PF9KMXH",
                            "summary": "Shop API", "type": "service_reference"},
                "assignees": [],
                "escalation_policy": {"id": "PTUXL6G", "summary": "Engineering", "type": "escalation_policy_reference"},
                "teams": [{"id": "PFCVPS0", "summary": "Engineering", "type": "team_reference"}],
                "priority": {"id": "PSO75BM", "summary": "P1", "type": "priority_reference"},
                "urgency": "high",
                "conference_bridge": null,
                "resolve_reason": null
            }
        }
    })
}

async fn deliver(app: &TestApp, payload: &Value, signature: Option<String>) -> (StatusCode, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let signature =
        signature.unwrap_or_else(|| dora_server::webhooks::verify::sign::pagerduty(&body, SECRET));
    let headers = [
        ("User-Agent", "PagerDuty-Webhook/V3.0".to_string()),
        ("X-Webhook-Subscription", "PY1OQJC".to_string()),
        ("X-PagerDuty-Signature", signature),
    ];
    app.deliver("pagerduty", &headers, body).await
}

async fn incidents_open_resolve_and_reopen_in_any_order() {
    let app = spawn_app().await;
    app.make_hook("pagerduty", "pd", SECRET, json!({})).await;
    // Its service is "Shop API" in PagerDuty: an alias says which dorametrics service it is.
    let reply = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/admin/webhook-aliases/pagerduty/Shop%20API",
            Some(&app.admin),
            Some(json!({"service": "shop"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    app.deploy(
        json!({"service": "shop", "env": "production", "started_at": "2025-03-10T10:40:00Z",
        "finished_at": "2025-03-10T11:00:00Z"}),
    )
    .await;

    // Resolved arrives before triggered.
    let (status, body) = deliver(
        &app,
        &event("incident.resolved", "01DEN2", "2025-03-10T12:30:00Z"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (status, body) = deliver(
        &app,
        &event("incident.triggered", "01DEN1", "2025-03-10T11:30:05Z"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let stored = app.get(FAILURE).await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    let attributes = &stored.body["data"]["attributes"];
    assert_eq!(
        attributes["finished_at"], "2025-03-10T12:30:00Z",
        "{attributes:?}"
    );
    assert_eq!(attributes["services"], json!(["shop"]));
    assert_eq!(attributes["severity"], "P1");
    let totals = app.shop_march_totals().await;
    assert_eq!(totals["failed_deployments"], 1, "{totals:?}");
    assert_eq!(
        totals["time_to_restore_seconds"]["median"], 3600.0,
        "{totals:?}"
    );

    // Reopened: open again. A replay of the resolution (its event id) changes nothing.
    deliver(
        &app,
        &event("incident.reopened", "01DEN3", "2025-03-10T13:00:00Z"),
        None,
    )
    .await;
    let (status, body) = deliver(
        &app,
        &event("incident.resolved", "01DEN2", "2025-03-10T12:30:00Z"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("replayed")),
        "{body:?}"
    );
    assert_eq!(
        app.get(FAILURE).await.body["data"]["attributes"]["finished_at"],
        Value::Null
    );

    // Other event types are taken and ignored.
    let (status, body) = deliver(
        &app,
        &event("incident.acknowledged", "01DEN4", "2025-03-10T13:05:00Z"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::ACCEPTED, Some("ignored")),
        "{body:?}"
    );
}

async fn any_signature_of_a_rotation_verifies() {
    let app = spawn_app().await;
    app.make_hook("pagerduty", "pd", SECRET, json!({})).await;
    let payload = event("incident.triggered", "01ROT1", "2025-03-10T11:30:05Z");
    let body = serde_json::to_vec(&payload).unwrap();
    let sign = dora_server::webhooks::verify::sign::pagerduty;
    let rotating = format!("{},{}", sign(&body, OLD_SECRET), sign(&body, SECRET));
    let (status, body_text) = deliver(&app, &payload, Some(rotating)).await;
    assert_eq!(status, StatusCode::OK, "{body_text:?}");
    let stale = sign(&body, OLD_SECRET);
    let other = event("incident.triggered", "01ROT2", "2025-03-10T11:30:05Z");
    let (status, _) = deliver(&app, &other, Some(stale)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

conformance!(
    incidents_open_resolve_and_reopen_in_any_order,
    any_signature_of_a_rotation_verifies,
);

mod opsgenie {
    //! Opsgenie's webhook integration, which signs nothing: the hook's secret as a bearer token.

    use reqwest::StatusCode;
    use serde_json::{json, Value};

    use crate::helpers::{spawn_app, TestApp};

    const SECRET: &str = "opsgenie-bearer-secret-01";

    fn alert(action: &str, updated_ns: i64) -> Value {
        json!({
            "action": action,
            "alert": {
                "alertId": "44f717bf-44bd-11c9-44c7-2d0cf1d07b23",
                "message": "Checkout answers 500",
                "tags": ["service:shop", "sev1"],
                "tinyId": "1791",
                "entity": "checkout",
                "alias": "checkout-500",
                "createdAt": 1_741_606_200_000_i64,
                "updatedAt": updated_ns,
                "username": "john@example.com",
                "userId": "daed1180-0ce8-438b-8f8e-57e1a5920a2d",
                "priority": "P1",
                "teams": [],
                "responders": []
            },
            "source": {"name": "", "type": "web"},
            "integrationName": "dorametrics",
            "integrationId": "37c8f316-17c6-49d7-899b-9c7e540c048d",
            "integrationType": "Webhook"
        })
    }

    async fn deliver(app: &TestApp, payload: &Value, bearer: &str) -> StatusCode {
        app.client
            .post(format!("{}/api/v1/webhooks/opsgenie", app.base))
            .bearer_auth(bearer)
            .json(payload)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn alerts_open_and_close_failures() {
        let app = spawn_app().await;
        app.make_hook("opsgenie", "og", SECRET, json!({})).await;
        // 2025-03-10T11:30:00Z in ms; closed an hour later, in ns.
        let closed_at = 1_741_609_800_000_000_000_i64;
        assert_eq!(
            deliver(&app, &alert("Create", 1_741_606_200_000_000_000), SECRET).await,
            StatusCode::OK
        );
        assert_eq!(
            deliver(&app, &alert("Close", closed_at), SECRET).await,
            StatusCode::OK
        );
        assert_eq!(
            deliver(&app, &alert("Acknowledge", closed_at), SECRET).await,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            deliver(&app, &alert("Create", closed_at), "a wrong bearer").await,
            StatusCode::UNAUTHORIZED
        );
        let stored = app
            .get("/api/v2/dora/failures/opsgenie:44f717bf-44bd-11c9-44c7-2d0cf1d07b23")
            .await;
        assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
        let attributes = &stored.body["data"]["attributes"];
        assert_eq!(attributes["services"], json!(["shop"]));
        assert_eq!(
            attributes["started_at"], "2025-03-10T11:30:00Z",
            "{attributes:?}"
        );
        assert_eq!(
            attributes["finished_at"], "2025-03-10T12:30:00Z",
            "{attributes:?}"
        );
    }
}

use opsgenie::alerts_open_and_close_failures;

conformance!(alerts_open_and_close_failures);
