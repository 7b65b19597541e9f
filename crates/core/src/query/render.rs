//! Rendering a query back to text that [`parse`](super::parse) reads as the same tree.
//!
//! Used to show a normalised query (e.g. in logs) and by the round-trip property tests. Two
//! trees cannot be rendered faithfully: a nested [`Query::All`] (it has no syntax; it renders as
//! `()`, which does not parse) and keys outside `[A-Za-z0-9_.@/-]+` or starting with `-`.

use std::fmt::{self, Display, Formatter};

use super::ast::{Bound, GlobPart, Pattern, Query, Term};

/// Choices the renderer makes; the tests vary them to exercise every spelling of the syntax.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// Separator between the operands of an AND: `" "` or `" AND "`.
    pub and_sep: &'static str,
    /// Negation prefix: `"-"` or `"NOT "`.
    pub not_prefix: &'static str,
    /// Whether `key:>x`/`key:<x` rather than `key:[x TO *]` for half-open ranges.
    pub comparisons: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            and_sep: " ",
            not_prefix: "-",
            comparisons: true,
        }
    }
}

/// Where a term is rendered, which changes what must be quoted or escaped.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// Ordinary top-level syntax: `key:value`, free text.
    Top,
    /// Inside a value group `key:( ... )`: terms are bare values, so a value that starts with `-`
    /// or is a keyword would be read as an operator.
    Group,
}

impl Display for Query {
    /// Canonical text of the query; [`Query::All`] at the top renders as the empty string.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if *self == Query::All {
            return Ok(());
        }
        f.write_str(&render(self, Style::default()))
    }
}

/// Render with explicit style choices.
pub(crate) fn render(q: &Query, style: Style) -> String {
    let mut out = String::new();
    Renderer {
        style,
        place: Place::Top,
        out: &mut out,
    }
    .query(q);
    out
}

/// Render a query whose terms are all on one key as the inside of a value group `key:( ... )`
/// (terms on other keys are rendered as if they were on that key). For tests of value groups.
#[cfg(test)]
pub(crate) fn render_group(q: &Query, style: Style) -> String {
    let mut out = String::new();
    Renderer {
        style,
        place: Place::Group,
        out: &mut out,
    }
    .query(q);
    out
}

struct Renderer<'o> {
    style: Style,
    place: Place,
    out: &'o mut String,
}

