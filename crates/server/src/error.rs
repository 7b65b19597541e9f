//! One error type for every handler, rendered in the error shape of the API surface.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::JSON_API;

/// A precise complaint about one part of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub detail: String,
    /// JSON pointer into the request document, e.g. `/data/attributes/started_at`.
    pub pointer: Option<String>,
}

impl Problem {
    pub fn at(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            pointer: Some(pointer.into()),
        }
    }

    pub fn body(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            pointer: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {}", .0.detail)]
    BadRequest(Problem),
    /// A query parameter is wrong: JSON:API `source.parameter` names it.
    #[error("bad parameter {parameter}: {detail}")]
    BadParameter { parameter: String, detail: String },
    #[error("unauthorized")]
    Unauthorized,
    /// A webhook delivery that did not verify: why.
    #[error("webhook delivery refused: {0}")]
    WebhookRefused(String),
    #[error("forbidden")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("rate limit {} reached", .0.name)]
    RateLimited(crate::ratelimit::Throttled),
    #[error(transparent)]
    Store(#[from] dora_store::StoreError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::BadRequest(problem)
    }
}

/// `{"errors":["…"]}`: the shape Datadog uses for everything but 400.
fn plain(status: StatusCode, message: &str) -> Response {
    (status, json_api(json!({ "errors": [message] }))).into_response()
}

/// A JSON body with the JSON:API content type.
pub fn json_api(value: impl serde::Serialize) -> Response {
    let mut response = axum::Json(value).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    response
}

/// A store failure as a 503: its own message in `body`'s shape, `Retry-After` when retrying soon
/// can help, and its cause in the log.
pub fn store_failure(
    error: &dora_store::StoreError,
    body: impl FnOnce(&str) -> Response,
) -> Response {
    let outage = error.outage();
    let message = match outage {
        Some(outage) => outage.message(),
        None => "The store failed; retry later",
    };
    tracing::error!(
        %error,
        outage = outage.map_or("unexpected", |o| o.as_str()),
        "store failure"
    );
    let mut response = body(message);
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .extensions_mut()
        .insert(crate::telemetry::StoreFailure(outage));
    let retry = match outage {
        Some(outage) => outage.retry_after(),
        None => Some(1),
    };
    if let Some(seconds) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A 429 with `body`, and the limit in headers: `X-RateLimit-Limit` requests per
/// `X-RateLimit-Period` seconds, none `X-RateLimit-Remaining`, `X-RateLimit-Reset` and
/// `Retry-After` seconds until the next is allowed, `X-RateLimit-Name`.
pub fn throttled(throttled: &crate::ratelimit::Throttled, body: Response) -> Response {
    let mut response = body;
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let wait =
        throttled.retry_after.as_secs() + u64::from(throttled.retry_after.subsec_nanos() > 0);
    let headers = response.headers_mut();
    let number = |n: u64| HeaderValue::from(n);
    headers.insert(
        "x-ratelimit-limit",
        number(u64::from(throttled.limit.count.get())),
    );
    headers.insert(
        "x-ratelimit-period",
        number(throttled.limit.period.as_secs().max(1)),
    );
    headers.insert("x-ratelimit-remaining", number(0));
    headers.insert("x-ratelimit-reset", number(wait));
    headers.insert("x-ratelimit-name", HeaderValue::from_static(throttled.name));
    headers.insert(header::RETRY_AFTER, number(wait));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(problem) => {
                let mut error = json!({
                    "status": "400",
                    "title": "Bad Request",
                    "detail": problem.detail,
                });
                if let Some(pointer) = problem.pointer {
                    error["source"] = json!({ "pointer": pointer });
                }
                (
                    StatusCode::BAD_REQUEST,
                    json_api(json!({ "errors": [error] })),
                )
                    .into_response()
            }
            ApiError::BadParameter { parameter, detail } => (
                StatusCode::BAD_REQUEST,
                json_api(json!({ "errors": [{
                    "status": "400",
                    "title": "Bad Request",
                    "detail": detail,
                    "source": { "parameter": parameter },
                }]})),
            )
                .into_response(),
            ApiError::Unauthorized => plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::WebhookRefused(why) => plain(StatusCode::UNAUTHORIZED, &why),
            ApiError::Forbidden => plain(StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::NotFound(what) => plain(StatusCode::NOT_FOUND, &what),
            ApiError::BodyTimeout(deadline) => plain(
                StatusCode::REQUEST_TIMEOUT,
                &format!("The request body did not arrive within {deadline:?}"),
            ),
            ApiError::PayloadTooLarge(limit) => plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Request body is larger than the limit of {limit} bytes"),
            ),
            ApiError::RateLimited(limit) => throttled(
                &limit,
                plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "Too many requests: the {} limit of {} per {:?} is used up",
                        limit.name, limit.limit.count, limit.limit.period
                    ),
                ),
            ),
            ApiError::Store(error) => {
                store_failure(&error, |message| json_api(json!({ "errors": [message] })))
            }
        }
    }
}
