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
    (
        11,
        "incremental_change_sets",
        include_str!("../../migrations/sqlite/0011_incremental_change_sets.sql"),
    ),
    (
        12,
        "lean_deployment_attributes",
        include_str!("../../migrations/sqlite/0012_lean_deployment_attributes.sql"),
    ),
    (
        13,
        "commits_in_ordinal_order",
        include_str!("../../migrations/sqlite/0013_commits_in_ordinal_order.sql"),
    ),
    (
        14,
        "failure_marks",
        include_str!("../../migrations/sqlite/0014_failure_marks.sql"),
    ),
    (
        15,
        "webhooks",
        include_str!("../../migrations/sqlite/0015_webhooks.sql"),
    ),
    (
        16,
        "gitlab_projects",
        include_str!("../../migrations/sqlite/0016_gitlab_projects.sql"),
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

    /// Migration 11 numbers the commits of each repository and records as holes the parents
    /// and deployment commits that are not stored.
    #[test]
    fn commits_are_numbered_and_missing_ones_are_holes() {
        let conn = Connection::open_in_memory().unwrap();
        for &(_, _, sql) in &MIGRATIONS[..10] {
            conn.execute_batch(sql).unwrap();
        }
        let commit = |repo: &str, sha: &str, parents: &str| {
            conn.execute(
                "INSERT INTO commits (repository_id, sha, parents, authored_at, committed_at) \
                 VALUES (?1, ?2, ?3, 0, 0)",
                [repo, sha, parents],
            )
            .unwrap();
        };
        commit("r1", "b", "a");
        commit("r1", "c", "b x");
        commit("r1", "d", "");
        commit("r2", "e", "f g");
        conn.execute(
            "INSERT INTO deployments (id, service, started_at, finished_at, repository_url, \
             repository_id, commit_sha, custom_tags, source, received_at) \
             VALUES ('d1', 'shop', 0, 0, 'u', 'r1', 'z', '[]', 'api', 0)",
            [],
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[10].2).unwrap();
        let rows = |sql: &str| -> Vec<(String, String)> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let numbered = rows(
            "SELECT repository_id || '/' || sha, CAST(ordinal AS TEXT) FROM commits \
             ORDER BY repository_id, sha",
        );
        let expected = [("r1/b", "0"), ("r1/c", "1"), ("r1/d", "2"), ("r2/e", "0")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(numbered, expected);
        let next = rows("SELECT repository_id, CAST(commits AS TEXT) FROM repositories ORDER BY 1");
        assert_eq!(next, [("r1".into(), "3".into()), ("r2".into(), "1".into())]);
        let holes = rows("SELECT repository_id, sha FROM commit_holes ORDER BY 1, 2");
        let expected: Vec<(String, String)> = [
            ("r1", "a"),
            ("r1", "x"),
            ("r1", "z"),
            ("r2", "f"),
            ("r2", "g"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(holes, expected);
    }

    /// Migration 12 leaves each deployment the attribute rows a write now stores.
    #[test]
    fn deployment_attributes_become_lean() {
        use dora_core::model::{deployment_attributes, Deployment, Git};
        use dora_core::query::numeric_value;
        let conn = Connection::open_in_memory().unwrap();
        for &(_, _, sql) in &MIGRATIONS[..11] {
            conn.execute_batch(sql).unwrap();
        }
        let deployment = |id: &str, version: &str, tags: &[&str], git: bool| Deployment {
            id: id.into(),
            service: "shop".into(),
            env: Some("prod".into()),
            team: None,
            version: Some(version.into()),
            started_at: 0,
            finished_at: 0,
            git: git.then(|| Git {
                repository_url: "https://example.com/acme/shop".into(),
                repository_id: "example.com/acme/shop".into(),
                commit_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            }),
            custom_tags: tags.iter().map(|t| t.to_string()).collect(),
            source: "api".into(),
        };
        let deployments = [
            deployment("d1", "v1", &[], true),
            deployment("d2", "42", &["region:eu", "service:cart", "env:7"], false),
            deployment(
                "d3",
                "v2",
                &["service:shop", "team:web:blue", "version:1e3"],
                true,
            ),
        ];
        for (pk, d) in (1..).zip(&deployments) {
            conn.execute(
                "INSERT INTO deployments (pk, id, service, started_at, finished_at, custom_tags, \
                 source, received_at) VALUES (?1, ?2, 'shop', 0, 0, ?3, 'api', 0)",
                rusqlite::params![pk, d.id, crate::rows::to_json_list(&d.custom_tags)],
            )
            .unwrap();
            // As earlier versions stored them: every attribute.
            for (key, value) in deployment_attributes(d) {
                conn.execute(
                    "INSERT INTO deployment_attrs (owner_pk, key, value, num) \
                     VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![pk, key, value, numeric_value(&value)],
                )
                .unwrap();
            }
        }
        conn.execute_batch(MIGRATIONS[11].2).unwrap();
        for (pk, d) in (1..).zip(&deployments) {
            let mut kept: Vec<(String, String)> = conn
                .prepare("SELECT key, value FROM deployment_attrs WHERE owner_pk = ?1")
                .unwrap()
                .query_map([pk], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut expected = crate::sql::stored_deployment_attributes(d);
            kept.sort();
            expected.sort();
            assert_eq!(kept, expected, "{}", d.id);
        }
    }

    /// Migration 13 keeps every commit, whole, in ordinal order, and a sha still once per
    /// repository.
    #[test]
    fn commits_are_kept_in_ordinal_order() {
        let conn = Connection::open_in_memory().unwrap();
        for &(_, _, sql) in &MIGRATIONS[..12] {
            conn.execute_batch(sql).unwrap();
        }
        let all = "SELECT repository_id, ordinal, sha, parents, authored_at, committed_at, \
                   author, subject, mr_number, mr_created_at, mr_merged_at FROM commits";
        for (repo, sha, ordinal, mr) in [
            ("r1", "c", 2, None),
            ("r1", "a", 0, Some(7)),
            ("r2", "a", 0, None),
            ("r1", "b", 1, None),
        ] {
            conn.execute(
                "INSERT INTO commits (repository_id, sha, parents, authored_at, committed_at, \
                 author, subject, mr_number, mr_created_at, mr_merged_at, ordinal) \
                 VALUES (?1, ?2, 'p q', 10, 20, 'dev', 'fix', ?3, 30, 40, ?4)",
                rusqlite::params![repo, sha, mr, ordinal],
            )
            .unwrap();
        }
        type Row = (String, i64, String, String, i64, i64, String, String);
        let read = |sql: &str| -> Vec<(Row, Option<i64>)> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| {
                    let row = (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    );
                    Ok((row, r.get(8)?))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = read(&format!("{all} ORDER BY repository_id, ordinal"));
        assert_eq!(before.len(), 4);
        conn.execute_batch(MIGRATIONS[12].2).unwrap();
        // Read in the table's own order: by repository, then ordinal.
        assert_eq!(read(all), before);
        let again = conn.execute(
            "INSERT INTO commits (repository_id, sha, parents, authored_at, committed_at, \
             ordinal) VALUES ('r1', 'a', '', 0, 0, 3) ON CONFLICT (repository_id, sha) DO NOTHING",
            [],
        );
        assert_eq!(again.unwrap(), 0, "a repository's sha is stored once");
    }
}
