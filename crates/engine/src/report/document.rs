//! The report as a document: what `GET /api/v1/metrics` serialises and `dorametrics report` and
//! the benchmark read back. One type on both sides, so renaming a field breaks the build rather
//! than a table.

use std::collections::BTreeMap;

use dora_core::levels::{self, Assessment, Key, Level, Rating, RestoreMeasure};
use dora_core::metrics::{Distribution, Interval, Values};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub selection: SelectionEcho,
    /// The keys over the whole range.
    pub totals: Keys,
    /// One entry per bucket of the interval, every bucket present.
    pub series: Vec<SeriesBucket>,
    /// The keys of each group, when a breakdown was asked for.
    pub breakdown: Option<BreakdownTable>,
    pub levels: ReportLevels,
}

/// The selection as it was understood: defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SelectionEcho {
    /// First day, inclusive (YYYY-MM-DD).
    pub from: String,
    /// Last day, inclusive.
    pub to: String,
    pub days: i64,
    #[schema(value_type = String, example = "weekly")]
    pub interval: Interval,
    pub tiers: Vec<String>,
    pub query: Option<String>,
    pub service: Vec<String>,
    pub team: Vec<String>,
    pub env: Vec<String>,
    pub project: Option<Named>,
    pub group: Option<Named>,
    pub failure_window_seconds: f64,
}

/// A project or group: its numeric id and its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Named {
    pub id: i64,
    pub path: String,
}

/// Every key of one bucket (or of the whole range); durations in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Keys {
    pub deployments: u64,
    pub deployments_per_day: f64,
    pub failed_deployments: u64,
    /// Failed ÷ deployments; null without deployments.
    pub change_failure_rate: Option<f64>,
    pub rework_deployments: u64,
    pub rework_rate: Option<f64>,
    pub lead_time_seconds: Spread,
    pub merge_lead_time_seconds: Spread,
    pub time_to_restore_seconds: Spread,
    pub failed_deployment_recovery_time_seconds: Spread,
}

/// Exact quantiles of a set of durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Spread {
    pub count: usize,
    pub median: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesBucket {
    /// The bucket's label (its first day, or the month's first day).
    pub date: String,
    /// The bucket's days inside the range, inclusive.
    pub from: String,
    pub to: String,
    pub days: i64,
    #[serde(flatten)]
    pub keys: Keys,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BreakdownTable {
    /// service, team, env or project.
    pub by: String,
    pub groups: Vec<BreakdownGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BreakdownGroup {
    /// The group's value; null for deployments without one.
    pub key: Option<String>,
    pub totals: Keys,
    pub levels: KeyLevels,
}

/// The level of each key and of the whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyLevels {
    #[schema(value_type = Option<String>, example = "high")]
    pub overall: Option<Level>,
    pub deployment_frequency: Option<KeyRating>,
    pub lead_time: Option<KeyRating>,
    pub change_failure_rate: Option<KeyRating>,
    pub restore: Option<RestoreRating>,
}

/// One key's level: the value classified, the band that holds it and the report's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyRating {
    #[schema(value_type = String, example = "elite")]
    pub level: Level,
    pub value: f64,
    pub band: String,
    pub published_band: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreRating {
    #[serde(flatten)]
    pub rating: KeyRating,
    /// time_to_restore or failed_deployment_recovery_time: the duration that was classified.
    #[schema(value_type = String)]
    pub measure: RestoreMeasure,
}

/// The levels of the totals, with the rule and every band, for legends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportLevels {
    #[serde(flatten)]
    pub keys: KeyLevels,
    pub year: u16,
    pub source: String,
    pub rule: String,
    /// Per key, per level: the values that level is given.
    pub bands: BTreeMap<String, BTreeMap<String, String>>,
    /// Per key, per level: the report's own words.
    pub published_bands: BTreeMap<String, BTreeMap<String, String>>,
}

impl From<&Distribution> for Spread {
    fn from(d: &Distribution) -> Self {
        Self {
            count: d.count,
            median: d.median,
            p75: d.p75,
            p90: d.p90,
        }
    }
}

impl From<&Values> for Keys {
    fn from(v: &Values) -> Self {
        Self {
            deployments: v.deployments,
            deployments_per_day: v.deployments_per_day,
            failed_deployments: v.failed_deployments,
            change_failure_rate: v.change_failure_rate,
            rework_deployments: v.rework_deployments,
            rework_rate: v.rework_rate,
            lead_time_seconds: (&v.lead_time).into(),
            merge_lead_time_seconds: (&v.merge_lead_time).into(),
            time_to_restore_seconds: (&v.time_to_restore).into(),
            failed_deployment_recovery_time_seconds: (&v.recovery_time).into(),
        }
    }
}

impl From<&Rating> for KeyRating {
    fn from(r: &Rating) -> Self {
        Self {
            level: r.level,
            value: r.value,
            band: r.band.clone(),
            published_band: r.published.to_string(),
        }
    }
}

impl From<&Assessment> for KeyLevels {
    fn from(a: &Assessment) -> Self {
        Self {
            overall: a.overall,
            deployment_frequency: a.deployment_frequency.as_ref().map(KeyRating::from),
            lead_time: a.lead_time.as_ref().map(KeyRating::from),
            change_failure_rate: a.change_failure_rate.as_ref().map(KeyRating::from),
            restore: a.restore.as_ref().map(|(rating, measure)| RestoreRating {
                rating: rating.into(),
                measure: *measure,
            }),
        }
    }
}

impl ReportLevels {
    pub fn new(assessment: &Assessment, rule: &str) -> Self {
        let year = assessment.year;
        let (mut bands, mut published_bands) = (BTreeMap::new(), BTreeMap::new());
        for key in Key::ALL {
            let (mut texts, mut words) = (BTreeMap::new(), BTreeMap::new());
            for band in levels::bands(year, key) {
                texts.insert(band.level.as_str().to_string(), band.text);
                words.insert(band.level.as_str().to_string(), band.published.to_string());
            }
            bands.insert(key.as_str().to_string(), texts);
            published_bands.insert(key.as_str().to_string(), words);
        }
        Self {
            keys: assessment.into(),
            year: year.number(),
            source: year.source().to_string(),
            rule: rule.to_string(),
            bands,
            published_bands,
        }
    }
}

impl KeyLevels {
    /// The restore level, when `measure` is the duration that was classified.
    pub fn restore_by(&self, measure: RestoreMeasure) -> Option<Level> {
        self.restore
            .as_ref()
            .filter(|r| r.measure == measure)
            .map(|r| r.rating.level)
    }
}
