//! Recursive-descent parser for the query language.
//!
//! Grammar (whitespace between tokens is skipped; `AND`/`OR`/`NOT` are keywords only in
//! uppercase and only as whole words):
//!
//! ```text
//! query   := ws* (or ws*)?                       -- empty => Query::All
//! or      := and ("OR" and)*
//! and     := unary (("AND")? unary)*            -- juxtaposition is AND
//! unary   := "NOT" unary | "-" unary | "(" or ")" | primary
//! primary := key ":" value | '"' phrase '"' | word        -- at the top level
//!          | value                                       -- inside a value group key:( ... )
//! value   := "(" or ")"                     -- value group, terms are values of `key`
//!          | ("[" | "{") bound "TO" bound ("]" | "}")
//!          | (">" | ">=" | "<" | "<=") bound
//!          | '"' literal '"' | word         -- a lone unescaped `*` means "exists"
//! ```
//!
//! The parser works on a vector of `char`s so positions are character offsets, which is what
//! error messages report (they are shown to people, who count characters, not bytes).

use super::ast::{Bound, GlobPart, Pattern, Query, Term};
use super::QueryError;

/// Parse a query. Empty or whitespace-only input is [`Query::All`].
pub fn parse(input: &str) -> Result<Query, QueryError> {
    let mut parser = Parser {
        chars: input.chars().collect(),
        pos: 0,
        depth: 0,
        terms: 0,
    };
    parser.skip_ws();
    if parser.peek().is_none() {
        return Ok(Query::All);
    }
    let query = parser.parse_or(Ctx::Top, "")?;
    parser.skip_ws();
    match parser.peek() {
        None => Ok(query),
        // `and` stops only at the end, `)` or `OR`, and `or` consumes every `OR`.
        Some(')') => Err(parser.error("found ')' with no matching '(', expected end of query")),
        Some(_) => {
            let found = parser.describe(parser.pos);
            Err(parser.error(format!("expected end of query, found {found}")))
        }
    }
}

/// What the terms of the expression being parsed are.
#[derive(Clone, Copy)]
enum Ctx<'k> {
    /// Ordinary terms: `key:value`, free text.
    Top,
    /// Values of one key, inside a value group `key:( ... )`.
    Values { key: &'k str },
}

impl Ctx<'_> {
    fn noun(self) -> &'static str {
        match self {
            Ctx::Top => "a term",
            Ctx::Values { .. } => "a value",
        }
    }
}

/// Which characters a bare word may contain, and what they mean.
#[derive(Clone, Copy, PartialEq)]
enum WordKind {
    /// Free text: an unescaped `:` is an error (the text before it was not a valid key).
    Text,
    /// A field value: `:` is an ordinary character (`version:v1:2`).
    Value,
    /// A range or comparison bound; `in_range` also stops the word at `]` and `}`.
    Bound { in_range: bool },
}

/// One character of a bare word, before deciding what the word is.
#[derive(Clone, Copy, PartialEq)]
enum WordChar {
    Lit(char),
    Star,
    Question,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Current nesting of groups and negations, bounded by [`MAX_DEPTH`].
    depth: usize,
    /// Terms so far (each value of a value group counts), bounded by [`MAX_TERMS`].
    terms: usize,
}

/// Queries come from HTTP requests; unbounded nesting (`((((...` or `------a`) would overflow
/// the stack here, in evaluation or in SQLite's parser. Real queries nest a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// Every term costs the database a condition to plan and test; a query of more terms than this
/// (each value of a value group counts) is refused rather than left to run for minutes. Real
/// queries have a handful.
pub const MAX_TERMS: usize = 1000;

const KEYWORDS: [&str; 3] = ["AND", "OR", "NOT"];

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '/' | '-')
}

