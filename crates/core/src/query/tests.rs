//! Unit tests: every construct of the language, every error (offset and message), and the
//! evaluation rules.

use super::*;

fn field(key: &str, value: &str) -> Query {
    Query::Term(Term::Field {
        key: key.into(),
        value: Pattern::Exact(value.into()),
    })
}

fn glob(key: &str, parts: Vec<GlobPart>) -> Query {
    Query::Term(Term::Field {
        key: key.into(),
        value: Pattern::Wildcard(parts),
    })
}

fn text(s: &str) -> Query {
    Query::Term(Term::Text(Pattern::Exact(s.into())))
}

fn exists(key: &str) -> Query {
    Query::Term(Term::Exists { key: key.into() })
}

fn range(key: &str, lower: Bound, upper: Bound) -> Query {
    Query::Term(Term::Range {
        key: key.into(),
        lower,
        upper,
    })
}

fn inc(s: &str) -> Bound {
    Bound::Inclusive(s.into())
}

fn exc(s: &str) -> Bound {
    Bound::Exclusive(s.into())
}

fn lit(s: &str) -> GlobPart {
    GlobPart::Literal(s.into())
}

fn not(q: Query) -> Query {
    Query::Not(Box::new(q))
}

fn and(items: Vec<Query>) -> Query {
    Query::And(items)
}

fn or(items: Vec<Query>) -> Query {
    Query::Or(items)
}

#[track_caller]
fn ok(input: &str, expected: Query) {
    assert_eq!(parse(input), Ok(expected), "parsing {input:?}");
}

