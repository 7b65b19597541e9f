//! The SQL both stores run, written once with `?N` placeholders — generated SQL too — which the
//! PostgreSQL store turns into its `$N` as it prepares a statement ([`for_postgres`]). Only the
//! schema (migrations) and a few dialect words differ between them.

use std::fmt::Write;

use dora_core::model::{
    deployment_fields, tag_attributes, Commit, Deployment, ListQuery, SortField,
};
use dora_core::query::{numeric_value, Query};

use crate::query_sql::{column_filter_sql, filter_sql, tag_guard, ColumnKey, Dialect, SqlParam};
use crate::FactQuery;

/// One kind of event: its table, its attribute table and the column lists the row mappers read.
pub struct EventTable {
    pub table: &'static str,
    pub attrs_table: &'static str,
    pub columns: &'static str,
    /// The column `from`/`to` bound.
    pub range_column: &'static str,
    /// Keys whose attribute is a column of the table (unless a custom tag repeats the key), so
    /// that lists can filter them with the table's indexes; see [`list`].
    pub column_keys: &'static [ColumnKey],
    /// The event's own fields, kept in their columns: the attributes table holds them only
    /// when they are numbers ([`stored_deployment_attributes`]); see [`crate::query_sql`].
    pub fields: &'static [ColumnKey],
}

/// `service`, `env`, `team` and `version` of a deployment are its columns of those names (see
/// `dora_core::model::deployment_attributes`). Migration 0006's partial index is declared with
/// [`tag_guard`] over exactly these keys, in this order.
pub const DEPLOYMENT_COLUMN_KEYS: &[ColumnKey] = &[
    ColumnKey {
        key: "service",
        column: "e.service",
        nullable: false,
    },
    ColumnKey {
        key: "env",
        column: "e.env",
        nullable: true,
    },
    ColumnKey {
        key: "team",
        column: "e.team",
        nullable: true,
    },
    ColumnKey {
        key: "version",
        column: "e.version",
        nullable: true,
    },
];

/// Every attribute of `dora_core::model::deployment_fields`, as the column holding it.
pub const DEPLOYMENT_FIELDS: &[ColumnKey] = &[
    DEPLOYMENT_COLUMN_KEYS[0],
    ColumnKey {
        key: "source",
        column: "e.source",
        nullable: false,
    },
    DEPLOYMENT_COLUMN_KEYS[1],
    DEPLOYMENT_COLUMN_KEYS[2],
    DEPLOYMENT_COLUMN_KEYS[3],
    ColumnKey {
        key: "repository_id",
        column: "e.repository_id",
        nullable: true,
    },
    ColumnKey {
        key: "commit_sha",
        column: "e.commit_sha",
        nullable: true,
    },
];

pub const DEPLOYMENTS: EventTable = EventTable {
    table: "deployments",
    attrs_table: "deployment_attrs",
    columns: "e.id, e.service, e.env, e.team, e.version, e.started_at, e.finished_at, \
        e.repository_url, e.repository_id, e.commit_sha, e.custom_tags, e.source, \
        e.change_failure, e.remediation_type, e.remediation_id, e.remediation_version",
    range_column: "finished_at",
    column_keys: DEPLOYMENT_COLUMN_KEYS,
    fields: DEPLOYMENT_FIELDS,
};

pub const FAILURES: EventTable = EventTable {
    table: "failures",
    attrs_table: "failure_attrs",
    columns: "e.id, e.name, e.services, e.team, e.env, e.severity, e.started_at, e.finished_at, \
        e.version, e.repository_url, e.repository_id, e.commit_sha, e.custom_tags, e.source",
    range_column: "started_at",
    // A failure's `service` attributes come from a JSON list; its lists are small enough for the
    // attribute look-ups, and failures few enough to keep every attribute.
    column_keys: &[],
    fields: &[],
};

pub const PUT_DEPLOYMENT: &str = "INSERT INTO deployments (id, service, env, team, version, \
        started_at, finished_at, repository_url, repository_id, commit_sha, custom_tags, source, \
        received_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
    ON CONFLICT (id) DO UPDATE SET service = excluded.service, env = excluded.env, \
        team = excluded.team, version = excluded.version, started_at = excluded.started_at, \
        finished_at = excluded.finished_at, repository_url = excluded.repository_url, \
        repository_id = excluded.repository_id, commit_sha = excluded.commit_sha, \
        custom_tags = excluded.custom_tags, source = excluded.source, \
        received_at = excluded.received_at \
    RETURNING pk";

pub const PUT_FAILURE: &str = "INSERT INTO failures (id, name, services, team, env, severity, \
        started_at, finished_at, version, repository_url, repository_id, commit_sha, custom_tags, \
        source, received_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, services = excluded.services, \
        team = excluded.team, env = excluded.env, severity = excluded.severity, \
        started_at = excluded.started_at, finished_at = excluded.finished_at, \
        version = excluded.version, repository_url = excluded.repository_url, \
        repository_id = excluded.repository_id, commit_sha = excluded.commit_sha, \
        custom_tags = excluded.custom_tags, source = excluded.source, \
        received_at = excluded.received_at \
    RETURNING pk";

