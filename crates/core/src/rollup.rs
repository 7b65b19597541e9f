//! Per-day tallies: what a group's deployments of one tier add up to on one UTC day. The
//! metrics of a whole group (GitLab's group API, or of everything) read one tally a day
//! instead of the facts of every deployment; the stores keep them as facts change.

use std::collections::BTreeMap;

use crate::metrics::{DeploymentFact, Tally, NANOS_PER_DAY};
use crate::project;
use crate::tier::Tier;
use crate::time::Nanos;

/// The group path under which the tallies of every deployment are kept.
pub const EVERYTHING: &str = "";

/// One group's deployments of one tier on one day. Duration lists are sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayTally {
    /// A group path, or [`EVERYTHING`].
    pub group: String,
    pub tier: Tier,
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub deployments: u64,
    pub failed: u64,
    pub rework: u64,
    pub lead_times: Vec<Nanos>,
    pub merge_lead_times: Vec<Nanos>,
    pub recovery_times: Vec<Nanos>,
}

/// The UTC day (since 1970-01-01) of a time.
pub fn day_number(at: Nanos) -> i64 {
    at.div_euclid(NANOS_PER_DAY)
}

impl Tally for DayTally {
    fn at(&self) -> Nanos {
        self.day.saturating_mul(NANOS_PER_DAY)
    }

    fn deployments(&self) -> u64 {
        self.deployments
    }

    fn failed(&self) -> u64 {
        self.failed
    }

    fn rework(&self) -> u64 {
        self.rework
    }

    fn lead_times(&self) -> &[Nanos] {
        &self.lead_times
    }

    fn merge_lead_times(&self) -> &[Nanos] {
        &self.merge_lead_times
    }

    fn recovery_times(&self) -> &[Nanos] {
        &self.recovery_times
    }
}

/// The tallies of these facts: for every day, tier and group a fact's project is in (and
/// [`EVERYTHING`]), ordered by group, tier and day. Facts of a day must all be given for its
/// tallies to be whole.
pub fn tally(facts: &[DeploymentFact]) -> Vec<DayTally> {
    let mut tallies: BTreeMap<(&str, Tier, i64), DayTally> = BTreeMap::new();
    for fact in facts {
        let day = day_number(fact.finished_at);
        let groups = std::iter::once(EVERYTHING).chain(project::groups_of(&fact.project));
        for group in groups {
            let t = tallies
                .entry((group, fact.tier, day))
                .or_insert_with(|| DayTally {
                    group: group.to_string(),
                    tier: fact.tier,
                    day,
                    ..DayTally::default()
                });
            t.deployments += fact.deployments();
            t.failed += fact.failed();
            t.rework += fact.rework();
            t.lead_times.extend_from_slice(fact.lead_times());
            t.merge_lead_times
                .extend_from_slice(fact.merge_lead_times());
            t.recovery_times.extend_from_slice(fact.recovery_times());
        }
    }
    tallies
        .into_values()
        .map(|mut t| {
            t.lead_times.sort_unstable();
            t.merge_lead_times.sort_unstable();
            t.recovery_times.sort_unstable();
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{buckets, series, Interval};
    use chrono::NaiveDate;

    fn fact(id: &str, project: &str, tier: Tier, at: Nanos, leads: &[i64]) -> DeploymentFact {
        DeploymentFact {
            id: id.into(),
            finished_at: at,
            service: id.into(),
            team: None,
            env: Some("production".into()),
            tier,
            project: project.into(),
            failed: id.ends_with('f'),
            rework: id.ends_with('r'),
            lead_times: leads.to_vec(),
            merge_lead_times: leads.iter().map(|l| l / 2).collect(),
            recovery_time: Some(at % 1000 + 1),
        }
    }

    #[test]
    fn tallies_add_up_per_group_tier_and_day() {
        let day = NANOS_PER_DAY;
        let facts = [
            fact("a", "acme/web/shop", Tier::Production, day + 5, &[3, 9]),
            fact("bf", "acme/api", Tier::Production, day + 7, &[1]),
            fact("cr", "acme/api", Tier::Staging, day + 8, &[]),
            fact("d", "solo", Tier::Production, 2 * day, &[4]),
        ];
        let tallies = tally(&facts);
        let keys: Vec<(&str, Tier, i64, u64)> = tallies
            .iter()
            .map(|t| (t.group.as_str(), t.tier, t.day, t.deployments))
            .collect();
        assert_eq!(
            keys,
            [
                ("", Tier::Production, 1, 2),
                ("", Tier::Production, 2, 1),
                ("", Tier::Staging, 1, 1),
                ("acme", Tier::Production, 1, 2),
                ("acme", Tier::Staging, 1, 1),
                ("acme/web", Tier::Production, 1, 1),
            ]
        );
        assert_eq!(tallies[0].lead_times, [1, 3, 9]);
        assert_eq!(tallies[0].merge_lead_times, [0, 1, 4]);
        assert_eq!((tallies[0].failed, tallies[0].rework), (1, 0));
        assert_eq!(tallies[0].recovery_times, [8]);
        assert_eq!((tallies[2].failed, tallies[2].rework), (0, 1));
        assert_eq!(day_number(-1), -1);
    }

    /// Counting a group's tallies gives every key exactly as counting its deployments does.
    #[test]
    fn tallies_count_as_their_deployments() {
        let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
        let start = crate::metrics::day_nanos(first);
        let mut state: u64 = 11;
        let mut next = |modulo: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) % modulo
        };
        let facts: Vec<DeploymentFact> = (0..3000)
            .map(|i| {
                let at = start + (next(90 * 86_400) * 1_000_000_000) as i64;
                let leads: Vec<i64> = (0..next(5))
                    .map(|_| (next(500_000) * 1_000_000_000) as i64)
                    .collect();
                let mut leads = leads;
                leads.sort_unstable();
                let suffix = ["", "f", "r"][next(3) as usize];
                fact(
                    &format!("d{i}{suffix}"),
                    "acme/x",
                    Tier::Production,
                    at,
                    &leads,
                )
            })
            .collect();
        let mut sorted = facts.clone();
        sorted.sort_by_key(|f| f.finished_at);
        let tallies: Vec<DayTally> = tally(&sorted)
            .into_iter()
            .filter(|t| t.group == "acme")
            .collect();
        for interval in [
            Interval::Daily,
            Interval::Weekly,
            Interval::Monthly,
            Interval::All,
        ] {
            let by_fact = series(first, last, interval, &sorted, &[]);
            let by_day = series(first, last, interval, &tallies, &[]);
            assert_eq!(by_fact, by_day, "{interval:?}");
            assert_eq!(by_fact.len(), buckets(first, last, interval).len());
        }
    }
}
