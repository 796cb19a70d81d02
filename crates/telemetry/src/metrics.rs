//! Metrics, the third pillar: exported over OTLP/HTTP to the traces' destination (Honeycomb takes them), every
//! `OTEL_METRIC_EXPORT_INTERVAL` by the SDK's periodic reader on a thread of its own, with the semantic conventions'
//! names:
//!
//! | metric | kind | attributes |
//! |---|---|---|
//! | `http.server.request.duration` (s) | histogram | `http.request.method`, `http.route`, `http.response.status_code`, `url.scheme` |
//! | `db.client.operation.duration` (s) | histogram | `db.system.name`, `db.operation.name` |
//! | `db.client.connection.count` | up-down counter, observed | `db.client.connection.state` (`used`, `idle`), `db.client.connection.pool.name` |
//!
//! The request histogram is fed by [`crate::signals::SignalsLayer`], the query histogram by sqlx's own query events
//! (by the layer that makes the database spans, see [`crate::db`]), the connection counts by the pool a binary names with
//! [`crate::Telemetry::observe_connection_pool`]. Recording is an in-memory aggregation: no request waits on export.
//! The histograms are recorded through instruments bound to each attribute set ([`BoundSeries`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::metrics::{BoundHistogram, Histogram, Meter, MeterProvider as _};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::config::MetricsConfig;
use crate::{SCOPE, TelemetryError};

/// The semantic conventions' advice for HTTP and database durations, in seconds.
const DURATION_BOUNDARIES: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The meter provider and the instruments the crate records into. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Meters {
    provider: SdkMeterProvider,
    meter: Meter,
    pub(crate) http_server_duration: Arc<BoundSeries<HttpSeries>>,
    query_duration: Arc<BoundSeries<StringValue>>,
}

/// What tells the series of `http.server.request.duration` apart: status code, method, route.
pub(crate) type HttpSeries = (u16, &'static str, Box<str>);

/// How many attribute sets a [`BoundSeries`] binds; measurements of any further set are recorded unbound.
const MAX_BOUND_SERIES: usize = 128;

/// A histogram recorded through instruments bound to each attribute set the first time it is seen (the SDK's
/// `experimental_metrics_bound_instruments`): a bound measurement skips hashing the attributes and comparing them
/// with every series', which was most of the SDK's work per measurement. The sets are few by construction (methods,
/// routes, status codes, SQL operations), so they are found by a scan of a short list, keyed by `K`.
pub(crate) struct BoundSeries<K> {
    histogram: Histogram<f64>,
    series: RwLock<Vec<(K, BoundHistogram<f64>)>>,
}

impl<K> BoundSeries<K> {
    fn new(histogram: Histogram<f64>) -> Self {
        Self { histogram, series: RwLock::default() }
    }

    /// Records `value` in the series whose key `is_key` recognizes; `new_series` gives its key and attributes, and
    /// is called only for a series not bound yet.
    pub(crate) fn record(
        &self,
        value: f64,
        is_key: impl Fn(&K) -> bool,
        new_series: impl FnOnce() -> (K, Vec<KeyValue>),
    ) {
        let find = |series: &[(K, BoundHistogram<f64>)]| {
            series.iter().find(|(key, _)| is_key(key)).map(|(_, bound)| bound.clone())
        };
        if let Some(bound) = self.series.read().ok().and_then(|series| find(&series)) {
            bound.record(value);
            return;
        }
        let (key, attributes) = new_series();
        let Ok(mut series) = self.series.write() else { return self.histogram.record(value, &attributes) };
        if let Some(bound) = find(&series) {
            bound.record(value);
        } else if series.len() < MAX_BOUND_SERIES {
            let bound = self.histogram.bind(&attributes);
            bound.record(value);
            series.push((key, bound));
        } else {
            self.histogram.record(value, &attributes);
        }
    }
}

/// A meter provider exporting to `config`'s destination every interval, from a thread of its own, for `resource`:
/// what [`Meters`] records into, and what a binary with counters of its own (the X-Ray daemon) observes them with.
/// Shut it down before exit so that the last interval is exported.
pub fn meter_provider(config: &MetricsConfig, resource: Resource) -> Result<SdkMeterProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.as_str())
        .with_headers(config.headers.iter().cloned().collect())
        .build()?;
    let reader = PeriodicReader::builder(exporter).with_interval(config.interval).build();
    Ok(SdkMeterProvider::builder().with_resource(resource).with_reader(reader).build())
}

impl Meters {
    pub(crate) fn new(config: &MetricsConfig, resource: Resource) -> Result<Self, TelemetryError> {
        let provider = meter_provider(config, resource)?;
        let meter = provider.meter(SCOPE);
        let http_server_duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(DURATION_BOUNDARIES.to_vec())
            .build();
        let query_duration = meter
            .f64_histogram("db.client.operation.duration")
            .with_unit("s")
            .with_description("Duration of database client operations.")
            .with_boundaries(DURATION_BOUNDARIES.to_vec())
            .build();
        Ok(Self {
            provider,
            meter,
            http_server_duration: Arc::new(BoundSeries::new(http_server_duration)),
            query_duration: Arc::new(BoundSeries::new(query_duration)),
        })
    }

    /// `db.client.operation.duration` by SQL operation, recorded by [`crate::db::QuerySpans`] from sqlx's query
    /// events.
    pub(crate) fn query_duration(&self) -> Arc<BoundSeries<StringValue>> {
        self.query_duration.clone()
    }

    /// Reports `connections()` (used, idle) of the pool `pool_name` at each export.
    pub(crate) fn observe_connection_pool(
        &self,
        pool_name: &str,
        connections: impl Fn() -> (u64, u64) + Send + Sync + 'static,
    ) {
        let pool_name: Arc<str> = pool_name.into();
        // The instrument lives as long as the provider, which keeps its callback.
        let _ = self
            .meter
            .i64_observable_up_down_counter("db.client.connection.count")
            .with_description(
                "The number of connections that are currently in the state described by the state attribute.",
            )
            .with_callback(move |observer| {
                let (used, idle) = connections();
                for (state, count) in [("used", used), ("idle", idle)] {
                    let attributes = [
                        KeyValue::new("db.client.connection.state", state),
                        KeyValue::new("db.client.connection.pool.name", pool_name.to_string()),
                    ];
                    observer.observe(i64::try_from(count).unwrap_or(i64::MAX), &attributes);
                }
            })
            .build();
    }

    pub(crate) fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.provider.force_flush()
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.provider.shutdown_with_timeout(timeout)
    }
}
