//! What dorametrics derives from the raw events: change sets and lead times, change failures
//! and remediation. Pure functions over one stream (one service to one env) at a time, so the
//! results never depend on the order events arrived in.

mod changes;
mod failures;
mod graph;
#[cfg(test)]
mod tests;

pub use changes::{appended_walks, change_sets, merged_at, ChangeSet, ShippedCommit, Walk};
pub use failures::{
    attribute_failure, concerns, stream_verdicts, Attribution, FailureRule, FailureScope, Named,
    RemediationLink, Verdict, DEFAULT_FAILURE_WINDOW,
};
pub use graph::{CommitGraph, Reached};
