//! GitLab's older deployment-frequency analytics (`…/analytics/deployment_frequency`): counts of
//! deployments to one environment, by name, in `[from, to)`. GitLab answered 501 for groups; the
//! group variant works here.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime};
use dora_core::metrics::{day_nanos, day_of, Interval};
use dora_core::query::Query;
use dora_core::time::{self, Nanos};
use serde_json::{json, Value};

use super::{parse_date, GitlabCaller, GitlabError, Kind, Params, Target};
use crate::derivation;
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(project))
        .routes(routes!(group))
}

/// GitLab's limit: `3.months / 1.day` whole days between `from` and `to`.
const MAX_RANGE_DAYS: i64 = 91;
const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// A date-time as Grape's `DateTime` reads one: RFC 3339, without an offset (UTC), or a bare
/// date (midnight UTC).
fn parse_instant(text: &str) -> Option<Nanos> {
    if let Ok(nanos) = time::from_rfc3339(text) {
        return Some(nanos);
    }
    if text.len() == 10 {
        return parse_date(text).map(day_nanos);
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .and_then(|at| at.and_utc().timestamp_nanos_opt())
}

struct Request {
    environment: String,
    from: Nanos,
    to: Option<Nanos>,
    interval: Interval,
}

impl Request {
    /// Grape's checks, all at once and joined as Grape joins them.
    fn parse(params: &Params) -> Result<Self, GitlabError> {
        let mut errors = Vec::new();
        let environment = params.last("environment");
        if environment.is_none() {
            errors.push("environment is missing".to_string());
        }
        let mut instant = |name: &str, required: bool| match params.last(name) {
            None | Some("") if !required => None,
            None => {
                errors.push(format!("{name} is missing"));
                None
            }
            Some(text) => {
                let parsed = parse_instant(text);
                if parsed.is_none() {
                    errors.push(format!("{name} is invalid"));
                }
                parsed
            }
        };
        let from = instant("from", true);
        let to = instant("to", false);
        let interval = match params.last("interval") {
            None => Some(Interval::All),
            Some(text) => Interval::parse(text).filter(|i| *i != Interval::Weekly),
        };
        if interval.is_none() {
            errors.push("interval does not have a valid value".to_string());
        }
        match (environment, from, interval) {
            (Some(environment), Some(from), Some(interval)) if errors.is_empty() => Ok(Self {
                environment: environment.to_string(),
                from,
                to,
                interval,
            }),
            _ => Err(GitlabError::param(errors.join(", "))),
        }
    }
}

#[utoipa::path(get, path = "/api/v4/projects/{id}/analytics/deployment_frequency", tag = "gitlab", operation_id = "gitlab_project_legacy",
    description = "GitLab's older deployment frequency: `[{\"from\", \"to\", \"value\"}]` (read scope).", params(("id" = String, Path, description = "Numeric id or URL-encoded path"),
        ("environment" = String, Query), ("from" = String, Query, description = "ISO 8601"),
        ("to" = Option<String>, Query), ("interval" = Option<String>, Query, description = "all, monthly or daily")),
    responses((status = 200, body = Vec<serde_json::Value>), crate::openapi::GitlabErrors))]
async fn project(
    State(state): State<AppState>,
    caller: GitlabCaller,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, GitlabError> {
    answer(&state, &caller, Kind::Project, id, query.as_deref()).await
}

#[utoipa::path(get, path = "/api/v4/groups/{id}/analytics/deployment_frequency", tag = "gitlab", operation_id = "gitlab_group_legacy",
    description = "GitLab's older deployment frequency: `[{\"from\", \"to\", \"value\"}]` (read scope).", params(("id" = String, Path, description = "Numeric id or URL-encoded path"),
        ("environment" = String, Query), ("from" = String, Query, description = "ISO 8601"),
        ("to" = Option<String>, Query), ("interval" = Option<String>, Query, description = "all, monthly or daily")),
    responses((status = 200, body = Vec<serde_json::Value>), crate::openapi::GitlabErrors))]
async fn group(
    State(state): State<AppState>,
    caller: GitlabCaller,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, GitlabError> {
    answer(&state, &caller, Kind::Group, id, query.as_deref()).await
}

async fn answer(
    state: &AppState,
    caller: &GitlabCaller,
    kind: Kind,
    id: Result<Path<String>, PathRejection>,
    query: Option<&str>,
) -> Result<Json<Value>, GitlabError> {
    let request = Request::parse(&Params::new(query))?;
    let from = request.from;
    let to = request.to.unwrap_or_else(time::now);
    // GitLab checks the range before it looks the project up.
    if from > to {
        return Err(GitlabError::bad(
            "400 Bad request - Parameter `to` is before the `from` date",
        ));
    }
    if (to - from) / NANOS_PER_DAY > MAX_RANGE_DAYS {
        return Err(GitlabError::bad(format!(
            "400 Bad request - Date range is greater than {MAX_RANGE_DAYS} days"
        )));
    }
    let Ok(Path(id)) = id else {
        return Err(kind.not_found());
    };
    let target = Target::resolve(state, caller, kind, &id).await?;
    let filter = Query::field("env", &request.environment);
    let deployments = derivation::deployment_facts(
        state.store.as_ref(),
        &target.selection(filter, Vec::new()),
        from,
        to,
        state.failure_window,
        &state.refresher,
    )
    .await?;
    if request.interval == Interval::All {
        // Dates, as GitLab formats them (the range's own times are not shown).
        return Ok(Json(json!([{
            "from": day_of(from).format("%Y-%m-%d").to_string(),
            "to": day_of(to).format("%Y-%m-%d").to_string(),
            "value": deployments.len(),
        }])));
    }
    // Only the days or months that saw deployments, each whole (not clipped to the range).
    let mut counts: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for deployment in &deployments {
        let day = day_of(deployment.finished_at);
        let start = match request.interval {
            Interval::Monthly => day.with_day(1).unwrap_or(day),
            _ => day,
        };
        *counts.entry(start).or_default() += 1;
    }
    let rows: Vec<Value> = counts
        .into_iter()
        .map(|(start, value)| {
            let end = match request.interval {
                Interval::Monthly => start.checked_add_months(Months::new(1)),
                _ => start.checked_add_days(Days::new(1)),
            }
            .unwrap_or(start);
            json!({
                "from": start.format("%Y-%m-%d").to_string(),
                "to": end.format("%Y-%m-%d").to_string(),
                "value": value,
            })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> Result<Request, Value> {
        Request::parse(&Params::new(Some(query))).map_err(|e| e.body)
    }

    #[test]
    fn grape_joins_its_complaints() {
        assert_eq!(
            request("interval=weekly").err(),
            Some(
                json!({"error": "environment is missing, from is missing, interval does not have a valid value"})
            )
        );
        assert_eq!(
            request("environment=production&from=soon").err(),
            Some(json!({"error": "from is invalid"}))
        );
        let ok = request("environment=production&from=2025-01-01")
            .ok()
            .unwrap();
        assert_eq!(ok.from, 1_735_689_600 * 1_000_000_000);
        assert_eq!(ok.interval, Interval::All);
        assert_eq!(ok.to, None);
        let ok = request("environment=p&from=2025-01-01T12:00:00%2B02:00&to=&interval=daily")
            .ok()
            .unwrap();
        assert_eq!(ok.from, (1_735_689_600 + 10 * 3600) * 1_000_000_000);
        assert_eq!(ok.interval, Interval::Daily);
    }
}
