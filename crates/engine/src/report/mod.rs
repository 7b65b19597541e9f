//! A metrics report: every DORA key of a selection over a range — totals, a time series with
//! every bucket, an optional breakdown, and performance levels. One place builds it, so
//! `GET /api/v1/metrics` and `dorametrics report --database` cannot disagree.

pub mod catalog;
mod document;
pub mod params;

use std::collections::BTreeSet;

use chrono::{Days, NaiveDate};
use dora_core::levels;
use dora_core::metrics::{self, Bucket, Counted, DeploymentFact, FailureFact, Values};
use dora_core::query::Query;
use dora_core::tier::Tier;
use dora_core::time::Nanos;
use dora_store::{Store, StoreError};

use crate::derivation::{counted, deployment_facts, facts, failures, Refresher, Selection};
use catalog::Catalog;
pub use document::{
    BreakdownGroup, BreakdownTable, KeyLevels, KeyRating, Keys, Named, Report, ReportLevels,
    RestoreRating, SelectionEcho, SeriesBucket, Spread,
};
pub use params::{parse, Breakdown, ReportRequest};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter is malformed or out of range; `parameter` names it as given.
    #[error("{parameter}: {detail}")]
    BadParameter { parameter: String, detail: String },
    /// The project or group named does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How levels are decided, stated in every response so a reader need not guess.
pub const LEVEL_RULE: &str = "Each key gets the best level whose published band it reaches \
(where the report gives one figure per level, the nearest figure; ties go to the better level); \
a value in a gap between published bands gets the worse level. Each level's band is the values \
it is given (every value is in exactly one); published_band is the report's own words. Overall \
is the lowest level among the classified keys.";

fn seconds(nanos: Nanos) -> f64 {
    nanos as f64 / 1e9
}

/// The whole range as one bucket.
fn whole(from: NaiveDate, to: NaiveDate) -> Bucket {
    Bucket {
        start: from,
        end: to.checked_add_days(Days::new(1)).unwrap_or(to),
    }
}

/// The breakdown key of a deployment.
fn key_of(by: Breakdown, d: &DeploymentFact) -> Option<String> {
    match by {
        Breakdown::Service => Some(d.service.clone()),
        Breakdown::Team => d.team.clone(),
        Breakdown::Env => d.env.clone(),
        Breakdown::Project => Some(d.project.clone()),
    }
}

/// The selection narrowed to one breakdown group. Failures are re-selected too (those
/// concerning the group's own streams), so each group's time to restore is its own.
fn narrowed(selection: &Selection, by: Breakdown, key: &Option<String>) -> Selection {
    let mut narrowed = selection.clone();
    let field = |name: &str| match key {
        Some(value) => Query::field(name, value),
        None => Query::missing(name),
    };
    let extra = match by {
        Breakdown::Service => Some(field("service")),
        Breakdown::Team => Some(field("team")),
        Breakdown::Env => Some(field("env")),
        Breakdown::Project => {
            narrowed.project = key.clone();
            None
        }
    };
    if let Some(extra) = extra {
        narrowed.filter = match &selection.filter {
            Query::All => extra,
            Query::And(parts) => Query::And(parts.iter().cloned().chain([extra]).collect()),
            other => Query::And(vec![other.clone(), extra]),
        };
    }
    narrowed
}

/// The keys of each group of `deployments` (the selection's, over `range`) by `by`: one per
/// value among them (`None`: unset, last), each counting the failures of its own services and
/// envs.
pub async fn grouped(
    store: &dyn Store,
    selection: &Selection,
    by: Breakdown,
    deployments: &[DeploymentFact],
    range: &Bucket,
    failure_window: Nanos,
    refresher: &Refresher,
) -> Result<Vec<(Option<String>, Values)>, ReportError> {
    let (from, to) = (
        metrics::day_nanos(range.start),
        metrics::day_nanos(range.end),
    );
    let keys: BTreeSet<(bool, Option<String>)> = deployments
        .iter()
        .map(|d| {
            let key = key_of(by, d);
            (key.is_none(), key)
        })
        .collect();
    let mut groups = Vec::with_capacity(keys.len());
    for (_, key) in keys {
        let (group_deployments, group_failures): (Vec<DeploymentFact>, Vec<FailureFact>) = facts(
            store,
            &narrowed(selection, by, &key),
            from,
            to,
            failure_window,
            refresher,
        )
        .await?;
        let values = metrics::values(range, &group_deployments, &group_failures);
        groups.push((key, values));
    }
    Ok(groups)
}

