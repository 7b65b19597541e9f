//! HTTP integration tests: each starts the real server on port 0 over a real store and talks
//! HTTP to it. The suite is the conformance suite of the stores: every test runs once on SQLite
//! (`<module>::<test>::sqlite`) and once on PostgreSQL (`<module>::<test>::postgres`, on the
//! server `DORA_TEST_POSTGRES_URL` names, `postgres://postgres@127.0.0.1:5432/postgres` by
//! default, failing when it is unreachable unless `DORA_TEST_POSTGRES=skip`; each test gets a
//! fresh database there, dropped afterwards).

/// Makes each named `async fn` of the calling module a conformance test: a module of the same
/// name holding a `sqlite` and a `postgres` test that run it with `spawn_app()` on that store.
/// An `async fn` left out of the list is never run, and the dead-code lint says so.
macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::helpers::run(crate::helpers::Backend::Sqlite, super::$test()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::helpers::run(crate::helpers::Backend::Postgres, super::$test()).await;
            }
        }
    )+};
}

#[path = "../support/postgres.rs"]
#[allow(dead_code)]
mod pg;

mod helpers;

mod admin;
mod auth;
mod bulk_deployments;
mod commits;
mod datadog_events;
mod datadog_list;
mod datadog_patch;
mod datadog_validation;
mod differential;
mod facts;
mod gitlab;
mod hygiene;
mod metrics;
mod prometheus;
mod reference;
mod store;
mod webhooks_cdevents;
mod webhooks_github;
mod webhooks_gitlab;
mod webhooks_pagerduty;
