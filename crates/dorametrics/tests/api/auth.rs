use dora_core::model::Scope;
use dora_server::auth::{hash_token, issue_token};
use dora_store::TokenRecord;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use dora_server::ratelimit::{RateLimit, RateLimits};

use crate::helpers::{deployment, spawn_app, spawn_app_configured};

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
    // The first presented credential that is a valid token authenticates; the others (an
    // application key, a proxy's Basic credentials) are ignored.
    for (extra, value) in [
        ("DD-APPLICATION-KEY", "wrong"),
        ("DD-APPLICATION-KEY", "dora_0123456789abcdef_0123"),
        ("Authorization", "Basic dXNlcjpwYXNz"),
        ("PRIVATE-TOKEN", ""),
    ] {
        assert_eq!(
            send(
                app.client
                    .post(&url)
                    .header("DD-API-KEY", token)
                    .header(extra, value)
            )
            .await,
            StatusCode::OK,
            "{extra}: {value}"
        );
    }
    assert_eq!(
        send(
            app.client
                .post(&url)
                .header("DD-API-KEY", "wrong")
                .header("Authorization", format!("Bearer {token}"))
        )
        .await,
        StatusCode::OK
    );
    // In a fixed order, whatever order the headers come in: DD-API-KEY (read) before
    // DD-APPLICATION-KEY (write), so a create is forbidden.
    let create = |first: (&'static str, String), second: (&'static str, String)| {
        app.client
            .post(format!("{}/api/v2/dora/deployment", app.base))
            .header(first.0, first.1)
            .header(second.0, second.1)
            .json(&create_body())
            .send()
    };
    let read_first = create(
        ("DD-APPLICATION-KEY", app.write.clone()),
        ("DD-API-KEY", app.read.clone()),
    )
    .await
    .unwrap();
    assert_eq!(read_first.status(), StatusCode::FORBIDDEN);
    let write_first = create(
        ("DD-API-KEY", app.write.clone()),
        ("DD-APPLICATION-KEY", app.read.clone()),
    )
    .await
    .unwrap();
    assert_eq!(write_first.status(), StatusCode::ACCEPTED);
    // None valid: 401.
    assert_eq!(
        send(
            app.client
                .post(&url)
                .header("DD-API-KEY", "wrong")
                .header("Authorization", "Basic dXNlcjpwYXNz")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
}

/// 401 and 403 keep their Datadog and GitLab bodies and say how to authenticate.
async fn refusals_carry_a_challenge() {
    let app = spawn_app().await;
    let datadog = format!("{}/api/v2/dora/deployment", app.base);
    let gitlab = format!(
        "{}/api/v4/groups/acme/dora/metrics?metric=deployment_frequency",
        app.base
    );
    let cases = [
        (
            app.client.post(&datadog).json(&create_body()),
            401,
            json!({"errors": ["Unauthorized"]}),
        ),
        (
            app.client
                .post(&datadog)
                .header("DD-API-KEY", &app.read)
                .json(&create_body()),
            403,
            json!({"errors": ["Forbidden"]}),
        ),
        (
            app.client.get(&gitlab),
            401,
            json!({"message": "401 Unauthorized"}),
        ),
        (
            app.client.get(&gitlab).header("PRIVATE-TOKEN", &app.write),
            403,
            json!({"message": "403 Forbidden"}),
        ),
    ];
    for (request, status, body) in cases {
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), status);
        let challenge = reply.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"dorametrics\""),
            "{challenge}"
        );
        assert_eq!(challenge.contains("insufficient_scope"), status == 403);
        assert_eq!(reply.json::<Value>().await.unwrap(), body);
    }
}

