//! `GET /metrics`, in the Prometheus text format: the DORA keys of every service, env and team
//! over a trailing window (the numbers `/api/v1/metrics` gives for that range), and the server's
//! own figures — requests by route and status, their latency, write batches and queue, how far
//! derivation lags, store failures.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Days;
use dora_core::metrics::{self, Bucket, Distribution, Values};
use dora_core::model::Scope;
use dora_core::query::Query;
use dora_core::tier::Tier;
use dora_store::BATCH_SIZE_BOUNDS;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::auth::Caller;
use crate::derivation::{self, Selection};
use crate::error::ApiError;
use crate::report::{self, Breakdown};
use crate::AppState;

/// The label value of the group of deployments that have no team (or env).
pub const UNSET: &str = "(unset)";

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route's template (`/api/v2/dora/deployments/{id}`), or `unmatched`.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutageLabels {
    /// [`dora_store::Outage::as_str`], or `unexpected`.
    outage: String,
}

/// One series of a DORA key: a service, env or team (one label set, the others empty, which
/// Prometheus reads as absent), or the whole (all empty).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    service: String,
    env: String,
    team: String,
}

/// A series of a duration: its group and quantile (`0.5`, `0.75`, `0.9`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabels {
    #[prometheus(flatten)]
    group: KeyLabels,
    quantile: String,
}

/// The server's own counters, kept as requests are answered. One per server.
#[derive(Debug)]
pub struct Telemetry {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    store_errors: Family<OutageLabels, Counter>,
    /// The trailing window of the DORA keys.
    pub window_days: u32,
}

impl Telemetry {
    pub fn new(window_days: u32) -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BOUNDS)),
            store_errors: Family::default(),
            window_days: window_days.max(1),
        }
    }

    /// Counts an answer by route and status, its latency, and its store failure if any.
    pub fn observe(&self, method: &str, route: &str, response: &Response, took: Duration) {
        let status = response.status();
        let labels = RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        let route = RouteLabels {
            method: labels.method,
            route: labels.route,
        };
        self.latency
            .get_or_create(&route)
            .observe(took.as_secs_f64());
        if let Some(StoreFailure(outage)) = response.extensions().get::<StoreFailure>() {
            let outage = outage.map_or("unexpected", |o| o.as_str()).to_string();
            self.store_errors
                .get_or_create(&OutageLabels { outage })
                .inc();
        }
    }
}

/// Which store failure an answer reports, set on it by [`crate::error::store_failure`].
#[derive(Debug, Clone, Copy)]
pub struct StoreFailure(pub Option<dora_store::Outage>);

/// `GET /metrics` on the API listener: read scope.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text format: the DORA keys per service, env and team over the trailing window, and the server's own figures (read scope).",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        crate::openapi::ApiErrors))]
pub async fn scrape(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    exposition(&state).await
}

/// `GET /metrics` on `--metrics-listen`: no token (that address is for the scraper alone).
pub async fn scrape_open(State(state): State<AppState>) -> Result<Response, ApiError> {
    exposition(&state).await
}

async fn exposition(state: &AppState) -> Result<Response, ApiError> {
    let mut registry = Registry::default();
    let telemetry = &state.telemetry;
    registry.register(
        "dora_http_requests",
        "HTTP requests answered, by method, route and status",
        telemetry.requests.clone(),
    );
    registry.register(
        "dora_http_request_duration_seconds",
        "Time to answer an HTTP request, by method and route",
        telemetry.latency.clone(),
    );
    registry.register(
        "dora_store_errors",
        "Requests the store failed, by outage",
        telemetry.store_errors.clone(),
    );
    let stats = state.store.write_stats();
    let queued = Gauge::<i64>::default();
    queued.set(i64::try_from(stats.queued).unwrap_or(i64::MAX));
    registry.register(
        "dora_store_write_queue_depth",
        "Writes waiting to be applied (SQLite: for the writer; PostgreSQL: for a connection)",
        queued,
    );
    registry.register_collector(Box::new(BatchSizes(stats)));
    let stale = Gauge::<i64>::default();
    let dirty = state.store.dirty_streams().await?;
    stale.set(i64::try_from(dirty.len()).unwrap_or(i64::MAX));
    registry.register(
        "dora_derivation_stale_streams",
        "Streams (service and env) whose derived facts wait for re-derivation",
        stale,
    );
    register_keys(&mut registry, state).await?;

    let mut body = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut body, &registry).map_err(|_| {
        ApiError::Store(dora_store::StoreError::Database(
            "encoding /metrics failed".into(),
        ))
    })?;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    Ok(response)
}

/// The write-batch histogram, from the store's counts.
#[derive(Debug)]
struct BatchSizes(dora_store::WriteStats);

impl prometheus_client::collector::Collector for BatchSizes {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BATCH_SIZE_BOUNDS.len() + 1);
        for (i, count) in self.0.batch_sizes.iter().enumerate() {
            cumulative += count;
            let bound = BATCH_SIZE_BOUNDS
                .get(i)
                .map_or(f64::INFINITY, |b| *b as f64);
            buckets.push((bound, cumulative));
        }
        let metric = encoder.encode_descriptor(
            "dora_store_write_batch_size",
            "Writes committed together, one observation per commit",
            None,
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        let mut metric = metric;
        metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.0.batched_writes as f64,
            cumulative,
            &buckets,
            None,
        )
    }
}