/// Collapse a one-element list to the element itself, so `(a)` is just `a`.
fn collapse(mut items: Vec<Query>, make: fn(Vec<Query>) -> Query) -> Query {
    if items.len() == 1 {
        items.remove(0)
    } else {
        make(items)
    }
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            offset,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> QueryError {
        self.error_at(self.pos, message)
    }

    /// "expected {what}, found {whatever is at the current position}".
    fn expected(&self, what: &str) -> QueryError {
        self.error(format!(
            "expected {what}, found {}",
            self.describe(self.pos)
        ))
    }

    /// A human description of what is at `pos`, for "found ..." in messages.
    fn describe(&self, pos: usize) -> String {
        match self.chars.get(pos) {
            None => "end of query".to_string(),
            Some(c) if c.is_whitespace() => "whitespace".to_string(),
            Some(c) => match self.keyword_at(pos) {
                Some(kw) => format!("'{kw}'"),
                None if c.is_control() => format!("{c:?}"),
                None => format!("'{c}'"),
            },
        }
    }

    /// Whether `word` is at `pos` as a whole word (followed by whitespace, a parenthesis or
    /// the end), which is what makes `AND`/`OR`/`NOT` operators rather than text.
    fn word_at(&self, pos: usize, word: &str) -> bool {
        let mut i = pos;
        for w in word.chars() {
            if self.chars.get(i) != Some(&w) {
                return false;
            }
            i += 1;
        }
        match self.chars.get(i) {
            None => true,
            Some(c) => c.is_whitespace() || matches!(c, '(' | ')'),
        }
    }

    fn keyword_at(&self, pos: usize) -> Option<&'static str> {
        KEYWORDS.into_iter().find(|kw| self.word_at(pos, kw))
    }

    /// After a quoted string or a range the term must end; `key:"a"b` is more likely a typo than
    /// two terms.
    fn expect_term_end(&self, after: &str) -> Result<(), QueryError> {
        match self.peek() {
            None | Some(')') => Ok(()),
            Some(c) if c.is_whitespace() => Ok(()),
            Some(_) => {
                Err(self.expected(&format!("whitespace, ')' or end of query after {after}")))
            }
        }
    }

    fn parse_or(&mut self, ctx: Ctx<'_>, lead: &str) -> Result<Query, QueryError> {
        let mut items = vec![self.parse_and(ctx, lead)?];
        loop {
            self.skip_ws();
            if self.keyword_at(self.pos) != Some("OR") {
                break;
            }
            self.pos += 2;
            self.skip_ws();
            items.push(self.parse_and(ctx, " after 'OR'")?);
        }
        Ok(collapse(items, Query::Or))
    }

    fn parse_and(&mut self, ctx: Ctx<'_>, lead: &str) -> Result<Query, QueryError> {
        let mut items = vec![self.parse_unary(ctx, lead)?];
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(')') => break,
                Some(_) => {}
            }
            match self.keyword_at(self.pos) {
                Some("OR") => break,
                Some("AND") => {
                    self.pos += 3;
                    self.skip_ws();
                    items.push(self.parse_unary(ctx, " after 'AND'")?);
                }
                _ => items.push(self.parse_unary(ctx, "")?),
            }
        }
        Ok(collapse(items, Query::And))
    }

    /// `lead` completes "expected a term..." when there is no term here, e.g. " after 'AND'".
    fn parse_unary(&mut self, ctx: Ctx<'_>, lead: &str) -> Result<Query, QueryError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "found more than {MAX_DEPTH} nested groups or negations, expected a flatter query"
            )));
        }
        self.depth += 1;
        let result = self.parse_unary_inner(ctx, lead);
        self.depth -= 1;
        result
    }

    fn parse_unary_inner(&mut self, ctx: Ctx<'_>, lead: &str) -> Result<Query, QueryError> {
        let start = self.pos;
        let expected_here = || format!("{}{lead}", ctx.noun());
        let Some(c) = self.peek() else {
            return Err(self.expected(&expected_here()));
        };
        if c == ')' || c.is_whitespace() {
            return Err(self.expected(&expected_here()));
        }
        match self.keyword_at(start) {
            Some("NOT") => {
                self.pos += 3;
                self.skip_ws();
                let inner = self.parse_unary(ctx, " after 'NOT'")?;
                return Ok(Query::Not(Box::new(inner)));
            }
            Some(_) => return Err(self.expected(&expected_here())),
            None => {}
        }
        match c {
            '-' => {
                self.pos += 1;
                match self.peek() {
                    Some(next) if !next.is_whitespace() && next != ')' => {
                        let inner = self.parse_unary(ctx, " after '-'")?;
                        Ok(Query::Not(Box::new(inner)))
                    }
                    _ => Err(self.expected(&format!("{} right after '-'", ctx.noun()))),
                }
            }
            '(' => self.parse_group(ctx),
            _ => match ctx {
                Ctx::Top => self.parse_term(),
                Ctx::Values { key } => self.parse_value(key),
            },
        }
    }

    /// `( or )`; the caller has checked that the current character is `(`.
    fn parse_group(&mut self, ctx: Ctx<'_>) -> Result<Query, QueryError> {
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        let query = self.parse_or(ctx, &format!(" inside the group opened at offset {open}"))?;
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(self.expected(&format!("')' to close the group opened at offset {open}")));
        }
        self.pos += 1;
        Ok(query)
    }

    /// Counts one more term (a value, a phrase, a word), refusing one past [`MAX_TERMS`].
    fn count_term(&mut self) -> Result<(), QueryError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error(format!(
                "found more than {MAX_TERMS} terms, the most one query may have"
            )));
        }
        Ok(())
    }

    /// A top-level term: `key:value`, a quoted phrase or a free-text word.
    fn parse_term(&mut self) -> Result<Query, QueryError> {
        let start = self.pos;
        if self.peek() == Some('"') {
            self.count_term()?;
            let phrase = self.parse_quoted()?;
            self.expect_term_end("the closing '\"'")?;
            return Ok(Query::Term(Term::Text(Pattern::Exact(phrase))));
        }
        let mut end = start;
        while self.chars.get(end).copied().is_some_and(is_key_char) {
            end += 1;
        }
        if self.chars.get(end) == Some(&':') {
            if end == start {
                return Err(self.error(
                    "expected a field name before ':', found ':' (escape it as '\\:' to search for a colon)",
                ));
            }
            let key: String = self.chars[start..end].iter().collect();
            self.pos = end + 1;
            return self.parse_field_value(&key);
        }
        self.count_term()?;
        let word = self.parse_word(WordKind::Text, "a term")?;
        Ok(Query::Term(Term::Text(to_pattern(&word))))
    }

    /// What follows `key:`.
    fn parse_field_value(&mut self, key: &str) -> Result<Query, QueryError> {
        match self.peek() {
            None => Err(self.expected(&format!("a value after '{key}:'"))),
            Some(c) if c.is_whitespace() || c == ')' => {
                Err(self.expected(&format!("a value after '{key}:'")))
            }
            Some('(') => self.parse_group(Ctx::Values { key }),
            Some(_) => self.parse_value(key),
        }
    }

    /// One value of `key`: range, comparison, quoted literal, or word (possibly `*` = exists).
    fn parse_value(&mut self, key: &str) -> Result<Query, QueryError> {
        self.count_term()?;
        let term = match self.peek() {
            Some('[' | '{') => self.parse_range(key)?,
            Some('>' | '<') => self.parse_comparison(key)?,
            Some('"') => {
                let value = self.parse_quoted()?;
                self.expect_term_end("the closing '\"'")?;
                Term::Field {
                    key: key.to_string(),
                    value: Pattern::Exact(value),
                }
            }
            _ => {
                let word = self.parse_word(WordKind::Value, "a value")?;
                if word == [WordChar::Star] {
                    Term::Exists {
                        key: key.to_string(),
                    }
                } else {
                    Term::Field {
                        key: key.to_string(),
                        value: to_pattern(&word),
                    }
                }
            }
        };
        Ok(Query::Term(term))
    }

    /// `"..."` with `\` escapes; the caller has checked that the current character is `"`.
    fn parse_quoted(&mut self) -> Result<String, QueryError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        self.expected(&format!("'\"' to close the quote opened at offset {open}"))
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => out.push(self.parse_escape()?),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `\x`: the current character is the backslash; returns `x`.
    fn parse_escape(&mut self) -> Result<char, QueryError> {
        let backslash = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(c) => {
                self.pos += 1;
                Ok(c)
            }
            None => Err(self.error_at(
                backslash,
                "expected a character to escape after '\\', found end of query",
            )),
        }
    }

    /// An unquoted word, up to whitespace or `)` (and `]`/`}` inside ranges). `what` names the
    /// expected thing if the word turns out empty.
    fn parse_word(&mut self, kind: WordKind, what: &str) -> Result<Vec<WordChar>, QueryError> {
        let start = self.pos;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            let in_range = kind == WordKind::Bound { in_range: true };
            if c.is_whitespace() || c == ')' || (in_range && matches!(c, ']' | '}')) {
                break;
            }
            match c {
                '\\' => {
                    out.push(WordChar::Lit(self.parse_escape()?));
                    continue;
                }
                '*' => out.push(WordChar::Star),
                '?' => out.push(WordChar::Question),
                '"' | '(' => {
                    return Err(self.error(format!(
                        "found '{c}' inside a word, expected whitespace before it or '\\{c}' to search for it"
                    )))
                }
                ':' if kind == WordKind::Text => return Err(self.bad_key(start)),
                _ => out.push(WordChar::Lit(c)),
            }
            self.pos += 1;
        }
        if out.is_empty() {
            return Err(self.expected(what));
        }
        Ok(out)
    }

    /// A free-text word reached an unescaped `:` (at the current position): the text before it
    /// was not a valid key. Point at the first offending character.
    fn bad_key(&self, word_start: usize) -> QueryError {
        let colon = self.pos;
        let bad = (word_start..colon)
            .find(|&i| !is_key_char(self.chars[i]))
            .unwrap_or(colon);
        self.error_at(
            bad,
            format!(
                "found {} in the field name before the ':' at offset {colon}, expected only letters, \
                 digits, '_', '.', '@', '/' or '-' (escape the ':' as '\\:' to search for it as text)",
                self.describe(bad)
            ),
        )
    }

    /// `[a TO b]`, `{a TO b}` and mixed brackets; the current character is `[` or `{`.
    fn parse_range(&mut self, key: &str) -> Result<Term, QueryError> {
        let open = self.pos;
        let lower_inclusive = self.chars[open] == '[';
        self.pos += 1;
        self.skip_ws();
        let lower = self.parse_bound(&format!("a lower bound after '{}'", self.chars[open]))?;
        self.skip_ws();
        if !self.is_to_keyword() {
            return Err(self.expected(&format!(
                "'TO' after the lower bound of the range opened at offset {open}"
            )));
        }
        self.pos += 2;
        self.skip_ws();
        let upper = self.parse_bound("an upper bound after 'TO'")?;
        self.skip_ws();
        let upper_inclusive = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => {
                return Err(self.expected(&format!(
                    "']' or '}}' to close the range opened at offset {open}"
                )))
            }
        };
        self.pos += 1;
        self.expect_term_end("the range")?;
        Ok(Term::Range {
            key: key.to_string(),
            lower: make_bound(lower, lower_inclusive),
            upper: make_bound(upper, upper_inclusive),
        })
    }

    /// `TO` as a whole word inside a range.
    fn is_to_keyword(&self) -> bool {
        let next = self.chars.get(self.pos + 2);
        self.chars.get(self.pos) == Some(&'T')
            && self.chars.get(self.pos + 1) == Some(&'O')
            && next.is_none_or(|c| c.is_whitespace() || matches!(c, ']' | '}' | ')'))
    }

    /// One bound of a range: `None` for the open bound `*`.
    fn parse_bound(&mut self, what: &str) -> Result<Option<String>, QueryError> {
        match self.peek() {
            None | Some(']' | '}' | ')') => Err(self.expected(what)),
            Some(c) if c.is_whitespace() => Err(self.expected(what)),
            Some('"') => {
                let value = self.parse_quoted()?;
                match self.peek() {
                    None | Some(']' | '}') => {}
                    Some(c) if c.is_whitespace() => {}
                    Some(_) => {
                        return Err(self.expected("whitespace, ']' or '}' after the closing '\"'"))
                    }
                }
                Ok(Some(value))
            }
            Some(_) if self.is_to_keyword() => Err(self.error(format!(
                "expected {what}, found 'TO' (quote it to use it as a bound)"
            ))),
            Some(_) => {
                let word = self.parse_word(WordKind::Bound { in_range: true }, what)?;
                Ok((word != [WordChar::Star]).then(|| bound_text(&word)))
            }
        }
    }

    /// `>x`, `>=x`, `<x`, `<=x`; the current character is `>` or `<`.
    fn parse_comparison(&mut self, key: &str) -> Result<Term, QueryError> {
        let greater = self.chars[self.pos] == '>';
        self.pos += 1;
        let inclusive = self.peek() == Some('=');
        if inclusive {
            self.pos += 1;
        }
        let op = match (greater, inclusive) {
            (true, false) => ">",
            (true, true) => ">=",
            (false, false) => "<",
            (false, true) => "<=",
        };
        let what = format!("a value after '{op}'");
        let limit = match self.peek() {
            None | Some(')') => return Err(self.expected(&what)),
            Some(c) if c.is_whitespace() => return Err(self.expected(&what)),
            Some('"') => {
                let value = self.parse_quoted()?;
                self.expect_term_end("the closing '\"'")?;
                value
            }
            Some(_) => {
                let start = self.pos;
                let word = self.parse_word(WordKind::Bound { in_range: false }, &what)?;
                if word == [WordChar::Star] {
                    return Err(self.error_at(
                        start,
                        format!("expected {what}, found '*' (an open bound is written [* TO x])"),
                    ));
                }
                bound_text(&word)
            }
        };
        let bound = make_bound(Some(limit), inclusive);
        let (lower, upper) = if greater {
            (bound, Bound::Unbounded)
        } else {
            (Bound::Unbounded, bound)
        };
        Ok(Term::Range {
            key: key.to_string(),
            lower,
            upper,
        })
    }
}

