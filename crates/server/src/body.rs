//! Request bodies: size-limited, parsed as JSON, every failure a precise 4xx.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::{ApiError, Problem};

/// Larger bodies are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request document.
pub struct JsonBody(pub Value);

/// The whole body, refused with 413 past `limit` bytes and with 400 when empty. Endpoints that
/// take bulk data (commits) pass a larger limit than [`MAX_BODY_BYTES`].
pub async fn read_limited(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::body("The request body is empty; a JSON document is required").into());
    }
    Ok(bytes)
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(request, MAX_BODY_BYTES).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| {
                Problem::body(format!(
                    "The request body is not valid JSON: {error} (line {}, column {})",
                    error.line(),
                    error.column()
                ))
                .into()
            })
    }
}