/// The DORA keys over the trailing window: of everything, and of each service, env and team
/// (production tier, as `/api/v1/metrics` defaults to).
async fn register_keys(registry: &mut Registry, state: &AppState) -> Result<(), ApiError> {
    let today = chrono::Utc::now().date_naive();
    let first = today
        .checked_sub_days(Days::new(u64::from(state.telemetry.window_days) - 1))
        .unwrap_or(today);
    let range = Bucket {
        start: first,
        end: today.checked_add_days(Days::new(1)).unwrap_or(today),
    };
    let (from, to) = (
        metrics::day_nanos(range.start),
        metrics::day_nanos(range.end),
    );
    let selection = Selection {
        filter: Query::All,
        tiers: vec![Tier::Production],
        project: None,
        group: None,
    };
    let (store, window) = (state.store.as_ref(), state.failure_window);
    let deployments =
        derivation::deployment_facts(store, &selection, from, to, window, &state.refresher).await?;
    let failures = derivation::failures(store, &selection, from, to).await?;
    let keys = Keys::default();
    let whole = metrics::values(&range, &deployments, &failures);
    keys.add(&KeyLabels::whole(), &whole);
    for by in [Breakdown::Service, Breakdown::Env, Breakdown::Team] {
        let groups = report::grouped(
            store,
            &selection,
            by,
            &deployments,
            &range,
            window,
            &state.refresher,
        )
        .await
        .map_err(|error| match error {
            report::ReportError::Store(error) => ApiError::Store(error),
            other => ApiError::NotFound(other.to_string()),
        })?;
        for (key, values) in groups {
            // Deployments without a team (or env) are a group of their own, never the whole.
            let key = key.unwrap_or_else(|| UNSET.to_string());
            keys.add(&KeyLabels::of(by, key), &values);
        }
    }
    keys.register(registry, state.telemetry.window_days);
    Ok(())
}

impl KeyLabels {
    fn whole() -> Self {
        Self {
            service: String::new(),
            env: String::new(),
            team: String::new(),
        }
    }

    fn of(by: Breakdown, key: String) -> Self {
        let mut labels = Self::whole();
        match by {
            Breakdown::Service => labels.service = key,
            Breakdown::Env => labels.env = key,
            Breakdown::Team => labels.team = key,
            Breakdown::Project => {}
        }
        labels
    }

    fn at(&self, quantile: &str) -> QuantileLabels {
        QuantileLabels {
            group: self.clone(),
            quantile: quantile.to_string(),
        }
    }
}

type KeyFamily = Family<KeyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;
type QuantileFamily = Family<QuantileLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;

/// The gauges of the DORA keys, filled group by group.
#[derive(Default)]
struct Keys {
    deployments: KeyFamily,
    per_day: KeyFamily,
    failed: KeyFamily,
    change_failure_rate: KeyFamily,
    rework_rate: KeyFamily,
    lead_time: QuantileFamily,
    recovery_time: QuantileFamily,
    time_to_restore: QuantileFamily,
}

impl Keys {
    fn add(&self, labels: &KeyLabels, values: &Values) {
        let set = |family: &KeyFamily, labels: &KeyLabels, value: f64| {
            family.get_or_create(labels).set(value);
        };
        set(&self.deployments, labels, values.deployments as f64);
        set(&self.per_day, labels, values.deployments_per_day);
        set(&self.failed, labels, values.failed_deployments as f64);
        if let Some(rate) = values.change_failure_rate {
            set(&self.change_failure_rate, labels, rate);
        }
        if let Some(rate) = values.rework_rate {
            set(&self.rework_rate, labels, rate);
        }
        let quantiles = |family: &QuantileFamily, d: &Distribution| {
            for (quantile, value) in [("0.5", d.median), ("0.75", d.p75), ("0.9", d.p90)] {
                if let Some(value) = value {
                    family.get_or_create(&labels.at(quantile)).set(value);
                }
            }
        };
        quantiles(&self.lead_time, &values.lead_time);
        quantiles(&self.recovery_time, &values.recovery_time);
        quantiles(&self.time_to_restore, &values.time_to_restore);
    }

    fn register(self, registry: &mut Registry, days: u32) {
        let window = format!("over the last {days} days, production tier");
        let help = |text: &str| format!("{text} {window}");
        registry.register("dora_deployments", help("Deployments"), self.deployments);
        registry.register(
            "dora_deployment_frequency_per_day",
            help("Deployments per day"),
            self.per_day,
        );
        registry.register(
            "dora_failed_deployments",
            help("Deployments that failed"),
            self.failed,
        );
        registry.register(
            "dora_change_failure_rate",
            help("Failed deployments / deployments"),
            self.change_failure_rate,
        );
        registry.register(
            "dora_rework_rate",
            help("Rework deployments / deployments"),
            self.rework_rate,
        );
        registry.register(
            "dora_lead_time_seconds",
            help("Lead time for changes (commit to deployment), by quantile,"),
            self.lead_time,
        );
        registry.register(
            "dora_failed_deployment_recovery_time_seconds",
            help("Failed deployment recovery time, by quantile,"),
            self.recovery_time,
        );
        registry.register(
            "dora_time_to_restore_seconds",
            help("Time to restore service (failure durations), by quantile,"),
            self.time_to_restore,
        );
    }
}
