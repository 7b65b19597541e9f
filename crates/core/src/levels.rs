//! Performance levels: each DORA key, and the whole, classified as Elite, High, Medium or Low by
//! the bands a chosen State of DevOps report published (2019, 2021, 2023 or 2024).
//!
//! The reports describe clusters in words ("between once per day and once per week", "less than
//! one hour") or, for change failure rate since 2023, as one figure per cluster. Those words
//! overlap, leave gaps and (2024) are not even monotonic, so this module fixes one reading:
//!
//! - **Ranges** (frequency, lead time, restore time, change failure rate up to 2021): a value is at
//!   the best level whose band it reaches or beats — "less than X" is strict, "between A and B"
//!   includes B. A value between two bands (a gap) gets the worse of the two; a value past every
//!   band is Low. When two levels publish the same band, the better one is given.
//! - **Figures** (change failure rate 2023 and 2024): the level whose figure is nearest; on a
//!   tie, the better level. That is what cluster figures mean, and it handles 2024, where High
//!   (20%) fails more often than Medium (10%).
//! - **Bands shown** are derived from that reading, not copied from the report: each level's band
//!   is exactly the values it is given, so every value falls in one band of its year (a level
//!   that shares a better level's band gets none). The report's words are kept beside them.
//! - **The whole**: the lowest level among the keys that could be classified — a team is at a
//!   level only when every measured key is at least there (`None` when nothing was measured).
//!
//! Units: an hour is 3 600 s, a day 86 400 s, a week 7 days, a month 30 days, six months 180
//! days; deployment frequency is deployments per day over the range, and "on demand (multiple
//! deploys per day)" means more than one per day.
//!
//! Sources (the reports themselves are at <https://dora.dev/research/>):
//! - 2019: Accelerate State of DevOps 2019, "Aspects of software delivery performance" table;
//!   summarised at <https://www.software.com/src/2019-accelerate-state-of-devops-report>.
//! - 2021: Accelerate State of DevOps 2021 table, as quoted (with its source) by Apache DevLake's
//!   metric docs: <https://devlake.apache.org/docs/Metrics/DeploymentFrequency>, `.../LeadTimeForChanges`,
//!   `.../MTTR`, `.../CFR`.
//! - 2023: Accelerate State of DevOps 2023, summarised at
//!   <https://octopus.com/blog/software-delivery-performance-clusters-2023>.
//! - 2024: Accelerate State of DevOps 2024, summarised at
//!   <https://octopus.com/blog/2024-devops-performance-clusters>.

use std::fmt;

use crate::metrics::Values;

const HOUR: f64 = 3_600.0;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;
const MONTH: f64 = 30.0 * DAY;
const SIX_MONTHS: f64 = 180.0 * DAY;

/// A performance level, best first (so `max` of levels is the worst).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Elite,
    High,
    Medium,
    Low,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Elite, Level::High, Level::Medium, Level::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Elite => "elite",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The State of DevOps report whose bands are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Year {
    Y2019,
    Y2021,
    Y2023,
    Y2024,
}

impl Year {
    pub const ALL: [Year; 4] = [Year::Y2019, Year::Y2021, Year::Y2023, Year::Y2024];
    /// The newest report: the default.
    pub const LATEST: Year = Year::Y2024;

    pub fn number(self) -> u16 {
        match self {
            Self::Y2019 => 2019,
            Self::Y2021 => 2021,
            Self::Y2023 => 2023,
            Self::Y2024 => 2024,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|year| text.parse::<u16>().ok() == Some(year.number()))
    }