/// Builds the report for a validated request.
pub async fn run(
    store: &dyn Store,
    request: &ReportRequest,
    failure_window: Nanos,
    refresher: &Refresher,
) -> Result<Report, ReportError> {
    let catalog = if request.project.is_some() || request.group.is_some() {
        Catalog::load(store).await?
    } else {
        Catalog::default()
    };
    let project =
        match &request.project {
            Some(reference) => Some(catalog.project(reference).ok_or_else(|| {
                ReportError::NotFound(format!("Project {reference:?} not found"))
            })?),
            None => None,
        };
    let group = match &request.group {
        Some(reference) => Some(
            catalog
                .group(reference)
                .ok_or_else(|| ReportError::NotFound(format!("Group {reference:?} not found")))?,
        ),
        None => None,
    };
    let selection = Selection {
        filter: request.deployment_filter(),
        tiers: request.tiers.clone(),
        project: project.map(|p| p.path.clone()),
        group: group.map(|g| g.path.clone()),
    };
    let range = whole(request.from, request.to);
    let (from, to) = (
        metrics::day_nanos(range.start),
        metrics::day_nanos(range.end),
    );
    // A breakdown groups each deployment; otherwise whatever counts them fastest will do.
    let counted = match request.breakdown {
        Some(_) => Counted::Deployments(
            deployment_facts(store, &selection, from, to, failure_window, refresher).await?,
        ),
        None => counted(store, &selection, from, to, failure_window, refresher).await?,
    };
    let failures = failures(store, &selection, from, to).await?;

    let totals = counted.values(&range, &failures);
    let series = counted
        .series(request.from, request.to, request.interval, &failures)
        .iter()
        .map(|(bucket, values)| SeriesBucket {
            date: metrics::label(bucket, request.interval).to_string(),
            from: bucket.start.to_string(),
            to: bucket.end.pred_opt().unwrap_or(bucket.end).to_string(),
            days: bucket.days(),
            keys: values.into(),
        })
        .collect();

    let breakdown = match (request.breakdown, &counted) {
        (Some(by), Counted::Deployments(deployments)) => {
            let groups = grouped(
                store,
                &selection,
                by,
                deployments,
                &range,
                failure_window,
                refresher,
            )
            .await?
            .into_iter()
            .map(|(key, values)| BreakdownGroup {
                key,
                totals: (&values).into(),
                levels: (&levels::assess(request.year, &values)).into(),
            })
            .collect();
            Some(BreakdownTable {
                by: by.as_str().to_string(),
                groups,
            })
        }
        _ => None,
    };

    let tiers = if request.tiers.is_empty() {
        Tier::ALL.iter().map(|t| t.as_str().to_string()).collect()
    } else {
        request
            .tiers
            .iter()
            .map(|t| t.as_str().to_string())
            .collect()
    };
    let named = |id, path: &String| Named {
        id,
        path: path.clone(),
    };
    Ok(Report {
        selection: SelectionEcho {
            from: request.from.to_string(),
            to: request.to.to_string(),
            days: range.days(),
            interval: request.interval,
            tiers,
            query: request.query.clone(),
            service: request.services.clone(),
            team: request.teams.clone(),
            env: request.envs.clone(),
            project: project.map(|p| named(p.id, &p.path)),
            group: group.map(|g| named(g.id, &g.path)),
            failure_window_seconds: seconds(failure_window),
        },
        totals: (&totals).into(),
        series,
        breakdown,
        levels: ReportLevels::new(&levels::assess(request.year, &totals), LEVEL_RULE),
    })
}
