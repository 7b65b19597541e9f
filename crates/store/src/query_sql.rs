//! Translation of a [`Query`] into a SQL `WHERE` fragment over an attributes table.
//!
//! The attributes of an owning row (deployment, failure, ...) live in a table
//! `(owner_pk, key, value, num)` with one row per (key, value) pair, `num` being
//! [`numeric_value`](dora_core::query::numeric_value) of `value`. Every term becomes an
//! `EXISTS` sub-query on that table, so a multi-valued key (a failure's services) matches if
//! any of its values does, and `NOT` is exactly the complement — the same semantics as
//! [`Query::matches`], which a differential property test below holds this module to.
//!
//! All values travel as parameters; only `attrs_table`, `owner_pk_expr` and the
//! [`ColumnKey`]s (trusted strings from the caller's code) are spliced into the SQL text.
//!
//! An event's own fields (a deployment's service, env, …) may be kept out of the attributes
//! table: `fields` names the keys whose attribute is the value of a column and is in the table
//! only when it is a number (so that numeric ranges still compare `num`) or repeated by a custom
//! tag. A term on such a key is then `column condition OR EXISTS (…)`.
//!
//! [`column_filter_sql`] translates terms on some keys into conditions on columns of the owning
//! row instead (`e.service = ?`), which indexes on those columns can serve. That is exact only
//! for rows whose attributes of those keys are the column's value and nothing else, i.e. rows
//! without a custom tag of one of those keys: [`tag_guard`] is a condition true of every row that
//! has such a tag (and of a few that do not), so a caller combines
//! `NOT guard AND column filter` with `guard AND filter`.

use std::fmt::Write;
use std::ops::Bound as StdBound;

use dora_core::query::{numeric_bounds, Bound, GlobPart, Pattern, Query, Term};

/// The SQL flavour to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter of the generated SQL, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Real(f64),
    /// Not produced by filters; the stores' own parameters (times, limits) share the type.
    Int(i64),
}

/// A key whose attribute, on a row without a custom tag of that key, is exactly the value of a
/// column of the row: absent when the column is NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnKey {
    pub key: &'static str,
    /// The column, as the outer query names it (e.g. `e.service`).
    pub column: &'static str,
    pub nullable: bool,
}

/// A boolean SQL expression and the values of its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// Translate `q` into a boolean SQL expression.
///
/// `owner_pk_expr` is the SQL expression of the owning row's key in the outer query, e.g.
/// `"d.pk"`. Placeholders are numbered from `first_param` (SQLite `?N`, PostgreSQL `$N`), so the
/// caller can put its own parameters before them. [`Query::All`] gives `1=1`.
///
/// The sub-queries use the table alias `qa`; `owner_pk_expr` must not refer to an outer `qa`.
/// For PostgreSQL, `num` should be `DOUBLE PRECISION` so it compares exactly with the `f64`
/// parameters. `fields`: the keys kept in columns rather than attribute rows (module docs).
pub fn filter_sql(
    q: &Query,
    attrs_table: &str,
    owner_pk_expr: &str,
    fields: &[ColumnKey],
    dialect: Dialect,
    first_param: usize,
) -> SqlFilter {
    let mut builder = Builder::new(
        attrs_table,
        owner_pk_expr,
        fields,
        &[],
        dialect,
        first_param,
    );
    builder.query(q);
    builder.finish()
}

/// Like [`filter_sql`], but terms on the keys of `columns` become conditions on those columns
/// where SQL can say the same (exact values, value groups, wildcards, `key:*`, textual ranges;
/// numeric ranges and free text stay on the attributes table). `None` when no term did.
///
/// The result agrees with [`Query::matches`] only on rows for which [`tag_guard`] over the same
/// `columns` is false.
pub fn column_filter_sql(
    q: &Query,
    attrs_table: &str,
    owner_pk_expr: &str,
    fields: &[ColumnKey],
    columns: &[ColumnKey],
    dialect: Dialect,
    first_param: usize,
) -> Option<SqlFilter> {
    let mut builder = Builder::new(
        attrs_table,
        owner_pk_expr,
        fields,
        columns,
        dialect,
        first_param,
    );
    builder.query(q);
    builder.used_columns.then(|| builder.finish())
}