    /// Where the bands come from, for responses and docs.
    pub fn source(self) -> &'static str {
        match self {
            Self::Y2019 => {
                "Accelerate State of DevOps 2019 (DORA), software delivery performance table"
            }
            Self::Y2021 => {
                "Accelerate State of DevOps 2021 (DORA), software delivery performance table"
            }
            Self::Y2023 => {
                "Accelerate State of DevOps 2023 (DORA), software delivery performance clusters"
            }
            Self::Y2024 => {
                "Accelerate State of DevOps 2024 (DORA), software delivery performance levels"
            }
        }
    }

    /// Which restore measure the report asked about: time to restore service (incidents) up to
    /// 2021, failed deployment recovery time since 2023.
    pub fn restore_measure(self) -> RestoreMeasure {
        match self {
            Self::Y2019 | Self::Y2021 => RestoreMeasure::TimeToRestore,
            Self::Y2023 | Self::Y2024 => RestoreMeasure::FailedDeploymentRecoveryTime,
        }
    }
}

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// The four keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// Deployments per day.
    DeploymentFrequency,
    /// Median lead time for changes, in seconds.
    LeadTime,
    /// Change failure rate, in [0, 1].
    ChangeFailureRate,
    /// Median time to restore / failed deployment recovery time, in seconds.
    Restore,
}

impl Key {
    pub const ALL: [Key; 4] = [
        Key::DeploymentFrequency,
        Key::LeadTime,
        Key::ChangeFailureRate,
        Key::Restore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeploymentFrequency => "deployment_frequency",
            Self::LeadTime => "lead_time",
            Self::ChangeFailureRate => "change_failure_rate",
            Self::Restore => "restore",
        }
    }
}

/// Which duration classified the restore key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMeasure {
    /// Median `finished_at − started_at` of resolved failures.
    TimeToRestore,
    /// Median time from a failed deployment to the deployment that remediated it.
    FailedDeploymentRecoveryTime,
}

impl RestoreMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimeToRestore => "time_to_restore",
            Self::FailedDeploymentRecoveryTime => "failed_deployment_recovery_time",
        }
    }
}

/// One edge of a band.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// value < x
    Below(f64),
    /// value ≤ x
    AtMost(f64),
    /// value > x
    Above(f64),
    /// value ≥ x
    AtLeast(f64),
}

impl Edge {
    fn admits(self, value: f64) -> bool {
        match self {
            Self::Below(x) => value < x,
            Self::AtMost(x) => value <= x,
            Self::Above(x) => value > x,
            Self::AtLeast(x) => value >= x,
        }
    }
}

/// The band of one level, for display: the values that get that level (`text`), and the
/// report's own words for it (`published`), which may overlap or leave gaps.
pub struct Band {
    pub level: Level,
    pub text: String,
    pub published: &'static str,
}

/// One end of a range of values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound {
    value: f64,
    inclusive: bool,
}

/// The values one level gets: what its edge admits and the previous (better) edge does not.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

impl Edge {
    /// The edge as a range: `value < x` is everything below x.
    fn range(self) -> Range {
        let bound = |value, inclusive| Some(Bound { value, inclusive });
        match self {
            Self::Below(x) => Range {
                lower: None,
                upper: bound(x, false),
            },
            Self::AtMost(x) => Range {
                lower: None,
                upper: bound(x, true),
            },
            Self::Above(x) => Range {
                lower: bound(x, false),
                upper: None,
            },
            Self::AtLeast(x) => Range {
                lower: bound(x, true),
                upper: None,
            },
        }
    }

    /// What the edge does not admit.
    fn complement(self) -> Range {
        match self {
            Self::Below(x) => Self::AtLeast(x).range(),
            Self::AtMost(x) => Self::Above(x).range(),
            Self::Above(x) => Self::AtMost(x).range(),
            Self::AtLeast(x) => Self::Below(x).range(),
        }
    }
}

impl Range {
    const ALL: Range = Range {
        lower: None,
        upper: None,
    };

    /// Both ranges at once (the tables' edges are monotonic, so one bound of each suffices).
    fn and(self, other: Range) -> Range {
        Range {
            lower: self.lower.or(other.lower),
            upper: self.upper.or(other.upper),
        }
    }

