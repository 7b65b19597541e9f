//! Fuzz the query parser: run with `cargo +nightly fuzz run query_parser` from the repository
//! root. Any UTF-8 input must either parse or give an error inside the input; a parsed query
//! must evaluate without panicking and render to text that parses back to the same tree.
#![no_main]

use dora_core::query::{parse, Query};
use libfuzzer_sys::fuzz_target;

/// A failure-like event: multi-valued `service`, numeric and textual values.
const ATTRS: &[(&str, &str)] = &[
    ("service", "api-service"),
    ("service", "shopist"),
    ("env", "production"),
    ("team", "backend"),
    ("version", "v1:2"),
    ("duration", "12.5"),
    ("name", "Checkout is DOWN *again*"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match parse(input) {
        Ok(query) => {
            let matched = query.matches(ATTRS);
            let negated = Query::Not(Box::new(query.clone()));
            assert_eq!(negated.matches(ATTRS), !matched);
            if query != Query::All {
                let text = query.to_string();
                assert_eq!(parse(&text), Ok(query), "re-rendered as {text:?}");
            }
        }
        Err(error) => {
            assert!(
                error.offset <= input.chars().count(),
                "{error} for {input:?}"
            );
        }
    }
});
