//! The metric engine: the DORA keys of a set of deployments and failures, per time bucket, exactly
//! as DESIGN.md "Metric definitions" says. Pure: callers derive the facts (change sets, verdicts)
//! and pick the selection; this module only counts and takes exact quantiles.

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::tier::Tier;
use crate::time::Nanos;

pub const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// What the engine needs of one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentFact {
    pub id: String,
    pub finished_at: Nanos,
    pub service: String,
    pub team: Option<String>,
    pub env: Option<String>,
    pub tier: Tier,
    pub project: String,
    pub failed: bool,
    pub rework: bool,
    /// Lead times of the commits it first shipped (empty for a deployment without baseline).
    pub lead_times: Vec<Nanos>,
    /// Merge-to-deploy times of those commits whose MR/PR is known.
    pub merge_lead_times: Vec<Nanos>,
    /// When it failed and something remediated it: remediation finish − its finish.
    pub recovery_time: Option<Nanos>,
}

/// What the engine counts: one deployment's facts, or a day's tally of many (see
/// [`crate::rollup`]). Every duration list is sorted.
pub trait Tally {
    /// When it counts: a deployment's finish, a day's start.
    fn at(&self) -> Nanos;
    fn deployments(&self) -> u64;
    fn failed(&self) -> u64;
    fn rework(&self) -> u64;
    fn lead_times(&self) -> &[Nanos];
    fn merge_lead_times(&self) -> &[Nanos];
    /// Recovery times of failed deployments that were remediated.
    fn recovery_times(&self) -> &[Nanos];
}

impl Tally for DeploymentFact {
    fn at(&self) -> Nanos {
        self.finished_at
    }

    fn deployments(&self) -> u64 {
        1
    }

    fn failed(&self) -> u64 {
        u64::from(self.failed)
    }

    fn rework(&self) -> u64 {
        u64::from(self.rework)
    }

    fn lead_times(&self) -> &[Nanos] {
        &self.lead_times
    }

    fn merge_lead_times(&self) -> &[Nanos] {
        &self.merge_lead_times
    }

    fn recovery_times(&self) -> &[Nanos] {
        match self.failed {
            true => self.recovery_time.as_slice(),
            false => &[],
        }
    }
}

/// What the engine needs of one failure.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureFact {
    pub id: String,
    pub started_at: Nanos,
    pub finished_at: Option<Nanos>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Daily,
    Weekly,
    Monthly,
    All,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Daily, Self::Weekly, Self::Monthly, Self::All]
            .into_iter()
            .find(|interval| interval.as_str() == text)
    }
}

/// One bucket: `[start, end)` in UTC days, clipped to the requested range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: NaiveDate,
    /// Exclusive.
    pub end: NaiveDate,
}

impl Bucket {
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    fn start_nanos(&self) -> Nanos {
        day_nanos(self.start)
    }

    fn end_nanos(&self) -> Nanos {
        day_nanos(self.end)
    }

    fn contains(&self, at: Nanos) -> bool {
        self.start_nanos() <= at && at < self.end_nanos()
    }
}

/// Nanoseconds at the start of a UTC day.
pub fn day_nanos(day: NaiveDate) -> Nanos {
    i64::from(day.num_days_from_ce() - 719_163) * NANOS_PER_DAY
}

/// The UTC day of a time.
pub fn day_of(at: Nanos) -> NaiveDate {
    let days = at.div_euclid(NANOS_PER_DAY);
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(days + 719_163).unwrap_or(i32::MAX))
        .unwrap_or(NaiveDate::MAX)
}

/// Buckets covering the inclusive date range: days, ISO weeks (from Monday), calendar months
/// (dated the 1st), or one for all; the first and last are clipped to the range.
pub fn buckets(first: NaiveDate, last: NaiveDate, interval: Interval) -> Vec<Bucket> {
    let Some(end) = last.checked_add_days(Days::new(1)) else {
        return Vec::new();
    };
    if first >= end {
        return Vec::new();
    }
    if interval == Interval::All {
        return vec![Bucket { start: first, end }];
    }
    let mut result = Vec::new();
    let mut start = first;
    while start < end {
        let natural_end = match interval {
            Interval::Daily => start.checked_add_days(Days::new(1)),
            Interval::Weekly => start.checked_add_days(Days::new(
                7 - u64::from(start.weekday().num_days_from_monday()),
            )),
            Interval::Monthly => start
                .with_day(1)
                .and_then(|d| d.checked_add_months(Months::new(1))),
            Interval::All => Some(end),
        };
        let bucket_end = natural_end.map_or(end, |e| e.min(end));
        result.push(Bucket {
            start,
            end: bucket_end,
        });
        start = bucket_end;
    }
    result
}