/// A condition true of every row whose custom tags (`custom_tags_expr`: the stored JSON list of
/// `key:value` strings) include a tag of one of the keys of `columns`: its JSON text then
/// contains `"key:`. (It is also true of a few rows without one, e.g. a tag value holding
/// `"key:`; those rows merely take the slower path.) Keys must be letters, digits and `_`.
///
/// PostgreSQL gets one regular expression rather than a disjunction of `strpos`, which it would
/// estimate to hold for most rows: a pattern it estimates from the column's statistics.
///
/// A partial index may be declared with this very condition over the bare column name; the
/// planners use it only if the query spells it the same way.
pub fn tag_guard(custom_tags_expr: &str, columns: &[ColumnKey], dialect: Dialect) -> String {
    debug_assert!(columns.iter().all(|c| c
        .key
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')));
    match dialect {
        Dialect::Sqlite => {
            let tests: Vec<String> = columns
                .iter()
                .map(|c| format!("instr({custom_tags_expr}, '\"{}:') > 0", c.key))
                .collect();
            format!("({})", tests.join(" OR "))
        }
        Dialect::Postgres => {
            let keys: Vec<&str> = columns.iter().map(|c| c.key).collect();
            format!("({custom_tags_expr} ~ '\"({}):')", keys.join("|"))
        }
    }
}

struct Builder<'a> {
    attrs_table: &'a str,
    owner_pk_expr: &'a str,
    /// Keys whose values are columns, in the attributes table only as numbers or custom tags.
    fields: &'a [ColumnKey],
    /// Keys a term on which is the column condition alone (the row has no custom tag of them).
    columns: &'a [ColumnKey],
    dialect: Dialect,
    next_param: usize,
    sql: String,
    params: Vec<SqlParam>,
    /// Whether some term was translated onto a column.
    used_columns: bool,
    /// Attribute sub-queries emitted so far.
    exists: usize,
}

/// PostgreSQL plans each `EXISTS` of a top-level AND as a semi-join, and the join search grows
/// with the cube of their number (200 terms: 20 s of planning). Past this many, a sub-query is
/// written so that it stays a per-row sub-plan (`OFFSET 0`), which plans in constant time.
const JOINED_EXISTS: usize = 4;

/// An AND or OR of more items than this is split in halves, recursively, so that the nesting
/// of the SQL expression grows with the logarithm of the terms (SQLite refuses expressions
/// nested 1000 deep; a flat chain of N terms nests N deep).
const FLAT_LIST: usize = 8;

impl<'a> Builder<'a> {
    fn new(
        attrs_table: &'a str,
        owner_pk_expr: &'a str,
        fields: &'a [ColumnKey],
        columns: &'a [ColumnKey],
        dialect: Dialect,
        first_param: usize,
    ) -> Self {
        Builder {
            attrs_table,
            owner_pk_expr,
            fields,
            columns,
            dialect,
            next_param: first_param,
            sql: String::new(),
            params: Vec::new(),
            used_columns: false,
            exists: 0,
        }
    }

    fn finish(self) -> SqlFilter {
        SqlFilter {
            sql: self.sql,
            params: self.params,
        }
    }

    /// Register a parameter and return its placeholder.
    fn param(&mut self, value: SqlParam) -> String {
        let n = self.next_param;
        self.next_param += 1;
        self.params.push(value);
        format!("?{n}")
    }

    fn text_param(&mut self, value: impl Into<String>) -> String {
        self.param(SqlParam::Text(value.into()))
    }

    fn query(&mut self, q: &Query) {
        match q {
            Query::All => self.sql.push_str("1=1"),
            // Empty lists never come out of the parser; give them their logical identity.
            Query::And(items) if items.is_empty() => self.sql.push_str("1=1"),
            Query::Or(items) if items.is_empty() => self.sql.push_str("1=0"),
            Query::And(items) => self.list(items, " AND "),
            Query::Or(items) => {
                if !self.column_values(items) {
                    self.list(items, " OR ")
                }
            }
            Query::Not(inner) => {
                self.sql.push_str("NOT (");
                self.query(inner);
                self.sql.push(')');
            }
            Query::Term(term) => self.term(term),
        }
    }

    fn list(&mut self, items: &[Query], sep: &str) {
        self.sql.push('(');
        if items.len() > FLAT_LIST {
            let (left, right) = items.split_at(items.len() / 2);
            self.list(left, sep);
            self.sql.push_str(sep);
            self.list(right, sep);
        } else {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    self.sql.push_str(sep);
                }
                self.query(item);
            }
        }
        self.sql.push(')');
    }

    fn column(&self, key: &str) -> Option<ColumnKey> {
        self.columns.iter().find(|c| c.key == key).copied()
    }

    /// `column IN (?, ?, ...)` for a value group `key:(a OR b ...)` of exact values of one
    /// column key (the parser's expansion of a value group); false, emitting nothing, otherwise.
    fn column_values(&mut self, items: &[Query]) -> bool {
        let mut column = None;
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            let Query::Term(Term::Field {
                key,
                value: Pattern::Exact(value),
            }) = item
            else {
                return false;
            };
            match (column, self.column(key)) {
                (None, Some(found)) => column = Some(found),
                (Some(seen), Some(found)) if seen == found => {}
                _ => return false,
            }
            values.push(value.as_str());
        }
        let Some(column) = column else { return false };
        if values.len() < 2 {
            return false;
        }
        let placeholders: Vec<String> = values.into_iter().map(|v| self.text_param(v)).collect();
        let condition = format!("{} IN ({})", column.column, placeholders.join(", "));
        self.push_column_condition(column, &condition);
        true
    }

    /// A condition on a column, false (never NULL) when the column is NULL — as a missing
    /// attribute fails a term — so that `NOT` keeps meaning the complement.
    fn push_column_condition(&mut self, column: ColumnKey, condition: &str) {
        self.used_columns = true;
        self.sql.push_str(&null_safe(column, condition));
    }

    /// The column form of a term on a column key, if SQL can say it on the column; emits
    /// nothing and returns false otherwise.
    fn column_term(&mut self, term: &Term) -> bool {
        let (column, condition) = match term {
            Term::Field { key, value } => {
                let Some(column) = self.column(key) else {
                    return false;
                };
                let condition = self.value_condition(column.column, value);
                (column, condition)
            }
            Term::Exists { key } => {
                let Some(column) = self.column(key) else {
                    return false;
                };
                self.used_columns = true;
                let _ = write!(self.sql, "({} IS NOT NULL)", column.column);
                return true;
            }
            Term::Range { key, lower, upper } => {
                let Some(column) = self.column(key) else {
                    return false;
                };
                // Numbers compare by `numeric_value`, which only the attributes table holds.
                if numeric_bounds(lower, upper).is_some() {
                    return false;
                }
                let conditions = self.string_range_conditions(column.column, lower, upper);
                (column, conditions.join(" AND "))
            }
            Term::Text(_) => return false,
        };
        self.push_column_condition(column, &condition);
        true
    }

    fn term(&mut self, term: &Term) {
        if self.column_term(term) {
            return;
        }
        match term {
            Term::Field { key, value } => {
                let key_param = self.text_param(key.as_str());
                let condition = self.value_condition("qa.value", value);
                let on_field = self
                    .field(key)
                    .map(|field| null_safe(field, &self.value_condition(field.column, value)));
                self.exists_or(on_field, Some(&key_param), &[condition]);
            }
            Term::Exists { key } => {
                let key_param = self.text_param(key.as_str());
                let on_field = self
                    .field(key)
                    .map(|field| format!("({} IS NOT NULL)", field.column));
                self.exists_or(on_field, Some(&key_param), &[]);
            }
            Term::Range { key, lower, upper } => {
                let key_param = self.text_param(key.as_str());
                let conditions = self.range_conditions(lower, upper);
                // Numbers compare `num`: a field's numeric value has its attribute row.
                let on_field = match numeric_bounds(lower, upper) {
                    Some(_) => None,
                    None => self.field(key).map(|field| {
                        let on_column = self.string_range_conditions(field.column, lower, upper);
                        null_safe(field, &on_column.join(" AND "))
                    }),
                };
                self.exists_or(on_field, Some(&key_param), &conditions);
            }
            Term::Text(pattern) => {
                let like = self.text_param(self.text_like_pattern(pattern));
                let on_fields: Vec<String> = self
                    .fields
                    .iter()
                    .map(|field| {
                        let condition = format!("lower({}) LIKE {like} ESCAPE '\\'", field.column);
                        null_safe(*field, &condition)
                    })
                    .collect();
                let on_fields = (!on_fields.is_empty()).then(|| on_fields.join(" OR "));
                let condition = format!("lower(qa.value) LIKE {like} ESCAPE '\\'");
                self.exists_or(on_fields, None, &[condition]);
            }
        }
    }

    fn field(&self, key: &str) -> Option<ColumnKey> {
        self.fields.iter().find(|c| c.key == key).copied()
    }

    /// `(on_field OR EXISTS (…))`, or the sub-query alone for a key that is no field.
    fn exists_or(
        &mut self,
        on_field: Option<String>,
        key_placeholder: Option<&str>,
        conditions: &[String],
    ) {
        if let Some(on_field) = &on_field {
            let _ = write!(self.sql, "({on_field} OR ");
        }
        self.exists(key_placeholder, conditions);
        if on_field.is_some() {
            self.sql.push(')');
        }
    }

    /// `EXISTS (SELECT 1 FROM t qa WHERE qa.owner_pk = owner [AND qa.key = k] [AND cond]...)`.
    fn exists(&mut self, key_placeholder: Option<&str>, conditions: &[String]) {
        // `write!` to a String cannot fail.
        let _ = write!(
            self.sql,
            "EXISTS (SELECT 1 FROM {} qa WHERE qa.owner_pk = {}",
            self.attrs_table, self.owner_pk_expr
        );
        if let Some(key) = key_placeholder {
            let _ = write!(self.sql, " AND qa.key = {key}");
        }
        for condition in conditions {
            let _ = write!(self.sql, " AND {condition}");
        }
        if self.dialect == Dialect::Postgres && self.exists >= JOINED_EXISTS {
            self.sql.push_str(" OFFSET 0");
        }
        self.exists += 1;
        self.sql.push(')');
    }

    /// Whole-value match of `column` (`qa.value` or a column key's column), case-sensitive like
    /// `Query::matches`.
    fn value_condition(&mut self, column: &str, value: &Pattern) -> String {
        match value {
            Pattern::Exact(s) => format!("{column} = {}", self.text_param(s.as_str())),
            Pattern::Wildcard(parts) => match self.dialect {
                Dialect::Sqlite => {
                    format!("{column} GLOB {}", self.text_param(glob_pattern(parts)))
                }
                Dialect::Postgres => {
                    let like = like_pattern(parts, |s| s.to_string());
                    format!("{column} LIKE {} ESCAPE '\\'", self.text_param(like))
                }
            },
        }
    }

    /// Free text is a case-insensitive substring match. SQLite's `lower()` folds ASCII only,
    /// like `Query::matches`; PostgreSQL's folds all of Unicode, so the pattern does too.
    fn text_like_pattern(&self, pattern: &Pattern) -> String {
        let fold = |s: &str| match self.dialect {
            Dialect::Sqlite => s.to_ascii_lowercase(),
            Dialect::Postgres => s.to_lowercase(),
        };
        let inner = match pattern {
            Pattern::Exact(s) => like_escape(&fold(s)),
            Pattern::Wildcard(parts) => like_pattern(parts, fold),
        };
        format!("%{inner}%")
    }

    /// Numeric ranges compare `qa.num` (NULL for non-numbers, which therefore never match);
    /// others compare `qa.value` byte-wise — SQLite's default BINARY collation, and `"C"` on
    /// PostgreSQL whose default collation is locale-aware.
    fn range_conditions(&mut self, lower: &Bound, upper: &Bound) -> Vec<String> {
        match numeric_bounds(lower, upper) {
            Some((lo, hi)) => {
                let mut conditions = Vec::new();
                for (bound, inclusive_op, exclusive_op) in [(lo, ">=", ">"), (hi, "<=", "<")] {
                    let (op, n) = match bound {
                        StdBound::Unbounded => continue,
                        StdBound::Included(n) => (inclusive_op, n),
                        StdBound::Excluded(n) => (exclusive_op, n),
                    };
                    let p = self.param(SqlParam::Real(n));
                    conditions.push(format!("qa.num {op} {p}"));
                }
                if conditions.is_empty() {
                    conditions.push("qa.num IS NOT NULL".to_string());
                }
                conditions
            }
            None => self.string_range_conditions("qa.value", lower, upper),
        }
    }

    /// Byte-wise comparisons of `column` with the bounds that are not open.
    fn string_range_conditions(
        &mut self,
        column: &str,
        lower: &Bound,
        upper: &Bound,
    ) -> Vec<String> {
        let column = match self.dialect {
            Dialect::Sqlite => column.to_string(),
            Dialect::Postgres => format!("{column} COLLATE \"C\""),
        };
        let mut conditions = Vec::new();
        for (bound, inclusive_op, exclusive_op) in [(lower, ">=", ">"), (upper, "<=", "<")] {
            let (op, s) = match bound {
                Bound::Unbounded => continue,
                Bound::Inclusive(s) => (inclusive_op, s),
                Bound::Exclusive(s) => (exclusive_op, s),
            };
            let p = self.text_param(s.as_str());
            conditions.push(format!("{column} {op} {p}"));
        }
        conditions
    }
}

