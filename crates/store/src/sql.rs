//! The SQL both stores run, written once with SQLite's `?N` placeholders and turned into
//! PostgreSQL's `$N` by [`for_postgres`]. Only the schema (migrations) differs between them.

use dora_core::model::{ListQuery, SortField};

use crate::query_sql::{filter_sql, Dialect, SqlParam};

/// One kind of event: its table, its attribute table and the column lists the row mappers read.
pub struct EventTable {
    pub table: &'static str,
    pub attrs_table: &'static str,
    pub columns: &'static str,
    /// The column `from`/`to` bound.
    pub range_column: &'static str,
}

pub const DEPLOYMENTS: EventTable = EventTable {
    table: "deployments",
    attrs_table: "deployment_attrs",
    columns: "e.id, e.service, e.env, e.team, e.version, e.started_at, e.finished_at, \
        e.repository_url, e.repository_id, e.commit_sha, e.custom_tags, e.source, \
        e.change_failure, e.remediation_type, e.remediation_id, e.remediation_version",
    range_column: "finished_at",
};

pub const FAILURES: EventTable = EventTable {
    table: "failures",
    attrs_table: "failure_attrs",
    columns: "e.id, e.name, e.services, e.team, e.env, e.severity, e.started_at, e.finished_at, \
        e.version, e.repository_url, e.repository_id, e.commit_sha, e.custom_tags, e.source",
    range_column: "started_at",
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

pub fn delete_attrs(table: &EventTable) -> String {
    format!("DELETE FROM {} WHERE owner_pk = ?1", table.attrs_table)
}

pub fn insert_attr(table: &EventTable) -> String {
    format!(
        "INSERT INTO {} (owner_pk, key, value, num) VALUES (?1, ?2, ?3, ?4)",
        table.attrs_table
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

pub const DEPLOYMENT_PK_BY_ID: &str = "SELECT pk FROM deployments WHERE id = ?1";
/// The most recently finished deployment of a service, env and version.
pub const DEPLOYMENT_PK_BY_VERSION: &str = "SELECT pk FROM deployments \
    WHERE service = ?1 AND env = ?2 AND version = ?3 ORDER BY finished_at DESC, pk DESC LIMIT 1";
pub const SET_CHANGE_FAILURE: &str = "UPDATE deployments SET change_failure = ?1 WHERE pk = ?2";
pub const SET_REMEDIATION: &str = "UPDATE deployments SET remediation_type = ?1, \
    remediation_id = ?2, remediation_version = ?3 WHERE pk = ?4";

pub const INSERT_COMMIT: &str = "INSERT INTO commits (repository_id, sha, parents, \
        authored_at, committed_at, author, subject, mr_number, mr_created_at, mr_merged_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (repository_id, sha) DO NOTHING";
/// Merge-request facts may arrive after the commit itself.
pub const SET_COMMIT_MERGE_REQUEST: &str = "UPDATE commits SET mr_number = ?3, \
    mr_created_at = ?4, mr_merged_at = ?5 WHERE repository_id = ?1 AND sha = ?2";
pub const COMMITS_OF: &str = "SELECT repository_id, sha, parents, authored_at, committed_at, \
    author, subject, mr_number, mr_created_at, mr_merged_at FROM commits WHERE repository_id = ?1";

pub const ENV_TIERS: &str = "SELECT env, tier FROM env_tiers ORDER BY env";
pub const SET_ENV_TIER: &str = "INSERT INTO env_tiers (env, tier) VALUES (?1, ?2) \
    ON CONFLICT (env) DO UPDATE SET tier = excluded.tier";
pub const DELETE_ENV_TIER: &str = "DELETE FROM env_tiers WHERE env = ?1";

pub const PROJECT_SOURCES: &str =
    "SELECT DISTINCT repository_id, service FROM deployments ORDER BY 1, 2";

pub const INSERT_TOKEN: &str = "INSERT INTO tokens (name, hash, scopes, created_at, \
    restrictions) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Inserts only into an empty table; callers serialise it (SQLite: the write lock;
/// PostgreSQL: an advisory lock).
pub const INSERT_FIRST_TOKEN: &str = "INSERT INTO tokens (name, hash, scopes, created_at, \
    restrictions) SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM tokens)";
pub const FIND_TOKEN: &str = "SELECT name, hash, scopes, restrictions FROM tokens WHERE hash = ?1";
pub const COUNT_TOKENS: &str = "SELECT COUNT(*) FROM tokens";

/// `SELECT … WHERE <time range> AND <filter> ORDER BY … LIMIT …` over one event table.
pub fn list(query: &ListQuery, table: &EventTable, dialect: Dialect) -> (String, Vec<SqlParam>) {
    let mut params = vec![
        SqlParam::Int(query.from.unwrap_or(i64::MIN)),
        SqlParam::Int(query.to.unwrap_or(i64::MAX)),
        SqlParam::Int(i64::from(query.limit)),
    ];
    let filter = filter_sql(&query.filter, table.attrs_table, "e.pk", dialect, 4);
    params.extend(filter.params);
    let sort_column = match query.sort.field {
        SortField::StartedAt => "started_at",
        SortField::FinishedAt => "finished_at",
    };
    let direction = if query.sort.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {columns} FROM {table} e \
         WHERE e.{range} >= ?1 AND e.{range} <= ?2 AND ({filter}) \
         ORDER BY e.{sort_column} {direction}, e.pk {direction} LIMIT ?3",
        columns = table.columns,
        table = table.table,
        range = table.range_column,
        filter = filter.sql,
    );
    let sql = match dialect {
        Dialect::Sqlite => sql,
        Dialect::Postgres => for_postgres(&sql),
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            for_postgres("a = ?1 AND b = ?12 AND c = '?'"),
            "a = $1 AND b = $12 AND c = '?'"
        );
    }
}
