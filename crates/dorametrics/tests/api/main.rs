//! HTTP integration tests: each starts the real server on port 0 over a real store and talks
//! HTTP to it.

mod helpers;

mod auth;
mod datadog_events;
mod datadog_list;
mod datadog_patch;
mod datadog_validation;
