//! Versioned schema migrations for PostgreSQL. Nodes starting together take an advisory lock,
//! so exactly one of them applies each migration.

use deadpool_postgres::Object;

use crate::{StoreError, StoreResult};

/// The newest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// (version, name, SQL). Append only: a released migration never changes.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "events_and_tokens",
        include_str!("../../migrations/postgres/0001_events_and_tokens.sql"),
    ),
    (
        2,
        "commits",
        include_str!("../../migrations/postgres/0002_commits.sql"),
    ),
    (
        3,
        "token_scopes",
        include_str!("../../migrations/postgres/0003_token_scopes.sql"),
    ),
    (
        4,
        "env_tiers",
        include_str!("../../migrations/postgres/0004_env_tiers.sql"),
    ),
    (
        5,
        "deployment_facts",
        include_str!("../../migrations/postgres/0005_deployment_facts.sql"),
    ),
    (
        6,
        "list_indexes",
        include_str!("../../migrations/postgres/0006_list_indexes.sql"),
    ),
    (
        7,
        "day_tallies",
        include_str!("../../migrations/postgres/0007_day_tallies.sql"),
    ),
    (
        8,
        "team_indexes",
        include_str!("../../migrations/postgres/0008_team_indexes.sql"),
    ),
    (
        9,
        "token_lifecycle",
        include_str!("../../migrations/postgres/0009_token_lifecycle.sql"),
    ),
    (
        10,
        "stale_since",
        include_str!("../../migrations/postgres/0010_stale_since.sql"),
    ),
    (
        11,
        "incremental_change_sets",
        include_str!("../../migrations/postgres/0011_incremental_change_sets.sql"),
    ),
    (
        12,
        "lean_deployment_attributes",
        include_str!("../../migrations/postgres/0012_lean_deployment_attributes.sql"),
    ),
    (
        13,
        "failure_marks",
        include_str!("../../migrations/postgres/0013_failure_marks.sql"),
    ),
    (
        14,
        "webhooks",
        include_str!("../../migrations/postgres/0014_webhooks.sql"),
    ),
    (
        15,
        "gitlab_projects",
        include_str!("../../migrations/postgres/0015_gitlab_projects.sql"),
    ),
];

/// An arbitrary constant naming dorametrics' migration lock.
const LOCK_KEY: i64 = 0x0064_6f72_616d_6967;

/// Applies missing migrations, or (when `migrate` is false) only checks none is missing.
pub async fn check_or_run(client: &mut Object, migrate: bool) -> StoreResult<()> {
    // The lock comes first: two nodes creating the table at once would otherwise collide
    // (a unique violation, or "type already exists") even with IF NOT EXISTS.
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT   NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )
    .await?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    for &(version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        if !migrate {
            return Err(StoreError::Database(format!(
                "the database lacks migration {version} ({name}); run `dorametrics migrate`"
            )));
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&version, &name, &dora_core::time::now()],
        )
        .await?;
        tracing::info!(version, name, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}
