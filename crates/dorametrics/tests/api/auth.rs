use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{deployment, spawn_app};

fn create_body() -> Value {
    json!({ "data": { "attributes": deployment("svc", "prod", 1) } })
}

fn list_body() -> Value {
    json!({ "data": { "type": "dora_deployments_list_request", "attributes": {} } })
}

async fn health_needs_no_token() {
    let app = spawn_app().await;
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
}

async fn the_scope_matrix() {
    let app = spawn_app().await;
    let id = app.deploy(deployment("svc", "prod", 0)).await;
    let get_path = format!("/api/v2/dora/deployments/{id}");
    let endpoints: Vec<(Method, String, Option<Value>, bool)> = vec![
        // (method, path, body, needs write)
        (
            Method::POST,
            "/api/v2/dora/deployment".into(),
            Some(create_body()),
            true,
        ),
        (
            Method::POST,
            "/api/v2/dora/failure".into(),
            Some(json!({"data": {"attributes": {"team": "t", "started_at": 1}}})),
            true,
        ),
        (
            Method::POST,
            "/api/v2/dora/deployments".into(),
            Some(list_body()),
            false,
        ),
        (
            Method::POST,
            "/api/v2/dora/failures".into(),
            Some(json!({"data": {"type": "dora_failures_list_request", "attributes": {}}})),
            false,
        ),
        (Method::GET, get_path.clone(), None, false),
        (
            Method::PATCH,
            get_path.clone(),
            Some(
                json!({"data": {"type": "dora_deployment_patch_request", "attributes": {"change_failure": true}}}),
            ),
            true,
        ),
    ];
    for (method, path, body, needs_write) in endpoints {
        let no_token = app.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(no_token.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(no_token.body, json!({"errors": ["Unauthorized"]}));
        let bad = app
            .call(
                method.clone(),
                &path,
                Some("dora_not-a-real-token"),
                body.clone(),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let (allowed, denied) = if needs_write {
            (&app.write, &app.read)
        } else {
            (&app.read, &app.write)
        };
        let ok = app
            .call(method.clone(), &path, Some(allowed), body.clone())
            .await;
        assert!(
            ok.status.is_success(),
            "{method} {path}: {:?} {:?}",
            ok.status,
            ok.body
        );
        let forbidden = app
            .call(method.clone(), &path, Some(denied), body.clone())
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(forbidden.body, json!({"errors": ["Forbidden"]}));
        let admin = app
            .call(method.clone(), &path, Some(&app.admin), body.clone())
            .await;
        assert!(admin.status.is_success(), "{method} {path}");
    }
    // Deletes need write: the read token may not, the write token may.
    let doomed = app.deploy(deployment("svc", "prod", 2)).await;
    let path = format!("/api/v2/dora/deployment/{doomed}");
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&app.read), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call(Method::DELETE, &path, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&app.write), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

async fn every_token_header_is_accepted() {
    let app = spawn_app().await;
    let url = format!("{}/api/v2/dora/deployments", app.base);
    let send = |request: reqwest::RequestBuilder| async move {
        request.json(&list_body()).send().await.unwrap().status()
    };
    let token = &app.read;
    assert_eq!(
        send(app.client.post(&url).header("DD-API-KEY", token)).await,
        StatusCode::OK
    );
    assert_eq!(
        send(app.client.post(&url).header("DD-APPLICATION-KEY", token)).await,
        StatusCode::OK
    );
    assert_eq!(
        send(app.client.post(&url).header("PRIVATE-TOKEN", token)).await,
        StatusCode::OK
    );
    assert_eq!(
        send(
            app.client
                .post(&url)
                .header("Authorization", format!("Bearer {token}"))
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        send(app.client.post(format!("{url}?private_token={token}"))).await,
        StatusCode::OK
    );
    // A valid key beside an invalid one is not enough.
    assert_eq!(
        send(
            app.client
                .post(&url)
                .header("DD-API-KEY", token)
                .header("DD-APPLICATION-KEY", "wrong")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Scopes of several valid keys add up.
    let both = app
        .client
        .post(format!("{}/api/v2/dora/deployment", app.base))
        .header("DD-API-KEY", &app.read)
        .header("DD-APPLICATION-KEY", &app.write)
        .json(&create_body())
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::ACCEPTED);
}

conformance!(
    health_needs_no_token,
    the_scope_matrix,
    every_token_header_is_accepted,
);
