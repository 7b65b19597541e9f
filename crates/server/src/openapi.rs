//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint, put together from the
//! handlers' own annotations as they are routed (utoipa-axum), so a route cannot exist
//! undescribed. The request and error documents are described by the types below.

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dorametrics",
        description = "A self-hosted DORA metrics server: the Datadog DORA API (/api/v2/dora), the \
            GitLab DORA API (/api/v4), and its own (/api/v1). A token goes in DD-API-KEY, \
            DD-APPLICATION-KEY, PRIVATE-TOKEN, Authorization: Bearer, or ?private_token=.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    components(schemas(Errors, BadRequest, BadRequestError, ErrorSource, GitlabError)),
    security(("dd_api_key" = []), ("dd_application_key" = []), ("private_token" = []), ("bearer" = [])),
    tags(
        (name = "datadog", description = "The Datadog-compatible DORA API"),
        (name = "gitlab", description = "The GitLab-compatible DORA API"),
        (name = "native", description = "dorametrics' own API"),
        (name = "admin", description = "Tokens and settings (admin scope)"),
        (name = "operations", description = "Health, readiness, Prometheus, this document")
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, header) in [
            ("dd_api_key", "DD-API-KEY"),
            ("dd_application_key", "DD-APPLICATION-KEY"),
            ("private_token", "PRIVATE-TOKEN"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(header))),
            );
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error but a 400 on the Datadog and native APIs: `{"errors": ["…"]}`.
#[derive(Serialize, ToSchema)]
pub struct Errors {
    pub errors: Vec<String>,
}

/// A 400 on the Datadog and native APIs: what is wrong, and where.
#[derive(Serialize, ToSchema)]
pub struct BadRequest {
    pub errors: Vec<BadRequestError>,
}

#[derive(Serialize, ToSchema)]
pub struct BadRequestError {
    /// `"400"`.
    pub status: String,
    /// `"Bad Request"`.
    pub title: String,
    pub detail: String,
    pub source: Option<ErrorSource>,
}

/// Where the problem is: a JSON pointer into the body, or a query parameter.
#[derive(Serialize, ToSchema)]
pub struct ErrorSource {
    pub pointer: Option<String>,
    pub parameter: Option<String>,
}

/// GitLab's errors: `{"error": "…"}` (parameter validation) or `{"message": "…"}`.
#[derive(Serialize, ToSchema)]
pub struct GitlabError {
    pub error: Option<String>,
    pub message: Option<String>,
}