/// The attribute rows a deployment keeps: those of its custom tags, and those of its fields
/// that are numbers (numeric ranges compare the attributes' `num`); the rest of its fields are
/// searched in their columns ([`DEPLOYMENT_FIELDS`]).
pub fn stored_deployment_attributes(d: &Deployment) -> Vec<(String, String)> {
    let mut attrs = deployment_fields(d);
    attrs.retain(|(_, value)| numeric_value(value).is_some());
    attrs.extend(tag_attributes(&d.custom_tags));
    attrs
}

pub fn delete_attrs(table: &EventTable) -> String {
    format!("DELETE FROM {} WHERE owner_pk = ?1", table.attrs_table)
}

/// `rows` attributes, (owner_pk, key, value, num) each.
pub fn insert_attrs(table: &EventTable, rows: usize) -> String {
    format!(
        "INSERT INTO {} (owner_pk, key, value, num) VALUES {}",
        table.attrs_table,
        values(rows, 4)
    )
}

pub fn delete_event(table: &EventTable) -> String {
    format!("DELETE FROM {} WHERE id = ?1 RETURNING pk", table.table)
}

pub fn get_event(table: &EventTable) -> String {
    format!(
        "SELECT {} FROM {} e WHERE e.id = ?1",
        table.columns, table.table
    )
}

/// The stream a deployment is in now (before a write changes or removes it).
pub const DEPLOYMENT_STREAM_BY_ID: &str = "SELECT service, env FROM deployments WHERE id = ?1";
pub const DEPLOYMENT_STREAM_BY_PK: &str = "SELECT service, env FROM deployments WHERE pk = ?1";
/// What a failure concerns now (before a write changes or removes it).
pub const FAILURE_SCOPE_BY_ID: &str = "SELECT services, team, env FROM failures WHERE id = ?1";
/// Failures resolved in `[?1, ?2)`.
pub fn failures_resolved() -> String {
    format!(
        "SELECT {} FROM failures e WHERE e.finished_at >= ?1 AND e.finished_at < ?2 \
         ORDER BY e.finished_at, e.pk",
        FAILURES.columns
    )
}

/// Failures naming service `?1` or one of teams `?2`… (`teams` placeholders), by the attribute
/// index rather than a scan, in start order: a superset of those whose
/// `dora_core::derive::FailureScope` concerns the stream, which the engine then asks.
pub fn failures_naming(teams: usize) -> String {
    let team_values: Vec<String> = (0..teams).map(|i| format!("?{}", i + 2)).collect();
    let by_team = if teams == 0 {
        String::new()
    } else {
        format!(
            " UNION SELECT owner_pk FROM failure_attrs WHERE key = 'team' AND value IN ({})",
            team_values.join(", ")
        )
    };
    format!(
        "SELECT {} FROM failures e WHERE e.pk IN (SELECT owner_pk FROM failure_attrs \
         WHERE key = 'service' AND value = ?1{by_team}) ORDER BY e.started_at, e.pk",
        FAILURES.columns
    )
}

pub const DEPLOYMENT_PK_BY_ID: &str = "SELECT pk FROM deployments WHERE id = ?1";
/// The most recently finished deployment of a service, env and version.
pub const DEPLOYMENT_PK_BY_VERSION: &str = "SELECT pk FROM deployments \
    WHERE service = ?1 AND env = ?2 AND version = ?3 ORDER BY finished_at DESC, pk DESC LIMIT 1";
pub const SET_CHANGE_FAILURE: &str = "UPDATE deployments SET change_failure = ?1 WHERE pk = ?2";
pub const SET_REMEDIATION: &str = "UPDATE deployments SET remediation_type = ?1, \
    remediation_id = ?2, remediation_version = ?3 WHERE pk = ?4";

/// The values of one row of [`insert_commits`]: its [`COMMIT_COLUMNS`], then whether its
/// parents were implied.
pub const COMMIT_COLUMN_COUNT: usize = 12;

/// `rows` commits, none of them stored, each its [`COMMIT_COLUMNS`] and `parents_inferred`.
pub fn insert_commits(rows: usize) -> String {
    format!(
        "INSERT INTO commits ({COMMIT_COLUMNS}, parents_inferred) VALUES {} \
         ON CONFLICT (repository_id, sha) DO NOTHING",
        values(rows, COMMIT_COLUMN_COUNT)
    )
}

/// The sha arrived: 1 when it filled a hole.
pub const FILL_HOLE: &str = "DELETE FROM commit_holes WHERE repository_id = ?1 AND sha = ?2";

/// `rows` (repository_id, sha) that a stored commit names but no repository holds.
pub fn put_holes(rows: usize) -> String {
    format!(
        "INSERT INTO commit_holes (repository_id, sha) VALUES {} ON CONFLICT DO NOTHING",
        values(rows, 2)
    )
}

/// `?first, ?first+1, …`: `count` placeholders.
fn placeholders(first: usize, count: usize) -> String {
    let numbers: Vec<String> = (first..first + count).map(|n| format!("?{n}")).collect();
    numbers.join(", ")
}

/// `(?1, …, ?columns), (…), …`: `rows` rows of `columns` placeholders.
fn values(rows: usize, columns: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| format!("({})", placeholders(1 + row * columns, columns)))
        .collect();
    rows.join(", ")
}