fn make_bound(limit: Option<String>, inclusive: bool) -> Bound {
    match limit {
        None => Bound::Unbounded,
        Some(s) if inclusive => Bound::Inclusive(s),
        Some(s) => Bound::Exclusive(s),
    }
}

/// Bounds are literal: `*` and `?` in them are ordinary characters.
fn bound_text(word: &[WordChar]) -> String {
    word.iter()
        .map(|w| match w {
            WordChar::Lit(c) => *c,
            WordChar::Star => '*',
            WordChar::Question => '?',
        })
        .collect()
}

/// A word without wildcards is exact; otherwise adjacent literal characters are merged.
fn to_pattern(word: &[WordChar]) -> Pattern {
    if word.iter().all(|w| matches!(w, WordChar::Lit(_))) {
        return Pattern::Exact(bound_text(word));
    }
    let mut parts: Vec<GlobPart> = Vec::new();
    for w in word {
        match (w, parts.last_mut()) {
            (WordChar::Lit(c), Some(GlobPart::Literal(s))) => s.push(*c),
            (WordChar::Lit(c), _) => parts.push(GlobPart::Literal(c.to_string())),
            (WordChar::Star, _) => parts.push(GlobPart::AnyRun),
            (WordChar::Question, _) => parts.push(GlobPart::AnyChar),
        }
    }
    Pattern::Wildcard(parts)
}
