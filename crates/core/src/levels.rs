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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// One band as the report words it, for display.
pub struct Band {
    pub level: Level,
    pub text: &'static str,
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

/// The report's words for each level of one key, best first.
pub fn bands(year: Year, key: Key) -> [Band; 4] {
    let words = table(year, key).words;
    Level::ALL.map(|level| Band {
        level,
        text: words[level as usize],
    })
}

/// One classified key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub level: Level,
    /// The value classified (per day, seconds, or a rate in [0, 1]).
    pub value: f64,
    /// The report's words for that level.
    pub band: &'static str,
}

fn rate(year: Year, key: Key, value: f64) -> Rating {
    let level = classify(year, key, value);
    Rating {
        level,
        value,
        band: table(year, key).words[level as usize],
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
            bands(Year::Y2024, Key::ChangeFailureRate)[1].text,
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
        assert_eq!(rating.band, "Between one day and one week");
        let (rating, measure) = assess(Year::Y2023, &v).restore.unwrap();
        assert_eq!(measure, RestoreMeasure::FailedDeploymentRecoveryTime);
        assert_eq!(rating.level, Elite);
        // Only incidents known: 2023 falls back to time to restore.
        v.recovery_time.median = None;
        let (_, measure) = assess(Year::Y2023, &v).restore.unwrap();
        assert_eq!(measure, RestoreMeasure::TimeToRestore);
    }
}