/// The next ordinal of a repository's commits (how many it holds).
pub const REPOSITORY_COMMITS: &str = "SELECT commits FROM repositories WHERE repository_id = ?1";
pub const SET_REPOSITORY_COMMITS: &str = "INSERT INTO repositories (repository_id, commits) \
    VALUES (?1, ?2) ON CONFLICT (repository_id) DO UPDATE SET commits = excluded.commits";
pub const COMMIT_EXISTS: &str = "SELECT 1 FROM commits WHERE repository_id = ?1 AND sha = ?2";
/// Whether a repository has holes at all.
pub const HAS_HOLES: &str = "SELECT EXISTS (SELECT 1 FROM commit_holes WHERE repository_id = ?1)";
/// Merge-request facts may arrive after the commit itself.
/// Only when they differ, so that a commit sent again changes nothing.
pub const SET_COMMIT_MERGE_REQUEST: &str = "UPDATE commits SET mr_number = ?3, \
    mr_created_at = ?4, mr_merged_at = ?5 WHERE repository_id = ?1 AND sha = ?2 \
    AND (mr_number IS DISTINCT FROM ?3 OR mr_created_at IS DISTINCT FROM ?4 \
        OR mr_merged_at IS DISTINCT FROM ?5)";
/// What [`crate::rows::commit`] reads, then the ordinal.
const COMMIT_COLUMNS: &str = "repository_id, sha, parents, authored_at, committed_at, author, \
    subject, mr_number, mr_created_at, mr_merged_at, ordinal";
pub fn commits_of() -> String {
    format!("SELECT {COMMIT_COLUMNS} FROM commits WHERE repository_id = ?1")
}
/// One commit of a repository by sha.
pub fn commit_by_sha() -> String {
    format!("SELECT {COMMIT_COLUMNS} FROM commits WHERE repository_id = ?1 AND sha = ?2")
}
/// Commits of a repository by sha, the shas a PostgreSQL array.
pub fn commits_by_sha_array() -> String {
    format!("SELECT {COMMIT_COLUMNS} FROM commits WHERE repository_id = ?1 AND sha = ANY(?2)")
}

pub const ENV_TIERS: &str = "SELECT env, tier FROM env_tiers ORDER BY env";
pub const SET_ENV_TIER: &str = "INSERT INTO env_tiers (env, tier) VALUES (?1, ?2) \
    ON CONFLICT (env) DO UPDATE SET tier = excluded.tier";
pub const DELETE_ENV_TIER: &str = "DELETE FROM env_tiers WHERE env = ?1";

pub const PROJECT_SOURCES: &str = "SELECT NULLIF(repository_id, ''), service \
    FROM project_sources ORDER BY repository_id, service";
pub const PUT_PROJECT_SOURCE: &str = "INSERT INTO project_sources (repository_id, service) \
    VALUES (COALESCE(?1, ''), ?2) ON CONFLICT (repository_id, service) DO NOTHING";

pub const INSERT_TOKEN: &str = "INSERT INTO tokens (token_id, name, hash, scopes, created_at, \
    restrictions, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// Inserts only into an empty table; callers serialise it (SQLite: the write lock;
/// PostgreSQL: an advisory lock).
pub const INSERT_FIRST_TOKEN: &str = "INSERT INTO tokens (token_id, name, hash, scopes, \
    created_at, restrictions, expires_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
    WHERE NOT EXISTS (SELECT 1 FROM tokens)";
/// The columns [`crate::rows::token`] reads.
const TOKEN_COLUMNS: &str =
    "token_id, name, hash, scopes, restrictions, created_at, expires_at, last_used_at, revoked_at";
pub fn find_token() -> String {
    format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_id = ?1")
}
pub fn list_tokens() -> String {
    format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, pk")
}
pub const REVOKE_TOKEN: &str =
    "UPDATE tokens SET revoked_at = ?2 WHERE token_id = ?1 AND revoked_at IS NULL";
/// `?3`: the oldest last use that still counts as recent.
pub const TOUCH_TOKEN: &str = "UPDATE tokens SET last_used_at = ?2 WHERE token_id = ?1 \
    AND (last_used_at IS NULL OR last_used_at < ?3)";
pub const SCHEMA_VERSION: &str = "SELECT max(version) FROM schema_migrations";
pub const COUNT_TOKENS: &str = "SELECT COUNT(*) FROM tokens";

