//! Versioned schema migrations for PostgreSQL. Nodes starting together take an advisory lock,
//! so exactly one of them applies each migration.

use deadpool_postgres::Object;

use crate::{StoreError, StoreResult};

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
    // Version 5 is another change's (merged separately); the versions apply in this order.
    (
        6,
        "list_indexes",
        include_str!("../../migrations/postgres/0006_list_indexes.sql"),
    ),
];

/// An arbitrary constant naming dorametrics' migration lock.
const LOCK_KEY: i64 = 0x0064_6f72_616d_6967;

/// Applies missing migrations, or (when `migrate` is false) only checks none is missing.
pub async fn check_or_run(client: &mut Object, migrate: bool) -> StoreResult<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 name       TEXT   NOT NULL,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .or_else(ignore_concurrent_create)?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
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

/// Two nodes may race to `CREATE TABLE IF NOT EXISTS`; the loser sees a unique violation.
fn ignore_concurrent_create(error: tokio_postgres::Error) -> StoreResult<()> {
    match error.code() {
        Some(code) if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Ok(()),
        _ => Err(error.into()),
    }
}
