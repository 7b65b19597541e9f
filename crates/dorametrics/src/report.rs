//! `dorametrics report`: the DORA keys and their performance levels for a selection, as a
//! terminal table, JSON or CSV — from a running server (`--url`, through `GET /api/v1/metrics`)
//! or straight from a database (`--database`, through the same `dora_engine::report` code).
//! The flags become the endpoint's query parameters either way, so both refuse the same input.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dora_core::levels::RestoreMeasure;
use dora_engine::derivation;
use dora_engine::report::{self, KeyLevels, KeyRating, Keys, Report, ReportError, Spread};
use serde_json::Value;

use crate::DatabaseArg;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table: the keys with their levels, the series, the breakdown.
    Table,
    /// The report document, as `GET /api/v1/metrics` answers it.
    Json,
    /// One row for the totals, one per series bucket and one per breakdown group.
    Csv,
}

#[derive(Args)]
pub struct ReportArgs {
    /// First day, inclusive (YYYY-MM-DD, UTC). Default: three months before --to.
    #[arg(long)]
    from: Option<String>,
    /// Last day, inclusive (YYYY-MM-DD, UTC). Default: today.
    #[arg(long)]
    to: Option<String>,
    /// Series buckets: daily, weekly (the default), monthly or all.
    #[arg(long)]
    interval: Option<String>,
    /// Only these services (repeatable).
    #[arg(long)]
    service: Vec<String>,
    /// Only these teams (repeatable).
    #[arg(long)]
    team: Vec<String>,
    /// Only these environments (repeatable).
    #[arg(long)]
    env: Vec<String>,
    /// Environment tiers (repeatable or comma-separated; `all` for every tier). Default:
    /// production.
    #[arg(long = "tier")]
    tiers: Vec<String>,
    /// Only this project: a path (acme/shop) or its numeric id.
    #[arg(long)]
    project: Option<String>,
    /// Only projects inside this group: a path (acme) or its numeric id.
    #[arg(long)]
    group: Option<String>,
    /// Only deployments matching this query, e.g. 'service:(shop OR api) -version:beta'.
    #[arg(long)]
    query: Option<String>,
    /// The DORA report whose bands decide the levels: 2019, 2021, 2023 or 2024 (the default).
    #[arg(long)]
    year: Option<String>,
    /// Also break the keys down by service, team, env or project.
    #[arg(long)]
    breakdown: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    db: DatabaseArg,
    /// Ask the dorametrics server at this URL (http://127.0.0.1:8080, https://dora.example.com)
    /// instead of reading a
    /// database (it takes precedence over --database); the token (dora_metrics_read scope) is
    /// read from DORA_TOKEN.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    ca: crate::remote::CaCertArg,
    /// With --database: the failure window the server would use (`serve --failure-window`).
    #[arg(long, env = "DORA_FAILURE_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    failure_window: Duration,
}

impl ReportArgs {
    /// The flags as the endpoint's query parameters.
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut push = |key: &str, value: &str| pairs.push((key.to_string(), value.to_string()));
        for (key, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("interval", &self.interval),
            ("project", &self.project),
            ("group", &self.group),
            ("query", &self.query),
            ("year", &self.year),
            ("breakdown", &self.breakdown),
        ] {
            if let Some(value) = value {
                push(key, value);
            }
        }
        for (key, values) in [
            ("service", &self.service),
            ("team", &self.team),
            ("env", &self.env),
            ("tiers", &self.tiers),
        ] {
            for value in values {
                push(key, value);
            }
        }
        pairs
    }
}

/// The flag a report parameter came from.
fn flag(parameter: &str) -> String {
    match parameter.trim_end_matches("[]") {
        "tiers" => "--tier".to_string(),
        other => format!("--{other}"),
    }
}

pub async fn run(args: ReportArgs) -> Result<()> {
    let document = match &args.url {
        Some(url) => fetch(url, args.ca.ca_cert.as_deref(), &args.pairs()).await?,
        None => local(&args).await?,
    };
    let output = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&document)?),
        Format::Csv => csv(&document),
        Format::Table => table(&document),
    };
    print!("{output}");
    Ok(())
}