/// `SELECT … WHERE <time range> AND <filter> ORDER BY … LIMIT …` over one event table.
///
/// When the filter has terms on the table's [`EventTable::column_keys`], the rows are found in
/// two disjoint parts: rows without a custom tag of those keys (not [`tag_guard`]), filtered on
/// the columns — which an index on them serves, instead of one attribute look-up per row in the
/// range — and the rest (usually none), filtered on the attributes. Only the keys (`pk` and the
/// sort column) of the first `limit` matches are sorted; their rows are read afterwards.
pub fn list(query: &ListQuery, table: &EventTable, dialect: Dialect) -> (String, Vec<SqlParam>) {
    let mut params = vec![
        SqlParam::Int(query.from.unwrap_or(i64::MIN)),
        SqlParam::Int(query.to.unwrap_or(i64::MAX)),
        SqlParam::Int(i64::from(query.limit)),
    ];
    let filter = filter_sql(
        &query.filter,
        table.attrs_table,
        "e.pk",
        table.fields,
        dialect,
        4,
    );
    let next_param = 4 + filter.params.len();
    params.extend(filter.params);
    let sort_column = match query.sort.field {
        SortField::StartedAt => "started_at",
        SortField::FinishedAt => "finished_at",
    };
    let direction = if query.sort.descending { "DESC" } else { "ASC" };
    let in_range = format!(
        "e.{range} >= ?1 AND e.{range} <= ?2",
        range = table.range_column
    );
    let columns_filter = column_filter_sql(
        &query.filter,
        table.attrs_table,
        "e.pk",
        table.fields,
        table.column_keys,
        dialect,
        next_param,
    );
    let sql = match columns_filter {
        None => format!(
            "SELECT {columns} FROM {table} e WHERE {in_range} AND ({filter}) \
             ORDER BY e.{sort_column} {direction}, e.pk {direction} LIMIT ?3",
            columns = table.columns,
            table = table.table,
            filter = filter.sql,
        ),
        Some(columns_filter) => {
            params.extend(columns_filter.params);
            // The tagged rows are excluded from the first part by key, not by `NOT guard` on
            // each row, so that an index holding the filtered columns covers it without
            // reading rows.
            let tagged = tag_guard("t.custom_tags", table.column_keys, dialect);
            let untagged = match dialect {
                // The set of tagged keys, built once through the partial index of migration
                // 0006 (a correlated NOT EXISTS would read each row).
                Dialect::Sqlite => format!(
                    "e.pk NOT IN (SELECT t.pk FROM {} t WHERE {tagged})",
                    table.table
                ),
                // An anti-join; PostgreSQL may run NOT IN as a sub-plan per row.
                Dialect::Postgres => format!(
                    "NOT EXISTS (SELECT 1 FROM {} t WHERE t.pk = e.pk AND {tagged})",
                    table.table
                ),
            };
            // Each part is sorted and limited on its own, so that it can stop early when an
            // index gives its order (a sort over both would need every match of both).
            let order = format!("ORDER BY 2 {direction}, 1 {direction} LIMIT ?3");
            format!(
                "SELECT {columns} FROM {table} e WHERE e.pk IN (SELECT m.pk FROM (\
                 SELECT a.pk, a.sort_key FROM (\
                 SELECT e.pk, e.{sort_column} AS sort_key FROM {table} e \
                 WHERE {in_range} AND ({columns_filter}) AND {untagged} {order}) a \
                 UNION ALL SELECT b.pk, b.sort_key FROM (\
                 SELECT e.pk, e.{sort_column} AS sort_key FROM {table} e \
                 WHERE {in_range} AND {guard} AND ({filter}) {order}) b\
                 ) m ORDER BY m.sort_key {direction}, m.pk {direction} LIMIT ?3) \
                 ORDER BY e.{sort_column} {direction}, e.pk {direction}",
                columns = table.columns,
                table = table.table,
                columns_filter = columns_filter.sql,
                guard = tag_guard("e.custom_tags", table.column_keys, dialect),
                filter = filter.sql,
            )
        }
    };
    (sql, params)
}

/// The repositories a batch of commits touches, each once, in order.
pub fn distinct_repositories(commits: &[Commit]) -> Vec<&str> {
    sorted_unique(commits.iter().map(|c| c.repository_id.as_str()))
}

/// Each name once, in order.
pub fn sorted_unique<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The streams a write can change, as `(service, env or '')`, selected from `deployments`;
/// `history` says whether the write can change change sets already derived.
fn mark_selected(history: &str) -> String {
    format!(
        "INSERT INTO dirty_streams (service, env, history) \
         SELECT DISTINCT service, COALESCE(env, ''), {history} FROM deployments"
    )
}

/// One stream (`?2` NULL: the deployments without env); `?3`: whether its history changed.
pub const MARK_STREAM: &str = "INSERT INTO dirty_streams (service, env, history) \
    VALUES (?1, COALESCE(?2, ''), ?3)";

/// Whether stream (`?1`, `?2`: env or '') was derived past `?3`: a new deployment finishing at
/// `?3` lands inside what its change sets already cover (one finishing with its head's last
/// deployment sorts after it).
pub const DERIVED_PAST: &str = "SELECT EXISTS (SELECT 1 FROM stream_heads \
    WHERE service = ?1 AND env = ?2 AND last_finished_at > ?3)";

/// Every stream of a service, or only its stream in env `?2` when not NULL (a failure scope
/// naming services): their verdicts. `?3`: the failure put, if a put (not a removal) marks.
pub fn mark_streams_of_service() -> String {
    format!(
        "{} WHERE service = ?1 AND (CAST(?2 AS TEXT) IS NULL OR env = ?2)",
        mark_for_failure()
    )
}

/// Every stream holding a deployment of team `?1` (in env `?2` when not NULL): a failure scope
/// naming a team. The `team` attribute: the column, or a custom tag. `?3` as above.
pub fn mark_streams_of_team() -> String {
    format!(
        "{} WHERE (team = ?1 OR pk IN (SELECT owner_pk FROM deployment_attrs \
         WHERE key = 'team' AND value = ?1)) AND (CAST(?2 AS TEXT) IS NULL OR env = ?2)",
        mark_for_failure()
    )
}

