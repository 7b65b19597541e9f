//! The query language (Datadog event-platform search syntax), e.g.
//! `service:(shopist OR api-service) env:production -version:beta "free text"`.
//!
//! [`parse`] turns text into a [`Query`]; [`Query::matches`] evaluates it in memory; the store
//! translates the same tree to SQL and must agree with [`Query::matches`]. Everything here is
//! pure, so the whole language is covered by unit and property tests.

mod ast;
mod eval;
mod parser;
mod render;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use ast::{Bound, GlobPart, Pattern, Query, Term};
pub use eval::numeric_bounds;
pub use parser::{parse, MAX_DEPTH, MAX_TERMS};

/// A syntax error, with the character offset where it was detected and a message saying what
/// was found and what was expected there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("query syntax error at offset {offset}: {message}")]
pub struct QueryError {
    /// Offset in characters (not bytes) from the start of the input.
    pub offset: usize,
    pub message: String,
}

/// Parse an attribute value as a number for range comparisons; `Some` only for finite numbers
/// (so `inf`/`NaN` compare as text, and the SQL `num` column never holds them).
pub fn numeric_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

impl Query {
    /// `key:value`, matched exactly: for selections built in code rather than typed by users.
    pub fn field(key: &str, value: &str) -> Query {
        Query::Term(Term::Field {
            key: key.to_string(),
            value: Pattern::Exact(value.to_string()),
        })
    }

    /// `-key:*`: the attribute is missing.
    pub fn missing(key: &str) -> Query {
        Query::Not(Box::new(Query::Term(Term::Exists {
            key: key.to_string(),
        })))
    }
}
