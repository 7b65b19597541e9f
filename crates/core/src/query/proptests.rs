//! Property tests: the parser never panics, rendering and re-parsing is the identity, value
//! groups expand correctly, and the boolean operators have their set-theoretic meaning.

use proptest::prelude::*;

use super::render::{render, render_group, Style};
use super::*;

const STYLES: [Style; 3] = [
    Style {
        and_sep: " ",
        not_prefix: "-",
        comparisons: true,
    },
    Style {
        and_sep: " AND ",
        not_prefix: "NOT ",
        comparisons: false,
    },
    Style {
        and_sep: "  \t AND\n",
        not_prefix: "NOT\t",
        comparisons: true,
    },
];

/// Keys as the parser accepts them (never starting with `-`, which would be a negation).
fn arb_key() -> BoxedStrategy<String> {
    "[A-Za-z0-9_.@/][A-Za-z0-9_.@/-]{0,4}".boxed()
}

/// Any string, including quotes, backslashes, whitespace, keywords and non-ASCII.
fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        "(?s).{0,6}",
        "[-ab:*?()\\[\\]{}<>=\"\\\\ ]{0,5}",
        Just("AND".to_string()),
        Just("OR".to_string()),
        Just("NOT".to_string()),
        Just("TO".to_string()),
        Just("*".to_string()),
    ]
    .boxed()
}

/// A pattern in the parser's normal form: literals merged and non-empty, and a wildcard only if
/// it has at least one `*` or `?`.
fn arb_pattern(strings: BoxedStrategy<String>) -> BoxedStrategy<Pattern> {
    let part = prop_oneof![
        strings.clone().prop_map(GlobPart::Literal),
        Just(GlobPart::AnyRun),
        Just(GlobPart::AnyChar),
    ];
    prop_oneof![
        strings.prop_map(Pattern::Exact),
        prop::collection::vec(part, 1..5).prop_map(normalize_glob),
    ]
    .boxed()
}

fn normalize_glob(parts: Vec<GlobPart>) -> Pattern {
    let mut out: Vec<GlobPart> = Vec::new();
    for part in parts {
        match (part, out.last_mut()) {
            (GlobPart::Literal(s), _) if s.is_empty() => {}
            (GlobPart::Literal(s), Some(GlobPart::Literal(prev))) => prev.push_str(&s),
            (part, _) => out.push(part),
        }
    }
    match out.as_slice() {
        [] => Pattern::Exact(String::new()),
        [GlobPart::Literal(s)] => Pattern::Exact(s.clone()),
        _ => Pattern::Wildcard(out),
    }
}

fn arb_bound(strings: BoxedStrategy<String>) -> BoxedStrategy<Bound> {
    prop_oneof![
        Just(Bound::Unbounded),
        strings.clone().prop_map(Bound::Inclusive),
        strings.prop_map(Bound::Exclusive),
    ]
    .boxed()
}

/// Terms on keys from `keys`; `with_text` includes free text (not allowed in value groups).
fn arb_term(
    keys: BoxedStrategy<String>,
    strings: BoxedStrategy<String>,
    with_text: bool,
) -> BoxedStrategy<Term> {
    let field = (keys.clone(), arb_pattern(strings.clone())).prop_map(|(key, value)| {
        // `key:*` means "exists"; the equivalent glob `**` keeps it a Field.
        let value = match value {
            Pattern::Wildcard(parts) if parts == [GlobPart::AnyRun] => {
                Pattern::Wildcard(vec![GlobPart::AnyRun, GlobPart::AnyRun])
            }
            other => other,
        };
        Term::Field { key, value }
    });
    let exists = keys.clone().prop_map(|key| Term::Exists { key });
    let range = (keys, arb_bound(strings.clone()), arb_bound(strings.clone()))
        .prop_map(|(key, lower, upper)| Term::Range { key, lower, upper });
    if with_text {
        let text = arb_pattern(strings).prop_map(Term::Text);
        prop_oneof![field, exists, range, text].boxed()
    } else {
        prop_oneof![field, exists, range].boxed()
    }
}

/// Queries in the parser's normal form (no `All`, AND/OR with at least two operands).
fn arb_query_from(term: BoxedStrategy<Term>) -> BoxedStrategy<Query> {
    term.prop_map(Query::Term)
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Query::Or),
                inner.prop_map(|q| Query::Not(Box::new(q))),
            ]
        })
        .boxed()
}

fn arb_query() -> BoxedStrategy<Query> {
    arb_query_from(arb_term(arb_key(), arb_string(), true))
}