/// [`mark_selected`] for the verdicts, naming the failure `?3` (NULL: none).
fn mark_for_failure() -> &'static str {
    "INSERT INTO dirty_streams (service, env, history, failure_id) \
     SELECT DISTINCT service, COALESCE(env, ''), FALSE, CAST(?3 AS TEXT) FROM deployments"
}

/// Every stream deploying from a repository (a commit filled a hole in what it walked).
pub fn mark_streams_of_repository() -> String {
    format!("{} WHERE repository_id = ?1", mark_selected("TRUE"))
}

/// Every stream of an env (its tier changed).
pub fn mark_streams_of_env() -> String {
    format!("{} WHERE env = ?1", mark_selected("FALSE"))
}

/// Every stream (the failure window changed): their verdicts.
pub fn mark_all_streams() -> String {
    format!("{} WHERE true", mark_selected("FALSE"))
}

/// Each stale stream once, with the newest mark, and whether every mark names a failure.
pub const DIRTY_STREAMS: &str = "SELECT service, env, MAX(seq), \
    CAST(MAX(CASE WHEN history THEN 1 ELSE 0 END) AS BIGINT), COUNT(*), \
    CAST(MIN(CASE WHEN failure_id IS NULL THEN 0 ELSE 1 END) AS BIGINT) FROM dirty_streams \
    GROUP BY service, env ORDER BY service, env";
/// What [`crate::rows::stream_head`] reads.
pub const STREAM_HEAD: &str = "SELECT last_id, last_finished_at, repository_id, shipped \
    FROM stream_heads WHERE service = ?1 AND env = ?2";
pub const PUT_STREAM_HEAD: &str = "INSERT INTO stream_heads (service, env, last_id, \
        last_finished_at, repository_id, shipped) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
    ON CONFLICT (service, env) DO UPDATE SET last_id = excluded.last_id, \
        last_finished_at = excluded.last_finished_at, repository_id = excluded.repository_id, \
        shipped = excluded.shipped";
pub const DELETE_STREAM_HEAD: &str = "DELETE FROM stream_heads WHERE service = ?1 AND env = ?2";
/// How many streams and days are stale, and the age of the oldest stream mark, by the
/// database's clock (the one the marks' default reads).
pub fn staleness(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "SELECT (SELECT COUNT(*) FROM (SELECT DISTINCT service, env FROM dirty_streams)), \
             CAST(unixepoch('subsec') * 1000000000 AS INTEGER) \
                 - (SELECT MIN(marked_at) FROM dirty_streams), \
             (SELECT COUNT(DISTINCT day) FROM dirty_days)"
        }
        Dialect::Postgres => {
            "SELECT (SELECT COUNT(*) FROM (SELECT DISTINCT service, env FROM dirty_streams) s), \
             (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint \
                 - (SELECT MIN(marked_at) FROM dirty_streams), \
             (SELECT COUNT(DISTINCT day) FROM dirty_days)"
        }
    }
}
/// [`DIRTY_STREAMS`] of one stream.
pub const STREAM_MARKS: &str = "SELECT service, env, MAX(seq), \
    CAST(MAX(CASE WHEN history THEN 1 ELSE 0 END) AS BIGINT), COUNT(*), \
    CAST(MIN(CASE WHEN failure_id IS NULL THEN 0 ELSE 1 END) AS BIGINT) FROM dirty_streams \
    WHERE service = ?1 AND env = ?2 GROUP BY service, env";
/// The failures the marks of stream (`?1`, `?2`) up to `?3` were made for.
pub const MARKED_FAILURES: &str = "SELECT DISTINCT failure_id FROM dirty_streams \
    WHERE service = ?1 AND env = ?2 AND seq <= ?3 AND failure_id IS NOT NULL ORDER BY failure_id";
/// How many marks up to `?3` the stream has: more than a re-derivation saw means a write it did
/// not see committed with a smaller `seq` (PostgreSQL hands out `seq` before commit order).
pub const MARKS_UP_TO: &str =
    "SELECT COUNT(*) FROM dirty_streams WHERE service = ?1 AND env = ?2 AND seq <= ?3";
/// Whether a write marked the stream after mark `?3` (then a re-derivation is out of date).
pub const MARKED_SINCE: &str = "SELECT EXISTS (SELECT 1 FROM dirty_streams \
    WHERE service = ?1 AND env = ?2 AND seq > ?3)";
/// Whether a write changed the stream's past after mark `?3`: a re-derivation kept with its
/// head is still the base of the next one when the writes since only appended to the stream
/// or changed verdicts (their marks stay, and the next derivation resumes from it).
pub const MARKED_PAST_SINCE: &str = "SELECT EXISTS (SELECT 1 FROM dirty_streams \
    WHERE service = ?1 AND env = ?2 AND seq > ?3 AND history)";
/// Removes the marks a re-derivation saw; none left means another one stored a newer answer.
pub const CLAIM_STREAM: &str =
    "DELETE FROM dirty_streams WHERE service = ?1 AND env = ?2 AND seq <= ?3";
