//! Day tallies (migration 0007): what both stores share to keep them — which facts a
//! re-derivation changed (only those are written, and their days marked), and the SQL.

use std::collections::{BTreeSet, HashMap};

use dora_core::metrics::{DeploymentFact, NANOS_PER_DAY};
use dora_core::rollup::{day_number, DayTally};
use dora_core::tier::Tier;

use crate::query_sql::SqlParam;
use crate::rows::{decode_nanos, Columns};
use crate::{StoreError, StoreResult};

/// How a stream's stored facts become its re-derived ones.
#[derive(Debug, Default, PartialEq)]
pub struct FactChanges<'a> {
    /// New or changed facts.
    pub put: Vec<&'a DeploymentFact>,
    /// Ids of facts the stream no longer has.
    pub delete: Vec<String>,
    /// Days whose tallies are stale: those of every fact put or deleted, before and after.
    pub days: BTreeSet<i64>,
}

/// The changes from a stream's stored facts to its re-derived ones.
pub fn fact_changes<'a>(
    stored: Vec<DeploymentFact>,
    derived: &'a [DeploymentFact],
) -> FactChanges<'a> {
    let mut stored: HashMap<String, DeploymentFact> =
        stored.into_iter().map(|f| (f.id.clone(), f)).collect();
    let mut changes = FactChanges::default();
    for fact in derived {
        match stored.remove(&fact.id) {
            Some(before) if before == *fact => {}
            before => {
                changes
                    .days
                    .extend(before.map(|b| day_number(b.finished_at)));
                changes.days.insert(day_number(fact.finished_at));
                changes.put.push(fact);
            }
        }
    }
    for (id, gone) in stored {
        changes.days.insert(day_number(gone.finished_at));
        changes.delete.push(id);
    }
    changes.delete.sort();
    changes
}

/// `[from, to)` in nanoseconds of one day.
pub fn day_range(day: i64) -> (i64, i64) {
    (
        day.saturating_mul(NANOS_PER_DAY),
        day.saturating_add(1).saturating_mul(NANOS_PER_DAY),
    )
}

/// A fact of the stream `?2`, `?3` that it no longer has.
pub const DELETE_FACT: &str =
    "DELETE FROM deployment_facts WHERE id = ?1 AND service = ?2 AND env = ?3";
pub const MARK_DAY: &str = "INSERT INTO dirty_days (day) VALUES (?1)";
/// The stale days, oldest first.
pub const DIRTY_DAYS: &str = "SELECT DISTINCT day FROM dirty_days ORDER BY day LIMIT ?1";
pub const CLAIM_DAY: &str = "DELETE FROM dirty_days WHERE day = ?1";
pub const DELETE_DAY: &str = "DELETE FROM day_tallies WHERE day = ?1";
pub const PUT_TALLY: &str = "INSERT INTO day_tallies (grp, tier, day, deployments, failed, \
    rework, lead_times, merge_lead_times, recovery_times) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const TALLY_COLUMNS: &str =
    "grp, tier, day, deployments, failed, rework, lead_times, merge_lead_times, recovery_times";

/// The facts finished in `[?1, ?2)`: all a day's tallies are made of.
pub fn facts_between() -> String {
    format!(
        "SELECT {} FROM deployment_facts f WHERE f.finished_at >= ?1 AND f.finished_at < ?2",
        crate::sql::FACT_COLUMNS
    )
}

/// Which tallies to read.
#[derive(Debug, Clone, PartialEq)]
pub struct TallyQuery {
    /// A group path, or `dora_core::rollup::EVERYTHING`.
    pub group: String,
    /// Empty: every tier.
    pub tiers: Vec<Tier>,
    /// Days since 1970-01-01, `[from_day, to_day)`.
    pub from_day: i64,
    pub to_day: i64,
}

/// The tallies a query asks for, in day order (then tier).
pub fn tallies_query(query: &TallyQuery) -> (String, Vec<SqlParam>) {
    let mut params = vec![
        SqlParam::Text(query.group.clone()),
        SqlParam::Int(query.from_day),
        SqlParam::Int(query.to_day),
    ];
    let mut sql = format!(
        "SELECT {TALLY_COLUMNS} FROM day_tallies WHERE grp = ?1 AND day >= ?2 AND day < ?3"
    );
    if !query.tiers.is_empty() {
        let tiers: Vec<String> = query
            .tiers
            .iter()
            .map(|t| {
                params.push(SqlParam::Text(t.as_str().to_string()));
                format!("?{}", params.len())
            })
            .collect();
        sql.push_str(&format!(" AND tier IN ({})", tiers.join(", ")));
    }
    sql.push_str(" ORDER BY day, tier");
    (sql, params)
}

/// Reads `TALLY_COLUMNS`.
pub fn day_tally(row: &impl Columns) -> StoreResult<DayTally> {
    let tier = row.required_text(1)?;
    let count = |index| {
        row.required_int(index)
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    Ok(DayTally {
        group: row.required_text(0)?,
        tier: Tier::parse(&tier)
            .ok_or_else(|| StoreError::Database(format!("bad tier {tier:?}")))?,
        day: row.required_int(2)?,
        deployments: count(3)?,
        failed: count(4)?,
        rework: count(5)?,
        lead_times: decode_nanos(&row.bytes(6)?.unwrap_or_default())?,
        merge_lead_times: decode_nanos(&row.bytes(7)?.unwrap_or_default())?,
        recovery_times: decode_nanos(&row.bytes(8)?.unwrap_or_default())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(id: &str, finished_at: i64, failed: bool) -> DeploymentFact {
        DeploymentFact {
            id: id.into(),
            finished_at,
            service: "shop".into(),
            team: None,
            env: Some("production".into()),
            tier: Tier::Production,
            project: "acme/shop".into(),
            failed,
            rework: false,
            lead_times: vec![1, 2],
            merge_lead_times: vec![],
            recovery_time: None,
        }
    }

    #[test]
    fn only_changed_facts_are_written_and_their_days_marked() {
        let day = NANOS_PER_DAY;
        let stored = vec![
            fact("same", day, false),
            fact("verdict", 2 * day, false),
            fact("moved", 3 * day, false),
            fact("gone", 4 * day, false),
        ];
        let derived = vec![
            fact("same", day, false),
            fact("verdict", 2 * day, true),
            fact("moved", 5 * day, false),
            fact("new", 6 * day + 1, false),
        ];
        let changes = fact_changes(stored, &derived);
        let put: Vec<&str> = changes.put.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(put, ["verdict", "moved", "new"]);
        assert_eq!(changes.delete, ["gone"]);
        assert_eq!(changes.days, BTreeSet::from([2, 3, 4, 5, 6]));
        assert_eq!(
            fact_changes(derived.clone(), &derived),
            FactChanges::default()
        );
        assert_eq!(day_range(-1), (-NANOS_PER_DAY, 0));
    }
}
