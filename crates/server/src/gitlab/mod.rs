//! The GitLab-compatible API (`/api/v4`): DORA metrics of projects and groups, and the older
//! deployment-frequency analytics, answered in GitLab's shapes so that python-gitlab, gitbeaker
//! and scripts written for GitLab Ultimate work unchanged.

mod legacy;
mod metrics;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Json;
use chrono::NaiveDate;
use dora_core::model::Scope;
use dora_core::query::Query;
use dora_core::tier::Tier;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{form_pairs, Caller};
use crate::derivation::Selection;
use crate::error::ApiError;
use crate::report::catalog::Catalog;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(metrics::routes())
        .merge(legacy::routes())
        // GitLab's answer for any other path under its prefix.
        .route(
            "/api/v4/{*rest}",
            any(|| async { GitlabError::error(StatusCode::NOT_FOUND, "404 Not Found") }),
        )
}

/// An error in one of GitLab's two shapes: Grape's parameter errors `{"error": …}` and
/// everything else `{"message": …}`.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {body}")]
pub struct GitlabError {
    status: StatusCode,
    body: Value,
    /// An answer with more than a body (boxed: errors are returned on every path).
    special: Option<Box<Special>>,
}

#[derive(Debug)]
enum Special {
    /// A store failure, answered as [`crate::error::store_failure`] says.
    Store(dora_store::StoreError),
    /// A rate limit reached, with its headers ([`crate::error::throttled`]).
    Throttled(crate::ratelimit::Throttled),
}

impl GitlabError {
    /// `{"error": "…"}`, what GitLab's parameter validation answers.
    fn error(status: StatusCode, text: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": text.into() }),
            special: None,
        }
    }

    /// `{"message": "…"}`, what GitLab's services and `render_api_error!` answer.
    fn message(status: StatusCode, text: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "message": text.into() }),
            special: None,
        }
    }

    /// A 400 naming a parameter, as Grape words it (`metric is missing`).
    fn param(text: impl Into<String>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, text)
    }

    /// A 400 from a GitLab service (`Date range must be shorter than 180 days.`).
    fn bad(text: impl Into<String>) -> Self {
        Self::message(StatusCode::BAD_REQUEST, text)
    }
}

impl From<ApiError> for GitlabError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::RateLimited(limit) => Self {
                special: Some(Box::new(Special::Throttled(limit))),
                ..Self::message(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests")
            },
            ApiError::BadRequest(problem) => Self::param(problem.detail),
            ApiError::BadParameter { detail, .. } => Self::param(detail),
            ApiError::Unauthorized | ApiError::WebhookRefused(_) => {
                Self::message(StatusCode::UNAUTHORIZED, "401 Unauthorized")
            }
            ApiError::Forbidden => Self::message(StatusCode::FORBIDDEN, "403 Forbidden"),
            ApiError::NotFound(_) => Self::message(StatusCode::NOT_FOUND, "404 Not Found"),
            ApiError::BodyTimeout(_) => {
                Self::message(StatusCode::REQUEST_TIMEOUT, "408 Request Timeout")
            }
            ApiError::PayloadTooLarge(_) => Self::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Request Entity Too Large",
            ),
            ApiError::Store(error) => Self {
                special: Some(Box::new(Special::Store(error))),
                ..Self::message(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable")
            },
        }
    }
}

impl From<dora_store::StoreError> for GitlabError {
    fn from(error: dora_store::StoreError) -> Self {
        ApiError::Store(error).into()
    }
}

impl IntoResponse for GitlabError {
    fn into_response(self) -> Response {
        let response = (self.status, Json(self.body)).into_response();
        match self.special.map(|special| *special) {
            None => response,
            Some(Special::Throttled(limit)) => crate::error::throttled(&limit, response),
            Some(Special::Store(error)) => crate::error::store_failure(&error, |message| {
                Json(json!({ "message": format!("503 Service Unavailable - {message}") }))
                    .into_response()
            }),
        }
    }
}

/// The token check of every API, with its failures in GitLab's shapes.
pub struct GitlabCaller(Caller);

impl FromRequestParts<AppState> for GitlabCaller {
    type Rejection = GitlabError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GitlabError> {
        Ok(Self(Caller::from_request_parts(parts, state).await?))
    }
}