/// Where a bucket's label starts: the natural start of its period (a monthly bucket is dated the
/// 1st even when the range starts mid-month).
pub fn label(bucket: &Bucket, interval: Interval) -> NaiveDate {
    match interval {
        Interval::Monthly => bucket.start.with_day(1).unwrap_or(bucket.start),
        Interval::Weekly => bucket
            .start
            .checked_sub_days(Days::new(u64::from(
                bucket.start.weekday().num_days_from_monday(),
            )))
            .unwrap_or(bucket.start),
        _ => bucket.start,
    }
}

/// Exact quantiles of a set of durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    pub count: usize,
    pub median: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
}

/// The `p`-quantile (0..=1) of sorted values, linearly interpolated between the two nearest
/// ranks — the same as SQL's `percentile_cont`; the median of an even count is the mean of the
/// middle two.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p * last as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let fraction = rank - low as f64;
    Some(sorted[low] + (sorted[high.min(last)] - sorted[low]) * fraction)
}

impl Distribution {
    pub fn of(nanos: impl IntoIterator<Item = Nanos>) -> Self {
        Self::of_values(nanos.into_iter().collect())
    }

    fn of_values(mut values: Vec<Nanos>) -> Self {
        let count = values.len();
        let [median, p75, p90] =
            [0.5, 0.75, 0.9].map(|p| quantile_by(count, p, |rank| select(&mut values, rank)));
        Self {
            count,
            median,
            p75,
            p90,
        }
    }

    /// The distribution of the union of sorted runs (each deployment's or each day's
    /// durations). Few long runs (days) are searched in place; many short ones (deployments)
    /// are gathered and selected.
    pub fn of_runs<'a>(runs: impl IntoIterator<Item = &'a [Nanos]>) -> Self {
        let runs: Vec<&[Nanos]> = runs.into_iter().filter(|r| !r.is_empty()).collect();
        let count: usize = runs.iter().map(|r| r.len()).sum();
        if runs.len() * LONG_RUN > count {
            return Self::of_values(runs.concat());
        }
        let [median, p75, p90] =
            [0.5, 0.75, 0.9].map(|p| quantile_by(count, p, |rank| nth_of_runs(&runs, rank)));
        Self {
            count,
            median,
            p75,
            p90,
        }
    }
}

/// Runs at least this long on average are searched in place rather than gathered.
const LONG_RUN: usize = 64;

/// [`quantile`] of `count` durations in seconds, given the value of any rank (0-based, in
/// ascending order): the two ranks it interpolates between are looked up, which gives the very
/// same result as sorting.
fn quantile_by(count: usize, p: f64, mut nth: impl FnMut(usize) -> Nanos) -> Option<f64> {
    let last = count.checked_sub(1)?;
    let rank = p * last as f64;
    let (low, high) = (rank.floor() as usize, (rank.ceil() as usize).min(last));
    let low_value = nth(low);
    let high_value = if high == low { low_value } else { nth(high) };
    let (low_seconds, high_seconds) = (low_value as f64 / 1e9, high_value as f64 / 1e9);
    Some(low_seconds + (high_seconds - low_seconds) * (rank - low as f64))
}

/// The value of rank `n` (0-based) of unsorted values, in linear time.
fn select(values: &mut [Nanos], n: usize) -> Nanos {
    *values.select_nth_unstable(n).1
}

