//! `GET /api/v4/projects/:id/dora/metrics` and `GET /api/v4/groups/:id/dora/metrics`: one metric
//! per day, month or the whole range, validated and worded as GitLab does.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use chrono::{Days, Months, NaiveDate};
use dora_core::metrics::{day_nanos, day_of, label, Interval, Values};
use dora_core::query::Query;
use dora_core::tier::Tier;
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

/// GitLab's limit (that of its Value Stream Analytics): `end − start` may be 180 days at most.
const MAX_RANGE_DAYS: i64 = 180;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    DeploymentFrequency,
    LeadTimeForChanges,
    TimeToRestoreService,
    ChangeFailureRate,
}

impl Metric {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "deployment_frequency" => Some(Self::DeploymentFrequency),
            "lead_time_for_changes" => Some(Self::LeadTimeForChanges),
            "time_to_restore_service" => Some(Self::TimeToRestoreService),
            "change_failure_rate" => Some(Self::ChangeFailureRate),
            _ => None,
        }
    }

    /// The value GitLab reports for one bucket: deployment frequency is a count per day for
    /// daily buckets and a per-day average otherwise (GitLab ≥ 16.0); durations are medians in
    /// seconds; `null` where there is nothing to measure.
    fn value(self, values: &Values, interval: Interval) -> Value {
        match self {
            Self::DeploymentFrequency if interval == Interval::Daily => json!(values.deployments),
            Self::DeploymentFrequency => json!(values.deployments_per_day),
            Self::LeadTimeForChanges => json!(values.lead_time.median),
            Self::TimeToRestoreService => json!(values.time_to_restore.median),
            Self::ChangeFailureRate => json!(values.change_failure_rate),
        }
    }
}

/// A request's parameters, read in the order GitLab checks them.
struct Request {
    metric: Metric,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    interval: Interval,
    tiers: Option<Vec<String>>,
}

impl Request {
    /// What Grape checks before the endpoint runs: presence, the metric's value, date syntax.
    fn parse(params: &Params) -> Result<Self, GitlabError> {
        let metric = params
            .last("metric")
            .ok_or_else(|| GitlabError::param("metric is missing"))?;
        let metric = Metric::parse(metric)
            .ok_or_else(|| GitlabError::param("metric does not have a valid value"))?;
        let date = |name: &str| match params.last(name) {
            None | Some("") => Ok(None),
            Some(text) => parse_date(text)
                .map(Some)
                .ok_or_else(|| GitlabError::param(format!("{name} is invalid"))),
        };
        let start = date("start_date")?;
        let end = date("end_date")?;
        // Grape's `values: %w[all monthly daily]`, default daily.
        let interval = match params.last("interval") {
            None => Interval::Daily,
            Some(text) => Interval::parse(text)
                .filter(|interval| *interval != Interval::Weekly)
                .ok_or_else(|| GitlabError::param("interval does not have a valid value"))?,
        };
        // The deprecated single tier joins the list (GitLab's `environment_tiers |= [tier]`).
        let mut tiers = params.list("environment_tiers");
        if let Some(tier) = params.last("environment_tier") {
            let list = tiers.get_or_insert_with(Vec::new);
            if !list.contains(&tier) {
                list.push(tier);
            }
        }
        Ok(Self {
            metric,
            start,
            end,
            interval,
            tiers: tiers.map(|list| list.into_iter().map(str::to_string).collect()),
        })
    }
}

/// What GitLab's aggregation service checks, in its order, with its messages.
fn validate(
    start: NaiveDate,
    end: NaiveDate,
    tiers: Option<&[String]>,
) -> Result<Vec<Tier>, GitlabError> {
    if (end - start).num_days() > MAX_RANGE_DAYS {
        return Err(GitlabError::bad(format!(
            "Date range must be shorter than {MAX_RANGE_DAYS} days."
        )));
    }
    if start >= end {
        return Err(GitlabError::bad(
            "The start date must be earlier than the end date.",
        ));
    }
    let tiers = match tiers {
        None => vec![Tier::Production],
        Some(names) => names
            .iter()
            .map(|name| Tier::parse(name))
            .collect::<Option<Vec<Tier>>>()
            .ok_or_else(|| {
                GitlabError::bad(
                    "The environment tiers must be from production, staging, testing, \
                     development, other.",
                )
            })?,
    };
    Ok(tiers)
}