/// The report from a database, through the code the endpoint runs.
async fn local(args: &ReportArgs) -> Result<Report> {
    let today = dora_core::metrics::day_of(dora_core::time::now());
    let request = report::parse(&args.pairs(), today).map_err(explain)?;
    let store = crate::open_store(&args.db.database, crate::Access::Existing).await?;
    let window =
        i64::try_from(args.failure_window.as_nanos()).context("--failure-window is too long")?;
    // The stored facts hold verdicts of one window: another would need every stream derived
    // again, under the feet of a server that uses the stored one.
    if let Some(stored) = derivation::other_window(store.as_ref(), window).await? {
        let text = |nanos: i64| {
            humantime::format_duration(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
        };
        bail!(
            "--failure-window {}: the facts in this database were derived with a failure window \
             of {}; pass --failure-window {} (the server's), or start `dorametrics serve \
             --failure-window {}` once to derive them again with the new one",
            text(window),
            text(stored),
            text(stored),
            text(window)
        );
    }
    derivation::settle_window(store.as_ref(), window).await?;
    let refresher = derivation::Refresher::default();
    report::run(store.as_ref(), &request, window, &refresher)
        .await
        .map_err(explain)
}

fn explain(error: ReportError) -> anyhow::Error {
    match error {
        ReportError::BadParameter { parameter, detail } => {
            anyhow::anyhow!("{}: {detail}", flag(&parameter))
        }
        other => other.into(),
    }
}

/// The report from a running server.
async fn fetch(
    url: &str,
    ca_cert: Option<&std::path::Path>,
    pairs: &[(String, String)],
) -> Result<Report> {
    let token = std::env::var("DORA_TOKEN")
        .context("--url needs a token with the dora_metrics_read scope in DORA_TOKEN")?;
    let endpoint = format!("{}/api/v1/metrics", url.trim_end_matches('/'));
    let response = crate::remote::client(ca_cert)?
        .get(&endpoint)
        .query(pairs)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{endpoint} answered {status} without JSON"))?;
    if status.is_success() {
        return serde_json::from_value(body)
            .with_context(|| format!("{endpoint} answered a report this version cannot read"));
    }
    let error = &body["errors"][0];
    match (
        error["source"]["parameter"].as_str(),
        error["detail"].as_str(),
    ) {
        (Some(parameter), Some(detail)) => bail!("{}: {detail}", flag(parameter)),
        _ => bail!(
            "the server answered {status}: {}",
            error.as_str().unwrap_or("no detail")
        ),
    }
}

/// A duration in seconds, the way people say it: `45s`, `12m 5s`, `5h 12m`, `3d 4h`.
fn duration(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("–".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn median(spread: &Spread) -> String {
    spread.median.map_or("–".to_string(), duration)
}

fn spread(spread: &Spread) -> String {
    let Some(median) = spread.median else {
        return "no data".to_string();
    };
    let part = |value: Option<f64>| value.map_or("–".to_string(), duration);
    format!(
        "median {}, p75 {}, p90 {} (n={})",
        duration(median),
        part(spread.p75),
        part(spread.p90),
        spread.count
    )
}

fn level(rating: Option<&KeyRating>) -> String {
    rating.map_or(String::new(), |r| r.level.to_string())
}

fn overall(levels: &KeyLevels) -> String {
    levels.overall.map_or("–".to_string(), |l| l.to_string())
}

/// An optional value as a CSV cell: empty when absent.
fn cell<T: ToString>(value: Option<T>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// A figure as a CSV cell, written as the JSON report writes it (`1.0`, not `1`).
fn figure(value: Option<f64>) -> String {
    cell(value.and_then(serde_json::Number::from_f64))
}

fn table(report: &Report) -> String {
    let selection = &report.selection;
    let totals = &report.totals;
    let levels = &report.levels.keys;
    let mut out = format!(
        "DORA metrics {} .. {} ({} days), tiers: {}\n",
        selection.from,
        selection.to,
        selection.days,
        selection.tiers.join(", ")
    );
    let mut narrowed = Vec::new();
    for (key, values) in [
        ("service", &selection.service),
        ("team", &selection.team),
        ("env", &selection.env),
    ] {
        if !values.is_empty() {
            narrowed.push(format!("{key} {}", values.join(" | ")));
        }
    }
    for (key, named) in [("project", &selection.project), ("group", &selection.group)] {
        if let Some(named) = named {
            narrowed.push(format!("{key} {}", named.path));
        }
    }
    if let Some(query) = &selection.query {
        narrowed.push(format!("query {query:?}"));
    }
    if !narrowed.is_empty() {
        let _ = writeln!(out, "Selection: {}", narrowed.join(", "));
    }
    let _ = writeln!(
        out,
        "Levels: DORA {} bands ({})\n",
        report.levels.year, report.levels.source
    );
    let deployments = totals.deployments;
    let restore_level =
        |measure: RestoreMeasure| cell(levels.restore_by(measure).map(|l| l.to_string()));
    let rows = vec![
        vec!["Key".into(), "Value".into(), "Level".into()],
        vec![
            "Deployment frequency".into(),
            format!(
                "{:.2} per day ({deployments} deployments)",
                totals.deployments_per_day
            ),
            level(levels.deployment_frequency.as_ref()),
        ],
        vec![
            "Lead time for changes".into(),
            spread(&totals.lead_time_seconds),
            level(levels.lead_time.as_ref()),
        ],
        vec![
            "  from merge".into(),
            spread(&totals.merge_lead_time_seconds),
            String::new(),
        ],
        vec![
            "Change failure rate".into(),
            format!(
                "{} ({} of {deployments})",
                percent(totals.change_failure_rate),
                totals.failed_deployments
            ),
            level(levels.change_failure_rate.as_ref()),
        ],
        vec![
            "Failed deployment recovery time".into(),
            spread(&totals.failed_deployment_recovery_time_seconds),
            restore_level(RestoreMeasure::FailedDeploymentRecoveryTime),
        ],
        vec![
            "Time to restore service".into(),
            spread(&totals.time_to_restore_seconds),
            restore_level(RestoreMeasure::TimeToRestore),
        ],
        vec![
            "Rework rate".into(),
            format!(
                "{} ({} of {deployments})",
                percent(totals.rework_rate),
                totals.rework_deployments
            ),
            String::new(),
        ],
        vec!["Overall".into(), String::new(), overall(levels)],
    ];
    out.push_str(&crate::table::aligned(&rows));

    if report.series.len() > 1 {
        let _ = writeln!(out, "\n{} series", capitalised(selection.interval.as_str()));
        let mut rows = vec![[
            "Period",
            "Deploys",
            "Per day",
            "CFR",
            "Lead time",
            "Recovery",
            "Restore",
        ]
        .map(String::from)
        .to_vec()];
        for bucket in &report.series {
            let keys = &bucket.keys;
            rows.push(vec![
                bucket.date.clone(),
                keys.deployments.to_string(),
                format!("{:.2}", keys.deployments_per_day),
                percent(keys.change_failure_rate),
                median(&keys.lead_time_seconds),
                median(&keys.failed_deployment_recovery_time_seconds),
                median(&keys.time_to_restore_seconds),
            ]);
        }
        out.push_str(&crate::table::aligned(&rows));
    }

    if let Some(breakdown) = &report.breakdown {
        let _ = writeln!(out, "\nBy {}", breakdown.by);
        let mut rows = vec![[
            capitalised(&breakdown.by).as_str(),
            "Deploys",
            "Per day",
            "CFR",
            "Lead time",
            "Recovery",
            "Restore",
            "Overall",
        ]
        .map(String::from)
        .to_vec()];
        for group in &breakdown.groups {
            let totals = &group.totals;
            rows.push(vec![
                group.key.clone().unwrap_or_else(|| "(none)".to_string()),
                totals.deployments.to_string(),
                format!("{:.2}", totals.deployments_per_day),
                percent(totals.change_failure_rate),
                median(&totals.lead_time_seconds),
                median(&totals.failed_deployment_recovery_time_seconds),
                median(&totals.time_to_restore_seconds),
                overall(&group.levels),
            ]);
        }
        out.push_str(&crate::table::aligned(&rows));
    }
    out
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

const CSV_HEADER: [&str; 21] = [
    "scope",
    "key",
    "from",
    "to",
    "deployments",
    "deployments_per_day",
    "failed_deployments",
    "change_failure_rate",
    "rework_deployments",
    "rework_rate",
    "lead_time_median_seconds",
    "lead_time_p75_seconds",
    "lead_time_p90_seconds",
    "merge_lead_time_median_seconds",
    "failed_deployment_recovery_time_median_seconds",
    "time_to_restore_median_seconds",
    "level_deployment_frequency",
    "level_lead_time",
    "level_change_failure_rate",
    "level_restore",
    "level_overall",
];

/// A CSV field, quoted when it must be (RFC 4180).
fn field(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

fn csv_row(
    scope: &str,
    key: &str,
    from: &str,
    to: &str,
    values: &Keys,
    levels: Option<&KeyLevels>,
) -> String {
    let rating =
        |pick: fn(&KeyLevels) -> Option<&KeyRating>| cell(levels.and_then(pick).map(|r| r.level));
    let cells = [
        scope.to_string(),
        key.to_string(),
        from.to_string(),
        to.to_string(),
        values.deployments.to_string(),
        figure(Some(values.deployments_per_day)),
        values.failed_deployments.to_string(),
        figure(values.change_failure_rate),
        values.rework_deployments.to_string(),
        figure(values.rework_rate),
        figure(values.lead_time_seconds.median),
        figure(values.lead_time_seconds.p75),
        figure(values.lead_time_seconds.p90),
        figure(values.merge_lead_time_seconds.median),
        figure(values.failed_deployment_recovery_time_seconds.median),
        figure(values.time_to_restore_seconds.median),
        rating(|l| l.deployment_frequency.as_ref()),
        rating(|l| l.lead_time.as_ref()),
        rating(|l| l.change_failure_rate.as_ref()),
        rating(|l| l.restore.as_ref().map(|r| &r.rating)),
        cell(levels.and_then(|l| l.overall)),
    ];
    let cells: Vec<String> = cells.iter().map(|c| field(c)).collect();
    format!("{}\n", cells.join(","))
}

fn csv(report: &Report) -> String {
    let (from, to) = (&report.selection.from, &report.selection.to);
    let mut out = format!("{}\n", CSV_HEADER.join(","));
    out.push_str(&csv_row(
        "total",
        "",
        from,
        to,
        &report.totals,
        Some(&report.levels.keys),
    ));
    for bucket in &report.series {
        out.push_str(&csv_row(
            "series",
            &bucket.date,
            &bucket.from,
            &bucket.to,
            &bucket.keys,
            None,
        ));
    }
    if let Some(breakdown) = &report.breakdown {
        for group in &breakdown.groups {
            out.push_str(&csv_row(
                &breakdown.by,
                group.key.as_deref().unwrap_or(""),
                from,
                to,
                &group.totals,
                Some(&group.levels),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration(45.2), "45s");
        assert_eq!(duration(725.0), "12m 5s");
        assert_eq!(duration(5.0 * 3600.0 + 12.0 * 60.0 + 40.0), "5h 12m");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d 4h");
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(field("shop"), "shop");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn flags_name_parameters() {
        assert_eq!(flag("tiers"), "--tier");
        assert_eq!(flag("tiers[]"), "--tier");
        assert_eq!(flag("year"), "--year");
    }
}
