use std::future::Future;
use std::sync::Arc;

use dora_core::model::Scope;
use dora_server::auth::issue_token;
use dora_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::pg::{self, TestDatabase};

/// The store a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs one conformance test body with `spawn_app()` on `backend`. On PostgreSQL on the server
/// `DORA_TEST_POSTGRES_URL` names (the local one by default), unless `DORA_TEST_POSTGRES=skip`.
pub async fn run(backend: Backend, test: impl Future<Output = ()>) {
    if backend == Backend::Postgres && pg::server_url().is_none() {
        return;
    }
    BACKEND.scope(backend, test).await;
}

/// Where a test app keeps its data; dropping it removes the data.
enum Database {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { _database: TestDatabase },
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin: String,
    pub read: String,
    pub write: String,
    pub store: Arc<dyn Store>,
    _database: Database,
}

pub const SHA_A: &str = "66adc9350f2cc9b250b69abddab733dd55e1a588";

pub async fn token(store: &dyn Store, scopes: Vec<Scope>) -> String {
    let issued = issue_token("test".into(), scopes, Vec::new(), None);
    store.create_token(issued.record).await.unwrap();
    issued.token
}

/// A fresh store of the test's backend (a new SQLite file, or a new PostgreSQL database), with
/// no server (and so no background re-derivation) on it; dropping the guard removes the data.
pub async fn spawn_store() -> (Arc<dyn Store>, impl Send) {
    fresh_store().await
}

async fn fresh_store() -> (Arc<dyn Store>, Database) {
    fresh_store_with(&dora_store::StoreOptions::default()).await
}

async fn fresh_store_with(options: &dora_store::StoreOptions) -> (Arc<dyn Store>, Database) {
    let backend = BACKEND.try_with(|backend| *backend).expect(
        "spawn_app() runs only inside a conformance test: list the test in its module's conformance!",
    );
    let (url, database) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (url, Database::Sqlite { _dir: dir })
        }
        Backend::Postgres => {
            let server = pg::server_url().expect("run() checked the variable");
            let database = TestDatabase::create(&server).await;
            (
                database.url.clone(),
                Database::Postgres {
                    _database: database,
                },
            )
        }
    };
    let store = dora_store::open_with(&url, options)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", dora_store::redact_url(&url)));
    (store, database)
}

/// Starts the server on port 0 over a fresh store of the test's backend: a new SQLite file, or a
/// new PostgreSQL database (dropped with the app).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&dora_store::StoreOptions::default()).await
}

/// [`spawn_app`] over a store opened with these options (small timeouts, say).
pub async fn spawn_app_with(options: &dora_store::StoreOptions) -> TestApp {
    spawn_app_configured(options, |state| state).await
}

/// [`spawn_app`] with its server state changed by `configure` (rate limits, say).
pub async fn spawn_app_configured(
    options: &dora_store::StoreOptions,
    configure: impl FnOnce(dora_server::AppState) -> dora_server::AppState,
) -> TestApp {
    let (store, database) = fresh_store_with(options).await;
    let admin = token(store.as_ref(), vec![Scope::Admin]).await;
    let read = token(store.as_ref(), vec![Scope::Read]).await;
    let write = token(store.as_ref(), vec![Scope::Write]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = configure(dora_server::AppState::new(Arc::clone(&store)));
    tokio::spawn(async move {
        dora_server::serve_with(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    TestApp {
        base,
        client: reqwest::Client::new(),
        admin,
        read,
        write,
        store,
        _database: database,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Reply {
    /// `(pointer, detail)` of the first JSON:API error.
    pub fn problem(&self) -> (String, String) {
        let error = &self.body["errors"][0];
        (
            error["source"]["pointer"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            error["detail"].as_str().unwrap_or("").to_string(),
        )
    }
}

impl TestApp {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.header("DD-API-KEY", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// Posts a raw body (bulk intake: NDJSON or a JSON array) with its content type; returns
    /// the status and the JSON answer (or its text when it is not JSON).
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("DD-API-KEY", token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Makes a webhook hook as an admin (`options` adds fields to the request); its answer.
    pub async fn make_hook(
        &self,
        provider: &str,
        name: &str,
        secret: &str,
        options: Value,
    ) -> Value {
        let mut request = json!({"name": name, "provider": provider, "secret": secret});
        if let (Some(request), Value::Object(options)) = (request.as_object_mut(), options) {
            request.extend(options);
        }
        let reply = self.post("/api/v1/admin/webhooks", request).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body
    }

    /// The totals of service `shop` in March 2025 (where the webhook tests deliver).
    pub async fn shop_march_totals(&self) -> Value {
        let reply = self
            .get("/api/v1/metrics?from=2025-03-01&to=2025-03-31&interval=all&service=shop")
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["totals"].clone()
    }

    /// A webhook delivery as a provider sends it: its headers, its body, no dorametrics token;
    /// the status and the JSON answer (or its text).
    pub async fn deliver(
        &self,
        provider: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/api/v1/webhooks/{provider}", self.base))
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&self.admin), Some(body))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&self.admin), None).await
    }

    /// Posts a deployment with these attributes; returns its id.
    pub async fn deploy(&self, attributes: Value) -> String {
        let reply = self
            .post(
                "/api/v2/dora/deployment",
                json!({ "data": { "attributes": attributes } }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        reply.body["data"]["id"].as_str().unwrap().to_string()
    }

    pub async fn fail(&self, attributes: Value) -> String {
        let reply = self
            .post(
                "/api/v2/dora/failure",
                json!({ "data": { "attributes": attributes } }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        reply.body["data"]["id"].as_str().unwrap().to_string()
    }

    pub async fn list(&self, kind: &str, attributes: Value) -> Reply {
        let request_type = format!("dora_{kind}_list_request");
        self.post(
            &format!("/api/v2/dora/{kind}"),
            json!({ "data": { "type": request_type, "attributes": attributes } }),
        )
        .await
    }

    /// Ids of a successful list, in order.
    pub async fn list_ids(&self, kind: &str, attributes: Value) -> Vec<String> {
        let reply = self.list(kind, attributes).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A minimal valid deployment, finishing `minutes` after 2025-01-01T00:00:00Z.
pub fn deployment(service: &str, env: &str, minutes: i64) -> Value {
    let finished = 1_735_689_600 + minutes * 60;
    json!({ "service": service, "env": env, "started_at": finished - 30, "finished_at": finished })
}