/// The value of rank `n` (0-based, less than their total length) of the union of sorted runs:
/// the smallest value with more than `n` values at or below it, found by bisecting the value
/// range (at most 64 steps of one binary search per run).
fn nth_of_runs(runs: &[&[Nanos]], n: usize) -> Nanos {
    let mut low = runs
        .iter()
        .filter_map(|r| r.first())
        .copied()
        .min()
        .unwrap_or(0);
    let mut high = runs
        .iter()
        .filter_map(|r| r.last())
        .copied()
        .max()
        .unwrap_or(0);
    while low < high {
        let middle = ((i128::from(low) + i128::from(high)).div_euclid(2)) as Nanos;
        let at_or_below: usize = runs
            .iter()
            .map(|r| r.partition_point(|&v| v <= middle))
            .sum();
        if at_or_below > n {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

/// The keys of one bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    pub deployments: u64,
    /// Deployments ÷ days of the bucket inside the range.
    pub deployments_per_day: f64,
    pub failed_deployments: u64,
    /// Failed ÷ deployments, in [0, 1]; `None` without deployments.
    pub change_failure_rate: Option<f64>,
    pub rework_deployments: u64,
    pub rework_rate: Option<f64>,
    /// Commit lead times of the bucket's deployments (committer time).
    pub lead_time: Distribution,
    /// The same from MR/PR merge time, where known.
    pub merge_lead_time: Distribution,
    /// Durations of the failures resolved in the bucket.
    pub time_to_restore: Distribution,
    /// Recovery times of the bucket's failed deployments that were remediated.
    pub recovery_time: Distribution,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The keys of one bucket from the facts that fall in it (deployments by finish time, failures
/// by resolution time).
pub fn values<T: Tally>(bucket: &Bucket, deployments: &[T], failures: &[FailureFact]) -> Values {
    let inside: Vec<&T> = deployments
        .iter()
        .filter(|d| bucket.contains(d.at()))
        .collect();
    let count: u64 = inside.iter().map(|d| d.deployments()).sum();
    let failed: u64 = inside.iter().map(|d| d.failed()).sum();
    let rework: u64 = inside.iter().map(|d| d.rework()).sum();
    Values {
        deployments: count,
        deployments_per_day: count as f64 / bucket.days().max(1) as f64,
        failed_deployments: failed,
        change_failure_rate: ratio(failed, count),
        rework_deployments: rework,
        rework_rate: ratio(rework, count),
        lead_time: Distribution::of_runs(inside.iter().map(|d| d.lead_times())),
        merge_lead_time: Distribution::of_runs(inside.iter().map(|d| d.merge_lead_times())),
        time_to_restore: Distribution::of(failures.iter().filter_map(|f| {
            let finished = f.finished_at?;
            bucket.contains(finished).then_some(finished - f.started_at)
        })),
        recovery_time: Distribution::of_runs(inside.iter().map(|d| d.recovery_times())),
    }
}

/// What a metric counts: each deployment's facts, or day tallies of a whole group.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    Deployments(Vec<DeploymentFact>),
    Days(Vec<crate::rollup::DayTally>),
}

impl Counted {
    /// [`values`] of whichever is counted.
    pub fn values(&self, bucket: &Bucket, failures: &[FailureFact]) -> Values {
        match self {
            Self::Deployments(facts) => values(bucket, facts, failures),
            Self::Days(tallies) => values(bucket, tallies, failures),
        }
    }

    /// [`series`] of whichever is counted.
    pub fn series(
        &self,
        first: NaiveDate,
        last: NaiveDate,
        interval: Interval,
        failures: &[FailureFact],
    ) -> Vec<(Bucket, Values)> {
        match self {
            Self::Deployments(facts) => series(first, last, interval, facts, failures),
            Self::Days(tallies) => series(first, last, interval, tallies, failures),
        }
    }
}

/// Every bucket of the range with its keys (empty buckets included).
pub fn series<T: Tally>(
    first: NaiveDate,
    last: NaiveDate,
    interval: Interval,
    deployments: &[T],
    failures: &[FailureFact],
) -> Vec<(Bucket, Values)> {
    // Facts come in time order from the store: each bucket then looks only at its own.
    let sorted = deployments.is_sorted_by_key(|d| d.at());
    buckets(first, last, interval)
        .into_iter()
        .map(|bucket| {
            let candidates = if sorted {
                let low = deployments.partition_point(|d| d.at() < bucket.start_nanos());
                let high = deployments.partition_point(|d| d.at() < bucket.end_nanos());
                &deployments[low..high]
            } else {
                deployments
            };
            let values = values(&bucket, candidates, failures);
            (bucket, values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn days_and_nanos_agree() {
        assert_eq!(day_nanos(date(1970, 1, 1)), 0);
        assert_eq!(day_nanos(date(2025, 1, 1)), 1_735_689_600 * 1_000_000_000);
        assert_eq!(day_of(1_735_689_600 * 1_000_000_000 + 5), date(2025, 1, 1));
        assert_eq!(
            day_of(1_735_689_600 * 1_000_000_000 - 1),
            date(2024, 12, 31)
        );
    }

    #[test]
    fn buckets_are_clipped_to_the_range() {
        let monthly = buckets(date(2025, 1, 15), date(2025, 3, 10), Interval::Monthly);
        assert_eq!(
            monthly
                .iter()
                .map(|b| (b.start, b.days()))
                .collect::<Vec<_>>(),
            [
                (date(2025, 1, 15), 17),
                (date(2025, 2, 1), 28),
                (date(2025, 3, 1), 10)
            ]
        );
        assert_eq!(label(&monthly[0], Interval::Monthly), date(2025, 1, 1));
        let weekly = buckets(date(2025, 1, 1), date(2025, 1, 13), Interval::Weekly); // a Wednesday
        assert_eq!(
            weekly.iter().map(|b| b.days()).collect::<Vec<_>>(),
            [5, 7, 1]
        );
        assert_eq!(label(&weekly[0], Interval::Weekly), date(2024, 12, 30));
        assert_eq!(
            buckets(date(2025, 1, 1), date(2025, 1, 31), Interval::Daily).len(),
            31
        );
        assert_eq!(
            buckets(date(2025, 1, 1), date(2025, 1, 31), Interval::All)[0].days(),
            31
        );
        assert!(buckets(date(2025, 2, 1), date(2025, 1, 31), Interval::Daily).is_empty());
    }

    #[test]
    fn exact_quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[4.0], 0.9), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 10.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        // percentile_cont(0.9) of 1..=10 is 9.1
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((quantile(&ten, 0.9).unwrap() - 9.1).abs() < 1e-12);
        assert_eq!(quantile(&ten, 0.75), Some(7.75));
    }

    #[test]
    fn selected_quantiles_equal_sorted_ones() {
        let mut state: u64 = 7;
        for len in [1usize, 2, 3, 10, 11, 1000, 1001] {
            let nanos: Vec<Nanos> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    (state >> 20) as i64 % 1_000_000_000_000 - 1_000_000
                })
                .collect();
            let mut sorted: Vec<f64> = nanos.iter().map(|n| *n as f64 / 1e9).collect();
            sorted.sort_by(f64::total_cmp);
            let d = Distribution::of(nanos.iter().copied());
            assert_eq!(d.median, quantile(&sorted, 0.5), "{len}");
            assert_eq!(d.p75, quantile(&sorted, 0.75), "{len}");
            assert_eq!(d.p90, quantile(&sorted, 0.9), "{len}");
            // The same values as sorted runs: few long ones (searched) or many short ones.
            for run_count in [1, 3, len.div_ceil(2)] {
                let mut runs: Vec<Vec<Nanos>> = vec![Vec::new(); run_count];
                for (i, n) in nanos.iter().enumerate() {
                    runs[i % run_count].push(*n);
                }
                runs.iter_mut().for_each(|r| r.sort_unstable());
                let of_runs = Distribution::of_runs(runs.iter().map(Vec::as_slice));
                assert_eq!(of_runs, d, "{len} values in {run_count} runs");
            }
        }
        assert_eq!(Distribution::of([]), Distribution::default());
    }

    fn deployment(day: u32, failed: bool, leads: &[i64]) -> DeploymentFact {
        DeploymentFact {
            id: format!("d{day}"),
            finished_at: day_nanos(date(2025, 1, day)) + 3_600_000_000_000,
            service: "shop".into(),
            team: None,
            env: Some("production".into()),
            tier: Tier::Production,
            project: "acme/shop".into(),
            failed,
            rework: false,
            lead_times: leads.iter().map(|s| s * 1_000_000_000).collect(),
            merge_lead_times: vec![],
            recovery_time: failed.then_some(600_000_000_000),
        }
    }

    #[test]
    fn a_bucket_of_keys() {
        let deployments = [
            deployment(1, false, &[100, 200]),
            deployment(1, true, &[300]),
            deployment(2, false, &[1000]),
        ];
        let failures = [FailureFact {
            id: "f".into(),
            started_at: day_nanos(date(2025, 1, 1)),
            finished_at: Some(day_nanos(date(2025, 1, 1)) + 120_000_000_000),
        }];
        let s = series(
            date(2025, 1, 1),
            date(2025, 1, 3),
            Interval::Daily,
            &deployments,
            &failures,
        );
        assert_eq!(s.len(), 3);
        let day1 = &s[0].1;
        assert_eq!(day1.deployments, 2);
        assert_eq!(day1.change_failure_rate, Some(0.5));
        assert_eq!(day1.lead_time.median, Some(200.0));
        assert_eq!(day1.time_to_restore.median, Some(120.0));
        assert_eq!(day1.recovery_time.median, Some(600.0));
        assert_eq!(s[2].1.deployments, 0);
        assert_eq!(s[2].1.change_failure_rate, None);
        let all = series(
            date(2025, 1, 1),
            date(2025, 1, 4),
            Interval::All,
            &deployments,
            &failures,
        );
        assert_eq!(all[0].1.deployments_per_day, 0.75);
        assert_eq!(all[0].1.lead_time.median, Some(250.0));
    }
}
