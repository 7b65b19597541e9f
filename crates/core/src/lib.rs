//! The pure core of dorametrics: domain types, validation of incoming events, repository-id
//! normalisation and the query language. Nothing here does I/O, so everything is unit-testable.
#![forbid(unsafe_code)]

pub mod derive;
pub mod levels;
pub mod metrics;
pub mod model;
pub mod project;
pub mod query;
pub mod repo;
pub mod rollup;
pub mod tier;
pub mod time;
pub mod webhook;
