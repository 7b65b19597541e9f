//! The HTTP server of dorametrics: one module per API surface, with auth, body limits and errors
//! shared by all of them.
#![forbid(unsafe_code)]

pub mod auth;
mod body;
pub mod connections;
mod datadog;
pub mod error;
mod gitlab;
mod guard;
pub mod native;
pub mod openapi;
pub mod ratelimit;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dora_engine::{derivation, report};
use dora_store::Store;
use tokio::net::TcpListener;

use error::ApiError;

/// The media type of every Datadog-compatible response.
pub const JSON_API: &str = "application/vnd.api+json";

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Failures starting this long after a deployment are blamed on it (rule (d)).
    pub failure_window: dora_core::time::Nanos,
    /// What one client may hold of the server.
    pub limits: connections::Limits,
    /// Requests per token and refused authentications per address ([`AppState::with_rate_limits`]).
    pub limiters: Arc<ratelimit::Limiters>,
    /// Serve https with this certificate ([`tls::acceptor`]); plain http without.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// What `/metrics` reports of the server itself, and its DORA window.
    pub telemetry: Arc<telemetry::Telemetry>,
    /// This server's refreshes of the derived facts (its own: servers share nothing).
    pub refresher: Arc<derivation::Refresher>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            failure_window: dora_core::derive::DEFAULT_FAILURE_WINDOW,
            limits: connections::Limits::default(),
            limiters: Arc::new(ratelimit::Limiters::new(ratelimit::RateLimits::default())),
            tls: None,
            telemetry: Arc::new(telemetry::Telemetry::new(30)),
            refresher: Arc::default(),
        }
    }

    /// The same state with these rate limits (and fresh limiters for them).
    pub fn with_rate_limits(mut self, limits: ratelimit::RateLimits) -> Self {
        self.limiters = Arc::new(ratelimit::Limiters::new(limits));
        self
    }
}

/// Every route of the service, and the OpenAPI document describing them (put together from the
/// same annotations, so neither can miss a route the other has).
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = utoipa_axum::router::OpenApiRouter::with_openapi(
        <openapi::ApiDoc as utoipa::OpenApi>::openapi(),
    )
    .routes(utoipa_axum::routes!(healthz))
    .routes(utoipa_axum::routes!(ready))
    .routes(utoipa_axum::routes!(telemetry::scrape))
    .routes(utoipa_axum::routes!(openapi_document))
    .merge(datadog::routes())
    .merge(native::routes())
    .merge(gitlab::routes())
    .merge(webhooks::routes())
    .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    (router, api)
}

/// Every route of the service, with its middleware and state.
pub fn router(state: AppState) -> Router {
    let (routes, api) = routes();
    let document = OpenApiJson(Arc::new(api.to_pretty_json().unwrap_or_default()));
    routes
        .layer(axum::Extension(document))
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                error::json_api(serde_json::json!({ "errors": ["Method Not Allowed"] })),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = String, content_type = "text/plain", example = "ok")))]
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, body = serde_json::Value, description = "An OpenAPI 3.1 document")))]
async fn openapi_document(axum::Extension(document): axum::Extension<OpenApiJson>) -> Response {
    let mut response = document.0.as_str().to_string().into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The OpenAPI document, serialized once.
#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// How long `/readyz` waits for the store before it says it cannot serve.
const READY_WITHIN: Duration = Duration::from_secs(1);

/// 200 when the store serves (reachable, schema current, its last write not refused for a full
/// disk, a connection free within a second); else 503 saying why.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = String, content_type = "text/plain"),
        (status = 503, body = String, content_type = "text/plain", description = "Not ready, and why")))]
async fn ready(State(state): State<AppState>) -> Response {
    let message = match tokio::time::timeout(READY_WITHIN, state.store.ping()).await {
        Ok(Ok(())) => return "ready".into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "store not ready");
            match error.outage() {
                Some(outage) => outage.message().to_string(),
                None => format!("The store failed: {error}"),
            }
        }
        Err(_) => {
            tracing::warn!("store not ready: no answer within {READY_WITHIN:?}");
            format!("The store did not answer within {READY_WITHIN:?} (every connection busy?)")
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {message}\n"),
    )
        .into_response()
}

/// One log line per request: method, path (never the query string, which may hold a
/// `private_token`), status, duration and how the caller authenticated (which credential and
/// the token's non-secret id). Header values, and so tokens, are never logged. The same answer
/// is counted for `/metrics`, by route.
async fn record_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |matched| {
            matched.as_str().to_string()
        });
    let note = auth::AuthNote::default();
    request.extensions_mut().insert(note.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .telemetry
        .observe(method.as_str(), &route, &response, started.elapsed());
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        auth = note.0.get().map_or("-", String::as_str),
        "request"
    );
    response
}

/// Serves on an already-bound listener with default settings until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, AppState::new(store), shutdown).await
}

/// Serves `GET /metrics` alone, without a token, on a listener of its own (`--metrics-listen`:
/// an address only the scraper reaches), until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    let app = Router::new()
        .route("/metrics", get(telemetry::scrape_open))
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .with_state(state);
    connections::serve(listener, app, limits, None, shutdown).await
}

/// How long the background refresh rests between looks for stale streams.
const REFRESH_PAUSE: Duration = Duration::from_millis(500);

/// Serves on an already-bound listener until `shutdown` resolves, then drains in-flight requests.
/// Beside the requests, a background task keeps the derived facts up to date.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    derivation::settle_window(state.store.as_ref(), state.failure_window)
        .await
        .map_err(std::io::Error::other)?;
    let refresher = tokio::spawn(keep_facts_fresh(state.clone()));
    let (limits, tls) = (state.limits, state.tls.clone());
    let served = connections::serve(listener, router(state), limits, tls, shutdown).await;
    refresher.abort();
    served
}

/// Re-derives stale streams as writes arrive, so that metric reads seldom wait for it, at a
/// pace that leaves most of the machine to the writes (`Pace::Background`).
async fn keep_facts_fresh(state: AppState) {
    loop {
        tokio::time::sleep(REFRESH_PAUSE).await;
        let refreshed = derivation::refresh_at(
            state.store.as_ref(),
            state.failure_window,
            &state.refresher,
            derivation::Pace::Background,
        )
        .await;
        match refreshed {
            Ok(0) => {}
            Ok(streams) => tracing::debug!(streams, "re-derived stale streams"),
            Err(error) => tracing::warn!(%error, "re-deriving stale streams failed"),
        }
    }
}