#[track_caller]
fn err(input: &str, offset: usize, message: &str) {
    assert_eq!(
        parse(input),
        Err(QueryError {
            offset,
            message: message.into()
        }),
        "parsing {input:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Constructs

#[test]
fn empty_query_matches_everything() {
    ok("", Query::All);
    ok("   \t\n ", Query::All);
    assert!(Query::All.matches(&[]));
}

#[test]
fn field_terms() {
    ok("service:api", field("service", "api"));
    ok("  service:api  ", field("service", "api"));
    ok("git.commit@sha/x_1-2:v", field("git.commit@sha/x_1-2", "v"));
    ok("version:v1:2", field("version", "v1:2"));
    ok("k:-5", field("k", "-5"));
    ok("k:AND", field("k", "AND"));
    ok("AND:x", field("AND", "x"));
    ok("NOT:x", field("NOT", "x"));
    ok("k:a]b}", field("k", "a]b}"));
    ok("k:é", field("k", "é"));
}

#[test]
fn quoted_values_are_literal() {
    ok("k:\"a*b\"", field("k", "a*b"));
    ok("k:\"a b\"", field("k", "a b"));
    ok("k:\"\"", field("k", ""));
    ok("k:\"*\"", field("k", "*"));
    ok(r#"k:"say \"hi\" \\ \x""#, field("k", r#"say "hi" \ x"#));
    ok("k:\"(a OR b)\"", field("k", "(a OR b)"));
}

#[test]
fn escapes() {
    ok(r"k:a\:b", field("k", "a:b"));
    ok(r"k:a\ b", field("k", "a b"));
    ok(r"k:a\*", field("k", "a*"));
    ok(r"k:a\?", field("k", "a?"));
    ok(r"k:\(x\)", field("k", "(x)"));
    ok(r#"k:a\"b"#, field("k", "a\"b"));
    ok(r"k:a\\", field("k", "a\\"));
    ok(r"k:\*", field("k", "*"));
    ok(r"a\:b", text("a:b"));
    ok(r"\-a", text("-a"));
    ok(r"\AND", text("AND"));
}

#[test]
fn wildcards() {
    use GlobPart::{AnyChar, AnyRun};
    ok("k:api*", glob("k", vec![lit("api"), AnyRun]));
    ok("k:a?c", glob("k", vec![lit("a"), AnyChar, lit("c")]));
    ok("k:*a*", glob("k", vec![AnyRun, lit("a"), AnyRun]));
    ok("k:**", glob("k", vec![AnyRun, AnyRun]));
    ok(r"k:a\*b*", glob("k", vec![lit("a*b"), AnyRun]));
    ok(
        "err*r",
        Query::Term(Term::Text(Pattern::Wildcard(vec![
            lit("err"),
            AnyRun,
            lit("r"),
        ]))),
    );
}

#[test]
fn exists_and_missing() {
    ok("k:*", exists("k"));
    ok("-k:*", not(exists("k")));
    ok("NOT k:*", not(exists("k")));
}

#[test]
fn free_text() {
    ok("hello", text("hello"));
    ok("hello world", and(vec![text("hello"), text("world")]));
    ok("\"hello world\"", text("hello world"));
    ok("\"\"", text(""));
    ok(
        "and or not",
        and(vec![text("and"), text("or"), text("not")]),
    );
    ok("a-b", text("a-b"));
    ok("TO", text("TO"));
    ok("[a", text("[a"));
    ok(">5", text(">5"));
}

#[test]
fn boolean_operators_and_precedence() {
    let (a, b, c) = (text("a"), text("b"), text("c"));
    ok("a b", and(vec![a.clone(), b.clone()]));
    ok("a AND b", and(vec![a.clone(), b.clone()]));
    ok("a AND b c", and(vec![a.clone(), b.clone(), c.clone()]));
    ok("a OR b", or(vec![a.clone(), b.clone()]));
    ok("a OR b OR c", or(vec![a.clone(), b.clone(), c.clone()]));
    // AND binds tighter than OR, whether explicit or implicit.
    ok(
        "a OR b c",
        or(vec![a.clone(), and(vec![b.clone(), c.clone()])]),
    );
    ok(
        "a b OR c",
        or(vec![and(vec![a.clone(), b.clone()]), c.clone()]),
    );
    ok(
        "a AND b OR c",
        or(vec![and(vec![a.clone(), b.clone()]), c.clone()]),
    );
    // NOT binds tighter than AND.
    ok("NOT a b", and(vec![not(a.clone()), b.clone()]));
    ok("-a b", and(vec![not(a.clone()), b.clone()]));
    ok("NOT a OR b", or(vec![not(a.clone()), b.clone()]));
    ok("NOT NOT a", not(not(a.clone())));
    ok("--a", not(not(a.clone())));
    ok("-NOT a", not(not(a.clone())));
    ok("NOT(a)", not(a.clone()));
    ok("a AND(b)", and(vec![a.clone(), b.clone()]));
}

#[test]
fn grouping() {
    let (a, b, c) = (text("a"), text("b"), text("c"));
    ok("(a)", a.clone());
    ok("((a))", a.clone());
    ok(
        "( a OR b ) c",
        and(vec![or(vec![a.clone(), b.clone()]), c.clone()]),
    );
    ok(
        "(a OR b)c",
        and(vec![or(vec![a.clone(), b.clone()]), c.clone()]),
    );
    ok("-(a OR b)", not(or(vec![a.clone(), b.clone()])));
    ok("NOT (a b)", not(and(vec![a.clone(), b.clone()])));
    // Explicit parentheses keep their own node: the tree mirrors the text.
    ok(
        "a (b c)",
        and(vec![a.clone(), and(vec![b.clone(), c.clone()])]),
    );
}

#[test]
fn value_groups_expand_over_the_key() {
    ok("k:(a)", field("k", "a"));
    ok("k:(a OR b)", or(vec![field("k", "a"), field("k", "b")]));
    ok(
        "k:(a OR b AND c)",
        or(vec![
            field("k", "a"),
            and(vec![field("k", "b"), field("k", "c")]),
        ]),
    );
    ok("k:(a b)", and(vec![field("k", "a"), field("k", "b")]));
    ok("k:(-a)", not(field("k", "a")));
    ok("k:(NOT a)", not(field("k", "a")));
    ok(
        "k:((a OR b) -c)",
        and(vec![
            or(vec![field("k", "a"), field("k", "b")]),
            not(field("k", "c")),
        ]),
    );
    ok(
        "k:(\"x y\" OR z* OR * OR >5 OR [1 TO 2])",
        or(vec![
            field("k", "x y"),
            glob("k", vec![lit("z"), GlobPart::AnyRun]),
            exists("k"),
            range("k", exc("5"), Bound::Unbounded),
            range("k", inc("1"), inc("2")),
        ]),
    );
    // Inside a value group `:` is part of the value, not a new key.
    ok("k:(a:b)", field("k", "a:b"));
    ok(
        "service:(shopist OR api-service) env:production",
        and(vec![
            or(vec![
                field("service", "shopist"),
                field("service", "api-service"),
            ]),
            field("env", "production"),
        ]),
    );
}

#[test]
fn ranges() {
    ok("k:[1 TO 5]", range("k", inc("1"), inc("5")));
    ok("k:{1 TO 5}", range("k", exc("1"), exc("5")));
    ok("k:[1 TO 5}", range("k", inc("1"), exc("5")));
    ok("k:{1 TO 5]", range("k", exc("1"), inc("5")));
    ok("k:[  a   TO   b  ]", range("k", inc("a"), inc("b")));
    ok("k:[* TO 5]", range("k", Bound::Unbounded, inc("5")));
    ok("k:{* TO *}", range("k", Bound::Unbounded, Bound::Unbounded));
    ok("k:[\"*\" TO \"TO\"]", range("k", inc("*"), inc("TO")));
    ok(r"k:[\* TO a\]]", range("k", inc("*"), inc("a]")));
    ok("k:[a* TO b?]", range("k", inc("a*"), inc("b?")));
    ok("k:[-1.5 TO 1e3]", range("k", inc("-1.5"), inc("1e3")));
    ok("(k:[1 TO 2])", range("k", inc("1"), inc("2")));
    ok(">5", text(">5"));
}

#[test]
fn comparisons() {
    ok("k:>5", range("k", exc("5"), Bound::Unbounded));
    ok("k:>=5", range("k", inc("5"), Bound::Unbounded));
    ok("k:<5", range("k", Bound::Unbounded, exc("5")));
    ok("k:<=5", range("k", Bound::Unbounded, inc("5")));
    ok("k:>\"a b\"", range("k", exc("a b"), Bound::Unbounded));
    ok("k:>a*", range("k", exc("a*"), Bound::Unbounded));
    ok("k:>==1", range("k", inc("=1"), Bound::Unbounded));
    ok("k:<a]", range("k", Bound::Unbounded, exc("a]")));
}

#[test]
fn datadog_example() {
    let q = parse(
        "service:(shopist OR api-service) env:(production OR staging) team:backend \
         -version:beta language:java \"free text\"",
    )
    .unwrap();
    let attrs = [
        ("service", "api-service"),
        ("env", "staging"),
        ("team", "backend"),
        ("version", "1.2"),
        ("language", "java"),
        ("name", "Some FREE TEXT here"),
    ];
    assert!(q.matches(&attrs));
    let mut beta = attrs.to_vec();
    beta.push(("version", "beta"));
    assert!(!q.matches(&beta));
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn unbalanced_parentheses() {
    err(
        "(a",
        2,
        "expected ')' to close the group opened at offset 0, found end of query",
    );
    err(
        "service:(a OR b",
        15,
        "expected ')' to close the group opened at offset 8, found end of query",
    );
    err(
        "a)",
        1,
        "found ')' with no matching '(', expected end of query",
    );
    err(
        "(a))",
        3,
        "found ')' with no matching '(', expected end of query",
    );
    err(")", 0, "expected a term, found ')'");
    err(
        "()",
        1,
        "expected a term inside the group opened at offset 0, found ')'",
    );
    err(
        "( ",
        2,
        "expected a term inside the group opened at offset 0, found end of query",
    );
    err(
        "k:()",
        3,
        "expected a value inside the group opened at offset 2, found ')'",
    );
    err(
        "k:( )",
        4,
        "expected a value inside the group opened at offset 2, found ')'",
    );
    err(
        "k:(a",
        4,
        "expected ')' to close the group opened at offset 2, found end of query",
    );
}

#[test]
fn unbalanced_quotes() {
    err(
        "\"abc",
        4,
        "expected '\"' to close the quote opened at offset 0, found end of query",
    );
    err(
        "k:\"abc",
        6,
        "expected '\"' to close the quote opened at offset 2, found end of query",
    );
    err(
        "a\"b",
        1,
        "found '\"' inside a word, expected whitespace before it or '\\\"' to search for it",
    );
    err(
        "\"a\"b",
        3,
        "expected whitespace, ')' or end of query after the closing '\"', found 'b'",
    );
    err(
        "k:\"a\"b",
        5,
        "expected whitespace, ')' or end of query after the closing '\"', found 'b'",
    );
    err(
        "k:a(b)",
        3,
        "found '(' inside a word, expected whitespace before it or '\\(' to search for it",
    );
}

#[test]
fn dangling_operators() {
    err(
        "a AND",
        5,
        "expected a term after 'AND', found end of query",
    );
    err(
        "a AND ",
        6,
        "expected a term after 'AND', found end of query",
    );
    err("OR b", 0, "expected a term, found 'OR'");
    err("AND b", 0, "expected a term, found 'AND'");
    err("a OR", 4, "expected a term after 'OR', found end of query");
    err("a OR OR b", 5, "expected a term after 'OR', found 'OR'");
    err("a AND OR b", 6, "expected a term after 'AND', found 'OR'");
    err("a OR AND b", 5, "expected a term after 'OR', found 'AND'");
    err("NOT", 3, "expected a term after 'NOT', found end of query");
    err(
        "a NOT",
        5,
        "expected a term after 'NOT', found end of query",
    );
    err("NOT OR", 4, "expected a term after 'NOT', found 'OR'");
    err("(a OR)", 5, "expected a term after 'OR', found ')'");
    err(
        "-",
        1,
        "expected a term right after '-', found end of query",
    );
    err(
        "- a",
        1,
        "expected a term right after '-', found whitespace",
    );
    err("a -)", 3, "expected a term right after '-', found ')'");
    err("-AND a", 1, "expected a term after '-', found 'AND'");
    err("k:(a OR)", 7, "expected a value after 'OR', found ')'");
    err(
        "k:(OR a)",
        3,
        "expected a value inside the group opened at offset 2, found 'OR'",
    );
    err(
        "k:(- a)",
        4,
        "expected a value right after '-', found whitespace",
    );
}

#[test]
fn missing_values_and_keys() {
    err("k:", 2, "expected a value after 'k:', found end of query");
    err("k: v", 2, "expected a value after 'k:', found whitespace");
    err("(k:)", 3, "expected a value after 'k:', found ')'");
    err(
        ":v",
        0,
        "expected a field name before ':', found ':' (escape it as '\\:' to search for a colon)",
    );
    err(
        "a b:c:d e!f:g",
        9,
        "found '!' in the field name before the ':' at offset 11, expected only letters, digits, \
         '_', '.', '@', '/' or '-' (escape the ':' as '\\:' to search for it as text)",
    );
    err(
        "a*:x",
        1,
        "found '*' in the field name before the ':' at offset 2, expected only letters, digits, \
         '_', '.', '@', '/' or '-' (escape the ':' as '\\:' to search for it as text)",
    );
    err(
        r"a\ b:x",
        1,
        "found '\\' in the field name before the ':' at offset 4, expected only letters, digits, \
         '_', '.', '@', '/' or '-' (escape the ':' as '\\:' to search for it as text)",
    );
}

#[test]
fn bad_ranges() {
    err(
        "k:[a b]",
        5,
        "expected 'TO' after the lower bound of the range opened at offset 2, found 'b'",
    );
    err(
        "k:[a]",
        4,
        "expected 'TO' after the lower bound of the range opened at offset 2, found ']'",
    );
    err(
        "k:[aTO b]",
        7,
        "expected 'TO' after the lower bound of the range opened at offset 2, found 'b'",
    );
    err(
        "k:[a TO]",
        7,
        "expected an upper bound after 'TO', found ']'",
    );
    err(
        "k:[a TO ]",
        8,
        "expected an upper bound after 'TO', found ']'",
    );
    err(
        "k:[a TO b",
        9,
        "expected ']' or '}' to close the range opened at offset 2, found end of query",
    );
    err(
        "k:[a TO b c]",
        10,
        "expected ']' or '}' to close the range opened at offset 2, found 'c'",
    );
    err(
        "k:[a TO b)",
        9,
        "expected ']' or '}' to close the range opened at offset 2, found ')'",
    );
    err("k:[]", 3, "expected a lower bound after '[', found ']'");
    err(
        "k:{",
        3,
        "expected a lower bound after '{', found end of query",
    );
    err(
        "k:[TO b]",
        3,
        "expected a lower bound after '[', found 'TO' (quote it to use it as a bound)",
    );
    err(
        "k:[a TO TO]",
        8,
        "expected an upper bound after 'TO', found 'TO' (quote it to use it as a bound)",
    );
    err(
        "k:[\"a\"b TO c]",
        6,
        "expected whitespace, ']' or '}' after the closing '\"', found 'b'",
    );
    err(
        "k:[a TO b]c",
        10,
        "expected whitespace, ')' or end of query after the range, found 'c'",
    );
    err("k:>", 3, "expected a value after '>', found end of query");
    err("k:>= 5", 4, "expected a value after '>=', found whitespace");
    err("(k:<)", 4, "expected a value after '<', found ')'");
    err(
        "k:<=*",
        4,
        "expected a value after '<=', found '*' (an open bound is written [* TO x])",
    );
    err(
        "k:>\"5\"x",
        6,
        "expected whitespace, ')' or end of query after the closing '\"', found 'x'",
    );
}

#[test]
fn trailing_backslash() {
    err(
        "a\\",
        1,
        "expected a character to escape after '\\', found end of query",
    );
    err(
        "k:a\\",
        3,
        "expected a character to escape after '\\', found end of query",
    );
    err(
        "\"a\\",
        2,
        "expected a character to escape after '\\', found end of query",
    );
    err(
        "k:[a TO b\\",
        9,
        "expected a character to escape after '\\', found end of query",
    );
}

#[test]
fn offsets_count_characters_not_bytes() {
    err(
        "é ü (",
        5,
        "expected a term inside the group opened at offset 4, found end of query",
    );
    err(
        "k:\"日本",
        5,
        "expected '\"' to close the quote opened at offset 2, found end of query",
    );
}

#[test]
fn nesting_is_bounded() {
    let depth = MAX_DEPTH;
    let ok_input = format!("{}a{}", "(".repeat(depth - 1), ")".repeat(depth - 1));
    assert_eq!(parse(&ok_input), Ok(text("a")));
    let message =
        format!("found more than {depth} nested groups or negations, expected a flatter query");
    err(&format!("{}a", "(".repeat(depth)), depth, &message);
    err(&format!("{}a", "-".repeat(depth)), depth, &message);
    err(&format!("{}a", "NOT ".repeat(depth)), 4 * depth, &message);
    // Far deeper input fails the same way instead of overflowing the stack.
    let e = parse(&"(".repeat(1_000_000)).unwrap_err();
    assert_eq!(e.offset, depth);
}

#[test]
fn terms_are_bounded() {
    let ok = vec!["a:b"; MAX_TERMS].join(" ");
    assert!(parse(&ok).is_ok());
    let message = format!("found more than {MAX_TERMS} terms, the most one query may have");
    // The term past the limit is where the error points.
    err(&format!("{ok} c"), 4 * MAX_TERMS, &message);
    // Values of a value group count.
    let group = format!("k:({})", vec!["v"; MAX_TERMS + 1].join(" OR "));
    assert_eq!(parse(&group).unwrap_err().message, message);
    let fine = format!("k:({})", vec!["v"; MAX_TERMS].join(" OR "));
    assert!(parse(&fine).is_ok());
}

#[test]
fn error_display() {
    let e = parse("a AND").unwrap_err();
    assert_eq!(
        e.to_string(),
        "query syntax error at offset 5: expected a term after 'AND', found end of query"
    );
    let e = parse("a\u{1}:x").unwrap_err();
    assert!(
        e.message.starts_with("found '\\u{1}' in the field name"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn matches(query: &str, attrs: &[(&str, &str)]) -> bool {
    parse(query).unwrap().matches(attrs)
}

#[test]
fn field_matching_is_exact_and_case_sensitive() {
    let attrs = [("service", "API"), ("env", "prod")];
    assert!(matches("service:API", &attrs));
    assert!(!matches("service:api", &attrs));
    assert!(!matches("service:AP", &attrs));
    assert!(!matches("env:API", &attrs));
    assert!(matches("service:A*", &attrs));
    assert!(matches("service:A?I", &attrs));
    assert!(!matches("service:a*", &attrs));
    assert!(matches("service:*", &attrs));
    assert!(!matches("team:*", &attrs));
    assert!(matches("-team:*", &attrs));
}

#[test]
fn multi_valued_keys() {
    // A failure has one `service` pair per affected service.
    let attrs = [("service", "a"), ("service", "b")];
    assert!(matches("service:a", &attrs));
    assert!(matches("service:b", &attrs));
    assert!(matches("service:a service:b", &attrs));
    assert!(!matches("-service:a", &attrs));
    assert!(matches("-service:c", &attrs));
}

#[test]
fn free_text_matching() {
    let attrs = [("name", "Deploy of Checkout"), ("env", "prod")];
    assert!(matches("checkout", &attrs));
    assert!(matches("CHECKOUT", &attrs));
    assert!(matches("\"of check\"", &attrs));
    assert!(matches("prod", &attrs));
    assert!(matches("dep*out", &attrs));
    assert!(matches("d?ploy", &attrs));
    assert!(!matches("name", &attrs), "keys are not searched");
    assert!(!matches("missing", &attrs));
    assert!(matches("\"\"", &attrs));
    assert!(!matches("\"\"", &[]));
}

#[test]
fn wildcards_in_quotes_are_literal() {
    assert!(!matches("k:\"a*\"", &[("k", "abc")]));
    assert!(matches("k:\"a*\"", &[("k", "a*")]));
    assert!(matches("k:a\\*", &[("k", "a*")]));
    assert!(!matches("k:a\\*", &[("k", "ab")]));
}

#[test]
fn range_matching() {
    let attrs = [("dur", "10"), ("v", "beta")];
    assert!(matches("dur:[2 TO 10]", &attrs));
    assert!(!matches("dur:[2 TO 10}", &attrs));
    assert!(matches("dur:>9.5", &attrs));
    assert!(matches("dur:>=10", &attrs));
    assert!(!matches("dur:>10", &attrs));
    assert!(matches("dur:<1e2", &attrs));
    assert!(matches("dur:[* TO *]", &attrs));
    assert!(
        !matches("v:[* TO *]", &attrs),
        "open range on both sides is numeric"
    );
    assert!(
        !matches("v:>1", &attrs),
        "non-numeric values never match a numeric range"
    );
    // A non-numeric bound makes the comparison textual, byte-wise.
    assert!(matches("v:[alpha TO gamma]", &attrs));
    assert!(!matches("v:[Alpha TO Gamma]", &attrs));
    assert!(
        matches("dur:[1 TO a]", &attrs),
        "\"10\" sorts between \"1\" and \"a\""
    );
    assert!(
        !matches("dur:[2 TO a]", &attrs),
        "\"10\" sorts before \"2\""
    );
    assert!(!matches("nope:>0", &attrs));
}

#[test]
fn negation_is_the_complement() {
    let attrs = [("a", "1")];
    for q in ["a:1", "a:2", "b:*", "x", "a:>0"] {
        let neg = format!("-{q}");
        assert_eq!(matches(q, &attrs), !matches(&neg, &attrs), "{q}");
        assert_eq!(matches(q, &[]), !matches(&neg, &[]), "{q}");
    }
}

#[test]
fn numeric_values() {
    assert_eq!(numeric_value("10"), Some(10.0));
    assert_eq!(numeric_value("-1.5e3"), Some(-1500.0));
    assert_eq!(numeric_value(".5"), Some(0.5));
    assert_eq!(numeric_value("+2"), Some(2.0));
    assert_eq!(numeric_value("inf"), None);
    assert_eq!(numeric_value("NaN"), None);
    assert_eq!(numeric_value("1e999"), None);
    assert_eq!(numeric_value(" 1"), None);
    assert_eq!(numeric_value("1.2.3"), None);
    assert_eq!(numeric_value(""), None);
}