/// A condition on a column, false (never NULL) when the column is NULL — as a missing attribute
/// fails a term — so that `NOT` keeps meaning the complement.
fn null_safe(column: ColumnKey, condition: &str) -> String {
    match column.nullable {
        true => format!("({} IS NOT NULL AND {condition})", column.column),
        false => format!("({condition})"),
    }
}

/// A SQLite GLOB pattern: literal `*`, `?` and `[` are wrapped in brackets (GLOB has no escape
/// character); `]` outside brackets is already literal.
fn glob_pattern(parts: &[GlobPart]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            GlobPart::AnyRun => out.push('*'),
            GlobPart::AnyChar => out.push('?'),
            GlobPart::Literal(s) => {
                for c in s.chars() {
                    match c {
                        '*' => out.push_str("[*]"),
                        '?' => out.push_str("[?]"),
                        '[' => out.push_str("[[]"),
                        _ => out.push(c),
                    }
                }
            }
        }
    }
    out
}

/// A LIKE pattern (escape character `\`), with `fold` applied to the literal parts.
fn like_pattern(parts: &[GlobPart], fold: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            GlobPart::AnyRun => out.push('%'),
            GlobPart::AnyChar => out.push('_'),
            GlobPart::Literal(s) => out.push_str(&like_escape(&fold(s))),
        }
    }
    out
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use dora_core::model::{ListQuery, Sort, SortField};
    use dora_core::query::{numeric_value, parse};
    use proptest::prelude::*;
    use rusqlite::{params_from_iter, Connection};

    use super::*;

    // -----------------------------------------------------------------------------------------
    // Exact SQL

    fn pg(query: &str) -> SqlFilter {
        filter_sql(
            &parse(query).unwrap(),
            "attrs",
            "d.pk",
            &[],
            Dialect::Postgres,
            3,
        )
    }

    fn text(s: &str) -> SqlParam {
        SqlParam::Text(s.to_string())
    }

    #[test]
    fn match_all() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let f = filter_sql(&Query::All, "attrs", "d.pk", &[], dialect, 1);
            assert_eq!(f.sql, "1=1");
            assert!(f.params.is_empty());
        }
    }

    #[test]
    fn postgres_field_and_negation() {
        let f = pg("service:api -env:prod");
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = ?3 AND qa.value = ?4) \
             AND NOT (EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = ?5 AND qa.value = ?6)))"
        );
        assert_eq!(
            f.params,
            vec![text("service"), text("api"), text("env"), text("prod")]
        );
    }

    #[test]
    fn postgres_wildcards_escape_like_metacharacters() {
        let f = pg(r"k:50%_a\\b\*?*");
        assert_eq!(
            f.sql,
            "EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = ?3 \
             AND qa.value LIKE ?4 ESCAPE '\\')"
        );
        assert_eq!(f.params, vec![text("k"), text(r"50\%\_a\\b*_%")]);
    }

    #[test]
    fn postgres_free_text_is_lowercased_substring() {
        let f = pg("\"Foo_Bar%\" OR Ét?");
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND lower(qa.value) LIKE ?3 ESCAPE '\\') \
             OR EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND lower(qa.value) LIKE ?4 ESCAPE '\\'))"
        );
        assert_eq!(f.params, vec![text(r"%foo\_bar\%%"), text("%ét_%")]);
    }

    #[test]
    fn postgres_ranges() {
        let f = pg("k:[1 TO 5} k:>=a k:*");
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = ?3 AND qa.num >= ?4 AND qa.num < ?5) \
             AND EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = ?6 AND qa.value COLLATE \"C\" >= ?7) \
             AND EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = ?8))"
        );
        assert_eq!(
            f.params,
            vec![
                text("k"),
                SqlParam::Real(1.0),
                SqlParam::Real(5.0),
                text("k"),
                text("a"),
                text("k"),
            ]
        );
        let f = pg("k:[* TO *]");
        assert!(
            f.sql.ends_with("AND qa.key = ?3 AND qa.num IS NOT NULL)"),
            "{}",
            f.sql
        );
    }

    #[test]
    fn sqlite_placeholders_and_glob_escaping() {
        let q = parse(r"k:a\*\?\[]*").unwrap();
        let f = filter_sql(&q, "t", "x.pk", &[], Dialect::Sqlite, 7);
        assert_eq!(
            f.sql,
            "EXISTS (SELECT 1 FROM t qa WHERE qa.owner_pk = x.pk AND qa.key = ?7 AND qa.value GLOB ?8)"
        );
        assert_eq!(f.params, vec![text("k"), text("a[*][?][[]]*")]);
    }

    #[test]
    fn empty_lists_have_their_identity() {
        let f = filter_sql(
            &Query::Or(vec![Query::And(vec![]), Query::Or(vec![])]),
            "t",
            "x.pk",
            &[],
            Dialect::Sqlite,
            1,
        );
        assert_eq!(f.sql, "(1=1 OR 1=0)");
    }

    const COLUMNS: &[ColumnKey] = &[
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
    ];

    fn columns(query: &str, dialect: Dialect) -> Option<SqlFilter> {
        column_filter_sql(
            &parse(query).unwrap(),
            "attrs",
            "e.pk",
            &[],
            COLUMNS,
            dialect,
            4,
        )
    }

    #[test]
    fn column_keys_become_column_conditions() {
        let f = columns("service:(a OR b) env:prod -env:dev* -c:x", Dialect::Sqlite).unwrap();
        assert_eq!(
            f.sql,
            "((e.service IN (?4, ?5)) AND (e.env IS NOT NULL AND e.env = ?6) \
             AND NOT ((e.env IS NOT NULL AND e.env GLOB ?7)) \
             AND NOT (EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = e.pk AND qa.key = ?8 AND qa.value = ?9)))"
        );
        assert_eq!(
            f.params,
            vec![
                text("a"),
                text("b"),
                text("prod"),
                text("dev*"),
                text("c"),
                text("x")
            ]
        );
        let f = columns("env:(a OR b) service:x*", Dialect::Postgres).unwrap();
        assert_eq!(
            f.sql,
            "((e.env IS NOT NULL AND e.env IN (?4, ?5)) AND (e.service LIKE ?6 ESCAPE '\\'))"
        );
    }

    #[test]
    fn column_exists_and_ranges() {
        let f = columns("env:* -service:* env:[a TO b}", Dialect::Postgres).unwrap();
        assert_eq!(
            f.sql,
            "((e.env IS NOT NULL) AND NOT ((e.service IS NOT NULL)) \
             AND (e.env IS NOT NULL AND e.env COLLATE \"C\" >= ?4 AND e.env COLLATE \"C\" < ?5))"
        );
        // Numeric ranges compare `num`, which only the attributes have.
        let f = columns("env:>2 service:a", Dialect::Sqlite).unwrap();
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = e.pk AND qa.key = ?4 AND qa.num > ?5) \
             AND (e.service = ?6))"
        );
    }

    #[test]
    fn groups_of_several_keys_or_patterns_stay_disjunctions() {
        let f = columns("service:a OR env:a", Dialect::Sqlite).unwrap();
        assert_eq!(
            f.sql,
            "((e.service = ?4) OR (e.env IS NOT NULL AND e.env = ?5))"
        );
        let f = columns("service:(a OR b*)", Dialect::Sqlite).unwrap();
        assert_eq!(f.sql, "((e.service = ?4) OR (e.service GLOB ?5))");
    }

    #[test]
    fn no_column_filter_without_column_terms() {
        assert_eq!(columns("c:a \"free text\" env:>1", Dialect::Sqlite), None);
        assert_eq!(
            column_filter_sql(
                &Query::All,
                "attrs",
                "e.pk",
                &[],
                COLUMNS,
                Dialect::Sqlite,
                1
            ),
            None
        );
    }

    #[test]
    fn the_tag_guard_looks_for_quoted_keys() {
        assert_eq!(
            tag_guard("e.custom_tags", COLUMNS, Dialect::Sqlite),
            "(instr(e.custom_tags, '\"service:') > 0 OR instr(e.custom_tags, '\"env:') > 0)"
        );
        assert_eq!(
            tag_guard("custom_tags", COLUMNS, Dialect::Postgres),
            "(custom_tags ~ '\"(service|env):')"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Differential test against Query::matches on SQLite

    /// Owners 1..=n with the given attributes, in the schema the store uses.
    fn database(events: &[Vec<(String, String)>]) -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE owners (pk INTEGER PRIMARY KEY);
             CREATE TABLE attrs (owner_pk INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, num REAL);
             CREATE INDEX attrs_kvo ON attrs(key, value, owner_pk);",
        )
        .unwrap();
        for (i, attrs) in events.iter().enumerate() {
            let pk = i as i64 + 1;
            db.execute("INSERT INTO owners (pk) VALUES (?1)", [pk])
                .unwrap();
            for (key, value) in attrs {
                db.execute(
                    "INSERT INTO attrs (owner_pk, key, value, num) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![pk, key, value, numeric_value(value)],
                )
                .unwrap();
            }
        }
        db
    }

    /// The owners `q` selects in SQL; `?1` is a caller parameter placed before the filter's.
    fn sql_matches(db: &Connection, q: &Query) -> BTreeSet<i64> {
        let filter = filter_sql(q, "attrs", "o.pk", &[], Dialect::Sqlite, 2);
        let sql = format!(
            "SELECT o.pk FROM owners o WHERE o.pk > ?1 AND ({})",
            filter.sql
        );
        let mut values = vec![rusqlite::types::Value::Integer(0)];
        values.extend(crate::sqlite::to_sql_values(filter.params));
        let mut stmt = db.prepare(&sql).unwrap();
        stmt.query_map(params_from_iter(values), |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn memory_matches(events: &[Vec<(String, String)>], q: &Query) -> BTreeSet<i64> {
        events
            .iter()
            .enumerate()
            .filter(|(_, attrs)| {
                let pairs: Vec<(&str, &str)> = attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                q.matches(&pairs)
            })
            .map(|(i, _)| i as i64 + 1)
            .collect()
    }

    fn keys() -> BoxedStrategy<String> {
        prop::sample::select(vec!["a", "b", "c"])
            .prop_map(str::to_string)
            .boxed()
    }

    /// Pieces of values and patterns: few, so that queries and events actually meet, and
    /// including every GLOB/LIKE metacharacter, case variants, digits and non-ASCII.
    /// (`"` and `:` for the custom tags of the list test: JSON escaping and `"key:` inside
    /// values.)
    const FRAGMENTS: &[&str] = &[
        "a", "A", "b", "*", "?", "%", "_", "\\", "[", "]", "1", ".", "-", "é", "É", " ", "\"", ":",
    ];

    /// Concatenations of up to three fragments, or a number.
    fn strings() -> BoxedStrategy<String> {
        prop_oneof![
            3 => prop::collection::vec(prop::sample::select(FRAGMENTS), 0..3)
                .prop_map(|parts| parts.concat()),
            1 => prop::sample::select(vec!["-1", "2.5", "10", "1e1", "1.0", "+2"])
                .prop_map(str::to_string),
        ]
        .boxed()
    }

    type Events = Vec<Vec<(String, String)>>;

    fn events() -> impl Strategy<Value = Events> {
        prop::collection::vec(prop::collection::vec((keys(), strings()), 0..5), 0..8)
    }

    /// Strings for queries: often a substring of a value the events really have, so that exact
    /// matches, wildcards and range bounds hit, and sometimes anything.
    fn query_strings(events: &Events) -> BoxedStrategy<String> {
        let values: Vec<String> = events.iter().flatten().map(|(_, v)| v.clone()).collect();
        if values.is_empty() {
            return strings();
        }
        let substring = prop::sample::select(values.clone()).prop_flat_map(|value| {
            let chars: Vec<char> = value.chars().collect();
            let n = chars.len();
            (0..=n, 0..=n).prop_map(move |(i, j)| chars[i.min(j)..i.max(j)].iter().collect())
        });
        prop_oneof![
            2 => prop::sample::select(values),
            2 => substring,
            1 => strings(),
        ]
        .boxed()
    }

    fn pattern(strings: BoxedStrategy<String>) -> BoxedStrategy<Pattern> {
        let part = prop_oneof![
            strings.clone().prop_map(GlobPart::Literal),
            Just(GlobPart::AnyRun),
            Just(GlobPart::AnyChar),
        ];
        prop_oneof![
            strings.prop_map(Pattern::Exact),
            prop::collection::vec(part, 1..4).prop_map(Pattern::Wildcard),
        ]
        .boxed()
    }

    fn bound(strings: BoxedStrategy<String>) -> BoxedStrategy<Bound> {
        prop_oneof![
            Just(Bound::Unbounded),
            strings.clone().prop_map(Bound::Inclusive),
            strings.prop_map(Bound::Exclusive),
        ]
        .boxed()
    }

    /// Trees need not be in the parser's normal form here: SQL must agree on any tree.
    fn query(strings: BoxedStrategy<String>) -> BoxedStrategy<Query> {
        let term = prop_oneof![
            (keys(), pattern(strings.clone())).prop_map(|(key, value)| Term::Field { key, value }),
            keys().prop_map(|key| Term::Exists { key }),
            (keys(), bound(strings.clone()), bound(strings.clone()))
                .prop_map(|(key, lower, upper)| Term::Range { key, lower, upper }),
            pattern(strings).prop_map(Term::Text),
        ];
        prop_oneof![
            10 => term.prop_map(Query::Term),
            1 => Just(Query::All),
        ]
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Query::And),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Query::Or),
                inner.prop_map(|q| Query::Not(Box::new(q))),
            ]
        })
        .boxed()
    }

    fn events_and_queries() -> impl Strategy<Value = (Events, Vec<Query>)> {
        events().prop_flat_map(|events| {
            let queries = prop::collection::vec(query(query_strings(&events)), 1..8);
            (Just(events), queries)
        })
    }

    /// Literals of one fragment (and of two metacharacters, for fields), as exact values, in
    /// globs and as free text, against every value of one or two fragments: exhaustive over the
    /// escaping rules. (Free text scans every row, so it gets the smaller set.)
    #[test]
    fn sqlite_escaping_agrees_exhaustively() {
        let pairs = |set: &[&str]| -> Vec<String> {
            let mut out: Vec<String> = set.iter().map(|f| f.to_string()).collect();
            for a in set {
                for b in set {
                    out.push(format!("{a}{b}"));
                }
            }
            out
        };
        let values = pairs(FRAGMENTS);
        let events: Events = values
            .iter()
            .map(|v| vec![("a".to_string(), v.clone())])
            .collect();
        let db = database(&events);
        let metas = pairs(&["*", "?", "%", "_", "\\", "[", "]"]);
        let literals = FRAGMENTS.iter().map(|f| f.to_string()).chain(metas);
        for literal in literals {
            let lit = || GlobPart::Literal(literal.clone());
            let patterns = [
                Pattern::Exact(literal.clone()),
                Pattern::Wildcard(vec![lit(), GlobPart::AnyRun]),
                Pattern::Wildcard(vec![GlobPart::AnyChar, lit()]),
            ];
            for pattern in patterns {
                let mut terms = vec![Term::Field {
                    key: "a".into(),
                    value: pattern.clone(),
                }];
                if FRAGMENTS.contains(&literal.as_str()) {
                    terms.push(Term::Text(pattern));
                }
                for term in terms {
                    let q = Query::Term(term);
                    assert_eq!(sql_matches(&db, &q), memory_matches(&events, &q), "{q:?}");
                }
            }
        }
    }

    /// Texts built from syntax fragments, to run parsed (not generated) trees through SQL.
    fn query_text() -> impl Strategy<Value = String> {
        let fragment = prop::sample::select(vec![
            "a:", "b:", "c:*", "-", "(", ")", " OR ", " ", "AND ", "NOT ", "\"", "*", "?", "%",
            "_", "[", "1", " TO ", "]", ">", "<=", "a", "A", "\\[", "2.5", "é",
        ]);
        prop::collection::vec(fragment, 1..10).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn sqlite_agrees_with_matches((events, queries) in events_and_queries()) {
            let db = database(&events);
            for q in &queries {
                prop_assert_eq!(sql_matches(&db, q), memory_matches(&events, q), "query {:?}", q);
            }
        }

        #[test]
        fn sqlite_agrees_with_matches_on_parsed_text(events in events(), text in query_text()) {
            if let Ok(q) = parse(&text) {
                let db = database(&events);
                prop_assert_eq!(sql_matches(&db, &q), memory_matches(&events, &q), "query {:?}", text);
            }
        }
    }
    // -----------------------------------------------------------------------------------------
    // Differential test of the whole list (`sql::list`) with column keys, against matches

    /// A row whose keys `a` (always set), `b` and `c` (optional) are columns, as a deployment's
    /// service, env and commit_sha are; `a` and `b` are column keys the list filters on their
    /// columns; its custom tags may repeat any of them.
    #[derive(Debug, Clone)]
    struct Row {
        a: String,
        b: Option<String>,
        c: Option<String>,
        tags: Vec<(String, String)>,
        started_at: i64,
        finished_at: i64,
    }

    impl Row {
        /// As `deployment_attributes` makes them.
        fn attrs(&self) -> Vec<(String, String)> {
            let mut attrs = self.fields();
            attrs.extend(self.tags.iter().cloned());
            attrs
        }

        fn fields(&self) -> Vec<(String, String)> {
            let mut fields = vec![("a".to_string(), self.a.clone())];
            fields.extend(self.b.clone().map(|b| ("b".to_string(), b)));
            fields.extend(self.c.clone().map(|c| ("c".to_string(), c)));
            fields
        }

        /// As `stored_deployment_attributes` keeps them: tags, and fields that are numbers.
        fn stored_attrs(&self) -> Vec<(String, String)> {
            let mut attrs = self.fields();
            attrs.retain(|(_, value)| numeric_value(value).is_some());
            attrs.extend(self.tags.iter().cloned());
            attrs
        }
    }

    const ROW_KEYS: &[ColumnKey] = &[
        ColumnKey {
            key: "a",
            column: "e.a",
            nullable: false,
        },
        ColumnKey {
            key: "b",
            column: "e.b",
            nullable: true,
        },
    ];

    const ROW_FIELDS: &[ColumnKey] = &[
        ROW_KEYS[0],
        ROW_KEYS[1],
        ColumnKey {
            key: "c",
            column: "e.c",
            nullable: true,
        },
    ];

    const ROWS: crate::sql::EventTable = crate::sql::EventTable {
        table: "rows",
        attrs_table: "attrs",
        columns: "e.pk",
        range_column: "finished_at",
        column_keys: ROW_KEYS,
        fields: ROW_FIELDS,
    };

    /// The rows, their attributes and the indexes a list plan could use, like migration 0006's.
    fn rows_database(rows: &[Row]) -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(&format!(
            "CREATE TABLE rows (pk INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT, c TEXT,
                 started_at BIGINT NOT NULL, finished_at BIGINT NOT NULL, custom_tags TEXT NOT NULL);
             CREATE TABLE attrs (owner_pk INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, num REAL);
             CREATE INDEX attrs_kvo ON attrs(key, value, owner_pk);
             CREATE INDEX rows_by_a_b ON rows (a, b, finished_at);
             CREATE INDEX rows_tagged ON rows (finished_at, pk) WHERE {};",
            tag_guard("custom_tags", ROW_KEYS, Dialect::Sqlite)
        ))
        .unwrap();
        for (i, row) in rows.iter().enumerate() {
            let pk = i as i64 + 1;
            let tags: Vec<String> = row.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            db.execute(
                "INSERT INTO rows (pk, a, b, c, started_at, finished_at, custom_tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    pk,
                    row.a,
                    row.b,
                    row.c,
                    row.started_at,
                    row.finished_at,
                    crate::rows::to_json_list(&tags)
                ],
            )
            .unwrap();
            for (key, value) in row.stored_attrs() {
                db.execute(
                    "INSERT INTO attrs (owner_pk, key, value, num) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![pk, key, value, numeric_value(&value)],
                )
                .unwrap();
            }
        }
        db
    }

    fn sql_list(db: &Connection, query: &ListQuery) -> Vec<i64> {
        let (sql, params) = crate::sql::list(query, &ROWS, Dialect::Sqlite);
        let mut stmt = db.prepare(&sql).unwrap();
        let values = crate::sqlite::to_sql_values(params);
        stmt.query_map(params_from_iter(values), |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// What the list must answer: the matches in range, in order, at most `limit`.
    fn memory_list(rows: &[Row], query: &ListQuery) -> Vec<i64> {
        let mut found: Vec<(i64, i64)> = rows
            .iter()
            .enumerate()
            .filter(|(_, row)| {
                query.from.is_none_or(|from| row.finished_at >= from)
                    && query.to.is_none_or(|to| row.finished_at <= to)
            })
            .filter(|(_, row)| {
                let attrs = row.attrs();
                let pairs: Vec<(&str, &str)> = attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                query.filter.matches(&pairs)
            })
            .map(|(i, row)| {
                let key = match query.sort.field {
                    SortField::StartedAt => row.started_at,
                    SortField::FinishedAt => row.finished_at,
                };
                (key, i as i64 + 1)
            })
            .collect();
        found.sort();
        if query.sort.descending {
            found.reverse();
        }
        found.truncate(query.limit as usize);
        found.into_iter().map(|(_, pk)| pk).collect()
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        let row = (
            strings(),
            prop::option::of(strings()),
            prop::option::of(strings()),
            prop::collection::vec((keys(), strings()), 0..3),
            0..3i64,
            0..3i64,
        )
            .prop_map(|(a, b, c, tags, started_at, finished_at)| Row {
                a,
                b,
                c,
                tags,
                started_at,
                finished_at,
            });
        prop::collection::vec(row, 0..10)
    }

    /// `key:(v1 OR v2 ...)` as the parser expands it: what becomes `column IN (...)`.
    fn value_group(strings: BoxedStrategy<String>) -> BoxedStrategy<Query> {
        (keys(), prop::collection::vec(strings, 1..4))
            .prop_map(|(key, values)| {
                Query::Or(
                    values
                        .into_iter()
                        .map(|v| {
                            Query::Term(Term::Field {
                                key: key.clone(),
                                value: Pattern::Exact(v),
                            })
                        })
                        .collect(),
                )
            })
            .boxed()
    }

    fn list_queries(rows: &[Row]) -> BoxedStrategy<Vec<ListQuery>> {
        let events: Events = rows.iter().map(Row::attrs).collect();
        let strings = query_strings(&events);
        let filter = prop_oneof![
            2 => query(strings.clone()),
            1 => (value_group(strings.clone()), query(strings.clone()))
                .prop_map(|(group, q)| Query::And(vec![group, q])),
            1 => value_group(strings).prop_map(|group| Query::Not(Box::new(group))),
        ];
        let list_query = (
            filter,
            prop::option::of(0..3i64),
            prop::option::of(0..3i64),
            1..6u32,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(filter, from, to, limit, started, descending)| ListQuery {
                from,
                to,
                limit,
                filter,
                sort: Sort {
                    field: if started {
                        SortField::StartedAt
                    } else {
                        SortField::FinishedAt
                    },
                    descending,
                },
            });
        prop::collection::vec(list_query, 1..6).boxed()
    }

    fn rows_and_list_queries() -> impl Strategy<Value = (Vec<Row>, Vec<ListQuery>)> {
        rows().prop_flat_map(|rows| {
            let queries = list_queries(&rows);
            (Just(rows), queries)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn sqlite_list_with_column_keys_agrees_with_matches(
            (rows, queries) in rows_and_list_queries()
        ) {
            let db = rows_database(&rows);
            for query in &queries {
                prop_assert_eq!(sql_list(&db, query), memory_list(&rows, query), "{:?}", query);
            }
        }
    }
}