impl Renderer<'_> {
    fn query(&mut self, q: &Query) {
        match q {
            Query::All => self.out.push_str("()"),
            Query::And(items) => self.list(items, self.style.and_sep, |c| {
                matches!(c, Query::And(_) | Query::Or(_))
            }),
            Query::Or(items) => self.list(items, " OR ", |c| matches!(c, Query::Or(_))),
            Query::Not(inner) => {
                self.out.push_str(self.style.not_prefix);
                self.operand(inner, matches!(**inner, Query::And(_) | Query::Or(_)));
            }
            Query::Term(term) => self.term(term),
        }
    }

    /// Operands that would otherwise re-associate or bind differently get parentheses, so the
    /// tree shape survives a round trip.
    fn list(&mut self, items: &[Query], sep: &str, needs_parens: fn(&Query) -> bool) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(sep);
            }
            self.operand(item, needs_parens(item));
        }
        if items.is_empty() {
            // An empty AND/OR has no syntax; an empty group at least fails loudly on parse.
            self.out.push_str("()");
        }
    }

    fn operand(&mut self, q: &Query, parens: bool) {
        if parens {
            self.out.push('(');
            self.query(q);
            self.out.push(')');
        } else {
            self.query(q);
        }
    }

    fn key(&mut self, key: &str) {
        if self.place == Place::Top {
            self.out.push_str(key);
            self.out.push(':');
        }
    }

    fn term(&mut self, term: &Term) {
        match term {
            Term::Field { key, value } => {
                self.key(key);
                match value {
                    Pattern::Exact(s) => self.literal(s, ValueKind::Value),
                    Pattern::Wildcard(parts) => self.wildcard(parts, ValueKind::Value),
                }
            }
            Term::Exists { key } => {
                self.key(key);
                self.out.push('*');
            }
            Term::Range { key, lower, upper } => {
                self.key(key);
                self.range(lower, upper);
            }
            Term::Text(pattern) => match pattern {
                Pattern::Exact(s) => self.literal(s, ValueKind::Text),
                Pattern::Wildcard(parts) => self.wildcard(parts, ValueKind::Text),
            },
        }
    }

    fn range(&mut self, lower: &Bound, upper: &Bound) {
        let one_sided = match (lower, upper) {
            (Bound::Unbounded, Bound::Unbounded) => None,
            (b, Bound::Unbounded) => Some((">", b)),
            (Bound::Unbounded, b) => Some(("<", b)),
            _ => None,
        };
        if let (true, Some((op, bound))) = (self.style.comparisons, one_sided) {
            self.out.push_str(op);
            if let Bound::Inclusive(_) = bound {
                self.out.push('=');
            }
            self.bound(bound);
            return;
        }
        self.out.push(if matches!(lower, Bound::Exclusive(_)) {
            '{'
        } else {
            '['
        });
        self.bound(lower);
        self.out.push_str(" TO ");
        self.bound(upper);
        self.out.push(if matches!(upper, Bound::Exclusive(_)) {
            '}'
        } else {
            ']'
        });
    }

    fn bound(&mut self, bound: &Bound) {
        match bound.limit() {
            None => self.out.push('*'),
            Some(s) => self.literal(s, ValueKind::Bound),
        }
    }

    /// A literal string: bare when that is unambiguous, quoted otherwise.
    fn literal(&mut self, s: &str, kind: ValueKind) {
        if self.bare_ok(s, kind) {
            self.out.push_str(s);
        } else {
            self.out.push('"');
            for c in s.chars() {
                if matches!(c, '"' | '\\') {
                    self.out.push('\\');
                }
                self.out.push(c);
            }
            self.out.push('"');
        }
    }

    fn bare_ok(&self, s: &str, kind: ValueKind) -> bool {
        let Some(first) = s.chars().next() else {
            return false;
        };
        // Where terms are operands, a leading `-` negates and keywords are operators.
        let operand_position = kind == ValueKind::Text || self.place == Place::Group;
        if operand_position && (first == '-' || ["AND", "OR", "NOT"].contains(&s)) {
            return false;
        }
        if kind == ValueKind::Bound && s == "TO" {
            return false;
        }
        s.chars().all(|c| is_safe(c, kind))
    }

    /// A glob: always bare (quoting would make the wildcards literal), with every character
    /// that could mean something else escaped.
    fn wildcard(&mut self, parts: &[GlobPart], kind: ValueKind) {
        let operand_position = kind == ValueKind::Text || self.place == Place::Group;
        let mut first = true;
        for part in parts {
            match part {
                GlobPart::AnyRun => self.out.push('*'),
                GlobPart::AnyChar => self.out.push('?'),
                GlobPart::Literal(s) => {
                    for c in s.chars() {
                        let leading_dash = first && operand_position && c == '-';
                        if leading_dash || !is_safe(c, kind) {
                            self.out.push('\\');
                        }
                        self.out.push(c);
                        first = false;
                    }
                }
            }
            first = false;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ValueKind {
    Text,
    Value,
    Bound,
}

/// Characters that never need quoting or escaping in a bare word of this kind. Deliberately
/// conservative: `[`, `{`, `<`, `>`, `=` are excluded because they mean something at the start
/// of a value or bound.
fn is_safe(c: char, kind: ValueKind) -> bool {
    if c.is_alphanumeric()
        || matches!(
            c,
            '_' | '.' | '@' | '/' | '-' | '+' | ',' | '#' | '%' | '&' | '!' | '~'
        )
    {
        return true;
    }
    c == ':' && kind != ValueKind::Text
}

#[cfg(test)]
mod tests {
    use crate::query::parse;

    #[test]
    fn canonical_rendering() {
        for (input, canonical) in [
            ("", ""),
            ("service:api", "service:api"),
            ("a AND b", "a b"),
            ("NOT a", "-a"),
            ("a OR b c", "a OR b c"),
            ("(a OR b) c", "(a OR b) c"),
            ("-(a b)", "-(a b)"),
            ("service:(a OR b)", "service:a OR service:b"),
            ("k:\"x y\"", "k:\"x y\""),
            ("k:a\\*b*", "k:a\\*b*"),
            ("k:*", "k:*"),
            ("k:[1 TO 5}", "k:[1 TO 5}"),
            ("k:[* TO 5]", "k:<=5"),
            ("k:>\"=x\"", "k:>\"=x\""),
            ("\"AND\" \\-x", "\"AND\" \"-x\""),
            ("k:[\"TO\" TO *]", "k:>=\"TO\""),
        ] {
            let q = parse(input).unwrap();
            assert_eq!(q.to_string(), canonical, "rendering of {input:?}");
            assert_eq!(parse(canonical).unwrap(), q, "reparse of {canonical:?}");
        }
    }
}
