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
//! (as the database spans are, see [`crate::db`]), the connection counts by the pool a binary names with
//! [`crate::Telemetry::observe_connection_pool`]. Recording is an in-memory aggregation: no request waits on export.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_semantic_conventions::attribute::{DB_OPERATION_NAME, DB_SYSTEM_NAME};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;

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
    pub(crate) http_server_duration: Histogram<f64>,
    query_duration: Histogram<f64>,
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
        Ok(Self { provider, meter, http_server_duration, query_duration })
    }

    /// The layer turning sqlx's query events into `db.client.operation.duration` measurements.
    pub(crate) fn query_durations(&self) -> QueryDurations {
        QueryDurations { histogram: self.query_duration.clone() }
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

/// Records each sqlx query's elapsed time; see the module doc.
pub(crate) struct QueryDurations {
    histogram: Histogram<f64>,
}

impl<S: Subscriber> Layer<S> for QueryDurations {
    fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
        let mut query = QueryTiming::default();
        event.record(&mut query);
        let Some(seconds) = query.elapsed_secs else { return };
        let attributes = [
            KeyValue::new(DB_SYSTEM_NAME, "postgresql"),
            KeyValue::new(DB_OPERATION_NAME, query.operation.unwrap_or_else(|| "".into())),
        ];
        self.histogram.record(seconds, &attributes);
    }
}

/// The fields of a `sqlx::query` event a measurement needs.
#[derive(Default)]
struct QueryTiming {
    /// `db.operation.name`, from the statement's summary.
    operation: Option<StringValue>,
    elapsed_secs: Option<f64>,
}

impl Visit for QueryTiming {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.operation = Some(crate::db::operation_name(value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}
