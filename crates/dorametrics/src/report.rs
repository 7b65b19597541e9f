//! `dorametrics report`: the DORA keys and their performance levels for a selection, as a
//! terminal table, JSON or CSV — from a running server (`--url`, through `GET /api/v1/metrics`)
//! or straight from a database (`--database`, through the same `dora_engine::report` code).
//! The flags become the endpoint's query parameters either way, so both refuse the same input.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dora_engine::report::{self, ReportError};
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
async fn local(args: &ReportArgs) -> Result<Value> {
    let today = dora_core::metrics::day_of(dora_core::time::now());
    let request = report::parse(&args.pairs(), today).map_err(explain)?;
    let store = crate::open_store(&args.db.database, crate::Access::Existing).await?;
    let window =
        i64::try_from(args.failure_window.as_nanos()).context("--failure-window is too long")?;
    let refresher = dora_engine::derivation::Refresher::default();
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
) -> Result<Value> {
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
        return Ok(body);
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

fn percent(rate: &Value) -> String {
    rate.as_f64()
        .map_or("–".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn median(distribution: &Value) -> String {
    distribution["median"]
        .as_f64()
        .map_or("–".to_string(), duration)
}

fn spread(distribution: &Value) -> String {
    let Some(median) = distribution["median"].as_f64() else {
        return "no data".to_string();
    };
    let part = |name: &str| {
        distribution[name]
            .as_f64()
            .map_or("–".to_string(), duration)
    };
    format!(
        "median {}, p75 {}, p90 {} (n={})",
        duration(median),
        part("p75"),
        part("p90"),
        distribution["count"]
    )
}

fn level(rating: &Value) -> String {
    rating["level"].as_str().unwrap_or("").to_string()
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows of cells, left-aligned to the widest cell of each column.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn table(report: &Value) -> String {
    let selection = &report["selection"];
    let totals = &report["totals"];
    let levels = &report["levels"];
    let mut out = format!(
        "DORA metrics {} .. {} ({} days), tiers: {}\n",
        text(&selection["from"]),
        text(&selection["to"]),
        selection["days"],
        selection["tiers"]
            .as_array()
            .map(|t| t.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    let mut narrowed = Vec::new();
    for key in ["service", "team", "env"] {
        if let Some(values) = selection[key].as_array().filter(|v| !v.is_empty()) {
            let names: Vec<String> = values.iter().map(text).collect();
            narrowed.push(format!("{key} {}", names.join(" | ")));
        }
    }
    for key in ["project", "group"] {
        if let Some(path) = selection[key]["path"].as_str() {
            narrowed.push(format!("{key} {path}"));
        }
    }
    if let Some(query) = selection["query"].as_str() {
        narrowed.push(format!("query {query:?}"));
    }
    if !narrowed.is_empty() {
        let _ = writeln!(out, "Selection: {}", narrowed.join(", "));
    }
    let _ = writeln!(
        out,
        "Levels: DORA {} bands ({})\n",
        levels["year"],
        text(&levels["source"])
    );
    let deployments = totals["deployments"].as_u64().unwrap_or(0);
    let restore_measure = levels["restore"]["measure"].as_str();
    let restore_level = |measure: &str| {
        if restore_measure == Some(measure) {
            level(&levels["restore"])
        } else {
            String::new()
        }
    };
    let rows = vec![
        vec!["Key".into(), "Value".into(), "Level".into()],
        vec![
            "Deployment frequency".into(),
            format!(
                "{:.2} per day ({deployments} deployments)",
                totals["deployments_per_day"].as_f64().unwrap_or(0.0)
            ),
            level(&levels["deployment_frequency"]),
        ],
        vec![
            "Lead time for changes".into(),
            spread(&totals["lead_time_seconds"]),
            level(&levels["lead_time"]),
        ],
        vec![
            "  from merge".into(),
            spread(&totals["merge_lead_time_seconds"]),
            String::new(),
        ],
        vec![
            "Change failure rate".into(),
            format!(
                "{} ({} of {deployments})",
                percent(&totals["change_failure_rate"]),
                totals["failed_deployments"]
            ),
            level(&levels["change_failure_rate"]),
        ],
        vec![
            "Failed deployment recovery time".into(),
            spread(&totals["failed_deployment_recovery_time_seconds"]),
            restore_level("failed_deployment_recovery_time"),
        ],
        vec![
            "Time to restore service".into(),
            spread(&totals["time_to_restore_seconds"]),
            restore_level("time_to_restore"),
        ],
        vec![
            "Rework rate".into(),
            format!(
                "{} ({} of {deployments})",
                percent(&totals["rework_rate"]),
                totals["rework_deployments"]
            ),
            String::new(),
        ],
        vec![
            "Overall".into(),
            String::new(),
            levels["overall"].as_str().unwrap_or("–").to_string(),
        ],
    ];
    out.push_str(&aligned(&rows));

    if let Some(series) = report["series"].as_array().filter(|s| s.len() > 1) {
        let _ = writeln!(
            out,
            "\n{} series",
            capitalised(&text(&selection["interval"]))
        );
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
        for bucket in series {
            rows.push(vec![
                text(&bucket["date"]),
                text(&bucket["deployments"]),
                format!(
                    "{:.2}",
                    bucket["deployments_per_day"].as_f64().unwrap_or(0.0)
                ),
                percent(&bucket["change_failure_rate"]),
                median(&bucket["lead_time_seconds"]),
                median(&bucket["failed_deployment_recovery_time_seconds"]),
                median(&bucket["time_to_restore_seconds"]),
            ]);
        }
        out.push_str(&aligned(&rows));
    }

    if let Some(groups) = report["breakdown"]["groups"].as_array() {
        let by = text(&report["breakdown"]["by"]);
        let _ = writeln!(out, "\nBy {by}");
        let mut rows = vec![[
            capitalised(&by).as_str(),
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
        for group in groups {
            let totals = &group["totals"];
            rows.push(vec![
                group["key"].as_str().unwrap_or("(none)").to_string(),
                text(&totals["deployments"]),
                format!(
                    "{:.2}",
                    totals["deployments_per_day"].as_f64().unwrap_or(0.0)
                ),
                percent(&totals["change_failure_rate"]),
                median(&totals["lead_time_seconds"]),
                median(&totals["failed_deployment_recovery_time_seconds"]),
                median(&totals["time_to_restore_seconds"]),
                group["levels"]["overall"]
                    .as_str()
                    .unwrap_or("–")
                    .to_string(),
            ]);
        }
        out.push_str(&aligned(&rows));
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

fn csv_row(scope: &str, key: &str, from: &str, to: &str, values: &Value, levels: &Value) -> String {
    let cells = [
        scope.to_string(),
        key.to_string(),
        from.to_string(),
        to.to_string(),
        text(&values["deployments"]),
        text(&values["deployments_per_day"]),
        text(&values["failed_deployments"]),
        text(&values["change_failure_rate"]),
        text(&values["rework_deployments"]),
        text(&values["rework_rate"]),
        text(&values["lead_time_seconds"]["median"]),
        text(&values["lead_time_seconds"]["p75"]),
        text(&values["lead_time_seconds"]["p90"]),
        text(&values["merge_lead_time_seconds"]["median"]),
        text(&values["failed_deployment_recovery_time_seconds"]["median"]),
        text(&values["time_to_restore_seconds"]["median"]),
        text(&levels["deployment_frequency"]["level"]),
        text(&levels["lead_time"]["level"]),
        text(&levels["change_failure_rate"]["level"]),
        text(&levels["restore"]["level"]),
        text(&levels["overall"]),
    ];
    let cells: Vec<String> = cells.iter().map(|c| field(c)).collect();
    format!("{}\n", cells.join(","))
}

fn csv(report: &Value) -> String {
    let selection = &report["selection"];
    let (from, to) = (text(&selection["from"]), text(&selection["to"]));
    let mut out = format!("{}\n", CSV_HEADER.join(","));
    out.push_str(&csv_row(
        "total",
        "",
        &from,
        &to,
        &report["totals"],
        &report["levels"],
    ));
    for bucket in report["series"].as_array().into_iter().flatten() {
        out.push_str(&csv_row(
            "series",
            &text(&bucket["date"]),
            &text(&bucket["from"]),
            &text(&bucket["to"]),
            bucket,
            &Value::Null,
        ));
    }
    let by = text(&report["breakdown"]["by"]);
    for group in report["breakdown"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&csv_row(
            &by,
            &text(&group["key"]),
            &from,
            &to,
            &group["totals"],
            &group["levels"],
        ));
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
