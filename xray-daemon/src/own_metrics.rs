//! The daemon's own counters as OTLP metrics, so that the agent is watched where the apps' metrics are: exported
//! with the OpenTelemetry SDK (through `cruddur-telemetry`'s meter provider) to the OTLP destination's metrics
//! endpoint, every `OTEL_METRIC_EXPORT_INTERVAL`, when the daemon has an OTLP destination.
//!
//! | metric | attributes | counts |
//! |---|---|---|
//! | `xray.daemon.segments` | `outcome`: `received`, `sent`, `spilled`, `rejected` | segments, as the official daemon's telemetry counts them (at rest `received = sent + spilled + rejected`) |
//! | `xray.daemon.otlp.spans.received` | - | spans taken on `POST /v1/traces` |
//! | `xray.daemon.otlp.exported` | `destination`: `xray`, `otlp`, `otlp_metrics`; `outcome`: `sent`, `refused`, `dropped` | what each OTLP destination did with what it was given (spans; data points for `otlp_metrics`) |
//! | `xray.daemon.buffer.usage` | - | bytes of segments waiting to be sent |
//!
//! Each is observed from [`Counters::snapshot`] at export time: counting costs the paths nothing more.

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::DaemonError;
use crate::counters::{Counters, DestinationSnapshot};

/// The `service.name` the metrics carry.
const SERVICE_NAME: &str = "xray-daemon";

/// The running export; dropping it exports the last interval and stops.
pub(crate) struct OwnMetrics(SdkMeterProvider);

impl OwnMetrics {
    pub(crate) fn start(config: &cruddur_telemetry::MetricsConfig, counters: &Counters) -> Result<Self, DaemonError> {
        let resource = Resource::builder().with_service_name(SERVICE_NAME).build();
        let provider = cruddur_telemetry::meter_provider(config, resource)
            .map_err(|error| DaemonError::Config(format!("the daemon's metrics: {error}")))?;
        let meter = provider.meter(SERVICE_NAME);
        // Each instrument lives as long as the provider, which keeps its callback.
        let read = counters.clone();
        meter
            .u64_observable_counter("xray.daemon.segments")
            .with_unit("{segment}")
            .with_description("Segments received on UDP or converted from OTLP, and what became of them.")
            .with_callback(move |observer| {
                let totals = read.snapshot();
                let outcomes = [
                    ("received", totals.received),
                    ("sent", totals.sent),
                    ("spilled", totals.spillover),
                    ("rejected", totals.rejected),
                ];
                for (outcome, count) in outcomes {
                    observer.observe(count, &[KeyValue::new("outcome", outcome)]);
                }
            })
            .build();
        let read = counters.clone();
        meter
            .u64_observable_counter("xray.daemon.otlp.spans.received")
            .with_unit("{span}")
            .with_description("Spans taken on POST /v1/traces.")
            .with_callback(move |observer| observer.observe(read.snapshot().otlp.received_spans, &[]))
            .build();
        let read = counters.clone();
        meter
            .u64_observable_counter("xray.daemon.otlp.exported")
            .with_description("What each OTLP destination did with the spans (or metric data points) it was given.")
            .with_callback(move |observer| {
                let otlp = read.snapshot().otlp;
                let destinations = [("xray", otlp.xray), ("otlp", otlp.fan_out), ("otlp_metrics", otlp.metrics)];
                for (destination, counts) in destinations {
                    let DestinationSnapshot { sent, refused, dropped, .. } = counts;
                    for (outcome, count) in [("sent", sent), ("refused", refused), ("dropped", dropped)] {
                        let attributes = [KeyValue::new("destination", destination), KeyValue::new("outcome", outcome)];
                        observer.observe(count, &attributes);
                    }
                }
            })
            .build();
        let read = counters.clone();
        meter
            .u64_observable_gauge("xray.daemon.buffer.usage")
            .with_unit("By")
            .with_description("Bytes of segments waiting to be sent to X-Ray.")
            .with_callback(move |observer| observer.observe(read.snapshot().buffered_bytes, &[]))
            .build();
        Ok(Self(provider))
    }
}

impl Drop for OwnMetrics {
    fn drop(&mut self) {
        if let Err(error) = self.0.shutdown() {
            tracing::warn!(%error, "exporting the daemon's last metrics");
        }
    }
}