    #[cfg(test)]
    fn admits(self, value: f64) -> bool {
        let above = self
            .lower
            .is_none_or(|b| value > b.value || (b.inclusive && value == b.value));
        let below = self
            .upper
            .is_none_or(|b| value < b.value || (b.inclusive && value == b.value));
        above && below
    }

    fn is_empty(self) -> bool {
        match (self.lower, self.upper) {
            (Some(lo), Some(hi)) => {
                lo.value > hi.value || (lo.value == hi.value && !(lo.inclusive && hi.inclusive))
            }
            _ => false,
        }
    }

    /// The range in words, quantities named by `name`.
    fn describe(self, name: impl Fn(f64) -> String) -> String {
        if self.is_empty() {
            return "None: the report gives this level no values of its own".into();
        }
        let lower = self.lower.map(|b| (name(b.value), b.inclusive));
        let upper = self.upper.map(|b| (name(b.value), b.inclusive));
        let text = match (lower, upper) {
            (None, None) => "Any value".into(),
            (Some((a, true)), None) => format!("{a} or more"),
            (Some((a, false)), None) => format!("More than {a}"),
            (None, Some((b, true))) => format!("{b} or less"),
            (None, Some((b, false))) => format!("Less than {b}"),
            (Some((a, true)), Some((b, true))) => format!("From {a} up to {b}"),
            (Some((a, true)), Some((b, false))) => format!("From {a} to less than {b}"),
            (Some((a, false)), Some((b, true))) => format!("More than {a}, up to {b}"),
            (Some((a, false)), Some((b, false))) => format!("More than {a}, less than {b}"),
        };
        let mut chars = text.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_uppercase().chain(chars).collect()
        })
    }
}

/// A quantity in the report's units: a frequency per day, a duration in seconds, a rate.
fn quantity(key: Key, value: f64) -> String {
    let named = |units: &[(f64, &str)]| {
        units
            .iter()
            .find(|(unit, _)| (value - unit).abs() <= unit * 1e-9)
            .map(|(_, name)| name.to_string())
    };
    match key {
        Key::DeploymentFrequency => named(&[
            (1.0, "once per day"),
            (1.0 / 7.0, "once per week"),
            (1.0 / 30.0, "once per month"),
            (1.0 / 180.0, "once every six months"),
        ])
        .unwrap_or_else(|| format!("{value} per day")),
        Key::LeadTime | Key::Restore => named(&[
            (HOUR, "one hour"),
            (DAY, "one day"),
            (WEEK, "one week"),
            (MONTH, "one month"),
            (SIX_MONTHS, "six months"),
        ])
        .unwrap_or_else(|| format!("{value} s")),
        Key::ChangeFailureRate => {
            let percent = format!("{:.1}", value * 100.0);
            format!("{}%", percent.trim_end_matches(".0"))
        }
    }
}

