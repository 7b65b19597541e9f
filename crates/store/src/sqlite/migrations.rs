//! Versioned schema migrations, applied in order, each in its own transaction.

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

/// The newest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// (version, name, SQL). Append only: a released migration never changes.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "events_and_tokens",
        include_str!("../../migrations/sqlite/0001_events_and_tokens.sql"),
    ),
    (
        2,
        "commits",
        include_str!("../../migrations/sqlite/0002_commits.sql"),
    ),
    (
        3,
        "token_scopes",
        include_str!("../../migrations/sqlite/0003_token_scopes.sql"),
    ),
    (
        4,
        "env_tiers",
        include_str!("../../migrations/sqlite/0004_env_tiers.sql"),
    ),
    (
        5,
        "deployment_facts",
        include_str!("../../migrations/sqlite/0005_deployment_facts.sql"),
    ),
    (
        6,
        "list_indexes",
        include_str!("../../migrations/sqlite/0006_list_indexes.sql"),
    ),
    (
        7,
        "day_tallies",
        include_str!("../../migrations/sqlite/0007_day_tallies.sql"),
    ),
    (
        8,
        "team_indexes",
        include_str!("../../migrations/sqlite/0008_team_indexes.sql"),
    ),
    (
        9,
        "token_lifecycle",
        include_str!("../../migrations/sqlite/0009_token_lifecycle.sql"),
    ),
    (
        10,
        "stale_since",
        include_str!("../../migrations/sqlite/0010_stale_since.sql"),
    ),
];

/// Applies missing migrations, or (when `migrate` is false) only checks none is missing.
pub fn check_or_run(conn: &mut Connection, migrate: bool) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT   NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )?;
    for &(version, name, sql) in MIGRATIONS {
        // IMMEDIATE: two processes starting on one new file must not both apply a migration.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |row| row.get(0),
        )?;
        if !applied && !migrate {
            return Err(StoreError::Database(format!(
                "the database lacks migration {version} ({name}); run `dorametrics migrate`"
            )));
        }
        if !applied {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, dora_core::time::now()],
            )?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 10 keeps the stale marks, stamps them, and never lets `seq` go back — also
    /// when the marks were all claimed before it ran.
    #[test]
    fn stale_marks_are_carried_over_with_their_sequence() {
        for keep_marks in [true, false] {
            let conn = Connection::open_in_memory().unwrap();
            for &(version, _, sql) in &MIGRATIONS[..9] {
                assert!(version < 10);
                conn.execute_batch(sql).unwrap();
            }
            for service in ["shop", "cart", "api"] {
                conn.execute(
                    "INSERT INTO dirty_streams (service, env) VALUES (?1, 'prod')",
                    [service],
                )
                .unwrap();
            }
            if !keep_marks {
                conn.execute("DELETE FROM dirty_streams", []).unwrap();
            }
            conn.execute_batch(MIGRATIONS[9].2).unwrap();
            let kept: Vec<(i64, String, i64)> = conn
                .prepare("SELECT seq, service, marked_at FROM dirty_streams ORDER BY seq")
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let now = dora_core::time::now();
            if keep_marks {
                let services: Vec<&str> = kept.iter().map(|(_, s, _)| s.as_str()).collect();
                assert_eq!(services, ["shop", "cart", "api"]);
                assert_eq!(kept[0].0, 1);
            } else {
                assert!(kept.is_empty());
            }
            for (_, _, marked_at) in &kept {
                assert!((now - 60_000_000_000..=now + 60_000_000_000).contains(marked_at));
            }
            conn.execute(
                "INSERT INTO dirty_streams (service, env) VALUES ('web', '')",
                [],
            )
            .unwrap();
            let newest: i64 = conn
                .query_row("SELECT MAX(seq) FROM dirty_streams", [], |row| row.get(0))
                .unwrap();
            assert_eq!(newest, 4, "keep_marks={keep_marks}");
        }
    }
}
