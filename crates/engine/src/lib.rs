//! The engine of dorametrics, between the pure core and the surfaces that speak HTTP or a
//! terminal: it loads what the core's derivations need from a store and keeps the stored facts
//! and day tallies current (`derivation`, with the change sets of `changes`: from a stream's
//! head when it was only appended to), selects deployments and failures, knows the
//! projects and groups the deployments define, and builds the metrics report (`report`). No
//! HTTP and no SQL here: the server and the CLI call it, the store serves it.
#![forbid(unsafe_code)]

mod changes;
pub mod derivation;
pub mod report;