/// How one key is classified in one year: the first of `edges` that admits the value gives
/// the level (Low when none does); for published figures the edges are the midpoints between
/// neighbouring figures, written out so that a tie is decided exactly.
struct Table {
    edges: &'static [(Level, Edge)],
    /// The report's words for Elite, High, Medium, Low.
    words: [&'static str; 4],
}

const ON_DEMAND: &str = "On demand (multiple deploys per day)";

fn table(year: Year, key: Key) -> Table {
    use Edge::*;
    use Level::*;
    match (key, year) {
        (Key::DeploymentFrequency, Year::Y2019 | Year::Y2024) => Table {
            edges: &[
                (Elite, Above(1.0)),
                (High, AtLeast(1.0 / 7.0)),
                (Medium, AtLeast(1.0 / 30.0)),
            ],
            words: [
                ON_DEMAND,
                "Between once per day and once per week",
                "Between once per week and once per month",
                "Between once per month and once every six months",
            ],
        },
        (Key::DeploymentFrequency, Year::Y2021) => Table {
            // High's band (weekly to monthly) leaves daily-to-weekly in a gap: it goes to High.
            edges: &[
                (Elite, Above(1.0)),
                (High, AtLeast(1.0 / 30.0)),
                (Medium, AtLeast(1.0 / 180.0)),
            ],
            words: [
                ON_DEMAND,
                "Between once per week and once per month",
                "Between once per month and once every six months",
                "Fewer than once per six months",
            ],
        },
        (Key::DeploymentFrequency, Year::Y2023) => Table {
            // Medium and Low share a band: Medium is given; below it, Low.
            edges: &[
                (Elite, Above(1.0)),
                (High, AtLeast(1.0 / 7.0)),
                (Medium, AtLeast(1.0 / 30.0)),
            ],
            words: [
                ON_DEMAND,
                "Between once per day and once per week",
                "Between once per week and once per month",
                "Between once per week and once per month",
            ],
        },
        (Key::LeadTime, Year::Y2019 | Year::Y2024) => Table {
            edges: &[
                (Elite, Below(DAY)),
                (High, AtMost(WEEK)),
                (Medium, AtMost(MONTH)),
            ],
            words: [
                "Less than one day",
                "Between one day and one week",
                "Between one week and one month",
                "Between one month and six months",
            ],
        },
        (Key::LeadTime, Year::Y2021) => Table {
            edges: &[
                (Elite, Below(HOUR)),
                (High, AtMost(WEEK)),
                (Medium, AtMost(SIX_MONTHS)),
            ],
            words: [
                "Less than one hour",
                "Between one day and one week",
                "Between one month and six months",
                "More than six months",
            ],
        },
        (Key::LeadTime, Year::Y2023) => Table {
            edges: &[
                (Elite, Below(DAY)),
                (High, AtMost(WEEK)),
                (Medium, AtMost(MONTH)),
            ],
            words: [
                "Less than one day",
                "Between one day and one week",
                "Between one week and one month",
                "Between one week and one month",
            ],
        },
        (Key::Restore, Year::Y2019) => Table {
            // Medium shares High's band; anything from a day on is Low.
            edges: &[
                (Elite, Below(HOUR)),
                (High, Below(DAY)),
                (Medium, Below(DAY)),
            ],
            words: [
                "Less than one hour",
                "Less than one day",
                "Less than one day",
                "Between one week and one month",
            ],
        },
        (Key::Restore, Year::Y2021) => Table {
            edges: &[
                (Elite, Below(HOUR)),
                (High, Below(DAY)),
                (Medium, AtMost(WEEK)),
            ],
            words: [
                "Less than one hour",
                "Less than one day",
                "Between one day and one week",
                "More than six months",
            ],
        },
        (Key::Restore, Year::Y2023) => Table {
            edges: &[
                (Elite, Below(HOUR)),
                (High, Below(DAY)),
                (Medium, AtMost(WEEK)),
            ],
            words: [
                "Less than one hour",
                "Less than one day",
                "Between one day and one week",
                "Between one month and six months",
            ],
        },
        (Key::Restore, Year::Y2024) => Table {
            edges: &[
                (Elite, Below(HOUR)),
                (High, Below(DAY)),
                (Medium, Below(DAY)),
            ],
            words: [
                "Less than one hour",
                "Less than one day",
                "Less than one day",
                "Between one week and one month",
            ],
        },
        (Key::ChangeFailureRate, Year::Y2019) => Table {
            // Elite, High and Medium share 0–15%; Low is 46–60%.
            edges: &[
                (Elite, AtMost(0.15)),
                (High, AtMost(0.15)),
                (Medium, AtMost(0.15)),
            ],
            words: ["0–15%", "0–15%", "0–15%", "46–60%"],
        },
        (Key::ChangeFailureRate, Year::Y2021) => Table {
            // High, Medium and Low share 16–30%: High is given; past 30%, Low.
            edges: &[
                (Elite, AtMost(0.15)),
                (High, AtMost(0.30)),
                (Medium, AtMost(0.30)),
            ],
            words: ["0–15%", "16–30%", "16–30%", "16–30%"],
        },
        (Key::ChangeFailureRate, Year::Y2023) => Table {
            // Figures 5, 10, 15, 64%: midpoints 7.5, 12.5, 39.5%.
            edges: &[
                (Elite, AtMost(0.075)),
                (High, AtMost(0.125)),
                (Medium, AtMost(0.395)),
            ],
            words: ["5%", "10%", "15%", "64%"],
        },
        (Key::ChangeFailureRate, Year::Y2024) => Table {
            // Not monotonic: High (20%) fails more often than Medium (10%). Figures in order
            // 5, 10, 20, 40%: midpoints 7.5, 15 (a tie goes to High), 30%.
            edges: &[
                (Elite, AtMost(0.075)),
                (Medium, Below(0.15)),
                (High, AtMost(0.30)),
            ],
            words: ["5%", "20%", "10%", "40%"],
        },
    }
}

/// The level of one key's value in one report year.
pub fn classify(year: Year, key: Key, value: f64) -> Level {
    table(year, key)
        .edges
        .iter()
        .find(|(_, edge)| edge.admits(value))
        .map_or(Level::Low, |(level, _)| *level)
}

/// The range of values each level of one key gets, in table order (best edge first, Low last).
fn ranges(year: Year, key: Key) -> Vec<(Level, Range)> {
    let edges = table(year, key).edges;
    let mut ranges = Vec::with_capacity(edges.len() + 1);
    let mut rest = Range::ALL;
    for (level, edge) in edges {
        ranges.push((*level, edge.range().and(rest)));
        rest = edge.complement();
    }
    ranges.push((Level::Low, rest));
    ranges
}

/// The band of one level: every value it is given, in words.
fn band_text(year: Year, key: Key, level: Level) -> String {
    ranges(year, key)
        .into_iter()
        .find(|(l, _)| *l == level)
        .map_or_else(String::new, |(_, range)| {
            range.describe(|value| quantity(key, value))
        })
}

/// Each level's band of one key, best first: exactly the values [`classify`] gives it, and the
/// report's own words.
pub fn bands(year: Year, key: Key) -> [Band; 4] {
    let words = table(year, key).words;
    Level::ALL.map(|level| Band {
        level,
        text: band_text(year, key, level),
        published: words[level as usize],
    })
}

/// One classified key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub level: Level,
    /// The value classified (per day, seconds, or a rate in [0, 1]).
    pub value: f64,
    /// The band of that level, which holds the value.
    pub band: String,
    /// The report's words for that level.
    pub published: &'static str,
}

