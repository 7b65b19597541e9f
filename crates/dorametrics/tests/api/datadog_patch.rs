use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{deployment, spawn_app};

fn patch(attributes: serde_json::Value) -> serde_json::Value {
    json!({"data": {"type": "dora_deployment_patch_request", "attributes": attributes}})
}

async fn patch_by_id_stores_change_failure_and_remediation() {
    let app = spawn_app().await;
    let failed = app.deploy(deployment("svc", "prod", 0)).await;
    let fix = app.deploy(deployment("svc", "prod", 10)).await;
    let path = format!("/api/v2/dora/deployments/{failed}");
    let reply = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.write),
            Some(patch(
                json!({"change_failure": true, "remediation": {"id": fix, "type": "rollforward"}}),
            )),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let stored = app.store.get_deployment(&failed).await.unwrap().unwrap();
    assert_eq!(stored.change_failure, Some(true));
    let remediation = stored.remediation.unwrap();
    assert_eq!(remediation.kind.as_str(), "rollforward");
    assert_eq!(
        remediation.target,
        dora_core::model::RemediationTarget::Id(fix.clone())
    );
    // A later patch of change_failure alone keeps the remediation.
    app.call(
        Method::PATCH,
        &path,
        Some(&app.write),
        Some(patch(json!({"change_failure": false}))),
    )
    .await;
    let stored = app.store.get_deployment(&failed).await.unwrap().unwrap();
    assert_eq!(stored.change_failure, Some(false));
    assert!(stored.remediation.is_some());
    // Re-posting the deployment keeps what was patched.
    let mut again = deployment("svc", "prod", 0);
    again["id"] = json!(failed);
    app.deploy(again).await;
    assert_eq!(
        app.store
            .get_deployment(&failed)
            .await
            .unwrap()
            .unwrap()
            .change_failure,
        Some(false)
    );
}

async fn patch_of_an_unknown_deployment_is_404() {
    let app = spawn_app().await;
    let reply = app
        .call(
            Method::PATCH,
            "/api/v2/dora/deployments/nope-nope-nope-nope",
            Some(&app.write),
            Some(patch(json!({"change_failure": true}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"errors": ["Deployment \"nope-nope-nope-nope\" not found"]})
    );
}

async fn patch_by_version_picks_the_most_recently_finished_match() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (minute, env) in [(0, "prod"), (5, "prod"), (9, "staging")] {
        let mut attributes = deployment("svc", env, minute);
        attributes["version"] = json!("v7");
        ids.push(app.deploy(attributes).await);
    }
    let reply = app
        .call(
            Method::PATCH,
            "/api/v2/dora/deployments",
            Some(&app.write),
            Some(patch(json!({
            "service": "svc", "env": "prod", "version": "v7", "change_failure": true,
            "remediation": {"version": "v8", "type": "rollback"}}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let flags: Vec<Option<bool>> = futures_flags(&app, &ids).await;
    assert_eq!(flags, vec![None, Some(true), None]);
    let stored = app.store.get_deployment(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        stored.remediation.unwrap().target,
        dora_core::model::RemediationTarget::Version("v8".into())
    );
    let reply = app
        .call(
            Method::PATCH,
            "/api/v2/dora/deployments",
            Some(&app.write),
            Some(patch(json!({
            "service": "svc", "env": "prod", "version": "v9", "change_failure": true}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

async fn futures_flags(app: &crate::helpers::TestApp, ids: &[String]) -> Vec<Option<bool>> {
    let mut flags = Vec::new();
    for id in ids {
        flags.push(
            app.store
                .get_deployment(id)
                .await
                .unwrap()
                .unwrap()
                .change_failure,
        );
    }
    flags
}

conformance!(
    patch_by_id_stores_change_failure_and_remediation,
    patch_of_an_unknown_deployment_is_404,
    patch_by_version_picks_the_most_recently_finished_match,
);