/// The query string, decoded; GitLab clients repeat keys and add `[]` to array parameters.
pub struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<&str>) -> Self {
        Self(query.map(form_pairs).unwrap_or_default())
    }

    /// The last value of a scalar parameter (Rack's rule when a key repeats).
    fn last(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of an array parameter, in any of the encodings clients use: `name[]=a`,
    /// `name[0]=a`, repeated `name=a&name=b`, or comma-joined `name=a,b`.
    fn list(&self, name: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(key, _)| {
                key == name
                    || key.strip_prefix(name).is_some_and(|rest| {
                        rest.strip_prefix('[')
                            .and_then(|r| r.strip_suffix(']'))
                            .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()))
                    })
            })
            .flat_map(|(_, value)| value.split(','))
            .collect();
        (!values.is_empty()).then_some(values)
    }
}

/// A date as Grape reads one: `YYYY-MM-DD`, optionally followed by a time that is ignored.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let head = text.get(..10)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with(['T', 't', ' '])) {
        return None;
    }
    NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .ok()
        .filter(|day| dora_core::time::representable_day(*day))
}

/// What an `:id` addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Project,
    Group,
}

impl Kind {
    fn not_found(self) -> GitlabError {
        let text = match self {
            Kind::Project => "404 Project Not Found",
            Kind::Group => "404 Group Not Found",
        };
        GitlabError::message(StatusCode::NOT_FOUND, text)
    }
}

/// A project or group the caller may read, by its canonical path.
struct Target {
    kind: Kind,
    path: String,
}

impl Target {
    /// Finds the project or group an `:id` names (numeric id or URL-encoded path) among those
    /// the caller's tokens reach; any other answers 404, so that a restricted token cannot tell
    /// what exists.
    async fn resolve(
        state: &AppState,
        caller: &GitlabCaller,
        kind: Kind,
        id: &str,
    ) -> Result<Self, GitlabError> {
        caller.0.require_some(Scope::Read)?;
        let catalog = Catalog::load(state.store.as_ref()).await?;
        let path = match kind {
            Kind::Project => catalog
                .project(id)
                .map(|p| p.path.clone())
                .filter(|path| caller.0.reaches_project(Scope::Read, path)),
            Kind::Group => catalog
                .group(id)
                .map(|g| g.path.clone())
                .filter(|path| caller.0.reaches_group(Scope::Read, path)),
        };
        let path = path.ok_or_else(|| kind.not_found())?;
        Ok(Self { kind, path })
    }

    fn selection(&self, filter: Query, tiers: Vec<Tier>) -> Selection {
        let (project, group) = match self.kind {
            Kind::Project => (Some(self.path.clone()), None),
            Kind::Group => (None, Some(self.path.clone())),
        };
        Selection {
            filter,
            tiers,
            project,
            group,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_parameters_in_every_encoding() {
        for query in [
            "environment_tiers[]=staging&environment_tiers[]=production",
            "environment_tiers=staging&environment_tiers=production",
            "environment_tiers=staging,production",
            "environment_tiers%5B%5D=staging&environment_tiers%5B%5D=production",
            "environment_tiers[0]=staging&environment_tiers[1]=production",
        ] {
            assert_eq!(
                Params::new(Some(query)).list("environment_tiers"),
                Some(vec!["staging", "production"]),
                "{query}"
            );
        }
        let params = Params::new(Some("environment_tiersx=a&environment_tiers[x]=b&metric=a"));
        assert_eq!(params.list("environment_tiers"), None);
        assert_eq!(
            Params::new(Some("metric=a&metric=b")).last("metric"),
            Some("b")
        );
    }

    #[test]
    fn dates_as_grape_reads_them() {
        let day = NaiveDate::from_ymd_opt(2025, 3, 1);
        assert_eq!(parse_date("2025-03-01"), day);
        assert_eq!(parse_date("2025-03-01T10:00:00Z"), day);
        assert_eq!(parse_date("2025-02-30"), None);
        assert_eq!(parse_date("2025-03-01x"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("9999-01-01"), None);
        assert_eq!(parse_date("2025-03-"), None);
    }
}
