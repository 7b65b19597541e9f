//! The syntax tree of a parsed query.
//!
//! The tree is what the parser produces and what both evaluators (in-memory here, SQL in
//! `dora-store`) consume, so it keeps only what matters for matching: value groups such as
//! `service:(a OR b)` are already expanded into `service:a OR service:b`.

/// A parsed query. [`Query::All`] is only produced for an empty query and matches everything.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Matches every event (the empty query).
    All,
    /// Every sub-query matches (explicit `AND` or whitespace).
    And(Vec<Query>),
    /// At least one sub-query matches.
    Or(Vec<Query>),
    /// The sub-query does not match (`NOT x` or `-x`).
    Not(Box<Query>),
    /// A single search term.
    Term(Term),
}

/// One search term.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// `key:value` — exact (case-sensitive) or wildcard (`*` any run, `?` one char) match of the
    /// attribute value.
    Field { key: String, value: Pattern },
    /// `key:*` (attribute present).
    Exists { key: String },
    /// `key:[a TO b]`, `key:{a TO b}`, `key:>x`, `key:>=x`, `key:<x`, `key:<=x`; `*` as an open bound
    /// in `[* TO b]`.
    ///
    /// If every bound that is not open is a number (see [`numeric_value`](super::numeric_value)),
    /// values are compared numerically and values that are not numbers never match — so
    /// `key:[* TO *]` matches the numeric values of `key`. Otherwise values are compared as strings,
    /// byte-wise.
    Range {
        key: String,
        lower: Bound,
        upper: Bound,
    },
    /// Free text: case-insensitive (ASCII letters) substring match against any attribute value;
    /// wildcards allowed.
    Text(Pattern),
}

/// What a value (or a piece of free text) is matched against.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// A literal string (quoted values, or unquoted ones without unescaped `*`/`?`).
    Exact(String),
    /// A glob. The parser merges adjacent literal characters into one [`GlobPart::Literal`] and
    /// never produces an empty literal, so equal globs have equal representations.
    Wildcard(Vec<GlobPart>),
}

/// One piece of a wildcard pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum GlobPart {
    /// Characters matched literally.
    Literal(String),
    /// `*`: any run of characters, possibly empty.
    AnyRun,
    /// `?`: exactly one character.
    AnyChar,
}

/// One end of a range.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// No limit (`*` in `[* TO b]`, or the missing side of `>x`).
    Unbounded,
    /// The limit itself is included (`[`, `]`, `>=`, `<=`).
    Inclusive(String),
    /// The limit itself is excluded (`{`, `}`, `>`, `<`).
    Exclusive(String),
}

impl Bound {
    /// The limit, if there is one.
    pub fn limit(&self) -> Option<&str> {
        match self {
            Bound::Unbounded => None,
            Bound::Inclusive(s) | Bound::Exclusive(s) => Some(s),
        }
    }
}