/// A small domain so that random queries and random events actually match each other.
fn small_keys() -> BoxedStrategy<String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("c".to_string())
    ]
    .boxed()
}

fn small_strings() -> BoxedStrategy<String> {
    prop_oneof![
        "[aAb1-3.]{0,3}",
        Just("-1".to_string()),
        Just("2.5".to_string()),
        Just("10".to_string()),
    ]
    .boxed()
}

fn small_query() -> BoxedStrategy<Query> {
    arb_query_from(arb_term(small_keys(), small_strings(), true))
}

fn small_attrs() -> BoxedStrategy<Vec<(String, String)>> {
    prop::collection::vec((small_keys(), small_strings()), 0..5).boxed()
}

fn as_pairs(attrs: &[(String, String)]) -> Vec<(&str, &str)> {
    attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Concatenations of syntax fragments reach far more parser states than uniform strings.
fn syntax_soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "a", "k:", "k:v", "(", ")", "\"", "\\", "AND", "OR", "NOT", "-", "*", "?", "[", "]", "{",
        "}", "TO", ">", ">=", "<", "=", ":", " ", "  ", "é", "1", "x y",
    ]);
    prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_any_string(input in "(?s).{0,40}") {
        check_parse_result(&input)?;
    }

    #[test]
    fn parser_never_panics_on_syntax_soup(input in syntax_soup()) {
        check_parse_result(&input)?;
    }

    #[test]
    fn render_then_parse_is_identity(q in arb_query()) {
        for style in STYLES {
            let text = render(&q, style);
            prop_assert_eq!(parse(&text), Ok(q.clone()), "rendered as {:?}", text);
        }
    }

    #[test]
    fn value_groups_expand_over_their_key(
        q in arb_query_from(arb_term(Just("k".to_string()).boxed(), arb_string(), false)),
    ) {
        for style in STYLES {
            let text = format!("k:({})", render_group(&q, style));
            prop_assert_eq!(parse(&text), Ok(q.clone()), "rendered as {:?}", text);
        }
    }

    #[test]
    fn and_narrows(a in small_query(), b in small_query(), attrs in small_attrs()) {
        let attrs = as_pairs(&attrs);
        let both = parse(&format!("({a}) AND ({b})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if both.matches(&attrs) {
            prop_assert!(a.matches(&attrs) && b.matches(&attrs));
        }
        prop_assert_eq!(both.matches(&attrs), a.matches(&attrs) && b.matches(&attrs));
    }

    #[test]
    fn or_widens(a in small_query(), b in small_query(), attrs in small_attrs()) {
        let attrs = as_pairs(&attrs);
        let either = parse(&format!("({a}) OR ({b})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if a.matches(&attrs) || b.matches(&attrs) {
            prop_assert!(either.matches(&attrs));
        }
        prop_assert_eq!(either.matches(&attrs), a.matches(&attrs) || b.matches(&attrs));
    }

    #[test]
    fn negation_is_the_complement(a in small_query(), attrs in small_attrs()) {
        let attrs = as_pairs(&attrs);
        for negated in [format!("-({a})"), format!("NOT ({a})")] {
            let q = parse(&negated).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(q.matches(&attrs), !a.matches(&attrs), "{}", negated);
        }
    }

    #[test]
    fn negated_field_means_no_such_pair(
        key in small_keys(),
        value in small_strings(),
        attrs in small_attrs(),
    ) {
        let pairs = as_pairs(&attrs);
        let q = Query::Not(Box::new(Query::Term(Term::Field {
            key: key.clone(),
            value: Pattern::Exact(value.clone()),
        })));
        let has_pair = attrs.iter().any(|(k, v)| *k == key && *v == value);
        prop_assert_eq!(q.matches(&pairs), !has_pair);
    }
}

/// On success the query must render back to itself; on failure the offset must be inside the
/// input (or just past its end).
fn check_parse_result(input: &str) -> Result<(), TestCaseError> {
    match parse(input) {
        Ok(q) => {
            // Evaluation must not panic either.
            q.matches(&[("k", "v"), ("a", "1")]);
            if q != Query::All {
                let text = q.to_string();
                prop_assert_eq!(parse(&text), Ok(q), "re-rendered as {:?}", text);
            }
        }
        Err(e) => {
            prop_assert!(e.offset <= input.chars().count(), "{e} for {input:?}");
            prop_assert!(
                e.message.contains("expected") && e.message.contains("found"),
                "{e}"
            );
        }
    }
    Ok(())
}
