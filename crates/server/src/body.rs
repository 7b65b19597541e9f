//! Request bodies: size-limited, parsed as JSON, every failure a precise 4xx.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::{ApiError, Problem};

/// Larger bodies are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a request's body may take to arrive; set on each request by the guard.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// A JSON request document.
pub struct JsonBody(pub Value);

/// The whole body, refused with 413 past `limit` bytes and with 400 when empty or broken (a
/// malformed chunked encoding, a connection cut short). Endpoints that take bulk data (commits)
/// pass a larger limit than [`MAX_BODY_BYTES`].
pub async fn read_limited(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let deadline = request
        .extensions()
        .get::<BodyTimeout>()
        .map_or(crate::connections::Limits::default().body_timeout, |t| t.0);
    let read = axum::body::to_bytes(request.into_body(), limit);
    let bytes = tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| ApiError::BodyTimeout(deadline))?
        .map_err(|error| {
            if is_too_large(&error) {
                ApiError::PayloadTooLarge(limit)
            } else {
                Problem::body(format!("The request body could not be read: {error}")).into()
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::body("The request body is empty; a JSON document is required").into());
    }
    Ok(bytes)
}

/// Whether reading a body failed on its size limit (rather than on its encoding).
fn is_too_large(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Refuses a NUL character anywhere in a JSON document (a value or a key): no store keeps one
/// faithfully. `base` is the document's pointer (`/3` for the fourth element of a bulk body).
pub fn reject_nul(value: &Value, base: &str) -> Result<(), Problem> {
    let nul = |pointer: String| {
        let what = if pointer.is_empty() {
            "The body"
        } else {
            &pointer
        };
        let detail = format!("{what} must not contain a NUL character (\\u0000)");
        Err(Problem::at(pointer.clone(), detail))
    };
    match value {
        Value::String(text) if text.contains('\0') => nul(base.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| reject_nul(item, &format!("{base}/{i}"))),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let pointer = format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"));
            if key.contains('\0') {
                return nul(pointer);
            }
            reject_nul(item, &pointer)
        }),
        _ => Ok(()),
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(request, MAX_BODY_BYTES).await?;
        let document: Value = serde_json::from_slice(&bytes).map_err(|error| {
            Problem::body(format!(
                "The request body is not valid JSON: {error} (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
        reject_nul(&document, "")?;
        Ok(JsonBody(document))
    }
}
