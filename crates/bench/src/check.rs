//! Whether dorametrics and a baseline gave the same answer: the benchmark times nothing that
//! does not agree. Each function returns the disagreements, empty when they agree.

use std::collections::BTreeMap;

use dora_engine::report::{Keys, Report};
use serde_json::Value;

use super::baseline::QueryResult;

/// Equal up to float rounding: both sides take exact quantiles, but of seconds held as
/// nanoseconds on one side and as numeric or double on the other.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

fn same(actual: Option<f64>, expected: Option<f64>) -> bool {
    match (actual, expected) {
        (None, None) => true,
        (Some(a), Some(e)) => close(a, e),
        _ => false,
    }
}

fn show(value: Option<f64>) -> String {
    value.map_or("null".into(), |v| v.to_string())
}

/// `2025-06-27T22:31:37Z` and `2025-06-27 22:31:37` alike.
fn instant(text: &str) -> String {
    text.replace('T', " ").chars().take(19).collect()
}

fn text(value: Option<&&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// At most this many disagreements are listed per query.
const SHOWN: usize = 10;

fn empty_baseline(base: &QueryResult) -> Vec<String> {
    if base.rows.is_empty() {
        vec!["the baseline returned no rows: nothing would be compared".into()]
    } else {
        Vec::new()
    }
}

/// The list answer (`{"data": [{"id", "attributes": {"finished_at"}}]}`) against `id, finished`
/// rows: the same finish times in the same order, and the same ids except among the rows
/// tied on the last finish time, where either may cut the list differently.
pub fn list(dora: &Value, base: &QueryResult) -> Vec<String> {
    let mut problems = empty_baseline(base);
    let ours: Vec<(String, String)> = dora["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    (
                        instant(item["attributes"]["finished_at"].as_str().unwrap_or("")),
                        item["id"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let theirs: Vec<(String, String)> = base
        .records()
        .iter()
        .map(|r| (instant(&text(r.get("finished"))), text(r.get("id"))))
        .collect();
    if ours.len() != theirs.len() {
        problems.push(format!(
            "{} deployments listed, the baseline lists {}",
            ours.len(),
            theirs.len()
        ));
    }
    let cutoff = theirs.last().map(|(at, _)| at.clone()).unwrap_or_default();
    let before_cut = |rows: &[(String, String)]| {
        let mut kept: Vec<(String, String)> = rows
            .iter()
            .filter(|(at, _)| *at != cutoff)
            .cloned()
            .collect();
        kept.sort();
        kept
    };
    let (a, b) = (before_cut(&ours), before_cut(&theirs));
    for (i, (x, y)) in ours.iter().zip(&theirs).enumerate() {
        if x.0 != y.0 {
            problems.push(format!(
                "row {i}: finished_at {} but the baseline has {}",
                x.0, y.0
            ));
        }
    }
    if a != b {
        problems.push("the listed ids differ from the baseline's".into());
    }
    problems.truncate(SHOWN);
    problems
}

/// A GitLab series (`[{"date", "value"}]`) against rows keyed by their first column, reading
/// `column`; a bucket the baseline has no row for must be `missing` (0 for counts, null for
/// medians).
pub fn gitlab_series(
    dora: &Value,
    base: &QueryResult,
    column: &str,
    missing: Option<f64>,
) -> Vec<String> {
    let mut problems = empty_baseline(base);
    let key = base.columns.first().cloned().unwrap_or_default();
    let mut expected: BTreeMap<String, Option<f64>> = base
        .records()
        .iter()
        .map(|r| {
            (
                text(r.get(key.as_str())),
                r.get(column).and_then(|v| v.as_f64()),
            )
        })
        .collect();
    for entry in dora.as_array().map(Vec::as_slice).unwrap_or_default() {
        let date = entry["date"].as_str().unwrap_or("").to_string();
        let actual = entry["value"].as_f64();
        let wanted = expected.remove(&date).unwrap_or(missing);
        if !same(actual, wanted) {
            problems.push(format!(
                "{date}: {} but the baseline computes {}",
                show(actual),
                show(wanted)
            ));
        }
    }
    for date in expected.keys() {
        problems.push(format!("{date}: missing, the baseline has a value"));
    }
    problems.truncate(SHOWN);
    problems
}

/// A figure of the native API's keys.
type Figure = fn(&Keys) -> Option<f64>;

/// The native API's keys (read from the typed report) and the baseline's column for each, with
/// the value of a bucket the baseline has no row for.
const NATIVE_KEYS: [(&str, Figure, &str, Option<f64>); 13] = [
    (
        "deployments",
        |k| Some(k.deployments as f64),
        "deployments",
        Some(0.0),
    ),
    (
        "deployments_per_day",
        |k| Some(k.deployments_per_day),
        "deployments_per_day",
        Some(0.0),
    ),
    (
        "failed_deployments",
        |k| Some(k.failed_deployments as f64),
        "failed_deployments",
        Some(0.0),
    ),
    (
        "change_failure_rate",
        |k| k.change_failure_rate,
        "change_failure_rate",
        None,
    ),
    (
        "rework_deployments",
        |k| Some(k.rework_deployments as f64),
        "rework_deployments",
        Some(0.0),
    ),
    ("rework_rate", |k| k.rework_rate, "rework_rate", None),
    (
        "lead_time_seconds.count",
        |k| Some(k.lead_time_seconds.count as f64),
        "lead_time_count",
        Some(0.0),
    ),
    (
        "lead_time_seconds.median",
        |k| k.lead_time_seconds.median,
        "lead_time_median",
        None,
    ),
    (
        "lead_time_seconds.p75",
        |k| k.lead_time_seconds.p75,
        "lead_time_p75",
        None,
    ),
    (
        "lead_time_seconds.p90",
        |k| k.lead_time_seconds.p90,
        "lead_time_p90",
        None,
    ),
    (
        "merge_lead_time_seconds.median",
        |k| k.merge_lead_time_seconds.median,
        "merge_lead_time_median",
        None,
    ),
    (
        "time_to_restore_seconds.median",
        |k| k.time_to_restore_seconds.median,
        "time_to_restore_median",
        None,
    ),
    (
        "failed_deployment_recovery_time_seconds.median",
        |k| k.failed_deployment_recovery_time_seconds.median,
        "recovery_time_median",
        None,
    ),
];

/// `GET /api/v1/metrics` series (the typed report) against the `team_weekly` rows keyed by
/// `week`.
pub fn native_series(dora: &Value, base: &QueryResult) -> Vec<String> {
    let mut problems = empty_baseline(base);
    let report: Report = match serde_json::from_value(dora.clone()) {
        Ok(report) => report,
        Err(error) => return vec![format!("the answer is not a report: {error}")],
    };
    let records = base.records();
    let mut by_week: BTreeMap<String, &BTreeMap<&str, &Value>> =
        records.iter().map(|r| (text(r.get("week")), r)).collect();
    if report.series.is_empty() {
        problems.push("the answer has no series".into());
    }
    for entry in &report.series {
        let row = by_week.remove(&entry.date);
        for (path, figure, column, missing) in NATIVE_KEYS {
            let actual = figure(&entry.keys);
            let wanted = match row {
                Some(row) => row.get(column).and_then(|v| v.as_f64()),
                None => missing,
            };
            if !same(actual, wanted) {
                problems.push(format!(
                    "week of {}, {path}: {} but the baseline computes {}",
                    entry.date,
                    show(actual),
                    show(wanted)
                ));
            }
        }
    }
    for week in by_week.keys() {
        problems.push(format!("week of {week}: missing, the baseline has values"));
    }
    problems.truncate(SHOWN);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(columns: &[&str], rows: Vec<Vec<Value>>) -> QueryResult {
        QueryResult {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            seconds: vec![],
        }
    }

    #[test]
    fn series_agree_up_to_rounding_and_missing_buckets() {
        let base = result(
            &["day", "median_seconds"],
            vec![vec![json!("2025-01-02"), json!(10.5)]],
        );
        let dora = json!([{"date": "2025-01-01", "value": null}, {"date": "2025-01-02", "value": 10.500000001}]);
        assert!(gitlab_series(&dora, &base, "median_seconds", None).is_empty());
        let wrong =
            json!([{"date": "2025-01-01", "value": 3.0}, {"date": "2025-01-02", "value": 11.0}]);
        assert_eq!(
            gitlab_series(&wrong, &base, "median_seconds", None).len(),
            2
        );
        let short = json!([{"date": "2025-01-01", "value": null}]);
        assert_eq!(
            gitlab_series(&short, &base, "median_seconds", None).len(),
            1
        );
    }

    #[test]
    fn lists_may_differ_only_among_ties_at_the_cut() {
        let base = result(
            &["id", "finished"],
            vec![
                vec![json!("b"), json!("2025-01-02 00:00:00")],
                vec![json!("a"), json!("2025-01-01 00:00:00")],
            ],
        );
        let dora = json!({"data": [
            {"id": "b", "attributes": {"finished_at": "2025-01-02T00:00:00Z"}},
            {"id": "c", "attributes": {"finished_at": "2025-01-01T00:00:00Z"}}]});
        assert!(list(&dora, &base).is_empty());
        let other = json!({"data": [
            {"id": "x", "attributes": {"finished_at": "2025-01-02T00:00:00Z"}},
            {"id": "a", "attributes": {"finished_at": "2025-01-01T00:00:00Z"}}]});
        assert!(!list(&other, &base).is_empty());
    }
}