#[utoipa::path(get, path = "/api/v4/projects/{id}/dora/metrics", tag = "gitlab", operation_id = "gitlab_project_metrics",
    description = "GitLab's DORA metrics: `[{\"date\", \"value\"}]` (read scope).", params(("id" = String, Path, description = "Numeric id or URL-encoded path"),
        ("metric" = String, Query, description = "deployment_frequency, lead_time_for_changes, time_to_restore_service or change_failure_rate"),
        ("start_date" = Option<String>, Query), ("end_date" = Option<String>, Query),
        ("interval" = Option<String>, Query, description = "daily, monthly or all"),
        ("environment_tiers[]" = Option<Vec<String>>, Query)),
    responses((status = 200, body = Vec<serde_json::Value>), crate::openapi::GitlabErrors))]
async fn project(
    State(state): State<AppState>,
    caller: GitlabCaller,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, GitlabError> {
    answer(&state, &caller, Kind::Project, id, query.as_deref()).await
}

#[utoipa::path(get, path = "/api/v4/groups/{id}/dora/metrics", tag = "gitlab", operation_id = "gitlab_group_metrics",
    description = "GitLab's DORA metrics: `[{\"date\", \"value\"}]` (read scope).", params(("id" = String, Path, description = "Numeric id or URL-encoded path"),
        ("metric" = String, Query, description = "deployment_frequency, lead_time_for_changes, time_to_restore_service or change_failure_rate"),
        ("start_date" = Option<String>, Query), ("end_date" = Option<String>, Query),
        ("interval" = Option<String>, Query, description = "daily, monthly or all"),
        ("environment_tiers[]" = Option<Vec<String>>, Query)),
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
    let Ok(Path(id)) = id else {
        return Err(kind.not_found());
    };
    let target = Target::resolve(state, caller, kind, &id).await?;
    let today = day_of(dora_core::time::now());
    let start = request
        .start
        .unwrap_or_else(|| today.checked_sub_months(Months::new(3)).unwrap_or(today));
    let end = request.end.unwrap_or(today);
    let interval = request.interval;
    let tiers = validate(start, end, request.tiers.as_deref())?;
    let after_end = end.checked_add_days(Days::new(1)).unwrap_or(end);
    let (store, selection) = (state.store.as_ref(), target.selection(Query::All, tiers));
    let (from, to, window) = (day_nanos(start), day_nanos(after_end), state.failure_window);
    let counted =
        derivation::counted(store, &selection, from, to, window, &state.refresher).await?;
    // Only time to restore looks at failures.
    let failures = match request.metric {
        Metric::TimeToRestoreService => derivation::failures(store, &selection, from, to).await?,
        _ => Vec::new(),
    };
    let rows: Vec<Value> = counted
        .series(start, end, interval, &failures)
        .into_iter()
        .map(|(bucket, values)| {
            let date = match interval {
                Interval::All => Value::Null,
                _ => json!(label(&bucket, interval).format("%Y-%m-%d").to_string()),
            };
            json!({ "date": date, "value": request.metric.value(&values, interval) })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn message(result: Result<Vec<Tier>, GitlabError>) -> Value {
        result.unwrap_err().body
    }

    #[test]
    fn range_limits_at_their_boundaries() {
        let start = day(2025, 1, 1);
        assert!(validate(start, day(2025, 6, 30), None).is_ok()); // 180 days apart
        assert_eq!(
            message(validate(start, day(2025, 7, 1), None)),
            json!({"message": "Date range must be shorter than 180 days."})
        );
        assert_eq!(
            message(validate(start, start, None)),
            json!({"message": "The start date must be earlier than the end date."})
        );
        assert_eq!(
            validate(start, day(2025, 1, 2), None).unwrap(),
            vec![Tier::Production]
        );
    }

    #[test]
    fn intervals_and_tiers() {
        let (a, b) = (day(2025, 1, 1), day(2025, 2, 1));
        let tiers = ["staging".to_string(), "other".to_string()];
        assert_eq!(
            validate(a, b, Some(&tiers)).unwrap(),
            vec![Tier::Staging, Tier::Other]
        );
        assert!(validate(a, b, Some(&["prod".to_string()])).is_err());
        let interval =
            |query: &str| Request::parse(&Params::new(Some(query))).map(|request| request.interval);
        assert_eq!(
            interval("metric=deployment_frequency").unwrap(),
            Interval::Daily
        );
        assert_eq!(
            interval("metric=deployment_frequency&interval=monthly").unwrap(),
            Interval::Monthly
        );
        for bad in ["weekly", "", "yearly"] {
            assert_eq!(
                interval(&format!("metric=deployment_frequency&interval={bad}"))
                    .unwrap_err()
                    .body,
                json!({"error": "interval does not have a valid value"}),
                "{bad}"
            );
        }
    }
}
