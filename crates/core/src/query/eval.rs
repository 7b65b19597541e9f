//! In-memory evaluation of a query against an event's attributes.
//!
//! The SQL translation in `dora-store` must agree with this module exactly (a differential
//! property test checks it), so the matching rules are deliberately simple: byte-wise string
//! order, ASCII-only case folding, character-based globs.

use std::ops::{Bound as StdBound, RangeBounds};

use super::ast::{Bound, GlobPart, Pattern, Query, Term};
use super::numeric_value;

impl Query {
    /// In-memory evaluation against an event's attributes: a multi-map of (key, value) pairs;
    /// a key may appear several times (a failure has one `service` pair per service).
    pub fn matches(&self, attrs: &[(&str, &str)]) -> bool {
        match self {
            Query::All => true,
            Query::And(items) => items.iter().all(|q| q.matches(attrs)),
            Query::Or(items) => items.iter().any(|q| q.matches(attrs)),
            Query::Not(inner) => !inner.matches(attrs),
            Query::Term(term) => term.matches(attrs),
        }
    }
}

impl Term {
    /// Whether some attribute pair satisfies the term.
    pub fn matches(&self, attrs: &[(&str, &str)]) -> bool {
        match self {
            Term::Field { key, value } => {
                let glob = Glob::exact(value);
                attrs.iter().any(|(k, v)| k == key && glob.matches(v))
            }
            Term::Exists { key } => attrs.iter().any(|(k, _)| k == key),
            Term::Range { key, lower, upper } => attrs
                .iter()
                .any(|(k, v)| k == key && range_contains(lower, upper, v)),
            Term::Text(pattern) => {
                let glob = Glob::substring_ignore_ascii_case(pattern);
                attrs
                    .iter()
                    .any(|(_, v)| glob.matches(&v.to_ascii_lowercase()))
            }
        }
    }
}

/// The numeric form of a range, if every limit it has is a number; `None` means the range
/// compares strings. Shared with the SQL translation so both pick the same comparison.
pub fn numeric_bounds(lower: &Bound, upper: &Bound) -> Option<(StdBound<f64>, StdBound<f64>)> {
    fn convert(bound: &Bound) -> Option<StdBound<f64>> {
        Some(match bound {
            Bound::Unbounded => StdBound::Unbounded,
            Bound::Inclusive(s) => StdBound::Included(numeric_value(s)?),
            Bound::Exclusive(s) => StdBound::Excluded(numeric_value(s)?),
        })
    }
    Some((convert(lower)?, convert(upper)?))
}

fn range_contains(lower: &Bound, upper: &Bound, value: &str) -> bool {
    match numeric_bounds(lower, upper) {
        Some(bounds) => numeric_value(value).is_some_and(|n| bounds.contains(&n)),
        None => (str_bound(lower), str_bound(upper)).contains(value),
    }
}

fn str_bound(bound: &Bound) -> StdBound<&str> {
    match bound {
        Bound::Unbounded => StdBound::Unbounded,
        Bound::Inclusive(s) => StdBound::Included(s.as_str()),
        Bound::Exclusive(s) => StdBound::Excluded(s.as_str()),
    }
}

/// One element of a compiled glob.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Char(char),
    AnyRun,
    AnyChar,
}

/// A pattern compiled to characters, matched without recursion so hostile patterns such as
/// `*a*a*a*a*b` stay linear-ish instead of exponential.
struct Glob(Vec<Tok>);

impl Glob {
    /// The whole value must match the pattern.
    fn exact(pattern: &Pattern) -> Glob {
        let mut toks = Vec::new();
        push_pattern(&mut toks, pattern, false);
        Glob(toks)
    }

    /// Some substring of the (already ASCII-lowercased) value must match the pattern.
    fn substring_ignore_ascii_case(pattern: &Pattern) -> Glob {
        let mut toks = vec![Tok::AnyRun];
        push_pattern(&mut toks, pattern, true);
        toks.push(Tok::AnyRun);
        Glob(toks)
    }