pub const PUT_FACT: &str = "INSERT INTO deployment_facts (id, finished_at, service, team, env, \
        tier, project, failed, rework, recovery_time, lead_times, merge_lead_times) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
    ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at, \
        service = excluded.service, team = excluded.team, env = excluded.env, \
        tier = excluded.tier, project = excluded.project, failed = excluded.failed, \
        rework = excluded.rework, recovery_time = excluded.recovery_time, \
        lead_times = excluded.lead_times, merge_lead_times = excluded.merge_lead_times";
/// The columns [`crate::rows::deployment_fact`] reads, in `PUT_FACT`'s order.
pub const FACT_COLUMNS: &str = "f.id, f.finished_at, f.service, f.team, f.env, f.tier, \
    f.project, f.failed, f.rework, f.recovery_time, f.lead_times, f.merge_lead_times";

/// What [`crate::rows::stream_and_team`] reads.
pub const FACT_STREAM_COLUMNS: &str = "DISTINCT f.service, f.env, f.team";

pub fn stream_facts() -> String {
    format!(
        "SELECT {FACT_COLUMNS} FROM deployment_facts f WHERE f.service = ?1 AND f.env = ?2 \
         ORDER BY f.finished_at, f.id"
    )
}

/// The deployments of one stream in finish order (`?2` NULL: those without env).
pub fn stream_deployments(has_env: bool) -> String {
    let env = if has_env {
        "e.env = ?2"
    } else {
        "e.env IS NULL"
    };
    format!(
        "SELECT {columns} FROM deployments e WHERE e.service = ?1 AND {env} \
         ORDER BY e.finished_at, e.pk",
        columns = DEPLOYMENTS.columns
    )
}

/// The deployments of stream (`?1`, env `?2`) whose `column` is `?3`: those a failure naming
/// that sha or version can be blamed on.
pub fn stream_deployments_where(column: &str) -> String {
    format!(
        "SELECT {columns} FROM deployments e WHERE e.service = ?1 AND e.env = ?2 \
         AND e.{column} = ?3",
        columns = DEPLOYMENTS.columns
    )
}

/// The deployments of stream (`?1`, env `?2`) that finished last at or before `?3` (several
/// when they tie).
pub fn stream_latest_by() -> String {
    format!(
        "SELECT {columns} FROM deployments e WHERE e.service = ?1 AND e.env = ?2 \
         AND e.finished_at = (SELECT MAX(finished_at) FROM deployments \
             WHERE service = ?1 AND env = ?2 AND finished_at <= ?3)",
        columns = DEPLOYMENTS.columns
    )
}

/// Whether a deployment's stored fact says it failed, and when it finished.
pub const FACT_FAILED: &str = "SELECT failed, finished_at FROM deployment_facts WHERE id = ?1";
pub const SET_FACT_FAILED: &str = "UPDATE deployment_facts SET failed = TRUE WHERE id = ?1";

/// Which repository each stream deploys from.
pub const STREAM_REPOSITORIES: &str = "SELECT DISTINCT service, COALESCE(env, ''), \
    repository_id FROM deployments WHERE repository_id IS NOT NULL";
pub const FACT_SETTING: &str = "SELECT value FROM fact_settings WHERE name = ?1";
pub const SET_FACT_SETTING: &str = "INSERT INTO fact_settings (name, value) VALUES (?1, ?2) \
    ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// `SELECT <what> FROM deployment_facts f WHERE <the query> [ORDER BY …]`.
pub fn facts_query(what: &str, query: &FactQuery, dialect: Dialect) -> (String, Vec<SqlParam>) {
    let mut params = vec![
        SqlParam::Int(query.from.unwrap_or(i64::MIN)),
        SqlParam::Int(query.to.unwrap_or(i64::MAX)),
    ];
    let mut sql = format!(
        "SELECT {what} FROM deployment_facts f WHERE f.finished_at >= ?1 AND f.finished_at < ?2"
    );
    let param = |params: &mut Vec<SqlParam>, value: String| {
        params.push(SqlParam::Text(value));
        format!("?{}", params.len())
    };
    if !query.tiers.is_empty() {
        let tiers: Vec<String> = query
            .tiers
            .iter()
            .map(|t| param(&mut params, t.as_str().to_string()))
            .collect();
        // With a project, SQLite (3.50) would still pick the tier index and read every fact
        // of the tier in the range; a unary `+` keeps the tier off the index choice there.
        let column = match (dialect, &query.project) {
            (Dialect::Sqlite, Some(_)) => "+f.tier",
            _ => "f.tier",
        };
        let _ = write!(sql, " AND {column} IN ({})", tiers.join(", "));
    }
    if let Some(project) = &query.project {
        let p = param(&mut params, project.clone());
        let _ = write!(sql, " AND f.project = {p}");
    }
    if let Some(group) = &query.group {
        // Inside the group: the path starts with "group/", i.e. "group/" <= path < "group0"
        // ('0' follows '/'), compared bytewise (PostgreSQL: the column is COLLATE "C").
        let low = param(&mut params, format!("{group}/"));
        let high = param(&mut params, format!("{group}0"));
        let _ = write!(sql, " AND f.project >= {low} AND f.project < {high}");
    }
    if query.filter != Query::All {
        let filter = filter_sql(
            &query.filter,
            DEPLOYMENTS.attrs_table,
            "e.pk",
            DEPLOYMENTS.fields,
            dialect,
            params.len() + 1,
        );
        params.extend(filter.params);
        // On the columns where they say the same (see `list`), else on the attributes.
        let columns = DEPLOYMENTS.column_keys;
        let matching = match column_filter_sql(
            &query.filter,
            DEPLOYMENTS.attrs_table,
            "e.pk",
            DEPLOYMENTS.fields,
            columns,
            dialect,
            params.len() + 1,
        ) {
            None => format!("SELECT e.id FROM deployments e WHERE {}", filter.sql),
            Some(on_columns) => {
                params.extend(on_columns.params);
                let guard = tag_guard("e.custom_tags", columns, dialect);
                // Two parts the database can each find through an index: deployments without
                // a custom tag of a column key, on the columns (by service, by team, …), and
                // the few with one, through the partial index of those by finish time (the
                // facts' own, so the range is theirs).
                format!(
                    "SELECT e.id FROM deployments e WHERE ({}) AND NOT {guard} \
                     UNION ALL SELECT e.id FROM deployments e \
                     WHERE e.finished_at >= ?1 AND e.finished_at < ?2 AND {guard} AND ({})",
                    on_columns.sql, filter.sql
                )
            }
        };
        // Not correlated: the database finds the matching deployments once, however it can.
        let _ = write!(sql, " AND f.id IN ({matching})");
    }
    (sql, params)
}

