//! Request bodies: size-limited, parsed as JSON, every failure a precise 4xx.

use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::{ApiError, Problem};

/// Larger bodies are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request document.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(
                Problem::body("The request body is empty; a JSON document is required").into(),
            );
        }
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