/// `POST /api/v2/dora/deployment`.
#[derive(Serialize, ToSchema)]
pub struct DeploymentRequest {
    pub data: DeploymentRequestData,
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentRequestData {
    pub attributes: DeploymentRequestAttributes,
}

/// Timestamps are Unix seconds, milliseconds or nanoseconds (told by magnitude) or RFC 3339.
#[derive(Serialize, ToSchema)]
pub struct DeploymentRequestAttributes {
    /// 16–128 characters of `[A-Za-z0-9._:-]`; generated when absent; the same id replaces.
    #[schema(min_length = 16, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: Option<String>,
    pub service: String,
    pub env: Option<String>,
    pub team: Option<String>,
    pub version: Option<String>,
    #[schema(value_type = Object)]
    pub started_at: serde_json::Value,
    #[schema(value_type = Object)]
    pub finished_at: serde_json::Value,
    pub git: Option<GitRequest>,
    /// `key:value`, at most 100.
    pub custom_tags: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct GitRequest {
    pub repository_url: String,
    pub commit_sha: String,
}

/// `POST /api/v2/dora/failure`: a failure (incident), created or replaced (resolved).
#[derive(Serialize, ToSchema)]
pub struct FailureRequest {
    pub data: FailureRequestData,
}

#[derive(Serialize, ToSchema)]
pub struct FailureRequestData {
    pub attributes: FailureRequestAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct FailureRequestAttributes {
    #[schema(min_length = 16, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: Option<String>,
    pub name: Option<String>,
    pub services: Option<Vec<String>>,
    pub team: Option<String>,
    pub env: Option<String>,
    pub severity: Option<String>,
    #[schema(value_type = Object)]
    pub started_at: serde_json::Value,
    #[schema(value_type = Object)]
    pub finished_at: Option<serde_json::Value>,
    pub version: Option<String>,
    pub git: Option<GitRequest>,
    pub custom_tags: Option<Vec<String>>,
}

/// `POST /api/v2/dora/deployments` and `…/failures`.
#[derive(Serialize, ToSchema)]
pub struct ListRequest {
    pub data: ListRequestData,
}

#[derive(Serialize, ToSchema)]
pub struct ListRequestData {
    /// `dora_deployments_list_request` or `dora_failures_list_request`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub attributes: ListRequestAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct ListRequestAttributes {
    /// Datadog search syntax, at most 4096 bytes and 1000 terms.
    pub query: Option<String>,
    /// RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `started_at`, `finished_at`, `-started_at` or `-finished_at`.
    pub sort: Option<String>,
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `PATCH /api/v2/dora/deployments[/{id}]`.
#[derive(Serialize, ToSchema)]
pub struct PatchRequest {
    pub data: PatchRequestData,
}

#[derive(Serialize, ToSchema)]
pub struct PatchRequestData {
    /// `dora_deployment_patch_request`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub attributes: PatchRequestAttributes,
}

#[derive(Serialize, ToSchema)]
pub struct PatchRequestAttributes {
    pub change_failure: Option<bool>,
    pub remediation: Option<Remediation>,
    /// With `PATCH /api/v2/dora/deployments`: which deployment (the latest match).
    pub service: Option<String>,
    pub env: Option<String>,
    pub version: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Remediation {
    pub id: Option<String>,
    pub version: Option<String>,
    /// `rollback` or `rollforward`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `{"data": {"id", "type"}}`: a write acknowledged (202).
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub data: AcceptedData,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedData {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `POST /api/v1/admin/tokens`.
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    pub name: String,
    /// `dora_metrics_read`, `dora_metrics_write`, `admin`.
    pub scopes: Vec<String>,
    pub projects: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    /// `90d`, `12h`, …
    pub expires_in: Option<String>,
}

/// `PUT /api/v1/admin/env-tiers/{env}`.
#[derive(Serialize, ToSchema)]
pub struct EnvTierRequest {
    /// `production`, `staging`, `testing`, `development` or `other`.
    pub tier: String,
}

/// `POST /api/v1/commits/known`.
#[derive(Serialize, ToSchema)]
pub struct KnownRequest {
    pub repository_url: String,
    /// At most 10 000.
    pub shas: Vec<String>,
}

/// The failures every Datadog-compatible and native endpoint may answer (JSON:API).
#[derive(IntoResponses)]
#[allow(dead_code)] // only described
pub enum ApiErrors {
    /// A precise complaint: what is wrong, and where.
    #[response(status = 400, content_type = "application/vnd.api+json")]
    BadRequest(BadRequest),
    /// No presented credential is a valid token.
    #[response(status = 401, content_type = "application/vnd.api+json")]
    Unauthorized(Errors),
    /// The token lacks the scope, or is limited to projects.
    #[response(status = 403, content_type = "application/vnd.api+json")]
    Forbidden(Errors),
    #[response(status = 404, content_type = "application/vnd.api+json")]
    NotFound(Errors),
    /// The body did not arrive in time.
    #[response(status = 408, content_type = "application/vnd.api+json")]
    Timeout(Errors),
    #[response(status = 413, content_type = "application/vnd.api+json")]
    TooLarge(Errors),
    /// A rate limit: `X-RateLimit-*` and `Retry-After` say which and when.
    #[response(status = 429, content_type = "application/vnd.api+json")]
    TooMany(Errors),
    /// The store cannot serve; `Retry-After` when retrying soon can help.
    #[response(status = 503, content_type = "application/vnd.api+json")]
    Unavailable(Errors),
}

/// The failures of the GitLab-compatible endpoints, in GitLab's shapes.
#[derive(IntoResponses)]
#[allow(dead_code)] // only described
pub enum GitlabErrors {
    #[response(status = 400)]
    BadRequest(GitlabError),
    #[response(status = 401)]
    Unauthorized(GitlabError),
    #[response(status = 403)]
    Forbidden(GitlabError),
    #[response(status = 404)]
    NotFound(GitlabError),
    #[response(status = 429)]
    TooMany(GitlabError),
    #[response(status = 503)]
    Unavailable(GitlabError),
}

#[cfg(test)]
mod tests {
    /// The committed `openapi.json` is what the code describes: a change to an endpoint shows
    /// in review. `DORA_UPDATE_OPENAPI=1 cargo test -p dora-server openapi` rewrites it.
    #[test]
    fn the_document_matches_its_snapshot() {
        let (_, api) = crate::routes();
        let generated = api.to_pretty_json().unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        if std::env::var_os("DORA_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is not what the code describes; run DORA_UPDATE_OPENAPI=1 cargo test -p \
             dora-server openapi and review the difference",
            path.display()
        );
        let document: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        for path in [
            "/api/v2/dora/deployment",
            "/api/v4/projects/{id}/dora/metrics",
            "/api/v1/metrics",
            "/api/v1/admin/tokens",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(
                document["paths"][path].is_object(),
                "{path} is not described"
            );
        }
    }
}
