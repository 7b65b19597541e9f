//! Translation of a [`Query`] into a SQL `WHERE` fragment over an attributes table.
//!
//! The attributes of an owning row (deployment, failure, ...) live in a table
//! `(owner_pk, key, value, num)` with one row per (key, value) pair, `num` being
//! [`numeric_value`](dora_core::query::numeric_value) of `value`. Every term becomes an
//! `EXISTS` sub-query on that table, so a multi-valued key (a failure's services) matches if
//! any of its values does, and `NOT` is exactly the complement — the same semantics as
//! [`Query::matches`], which a differential property test below holds this module to.
//!
//! All values travel as parameters; only `attrs_table` and `owner_pk_expr` (trusted strings
//! from the caller's code) are spliced into the SQL text.

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
/// parameters.
pub fn filter_sql(
    q: &Query,
    attrs_table: &str,
    owner_pk_expr: &str,
    dialect: Dialect,
    first_param: usize,
) -> SqlFilter {
    let mut builder = Builder {
        attrs_table,
        owner_pk_expr,
        dialect,
        next_param: first_param,
        sql: String::new(),
        params: Vec::new(),
    };
    builder.query(q);
    SqlFilter {
        sql: builder.sql,
        params: builder.params,
    }
}

struct Builder<'a> {
    attrs_table: &'a str,
    owner_pk_expr: &'a str,
    dialect: Dialect,
    next_param: usize,
    sql: String,
    params: Vec<SqlParam>,
}

impl Builder<'_> {
    /// Register a parameter and return its placeholder.
    fn param(&mut self, value: SqlParam) -> String {
        let n = self.next_param;
        self.next_param += 1;
        self.params.push(value);
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
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
            Query::Or(items) => self.list(items, " OR "),
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
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(sep);
            }
            self.query(item);
        }
        self.sql.push(')');
    }

    fn term(&mut self, term: &Term) {
        match term {
            Term::Field { key, value } => {
                let key = self.text_param(key.as_str());
                let condition = self.value_condition(value);
                self.exists(Some(&key), &[condition]);
            }
            Term::Exists { key } => {
                let key = self.text_param(key.as_str());
                self.exists(Some(&key), &[]);
            }
            Term::Range { key, lower, upper } => {
                let key = self.text_param(key.as_str());
                let conditions = self.range_conditions(lower, upper);
                self.exists(Some(&key), &conditions);
            }
            Term::Text(pattern) => {
                let like = self.text_param(self.text_like_pattern(pattern));
                self.exists(None, &[format!("lower(qa.value) LIKE {like} ESCAPE '\\'")]);
            }
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
        self.sql.push(')');
    }

    /// Whole-value match, case-sensitive like `Query::matches`.
    fn value_condition(&mut self, value: &Pattern) -> String {
        match value {
            Pattern::Exact(s) => format!("qa.value = {}", self.text_param(s.as_str())),
            Pattern::Wildcard(parts) => match self.dialect {
                Dialect::Sqlite => {
                    format!("qa.value GLOB {}", self.text_param(glob_pattern(parts)))
                }
                Dialect::Postgres => {
                    let like = like_pattern(parts, |s| s.to_string());
                    format!("qa.value LIKE {} ESCAPE '\\'", self.text_param(like))
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
        let mut conditions = Vec::new();
        match numeric_bounds(lower, upper) {
            Some((lo, hi)) => {
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
            }
            None => {
                let column = match self.dialect {
                    Dialect::Sqlite => "qa.value",
                    Dialect::Postgres => "qa.value COLLATE \"C\"",
                };
                for (bound, inclusive_op, exclusive_op) in [(lower, ">=", ">"), (upper, "<=", "<")]
                {
                    let (op, s) = match bound {
                        Bound::Unbounded => continue,
                        Bound::Inclusive(s) => (inclusive_op, s),
                        Bound::Exclusive(s) => (exclusive_op, s),
                    };
                    let p = self.text_param(s.as_str());
                    conditions.push(format!("{column} {op} {p}"));
                }
            }
        }
        conditions
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
            let f = filter_sql(&Query::All, "attrs", "d.pk", dialect, 1);
            assert_eq!(f.sql, "1=1");
            assert!(f.params.is_empty());
        }
    }

    #[test]
    fn postgres_field_and_negation() {
        let f = pg("service:api -env:prod");
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = $3 AND qa.value = $4) \
             AND NOT (EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = $5 AND qa.value = $6)))"
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
            "EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = $3 \
             AND qa.value LIKE $4 ESCAPE '\\')"
        );
        assert_eq!(f.params, vec![text("k"), text(r"50\%\_a\\b*_%")]);
    }

    #[test]
    fn postgres_free_text_is_lowercased_substring() {
        let f = pg("\"Foo_Bar%\" OR Ét?");
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND lower(qa.value) LIKE $3 ESCAPE '\\') \
             OR EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND lower(qa.value) LIKE $4 ESCAPE '\\'))"
        );
        assert_eq!(f.params, vec![text(r"%foo\_bar\%%"), text("%ét_%")]);
    }

    #[test]
    fn postgres_ranges() {
        let f = pg("k:[1 TO 5} k:>=a k:*");
        assert_eq!(
            f.sql,
            "(EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = $3 AND qa.num >= $4 AND qa.num < $5) \
             AND EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = $6 AND qa.value COLLATE \"C\" >= $7) \
             AND EXISTS (SELECT 1 FROM attrs qa WHERE qa.owner_pk = d.pk AND qa.key = $8))"
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
            f.sql.ends_with("AND qa.key = $3 AND qa.num IS NOT NULL)"),
            "{}",
            f.sql
        );
    }

    #[test]
    fn sqlite_placeholders_and_glob_escaping() {
        let q = parse(r"k:a\*\?\[]*").unwrap();
        let f = filter_sql(&q, "t", "x.pk", Dialect::Sqlite, 7);
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
            Dialect::Sqlite,
            1,
        );
        assert_eq!(f.sql, "(1=1 OR 1=0)");
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
        let filter = filter_sql(q, "attrs", "o.pk", Dialect::Sqlite, 2);
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
    const FRAGMENTS: &[&str] = &[
        "a", "A", "b", "*", "?", "%", "_", "\\", "[", "]", "1", ".", "-", "é", "É", " ",
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
}