/// `?N` placeholders to `$N`. Our SQL has no `?` inside string literals, so a plain scan is exact.
pub fn for_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The columns [`crate::rows::hook`] reads.
const HOOK_COLUMNS: &str =
    "name, provider, secret, deploy_workflow, deploy_env, incident_label, created_at";
pub fn list_hooks() -> String {
    format!("SELECT {HOOK_COLUMNS} FROM webhooks ORDER BY name")
}
pub fn hooks_of_provider() -> String {
    format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE provider = ?1 ORDER BY name")
}
/// A new hook; none when the name is taken.
pub const INSERT_HOOK: &str = "INSERT INTO webhooks (name, provider, secret, deploy_workflow, \
    deploy_env, incident_label, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
    ON CONFLICT (name) DO NOTHING";
pub const DELETE_HOOK: &str = "DELETE FROM webhooks WHERE name = ?1";

/// The columns [`crate::rows::delivery`] reads.
const DELIVERY_COLUMNS: &str =
    "seq, provider, delivery_id, hook, event, received_at, outcome, detail";
/// A delivery; none when one with its id was kept already (a replay).
pub const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (provider, delivery_id, hook, \
    event, received_at, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
    ON CONFLICT (provider, delivery_id) WHERE delivery_id IS NOT NULL AND outcome <> 'refused' \
    DO NOTHING";
pub const DELIVERY_SEEN: &str = "SELECT EXISTS (SELECT 1 FROM webhook_deliveries \
    WHERE provider = ?1 AND delivery_id = ?2 AND outcome <> 'refused')";
/// The newest `?2` deliveries before `?1` (a `seq`), newest first.
pub fn deliveries_before() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE seq < ?1 \
         ORDER BY seq DESC LIMIT ?2"
    )
}

/// Moves an object's newest applied state to `?3` unless a newer one was applied: 1 if moved
/// (or equal: a retried delivery applies again).
pub const ADVANCE_OBJECT: &str = "INSERT INTO webhook_objects (provider, object_id, as_of) \
    VALUES (?1, ?2, ?3) ON CONFLICT (provider, object_id) DO UPDATE SET as_of = excluded.as_of \
    WHERE webhook_objects.as_of <= excluded.as_of";
pub const OBJECT_AS_OF: &str =
    "SELECT as_of FROM webhook_objects WHERE provider = ?1 AND object_id = ?2";
pub const GITLAB_PROJECTS: &str = "SELECT gitlab_id, path FROM gitlab_projects ORDER BY gitlab_id";
pub const PUT_GITLAB_PROJECT: &str =
    "INSERT INTO gitlab_projects (gitlab_id, path) VALUES (?1, ?2) \
    ON CONFLICT (gitlab_id) DO UPDATE SET path = excluded.path";
pub const LIST_ALIASES: &str =
    "SELECT provider, name, service FROM webhook_aliases ORDER BY provider, name";
pub const PUT_ALIAS: &str = "INSERT INTO webhook_aliases (provider, name, service) \
    VALUES (?1, ?2, ?3) ON CONFLICT (provider, name) DO UPDATE SET service = excluded.service";
pub const DELETE_ALIAS: &str = "DELETE FROM webhook_aliases WHERE provider = ?1 AND name = ?2";

/// Merge-request facts of a commit not stored yet.
pub const PUT_PENDING_MERGE_REQUEST: &str = "INSERT INTO pending_merge_requests \
        (repository_id, sha, mr_number, mr_created_at, mr_merged_at) VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (repository_id, sha) DO UPDATE SET mr_number = excluded.mr_number, \
        mr_created_at = excluded.mr_created_at, mr_merged_at = excluded.mr_merged_at";