fn rate(year: Year, key: Key, value: f64) -> Rating {
    let level = classify(year, key, value);
    Rating {
        level,
        value,
        band: band_text(year, key, level),
        published: table(year, key).words[level as usize],
    }
}

/// The levels of a set of keys: each key that has a value, and the whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub year: Year,
    pub deployment_frequency: Option<Rating>,
    pub lead_time: Option<Rating>,
    pub change_failure_rate: Option<Rating>,
    /// With the measure used: the year's own, else the other one when only it has data.
    pub restore: Option<(Rating, RestoreMeasure)>,
    /// The lowest of the classified keys.
    pub overall: Option<Level>,
}

/// Classifies the keys of a bucket (normally the whole range). Deployment frequency is always
/// classified (no deployments is a frequency of 0); the others only when measured.
pub fn assess(year: Year, values: &Values) -> Assessment {
    let deployment_frequency = Some(rate(
        year,
        Key::DeploymentFrequency,
        values.deployments_per_day,
    ));
    let lead_time = values
        .lead_time
        .median
        .map(|median| rate(year, Key::LeadTime, median));
    let change_failure_rate = values
        .change_failure_rate
        .map(|cfr| rate(year, Key::ChangeFailureRate, cfr));
    let measured = |measure: RestoreMeasure| match measure {
        RestoreMeasure::TimeToRestore => values.time_to_restore.median,
        RestoreMeasure::FailedDeploymentRecoveryTime => values.recovery_time.median,
    };
    let own = year.restore_measure();
    let other = match own {
        RestoreMeasure::TimeToRestore => RestoreMeasure::FailedDeploymentRecoveryTime,
        RestoreMeasure::FailedDeploymentRecoveryTime => RestoreMeasure::TimeToRestore,
    };
    let restore = [own, other].into_iter().find_map(|measure| {
        measured(measure).map(|median| (rate(year, Key::Restore, median), measure))
    });
    let overall = [
        deployment_frequency.as_ref(),
        lead_time.as_ref(),
        change_failure_rate.as_ref(),
        restore.as_ref().map(|(rating, _)| rating),
    ]
    .into_iter()
    .flatten()
    .map(|rating| rating.level)
    .max();
    Assessment {
        year,
        deployment_frequency,
        lead_time,
        change_failure_rate,
        restore,
        overall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Distribution;
    use Level::*;

    /// The level just inside and just outside every edge: `(value, level)` pairs.
    fn check(year: Year, key: Key, cases: &[(f64, Level)]) {
        for (value, level) in cases {
            assert_eq!(
                classify(year, key, *value),
                *level,
                "{year} {} {value}",
                key.as_str()
            );
        }
    }

    const EPS: f64 = 1e-9;

    #[test]
    fn deployment_frequency_bands() {
        let (day, week, month, half_year) = (1.0, 1.0 / 7.0, 1.0 / 30.0, 1.0 / 180.0);
        for year in [Year::Y2019, Year::Y2023, Year::Y2024] {
            check(
                year,
                Key::DeploymentFrequency,
                &[
                    (5.0, Elite),
                    (day + EPS, Elite),
                    (day, High),
                    (week, High),
                    (week - EPS, Medium),
                    (month, Medium),
                    (month - EPS, Low),
                    (0.0, Low),
                ],
            );
        }
        check(
            Year::Y2021,
            Key::DeploymentFrequency,
            &[
                (day + EPS, Elite),
                (day, High),
                (week, High),
                (month, High),
                (month - EPS, Medium),
                (half_year, Medium),
                (half_year - EPS, Low),
                (0.0, Low),
            ],
        );
        // A week of 7 deployments is exactly daily: High, not on demand.
        assert_eq!(
            classify(Year::Y2024, Key::DeploymentFrequency, 7.0 / 7.0),
            High
        );
        assert_eq!(
            classify(Year::Y2024, Key::DeploymentFrequency, 4.0 / 28.0),
            High
        );
    }

    #[test]
    fn lead_time_bands() {
        for year in [Year::Y2019, Year::Y2023, Year::Y2024] {
            check(
                year,
                Key::LeadTime,
                &[
                    (0.0, Elite),
                    (DAY - EPS, Elite),
                    (DAY, High),
                    (WEEK, High),
                    (WEEK + EPS, Medium),
                    (MONTH, Medium),
                    (MONTH + EPS, Low),
                    (SIX_MONTHS * 2.0, Low),
                ],
            );
        }
        check(
            Year::Y2021,
            Key::LeadTime,
            &[
                (HOUR - EPS, Elite),
                (HOUR, High),
                (DAY, High),
                (WEEK, High),
                (WEEK + EPS, Medium),
                (SIX_MONTHS, Medium),
                (SIX_MONTHS + EPS, Low),
            ],
        );
    }

    #[test]
    fn restore_bands() {
        for year in [Year::Y2019, Year::Y2024] {
            check(
                year,
                Key::Restore,
                &[
                    (0.0, Elite),
                    (HOUR - EPS, Elite),
                    (HOUR, High),
                    (DAY - EPS, High),
                    (DAY, Low),
                    (WEEK, Low),
                ],
            );
        }
        for year in [Year::Y2021, Year::Y2023] {
            check(
                year,
                Key::Restore,
                &[
                    (HOUR - EPS, Elite),
                    (HOUR, High),
                    (DAY - EPS, High),
                    (DAY, Medium),
                    (WEEK, Medium),
                    (WEEK + EPS, Low),
                ],
            );
        }
    }

    #[test]
    fn change_failure_rate_ranges() {
        check(
            Year::Y2019,
            Key::ChangeFailureRate,
            &[(0.0, Elite), (0.15, Elite), (0.15 + EPS, Low), (0.5, Low)],
        );
        check(
            Year::Y2021,
            Key::ChangeFailureRate,
            &[
                (0.0, Elite),
                (0.15, Elite),
                (0.15 + EPS, High),
                (0.30, High),
                (0.30 + EPS, Low),
                (1.0, Low),
            ],
        );
    }

    #[test]
    fn change_failure_rate_figures_2023() {
        // Midpoints: 7.5% (Elite|High), 12.5% (High|Medium), 39.5% (Medium|Low).
        check(
            Year::Y2023,
            Key::ChangeFailureRate,
            &[
                (0.0, Elite),
                (0.075, Elite),
                (0.075 + EPS, High),
                (0.125, High),
                (0.125 + EPS, Medium),
                (0.395, Medium),
                (0.395 + EPS, Low),
                (1.0, Low),
            ],
        );
    }

    #[test]
    fn change_failure_rate_figures_2024_are_not_monotonic() {
        // Figures: Elite 5%, Medium 10%, High 20%, Low 40%. Midpoints 7.5%, 15%, 30%.
        check(
            Year::Y2024,
            Key::ChangeFailureRate,
            &[
                (0.0, Elite),
                (0.075, Elite),
                (0.075 + EPS, Medium),
                (0.10, Medium),
                (0.15 - EPS, Medium),
                (0.15, High), // a tie goes to the better level
                (0.20, High),
                (0.30, High),
                (0.30 + EPS, Low),
                (1.0, Low),
            ],
        );
        // Each published figure lands on its own level.
        for (figure, level) in [(0.05, Elite), (0.10, Medium), (0.20, High), (0.40, Low)] {
            assert_eq!(classify(Year::Y2024, Key::ChangeFailureRate, figure), level);
        }
    }

    /// Every value falls in exactly one band of every key of every year, and it is the band of
    /// the level it is given: checked at, just below and just above every edge.
    #[test]
    fn every_value_falls_in_exactly_one_band() {
        for year in Year::ALL {
            for key in Key::ALL {
                let ranges = ranges(year, key);
                let mut probes = vec![0.0, 1e-12, 1e12];
                for (_, edge) in table(year, key).edges {
                    let (Edge::Below(x) | Edge::AtMost(x) | Edge::Above(x) | Edge::AtLeast(x)) =
                        *edge;
                    probes.extend([x, x * (1.0 - 1e-9), x * (1.0 + 1e-9)]);
                }
                for value in probes {
                    let holding: Vec<Level> = ranges
                        .iter()
                        .filter(|(_, range)| range.admits(value))
                        .map(|(level, _)| *level)
                        .collect();
                    let level = classify(year, key, value);
                    assert_eq!(holding, [level], "{year} {} {value}", key.as_str());
                    let rating = rate(year, key, value);
                    assert_eq!(rating.band, bands(year, key)[level as usize].text);
                }
            }
        }
    }

    #[test]
    fn bands_say_what_they_hold() {
        let text = |year, key, level: Level| bands(year, key)[level as usize].text.clone();
        // A one-day recovery time in 2024 is Low, and its band says so.
        let restore = rate(Year::Y2024, Key::Restore, DAY);
        assert_eq!(
            (restore.level, restore.band.as_str()),
            (Low, "One day or more")
        );
        assert_eq!(restore.published, "Between one week and one month");
        assert_eq!(
            text(Year::Y2024, Key::Restore, High),
            "From one hour to less than one day"
        );
        assert!(text(Year::Y2024, Key::Restore, Medium).starts_with("None"));
        assert_eq!(
            text(Year::Y2024, Key::DeploymentFrequency, Elite),
            "More than once per day"
        );
        assert_eq!(
            text(Year::Y2024, Key::DeploymentFrequency, High),
            "From once per week up to once per day"
        );
        assert_eq!(
            text(Year::Y2024, Key::DeploymentFrequency, Low),
            "Less than once per month"
        );
        assert_eq!(
            text(Year::Y2024, Key::LeadTime, Medium),
            "More than one week, up to one month"
        );
        assert_eq!(
            text(Year::Y2024, Key::ChangeFailureRate, Medium),
            "More than 7.5%, less than 15%"
        );
        assert_eq!(
            text(Year::Y2024, Key::ChangeFailureRate, High),
            "From 15% up to 30%"
        );
        assert_eq!(
            text(Year::Y2023, Key::ChangeFailureRate, Medium),
            "More than 12.5%, up to 39.5%"
        );
    }

    #[test]
    fn years_parse_and_words_line_up() {
        assert_eq!(Year::parse("2023"), Some(Year::Y2023));
        assert_eq!(Year::parse("2022"), None);
        assert_eq!(Year::parse("x"), None);
        for year in Year::ALL {
            for key in Key::ALL {
                let words = bands(year, key);
                assert_eq!(words.map(|b| b.level), Level::ALL);
            }
        }
        assert_eq!(
            bands(Year::Y2024, Key::ChangeFailureRate)[1].published,
            "20%",
            "High"
        );
    }

    fn values(per_day: f64, lead: Option<f64>, cfr: Option<f64>) -> Values {
        Values {
            deployments_per_day: per_day,
            change_failure_rate: cfr,
            lead_time: Distribution {
                count: usize::from(lead.is_some()),
                median: lead,
                ..Distribution::default()
            },
            ..Values::default()
        }
    }

    #[test]
    fn the_whole_is_the_lowest_classified_key() {
        let mut v = values(2.0, Some(HOUR), Some(0.02));
        v.recovery_time.median = Some(10.0 * 60.0);
        let a = assess(Year::Y2024, &v);
        assert_eq!(a.overall, Some(Elite));
        assert_eq!(
            a.restore.as_ref().map(|(_, m)| *m),
            Some(RestoreMeasure::FailedDeploymentRecoveryTime)
        );
        // One key at Medium pulls the whole down.
        let a = assess(Year::Y2024, &values(2.0, Some(2.0 * WEEK), Some(0.02)));
        assert_eq!(a.lead_time.as_ref().map(|r| r.level), Some(Medium));
        assert_eq!(a.overall, Some(Medium));
        assert!(a.restore.is_none());
        // Keys without data are skipped; frequency is always there.
        let a = assess(Year::Y2024, &values(0.0, None, None));
        assert_eq!(a.overall, Some(Low));
        assert!(a.lead_time.is_none() && a.change_failure_rate.is_none());
    }

    #[test]
    fn restore_uses_the_years_measure_first() {
        let mut v = values(2.0, None, Some(0.0));
        v.time_to_restore.median = Some(2.0 * DAY);
        v.recovery_time.median = Some(30.0 * 60.0);
        let a = assess(Year::Y2021, &v);
        let (rating, measure) = a.restore.unwrap();
        assert_eq!(measure, RestoreMeasure::TimeToRestore);
        assert_eq!(rating.level, Medium);
        assert_eq!(rating.band, "From one day up to one week");
        assert_eq!(rating.published, "Between one day and one week");
        let (rating, measure) = assess(Year::Y2023, &v).restore.unwrap();
        assert_eq!(measure, RestoreMeasure::FailedDeploymentRecoveryTime);
        assert_eq!(rating.level, Elite);
        // Only incidents known: 2023 falls back to time to restore.
        v.recovery_time.median = None;
        let (_, measure) = assess(Year::Y2023, &v).restore.unwrap();
        assert_eq!(measure, RestoreMeasure::TimeToRestore);
    }
}
