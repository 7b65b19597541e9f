//! What every request and answer goes through, whatever its surface: bytes no store keeps
//! (a NUL in the path or query) refused before routing, and the headers every answer needs.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use crate::auth::form_pairs;
use crate::body::BodyTimeout;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// Refuses a NUL (`%00`) in the path or in a query parameter with a 400 naming where it is,
/// in the shape of the surface addressed; then adds the headers of [`finish`].
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let has_body = has_body(&request);
    request
        .extensions_mut()
        .insert(BodyTimeout(state.limits.body_timeout));
    let mut response = match nul_in_uri(&request) {
        Some(problem) => refuse(request.uri().path(), problem),
        None => next.run(request).await,
    };
    finish(&mut response, has_body);
    response
}

fn nul_in_uri(request: &Request) -> Option<ApiError> {
    let uri = request.uri();
    if percent_decode_str(uri.path()).any(|byte| byte == 0) {
        return Some(Problem::body("The path must not contain a NUL character (%00)").into());
    }
    let query = uri.query()?;
    form_pairs(query)
        .into_iter()
        .find(|(key, value)| key.contains('\0') || value.contains('\0'))
        .map(|(key, _)| {
            let parameter = key.replace('\0', "%00");
            ApiError::BadParameter {
                detail: format!("{parameter} must not contain a NUL character (%00)"),
                parameter,
            }
        })
}

/// The refusal in the addressed surface's shape: GitLab's under `/api/v4`, JSON:API elsewhere.
fn refuse(path: &str, error: ApiError) -> Response {
    if path.starts_with("/api/v4/") {
        crate::gitlab::GitlabError::from(error).into_response()
    } else {
        error.into_response()
    }
}

/// Whether the request says it carries a body (a length above 0, or chunks).
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}

/// 401 and 403 say how to authenticate (RFC 6750), whichever surface's body they carry. A 401,
/// 408 or 413 given before the body was read ends the connection (its unread body cannot be told from
/// the next request), and says so.
fn finish(response: &mut Response, has_body: bool) {
    let status = response.status();
    let challenge = match status {
        StatusCode::UNAUTHORIZED => Some(r#"Bearer realm="dorametrics""#),
        StatusCode::FORBIDDEN => Some(r#"Bearer realm="dorametrics", error="insufficient_scope""#),
        _ => None,
    };
    let headers = response.headers_mut();
    // Answers are data for programs, never to be sniffed into something else or cached.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = challenge {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    let unread_body = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    );
    if has_body && unread_body {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