pub const HAS_PENDING_MERGE_REQUESTS: &str =
    "SELECT EXISTS (SELECT 1 FROM pending_merge_requests WHERE repository_id = ?1)";
pub const PENDING_MERGE_REQUEST: &str = "DELETE FROM pending_merge_requests \
    WHERE repository_id = ?1 AND sha = ?2 RETURNING mr_number, mr_created_at, mr_merged_at";
/// The true parents of a commit whose parents a push implied.
pub const SET_TRUE_PARENTS: &str = "UPDATE commits SET parents = ?3, parents_inferred = FALSE \
    WHERE repository_id = ?1 AND sha = ?2 AND parents_inferred";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_0006_declares_the_tag_guard_of_the_list() {
        for (dialect, migration) in [
            (
                Dialect::Sqlite,
                include_str!("../migrations/sqlite/0006_list_indexes.sql"),
            ),
            (
                Dialect::Postgres,
                include_str!("../migrations/postgres/0006_list_indexes.sql"),
            ),
        ] {
            let guard = tag_guard("custom_tags", DEPLOYMENT_COLUMN_KEYS, dialect);
            assert!(
                migration.contains(&format!("\n    WHERE {guard};")),
                "{dialect:?}: {guard}"
            );
        }
    }

    /// Migration 12 keeps attribute rows of exactly the fields the queries look for in columns.
    #[test]
    fn migration_0012_drops_the_rows_of_the_deployment_fields() {
        let keys: Vec<String> = DEPLOYMENT_FIELDS
            .iter()
            .map(|f| format!("'{}'", f.key))
            .collect();
        let keys = format!("key IN ({})", keys.join(", "));
        for migration in [
            include_str!("../migrations/sqlite/0012_lean_deployment_attributes.sql"),
            include_str!("../migrations/postgres/0012_lean_deployment_attributes.sql"),
        ] {
            assert!(migration.contains(&keys), "{keys}");
            assert_eq!(migration.matches(&keys[4..]).count(), 2, "{keys}");
        }
    }

    /// The column keys say what `deployment_attributes` does: without custom tags, the
    /// attributes of those keys are the columns' values, absent when they are `None`; the
    /// fields are every attribute a deployment has without custom tags.
    #[test]
    fn deployment_column_keys_are_the_attributes_of_a_deployment() {
        use dora_core::model::{deployment_attributes, Deployment, Git};
        let mut d = Deployment {
            id: "shop-0000000000000001".into(),
            service: "shop".into(),
            env: Some("prod".into()),
            team: Some("web".into()),
            version: Some("v1".into()),
            started_at: 0,
            finished_at: 0,
            git: Some(Git {
                repository_url: "https://example.com/acme/shop".into(),
                repository_id: "example.com/acme/shop".into(),
                commit_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            }),
            custom_tags: Vec::new(),
            source: "api".into(),
        };
        for full in [true, false] {
            if !full {
                (d.env, d.team, d.version, d.git) = (None, None, None, None);
            }
            let attrs = deployment_attributes(&d);
            for key in DEPLOYMENT_FIELDS {
                let git = d.git.as_ref();
                let column = match key.column {
                    "e.service" => Some(&d.service),
                    "e.source" => Some(&d.source),
                    "e.env" => d.env.as_ref(),
                    "e.team" => d.team.as_ref(),
                    "e.version" => d.version.as_ref(),
                    "e.repository_id" => git.map(|g| &g.repository_id),
                    "e.commit_sha" => git.map(|g| &g.commit_sha),
                    other => panic!("no field for {other}"),
                };
                let values: Vec<&String> = attrs
                    .iter()
                    .filter(|(k, _)| k == key.key)
                    .map(|(_, v)| v)
                    .collect();
                assert_eq!(values, column.into_iter().collect::<Vec<_>>(), "{key:?}");
                assert!(key.nullable || column.is_some(), "{key:?}");
            }
            assert!(attrs
                .iter()
                .all(|(k, _)| DEPLOYMENT_FIELDS.iter().any(|f| f.key == k)));
            assert!(DEPLOYMENT_COLUMN_KEYS
                .iter()
                .all(|c| DEPLOYMENT_FIELDS.contains(c)));
        }
        // Fields that are numbers keep their rows, as do custom tags of any key.
        d.version = Some("42".into());
        d.custom_tags = vec!["service:other".into(), "region:eu".into()];
        let stored = stored_deployment_attributes(&d);
        let stored: Vec<(&str, &str)> = stored
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            stored,
            [("version", "42"), ("service", "other"), ("region", "eu")]
        );
    }

    #[test]
    fn multi_row_statements_number_their_placeholders() {
        assert_eq!(
            put_holes(2),
            "INSERT INTO commit_holes (repository_id, sha) VALUES (?1, ?2), (?3, ?4) \
             ON CONFLICT DO NOTHING"
        );
        assert_eq!(COMMIT_COLUMNS.split(',').count() + 1, COMMIT_COLUMN_COUNT);
        assert!(insert_commits(2).ends_with(
            "(?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24) \
             ON CONFLICT (repository_id, sha) DO NOTHING"
        ));
    }

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            for_postgres("a = ?1 AND b = ?12 AND c = '?'"),
            "a = $1 AND b = $12 AND c = '?'"
        );
    }
}
