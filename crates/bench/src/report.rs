//! The benchmark's table: statistics over the measurements and their Markdown rendering (the
//! README's Performance section is a copy of it).

use std::fmt::Write as _;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `p`-quantile (0..=1) of samples by nearest rank: a latency that was really observed.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Median and p95 of timings, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub median: f64,
    pub p95: f64,
    pub runs: usize,
}

impl Timing {
    pub fn of(seconds: &[f64]) -> Option<Self> {
        Some(Self {
            median: percentile(seconds, 0.5)?,
            p95: percentile(seconds, 0.95)?,
            runs: seconds.len(),
        })
    }
}

/// One intake measurement: throughput and latency percentiles (seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub events: usize,
    pub per_second: f64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl Rate {
    pub fn of(intake: &super::client::Intake) -> Self {
        let latencies: Vec<f64> = intake.latencies.iter().map(|&us| us as f64 / 1e6).collect();
        Self {
            events: intake.events,
            per_second: intake.rate(),
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
        }
    }

    pub fn of_load(rows: u64, seconds: f64) -> Self {
        Self {
            events: rows as usize,
            per_second: rows as f64 / seconds.max(1e-9),
            p50: None,
            p99: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IntakeRow {
    /// Its key in `results.json`.
    pub key: &'static str,
    pub name: String,
    pub dorametrics: Option<Rate>,
    pub postgres_label: String,
    pub postgres: Option<Rate>,
    pub duckdb: Option<Rate>,
}

#[derive(Debug, Clone)]
pub struct QueryRow {
    /// Its key in `results.json` (the question's name in queries.sql).
    pub key: &'static str,
    pub name: String,
    pub rows: usize,
    pub dorametrics: Option<Timing>,
    /// Why dorametrics has no timing (timed out, skipped).
    pub timed_out: Option<String>,
    pub duckdb: Option<Timing>,
    pub postgres: Option<Timing>,
}

#[derive(Debug, Clone)]
pub struct Resources {
    pub peak_rss_bytes: Option<u64>,
    pub database_bytes: u64,
    pub cold_start_seconds: f64,
    /// The first metric answer after the load: the derivation the background left.
    pub settle_seconds: f64,
    pub postgres_bytes: Option<u64>,
    pub duckdb_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Results {
    pub scale: String,
    /// sqlite or postgres.
    pub store: String,
    pub title: String,
    pub machine: String,
    pub engines: String,
    pub command: String,
    pub smoke: bool,
    /// The whole load into dorametrics (every event sent and acknowledged).
    pub load_seconds: f64,
    pub intake: Vec<IntakeRow>,
    pub queries: Vec<QueryRow>,
    pub resources: Resources,
    pub notes: Vec<String>,
}

/// `results.json`: one figure per key, for comparing runs by program (rates in events/s, times
/// in seconds, sizes in bytes; null where a figure was not measured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub scale: String,
    pub store: String,
    pub intake: BTreeMap<String, IntakeFigures>,
    /// Medians of the timed runs.
    pub queries: BTreeMap<String, QueryFigures>,
    /// The whole load into dorametrics.
    pub load_s: f64,
    pub first_answer_s: f64,
    pub db_bytes: DbBytes,
    pub peak_rss_bytes: Option<u64>,
    pub cold_start_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntakeFigures {
    pub dorametrics: Option<f64>,
    pub postgres: Option<f64>,
    /// Only where DuckDB loads the same rows (the bulk phases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duckdb: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryFigures {
    pub dorametrics: Option<f64>,
    pub duckdb: Option<f64>,
    pub postgres: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbBytes {
    pub dorametrics: u64,
    pub postgres: Option<u64>,
    pub duckdb: Option<u64>,
}

impl Results {
    pub fn figures(&self) -> Figures {
        let rate = |r: Option<Rate>| r.map(|r| r.per_second);
        let median = |t: Option<Timing>| t.map(|t| t.median);
        Figures {
            scale: self.scale.clone(),
            store: self.store.clone(),
            intake: self
                .intake
                .iter()
                .map(|row| {
                    let figures = IntakeFigures {
                        dorametrics: rate(row.dorametrics),
                        postgres: rate(row.postgres),
                        duckdb: rate(row.duckdb),
                    };
                    (row.key.to_string(), figures)
                })
                .collect(),
            queries: self
                .queries
                .iter()
                .map(|row| {
                    let figures = QueryFigures {
                        dorametrics: median(row.dorametrics),
                        duckdb: median(row.duckdb),
                        postgres: median(row.postgres),
                    };
                    (row.key.to_string(), figures)
                })
                .collect(),
            load_s: self.load_seconds,
            first_answer_s: self.resources.settle_seconds,
            db_bytes: DbBytes {
                dorametrics: self.resources.database_bytes,
                postgres: self.resources.postgres_bytes,
                duckdb: self.resources.duckdb_bytes,
            },
            peak_rss_bytes: self.resources.peak_rss_bytes,
            cold_start_s: self.resources.cold_start_seconds,
        }
    }
}

pub fn duration(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else if seconds < 120.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn bytes(value: u64) -> String {
    let mib = value as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

fn rate(rate: Option<&Rate>) -> String {
    match rate {
        None => "—".into(),
        Some(r) => {
            let mut text = format!("{}/s", thousands(r.per_second));
            if let (Some(p50), Some(p99)) = (r.p50, r.p99) {
                let _ = write!(text, " (p50 {}, p99 {})", duration(p50), duration(p99));
            }
            text
        }
    }
}

fn timing(timing: Option<&Timing>) -> String {
    timing.map_or("—".into(), |t| {
        let runs = if t.runs == 1 {
            " (1 run)".to_string()
        } else {
            String::new()
        };
        format!("{} / {}{runs}", duration(t.median), duration(t.p95))
    })
}

/// `a ÷ b` as "3.2×", or "—".
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => {
            let r = a / b;
            if r >= 10.0 {
                format!("{}×", thousands(r))
            } else if r >= 0.1 {
                format!("{r:.2}×")
            } else {
                format!("{r:.3}×")
            }
        }
        _ => "—".into(),
    }
}

impl Results {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.title);
        let _ = writeln!(out, "Machine: {}  ", self.machine);
        let _ = writeln!(out, "Engines: {}  ", self.engines);
        let _ = writeln!(out, "Command: `{}`\n", self.command);
        if self.smoke {
            let _ = writeln!(
                out,
                "**Smoke run: the answers were checked; the timings are not measurements.**\n"
            );
        }
        let _ = writeln!(
            out,
            "| Intake (events/s, latency per request) | dorametrics | PostgreSQL baseline | \
             PostgreSQL | dorametrics ÷ PostgreSQL | DuckDB COPY |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in &self.intake {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                row.name,
                rate(row.dorametrics.as_ref()),
                row.postgres_label,
                rate(row.postgres.as_ref()),
                ratio(
                    row.dorametrics.map(|r| r.per_second),
                    row.postgres.map(|r| r.per_second)
                ),
                rate(row.duckdb.as_ref()),
            );
        }
        let _ = writeln!(
            out,
            "\n| Query (median / p95 of the timed runs) | rows | dorametrics | DuckDB | \
             PostgreSQL | dorametrics ÷ DuckDB | dorametrics ÷ PostgreSQL |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for row in &self.queries {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.name,
                row.rows,
                match &row.timed_out {
                    Some(why) => why.clone(),
                    None => timing(row.dorametrics.as_ref()),
                },
                timing(row.duckdb.as_ref()),
                timing(row.postgres.as_ref()),
                ratio(
                    row.dorametrics.map(|t| t.median),
                    row.duckdb.map(|t| t.median)
                ),
                ratio(
                    row.dorametrics.map(|t| t.median),
                    row.postgres.map(|t| t.median)
                ),
            );
        }
        let r = &self.resources;
        let _ = writeln!(out, "\n| Resources | dorametrics | PostgreSQL | DuckDB |");
        let _ = writeln!(out, "|---|---|---|---|");
        let _ = writeln!(
            out,
            "| peak RSS of the server (VmHWM, whole run) | {} | — | — |",
            r.peak_rss_bytes.map_or("—".into(), bytes)
        );
        let _ = writeln!(
            out,
            "| database size on disk | {} | {} | {} |",
            bytes(r.database_bytes),
            r.postgres_bytes.map_or("—".into(), bytes),
            r.duckdb_bytes.map_or("—".into(), bytes)
        );
        let _ = writeln!(
            out,
            "| cold start on the loaded database (spawn → /readyz 200) | {} | — | — |",
            duration(r.cold_start_seconds)
        );
        let _ = writeln!(
            out,
            "| first metric answer after the load (waits for the derivation left) | {} | — | — |",
            duration(r.settle_seconds)
        );
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// CPU model, cores and memory, from /proc.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown memory".into());
    format!("{cpu}, {cores} cores, {memory} RAM, Linux (client, server and baselines share it)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), Some(50.0));
        assert_eq!(percentile(&samples, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0], 0.95), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(duration(0.0123), "12.3 ms");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25×");
        assert_eq!(ratio(Some(30.0), Some(1.0)), "30×");
    }
}