    fn matches(&self, value: &str) -> bool {
        let pattern = &self.0;
        let text: Vec<char> = value.chars().collect();
        let (mut p, mut t) = (0, 0);
        // Where to resume after the most recent `*`: (pattern index after it, text index it
        // currently absorbs up to). Only the latest star needs remembering.
        let mut resume: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(Tok::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                Some(Tok::AnyChar) => {
                    p += 1;
                    t += 1;
                }
                Some(Tok::AnyRun) => {
                    resume = Some((p + 1, t));
                    p += 1;
                }
                _ => match resume {
                    Some((rp, rt)) => {
                        p = rp;
                        t = rt + 1;
                        resume = Some((rp, rt + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|tok| *tok == Tok::AnyRun)
    }
}

fn push_pattern(toks: &mut Vec<Tok>, pattern: &Pattern, lowercase: bool) {
    let push_literal = |toks: &mut Vec<Tok>, s: &str| {
        toks.extend(
            s.chars()
                .map(|c| Tok::Char(if lowercase { c.to_ascii_lowercase() } else { c })),
        )
    };
    match pattern {
        Pattern::Exact(s) => push_literal(toks, s),
        Pattern::Wildcard(parts) => {
            for part in parts {
                match part {
                    GlobPart::Literal(s) => push_literal(toks, s),
                    GlobPart::AnyRun => toks.push(Tok::AnyRun),
                    GlobPart::AnyChar => toks.push(Tok::AnyChar),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(parts: Vec<GlobPart>) -> Glob {
        Glob::exact(&Pattern::Wildcard(parts))
    }

    #[test]
    fn glob_matching() {
        use GlobPart::*;
        let g = glob(vec![Literal("a".into()), AnyRun, Literal("b".into())]);
        assert!(g.matches("ab"));
        assert!(g.matches("axxb"));
        assert!(g.matches("abab"));
        assert!(!g.matches("aba"));
        assert!(!g.matches("b"));
        let g = glob(vec![AnyChar, Literal("é".into())]);
        assert!(g.matches("xé"));
        assert!(g.matches("éé"));
        assert!(!g.matches("é"));
        assert!(!g.matches("xxé"));
        let g = glob(vec![AnyRun]);
        assert!(g.matches(""));
        assert!(g.matches("anything"));
        let g = glob(vec![AnyRun, AnyRun, Literal("a".into()), AnyRun]);
        assert!(g.matches("bab"));
        assert!(!g.matches("bbb"));
    }

    #[test]
    fn glob_is_not_exponential() {
        use GlobPart::*;
        let mut parts = Vec::new();
        for _ in 0..30 {
            parts.push(AnyRun);
            parts.push(Literal("a".into()));
        }
        parts.push(Literal("b".into()));
        assert!(!glob(parts).matches(&"a".repeat(200)));
    }

    #[test]
    fn numeric_and_string_bounds() {
        let inc = |s: &str| Bound::Inclusive(s.to_string());
        let exc = |s: &str| Bound::Exclusive(s.to_string());
        assert!(range_contains(&inc("2"), &inc("10"), "10"));
        assert!(range_contains(&inc("2"), &inc("10"), "2.5"));
        assert!(!range_contains(&inc("2"), &exc("10"), "10"));
        assert!(!range_contains(&inc("2"), &inc("10"), "abc"));
        // One non-numeric limit makes the comparison textual: "10" < "2" as strings.
        assert!(!range_contains(&inc("2"), &inc("b"), "10"));
        assert!(range_contains(&inc("2"), &inc("b"), "3x"));
        // Both bounds open: numeric comparison, so only numbers match.
        assert!(range_contains(&Bound::Unbounded, &Bound::Unbounded, "-1e3"));
        assert!(!range_contains(&Bound::Unbounded, &Bound::Unbounded, "x"));
    }
}