/// A token from before tokens carried an id (`dora_` and 64 hex digits, its row given the first
/// 16 hex digits of its hash by the migration) still works.
async fn tokens_from_before_ids_still_work() {
    let app = spawn_app().await;
    let legacy = format!("dora_{}", "5a".repeat(32));
    let hash = hash_token(&legacy);
    app.store
        .create_token(TokenRecord {
            id: hash[..16].to_string(),
            name: "legacy".into(),
            hash,
            scopes: vec![Scope::Read],
            restrictions: Vec::new(),
            created_at: 1,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let url = format!("{}/api/v2/dora/deployments", app.base);
    let status = |token: String| {
        let request = app
            .client
            .post(&url)
            .header("DD-API-KEY", token)
            .json(&list_body());
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(legacy.clone()).await, StatusCode::OK);
    // One digit off: another hash, so another id, and no row.
    let mut wrong = legacy.clone();
    wrong.replace_range(6..7, "b");
    assert_eq!(status(wrong).await, StatusCode::UNAUTHORIZED);
    // A current token with its id kept but its secret changed: the lookup finds the row, the
    // constant-time comparison refuses it.
    let forged = format!("{}{}", &app.read[..22], "0".repeat(64));
    assert_eq!(status(forged).await, StatusCode::UNAUTHORIZED);
}

/// `/api/v1/admin/tokens`: create (shown once), list (never a secret), revoke (refused at once).
async fn tokens_are_managed_over_http() {
    let app = spawn_app().await;
    let path = "/api/v1/admin/tokens";
    let created = app
        .call(
            Method::POST,
            path,
            Some(&app.admin),
            Some(json!({"name": "grafana", "scopes": ["dora_metrics_read"],
                        "groups": ["acme"], "expires_in": "90d"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let token = created.body["token"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["restrictions"], json!(["group:acme"]));
    assert_eq!(created.body["status"], "active");
    let expires =
        dora_core::time::from_rfc3339(created.body["expires_at"].as_str().unwrap()).unwrap();
    let in_90_days = dora_core::time::now() + 90 * 86_400 * 1_000_000_000;
    assert!(
        (expires - in_90_days).abs() < 3_600 * 1_000_000_000,
        "{:?}",
        created.body
    );

    let mut shop = deployment("shop", "production", 0);
    shop["git"] = json!({"repository_url": "https://github.com/acme/shop",
                         "commit_sha": crate::helpers::SHA_A});
    app.deploy(shop).await;
    let gitlab = "/api/v4/groups/acme/dora/metrics?metric=deployment_frequency";
    assert_eq!(
        app.call(Method::GET, gitlab, Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );

    let listed = app.call(Method::GET, path, Some(&app.admin), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let text = listed.body.to_string();
    assert!(!text.contains(&token[22..]), "a secret is listed: {text}");
    assert!(!text.contains("hash"), "{text}");
    let names: Vec<&str> = listed.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"grafana"), "{names:?}");
    let one = app
        .call(Method::GET, &format!("{path}/{id}"), Some(&app.admin), None)
        .await;
    assert_eq!(one.body["name"], "grafana");
    // Admin only.
    for token in [&app.read, &app.write, &token] {
        assert_eq!(
            app.call(Method::GET, path, Some(token), None).await.status,
            StatusCode::FORBIDDEN
        );
    }

    let revoked = app
        .call(
            Method::DELETE,
            &format!("{path}/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call(Method::GET, gitlab, Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let one = app
        .call(Method::GET, &format!("{path}/{id}"), Some(&app.admin), None)
        .await;
    assert_eq!(one.body["status"], "revoked");
    assert!(one.body["revoked_at"].is_string());
    // Again: nothing changes; an unknown id is a 404.
    let again = app
        .call(
            Method::DELETE,
            &format!("{path}/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let unknown = app
        .call(
            Method::DELETE,
            &format!("{path}/0000000000000000"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Bad requests name what is wrong and where.
    for (body, pointer, detail) in [
        (json!({"scopes": ["admin"]}), "/name", "name is required"),
        (json!({"name": "x"}), "/scopes", "scopes is required"),
        (
            json!({"name": "x", "scopes": []}),
            "/scopes",
            "at least one",
        ),
        (
            json!({"name": "x", "scopes": ["root"]}),
            "/scopes/0",
            "\"root\"",
        ),
        (
            json!({"name": "x", "scopes": ["admin"], "projects": ["/acme"]}),
            "/projects/0",
            "project path",
        ),
        (
            json!({"name": "x", "scopes": ["admin"], "expires_in": "later"}),
            "/expires_in",
            "not a duration",
        ),
        (
            json!({"name": "x", "scopes": ["admin"], "expires_in": "0s"}),
            "/expires_in",
            "longer than zero",
        ),
        (
            json!({"name": "x", "scopes": ["admin"], "expires_in": "100000000d"}),
            "/expires_in",
            "2262",
        ),
    ] {
        let reply = app
            .call(Method::POST, path, Some(&app.admin), Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let (at, said) = reply.problem();
        assert_eq!(at, pointer, "{body}: {said}");
        assert!(said.contains(detail), "{body}: {said}");
    }
}

/// An expired token is refused like an unknown one.
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let now = dora_core::time::now();
    let issued = issue_token("old".into(), vec![Scope::Read], Vec::new(), Some(now - 1));
    app.store.create_token(issued.record).await.unwrap();
    let reply = app
        .call(
            Method::POST,
            "/api/v2/dora/deployments",
            Some(&issued.token),
            Some(list_body()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

fn limits(per_token: &str, failed_auth: &str) -> RateLimits {
    RateLimits {
        per_token: RateLimit::parse(per_token).unwrap(),
        failed_auth: RateLimit::parse(failed_auth).unwrap(),
    }
}

fn header(reply: &reqwest::Response, name: &str) -> String {
    reply.headers()[name].to_str().unwrap().to_string()
}

/// Past its limit a token gets 429s that say which limit, its size and when to come back, on
/// every surface; other tokens keep theirs.
async fn a_token_past_its_rate_limit_gets_429() {
    let app = spawn_app_configured(&Default::default(), |state| {
        state.with_rate_limits(limits("3/1h", "off"))
    })
    .await;
    let url = format!("{}/api/v2/dora/deployments", app.base);
    let list = || {
        app.client
            .post(&url)
            .header("DD-API-KEY", &app.read)
            .json(&list_body())
            .send()
    };
    for _ in 0..3 {
        assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    }
    let refused = list().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "x-ratelimit-limit"), "3");
    assert_eq!(header(&refused, "x-ratelimit-period"), "3600");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&refused, "x-ratelimit-name"), "token");
    let reset: u64 = header(&refused, "x-ratelimit-reset").parse().unwrap();
    assert!((1..=1200).contains(&reset), "{reset}");
    assert_eq!(header(&refused, "retry-after"), reset.to_string());
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("token limit of 3"),
        "{body}"
    );
    // The GitLab surface says it in GitLab's shape.
    let gitlab = app
        .client
        .get(format!(
            "{}/api/v4/groups/x/dora/metrics?metric=deployment_frequency",
            app.base
        ))
        .header("PRIVATE-TOKEN", &app.read)
        .send()
        .await
        .unwrap();
    assert_eq!(gitlab.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&gitlab, "x-ratelimit-name"), "token");
    assert_eq!(
        gitlab.json::<Value>().await.unwrap(),
        json!({"message": "429 Too Many Requests"})
    );
    // Another token is not held back.
    let other = app
        .client
        .post(&url)
        .header("DD-API-KEY", &app.admin)
        .json(&list_body())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

/// Refused credentials are limited per client address; no credential at all is not counted,
/// and a valid token from that address still works.
async fn refused_credentials_are_rate_limited_per_address() {
    let app = spawn_app_configured(&Default::default(), |state| {
        state.with_rate_limits(limits("off", "2/1h"))
    })
    .await;
    let url = format!("{}/api/v2/dora/deployments", app.base);
    let with_key = |key: Option<&str>| {
        let mut request = app.client.post(&url).json(&list_body());
        if let Some(key) = key {
            request = request.header("DD-API-KEY", key);
        }
        request.send()
    };
    for _ in 0..5 {
        assert_eq!(
            with_key(None).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..2 {
        assert_eq!(
            with_key(Some("dora_wrong")).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = with_key(Some("dora_wrong")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "x-ratelimit-name"),
        "failed_authentication"
    );
    assert_eq!(header(&refused, "x-ratelimit-limit"), "2");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        with_key(Some(&app.read)).await.unwrap().status(),
        StatusCode::OK
    );
}

/// Every answer says not to sniff or cache it.
async fn answers_are_not_sniffed_or_cached() {
    let app = spawn_app().await;
    for (path, token) in [
        ("/api/v2/dora/deployments/nope", app.read.as_str()),
        ("/api/v1/metrics", app.read.as_str()),
        ("/api/v1/metrics", ""),
        ("/healthz", ""),
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .header("DD-API-KEY", token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&response, "cache-control"), "no-store", "{path}");
    }
}

conformance!(
    a_token_past_its_rate_limit_gets_429,
    refused_credentials_are_rate_limited_per_address,
    answers_are_not_sniffed_or_cached,
    health_needs_no_token,
    the_scope_matrix,
    every_token_header_is_accepted,
    refusals_carry_a_challenge,
    tokens_from_before_ids_still_work,
    tokens_are_managed_over_http,
    an_expired_token_is_refused,
);
