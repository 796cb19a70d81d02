//! Telemetry for every Cruddur binary: logs (stdout and CloudWatch Logs), traces to Honeycomb (OTLP) and to X-Ray at
//! once, errors as exceptions in traces and Rollbar items, metrics over OTLP, trace propagation, HTTP server and
//! client spans, database spans, and the relay for the browser's spans.
//!
//! A binary calls [`init`] once and keeps the returned [`Telemetry`] until it exits (dropping it flushes and shuts
//! the exporters down). Tests that must not install globals build a [`Telemetry`] with [`Telemetry::new`] and use
//! its [`Telemetry::layer`] with `tracing::subscriber::set_default`; nothing is logged unless they add a
//! [`logs::layer`].
//!
//! One trace has one id everywhere: trace ids are X-Ray compatible (the first 4 bytes are the epoch seconds), so
//! X-Ray's `1-5759e988-bd862e3fe1be46a994272793` is OTLP's `5759e988bd862e3fe1be46a994272793`.
//!
//! # Configuration
//!
//! Only by environment ([`TelemetryConfig::from_env`]); every variable is optional.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | `HONEYCOMB_SERVICE_NAME`, else the binary's name | `service.name` of every span |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset: OTLP off | OTLP/HTTP base URL (`https://api.honeycomb.io`); `/v1/traces` is appended |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | - | full traces URL, used as is; wins over the base URL |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | - | `name=value,...` sent with every export (`x-honeycomb-team=<key>`) |
//! | `HONEYCOMB_API_KEY` | - | shortcut: adds `x-honeycomb-team=<key>` unless the headers name it (does not set an endpoint) |
//! | `HONEYCOMB_SERVICE_NAME` | - | shortcut: the service name when `OTEL_SERVICE_NAME` is unset |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `parentbased_always_on` | which traces OTLP gets: `always_on`, `always_off`, `traceidratio` (the ratio in `_ARG`), or their `parentbased_` forms; spans of a ratio-sampled trace carry `SampleRate` for Honeycomb ([`sampling`]) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | 10000, 5000, 512 | read by the OpenTelemetry SDK (milliseconds, spans) |
//! | `AWS_XRAY_SDK_ENABLED` | `true` | `false` turns X-Ray export off |
//! | `AWS_XRAY_DAEMON_ADDRESS` | `127.0.0.1:2000` | the daemon's `host:port`, UDP for segments and TCP for sampling rules (or `tcp:host:port udp:host:port`) |
//! | `AWS_XRAY_TRACING_NAME` | the service name | the X-Ray segment name |
//! | `AWS_XRAY_URL` | - | dynamic naming: a host pattern (`*`, `?`); a request whose `Host` matches is named after its host |
//! | `AWS_XRAY_SAMPLING_RULES` | unset: X-Ray's rules, through the daemon (1 trace/s, then 5% until they arrive) | which traces X-Ray gets: a rules file in the X-Ray SDKs' local format, or the JSON inline ([`sampling`]); OTLP's share is `OTEL_TRACES_SAMPLER`'s |
//! | `RUST_LOG` | `info` | log filter (`EnvFilter` directives); traces do not depend on it |
//! | `LOG_FORMAT` | `text` | `text` (one line, coloured on a terminal), `pretty`, `json`, or `off` |
//! | `OTEL_METRICS_EXPORTER` | `otlp` when an OTLP destination is set | `otlp` or `none`: metrics over OTLP (HTTP request and query durations, pool connections) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | 60000 | milliseconds between metric exports |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_METRICS_HEADERS` | base URL + `/v1/metrics`, - | the metrics URL as is; headers added for metrics (Honeycomb's `x-honeycomb-dataset`) |
//! | `ROLLBAR_ACCESS_TOKEN` | unset: Rollbar off | each unhandled error and panic of a request becomes a Rollbar item ([`rollbar`]) |
//! | `ROLLBAR_ENVIRONMENT`, `ROLLBAR_ENDPOINT`, `ROLLBAR_CODE_VERSION` | `production`, `https://api.rollbar.com/api/1/`, the build's version | what items say, where they go |
//! | `CLOUDWATCH_LOG_GROUP` | unset: CloudWatch Logs off | every log line, as JSON with `trace_id`, to this group, a stream per process ([`cloudwatch`]) |
//! | `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` (or `AWS_ENDPOINT_URL`), `AWS_REGION`, the AWS credential chain | the SDK's | where CloudWatch Logs is, and who calls it |
//!
//! Each exporter is switched on its own, for comparisons: OTLP by setting an endpoint, X-Ray by
//! `AWS_XRAY_SDK_ENABLED`. With both off, spans are not recorded (trace ids still appear in logs and the
//! `X-Amzn-Trace-Id` response header, with `Sampled=0`).
//!
//! # Pieces
//!
//! - [`server::ServerLayer`]: one server span per request, `X-Amzn-Trace-Id` in the response;
//! - [`client::traced_client`]: outgoing requests as client spans, trace headers injected;
//! - database spans from sqlx's own query events, once [`Telemetry::set_database`] names the database ([`db`]);
//! - [`relay::router`]: `POST /v1/traces` for the browser's spans;
//! - [`propagation`]: the headers in and out;
//! - [`sampling`]: which traces OTLP and X-Ray each get (OTLP by the standard sampler variables, X-Ray by its rules,
//!   as the X-Ray SDKs sample), carried with the trace in `tracestate`.
//! - [`signals::SignalsLayer`] ([`Telemetry::signals_layer`]): per request, the access-log line, the HTTP duration
//!   metric, and a 5xx or panic as an [`exceptions::Exception`] on the server span (X-Ray `cause`) and a Rollbar
//!   item; panics answer 500 and the server keeps serving;
//! - [`cloudwatch`]: every log line to CloudWatch Logs ([`init`] adds it; see [`Telemetry::cloudwatch_layer`]).
//!
//! In hand-made spans, attributes prefixed `annotation.` become X-Ray annotations (indexed) and those prefixed
//! `metadata.` X-Ray metadata (the prefix is dropped in X-Ray, kept in OTLP); other application attributes go to
//! X-Ray metadata as they are. Never put a token, password or `Authorization` header in a span or a log.
//!
//! Export never holds up a request: each exporter has a bounded queue; what does not fit is dropped and counted,
//! failed exports are counted, and both are logged at `warn` at most once a minute ([`Telemetry::export_stats`]).

pub mod client;
pub mod cloudwatch;
pub mod config;
mod context;
pub mod db;
pub mod exceptions;
mod export;
pub mod logs;
mod metrics;
mod naming;
pub mod propagation;
pub mod relay;
pub mod rollbar;
pub mod sampling;
pub mod server;
pub mod signals;
mod xray;

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{FilterFn, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use config::{
    CloudWatchConfig, ConfigError, LogConfig, LogFormat, MetricsConfig, OtlpConfig, OtlpSampling, RollbarConfig,
    SamplingRules, TelemetryConfig, XrayConfig, XraySampling,
};
pub use db::DatabaseTarget;
pub use export::LaneStats;
pub use metrics::meter_provider;

/// The instrumentation scope of our spans and metrics.
const SCOPE: &str = "cruddur-telemetry";

/// How long [`Telemetry::force_flush`] waits for CloudWatch Logs.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What can go wrong while starting telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the database URL: {0}")]
    DatabaseUrl(String),
    #[error("building the OTLP exporter: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("starting the browser span relay: {0}")]
    Relay(std::io::Error),
    #[error("starting the X-Ray sampling rules poller: {0}")]
    Sampling(std::io::Error),
    #[error("starting the Rollbar sender: {0}")]
    Rollbar(std::io::Error),
    #[error("starting the CloudWatch Logs shipper: {0}")]
    CloudWatch(std::io::Error),
    #[error("installing the global subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// The running telemetry: the tracer provider and its exporters, the relay, the database description.
///
/// Dropping it flushes what is queued and shuts the exporters down (waiting up to a few seconds for an
/// unreachable endpoint): keep it alive until the binary exits.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    database: db::SharedTarget,
    relay: relay::Relay,
    otlp: Option<Arc<export::Lane>>,
    xray: Option<Arc<export::Lane>>,
    /// Why X-Ray export is off although configured, to log once a subscriber is there.
    xray_unavailable: Option<String>,
    /// Fetches X-Ray's sampling rules while it lives (centralized sampling).
    _sampling_poller: Option<sampling::Poller>,
    /// Errors to Rollbar, metrics, logs to CloudWatch.
    signals: signals::Signals,
}

/// Losses and successes of each exporter, `None` when that exporter is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportStats {
    pub otlp: Option<LaneStats>,
    pub xray: Option<LaneStats>,
    pub relay: LaneStats,
}

impl Telemetry {
    /// Builds the pipeline `config` describes, without touching any global state.
    pub fn new(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let signals = signals::Signals::start(config)?;
        let mut exporters = Exporters::default();
        if let Some(otlp) = &config.otlp {
            exporters.add_otlp(otlp, config.export_queue)?;
        }
        if let Some(xray) = &config.xray {
            exporters.add_xray(xray, config.export_queue)?;
        }
        // Nothing to export: record nothing (ids are still made, for logs and the X-Ray response header).
        let sampler =
            sampling::TraceSampler::new(config.otlp.as_ref().map(|otlp| otlp.sampling), exporters.xray_sampler);
        let sends_xray_segments = exporters.xray.is_some();
        let provider = tracer_provider(&config.service_name, sends_xray_segments, exporters.processors, sampler);
        let tracer = provider.tracer(SCOPE);
        let relay = match &config.otlp {
            Some(otlp_config) => relay::Relay::start(otlp_config).map_err(TelemetryError::Relay)?,
            None => relay::Relay::disabled(),
        };
        let telemetry = Self {
            provider,
            tracer,
            database: Arc::default(),
            relay,
            otlp: exporters.otlp,
            xray: exporters.xray,
            xray_unavailable: exporters.xray_unavailable,
            _sampling_poller: exporters.sampling_poller,
            signals,
        };
        telemetry.warn_if_degraded();
        Ok(telemetry)
    }

    fn warn_if_degraded(&self) {
        if let Some(reason) = &self.xray_unavailable {
            tracing::warn!(%reason, "X-Ray export is off: the daemon address does not resolve");
        }
    }

    /// The tracing layers that make OpenTelemetry spans: one for `tracing` spans (level `info` and above, whatever
    /// `RUST_LOG` says) and one for sqlx's query events. Logs are separate: [`logs::layer`].
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
    {
        // Only the span's own fields become attributes: the code location, module path (`target`), thread and
        // busy/idle times are the log's business, and each of them was one more attribute to copy and encode per span.
        // Entered spans do not become the current OpenTelemetry context: that cost each poll of each instrumented
        // future a context attach and detach; what needs the context looks it up (see `context`).
        let spans = tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_filter(traced_spans());
        let query_durations = self.signals.meters().map(|meters| meters.query_duration());
        let queries = db::QuerySpans::new(self.tracer.clone(), self.database.clone(), query_durations)
            .with_filter(filter_fn(|metadata| metadata.target() == db::SQLX_QUERY_TARGET));
        spans.and_then(queries)
    }

    /// The layer for the routes of an HTTP server, inside [`server::ServerLayer`]: the access log, the HTTP
    /// duration metric, exceptions on the server span and to Rollbar, panics caught ([`signals`]).
    pub fn signals_layer(&self) -> signals::SignalsLayer {
        self.signals.layer()
    }

    /// The Rollbar client (disabled without `ROLLBAR_ACCESS_TOKEN`), to report what is not a failed request.
    pub fn rollbar(&self) -> rollbar::Rollbar {
        self.signals.rollbar()
    }

    /// The log layer writing every line to CloudWatch Logs as JSON, when `CLOUDWATCH_LOG_GROUP` is set ([`init`]
    /// adds it; tests that build their own subscriber add it themselves).
    pub fn cloudwatch_layer<S>(&self) -> Result<Option<logs::BoxedLayer<S>>, TelemetryError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.signals.cloudwatch_layer()
    }

    /// The CloudWatch Logs stream of this process, when CloudWatch Logs is on.
    pub fn cloudwatch_stream(&self) -> Option<&str> {
        self.signals.cloudwatch_stream()
    }

    /// Reports the connection pool `pool_name` as `db.client.connection.count` (used and idle, as `connections`
    /// returns them) when metrics are on.
    pub fn observe_connection_pool(
        &self,
        pool_name: &str,
        connections: impl Fn() -> (u64, u64) + Send + Sync + 'static,
    ) {
        if let Some(meters) = self.signals.meters() {
            meters.observe_connection_pool(pool_name, connections);
        }
    }

    /// Losses and successes of Rollbar and CloudWatch Logs.
    pub fn signal_stats(&self) -> signals::SignalStats {
        self.signals.stats()
    }

    /// Names the database the sqlx queries go to (`db.namespace`, `server.address`, `server.port`).
    pub fn set_database(&self, target: DatabaseTarget) {
        if let Ok(mut database) = self.database.write() {
            *database = Some(Arc::new(db::SpanTarget::new(target)));
        }
    }

    /// The browser span relay, forwarding where OTLP goes (or accepting and dropping when OTLP is off).
    pub fn relay(&self) -> relay::Relay {
        self.relay.clone()
    }

    pub fn export_stats(&self) -> ExportStats {
        ExportStats {
            otlp: self.otlp.as_ref().map(|lane| lane.stats()),
            xray: self.xray.as_ref().map(|lane| lane.stats()),
            relay: self.relay.stats(),
        }
    }

    /// Exports what is queued now, waiting for the exports to finish (tests, or before a planned stop).
    pub fn force_flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::warn!(%error, "flushing telemetry");
        }
        self.signals.force_flush(FLUSH_WAIT);
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "shutting telemetry down");
        }
    }
}

/// The exporters [`Telemetry::new`] sets up, and what X-Ray's needs besides.
#[derive(Default)]
struct Exporters {
    processors: Vec<export::BoundedProcessor>,
    otlp: Option<Arc<export::Lane>>,
    xray: Option<Arc<export::Lane>>,
    xray_sampler: Option<Arc<sampling::XraySampler>>,
    sampling_poller: Option<sampling::Poller>,
    /// Why X-Ray export is off although configured.
    xray_unavailable: Option<String>,
}

impl Exporters {
    fn add_otlp(&mut self, config: &OtlpConfig, queue: usize) -> Result<(), TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.traces_endpoint.as_str())
            .with_headers(config.headers.iter().cloned().collect())
            .build()?;
        let processor = export::BoundedProcessor::new("OTLP", exporter, queue, sampling::otlp_sampled);
        self.otlp = Some(processor.lane());
        self.processors.push(processor);
        Ok(())
    }

    fn add_xray(&mut self, config: &XrayConfig, queue: usize) -> Result<(), TelemetryError> {
        let exporter = match xray::XraySegments::new(config) {
            Ok(exporter) => exporter,
            // The daemon's host not resolving (yet) must not stop the service.
            Err(error) => {
                self.xray_unavailable = Some(format!("{}: {error}", config.daemon_udp_address));
                return Ok(());
            }
        };
        let processor = export::BoundedProcessor::new("X-Ray", exporter, queue, sampling::xray_sampled);
        self.xray = Some(processor.lane());
        self.processors.push(processor);
        let (sampler, poller) = sampling::xray_sampler(config).map_err(TelemetryError::Sampling)?;
        (self.xray_sampler, self.sampling_poller) = (Some(sampler), poller);
        Ok(())
    }
}

/// The provider: X-Ray compatible ids, the service name, `sampler`, and the exporters (if any) behind one fan-out.
/// When this process sends X-Ray its segments itself, its resource says so, so that a gateway that also takes its
/// OTLP (the daemon) does not deliver them to X-Ray a second time.
fn tracer_provider(
    service_name: &str,
    sends_xray_segments: bool,
    processors: Vec<export::BoundedProcessor>,
    sampler: sampling::TraceSampler,
) -> SdkTracerProvider {
    let mut resource = Resource::builder().with_service_name(service_name.to_owned());
    if sends_xray_segments {
        resource = resource.with_attribute(KeyValue::new(xray_protocol::otlp::SENDS_XRAY_SEGMENTS, true));
    }
    let resource = resource.build();
    let mut builder =
        SdkTracerProvider::builder().with_id_generator(XrayIdGenerator::default()).with_resource(resource);
    if !processors.is_empty() {
        builder = builder.with_span_processor(export::Fanout::new(processors));
    }
    builder.with_sampler(sampler).build()
}

/// Spans worth a trace: `info` and above, not the telemetry pipeline's own (an export must not trace itself), and
/// not sqlx's query events (they become spans of their own).
fn traced_spans() -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    filter_fn(|metadata| {
        let target = metadata.target();
        *metadata.level() <= Level::INFO
            && !target.starts_with("opentelemetry")
            && !target.starts_with(db::SQLX_QUERY_TARGET)
            && target != signals::ACCESS_LOG_TARGET
    })
}

/// Reads the environment and starts telemetry for a binary named `default_service_name`: the global subscriber
/// (logs + spans), the global tracer provider and propagator. Keep the returned value until exit.
pub fn init(default_service_name: &str) -> Result<Telemetry, TelemetryError> {
    init_with(&TelemetryConfig::from_env(default_service_name)?)
}

/// [`init`] with a configuration of your own.
pub fn init_with(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let telemetry = Telemetry::new(config)?;
    let logs = match (logs::stdout_layer::<Registry>(&config.log)?, telemetry.cloudwatch_layer::<Registry>()?) {
        (Some(stdout), Some(cloudwatch)) => Some(stdout.and_then(cloudwatch).boxed()),
        (stdout, cloudwatch) => stdout.or(cloudwatch),
    };
    // Not `.with(Option)`: an `Option` layer does not pass the subscriber's registration on, which the log
    // formatter needs to find trace ids.
    match logs {
        Some(logs) => tracing_subscriber::registry().with(logs).with(telemetry.layer()).try_init()?,
        None => tracing_subscriber::registry().with(telemetry.layer()).try_init()?,
    }
    opentelemetry::global::set_tracer_provider(telemetry.provider.clone());
    opentelemetry::global::set_text_map_propagator(propagation::propagator());
    // Said again now that there is a subscriber to hear it.
    telemetry.warn_if_degraded();
    tracing::info!(
        service = %config.service_name,
        otlp = ?config.otlp.as_ref().map(|otlp| otlp.traces_endpoint.as_str()),
        xray = ?config.xray.as_ref().map(|xray| xray.daemon_udp_address.as_str()),
        rollbar = config.rollbar.is_some(),
        cloudwatch_logs = ?telemetry.cloudwatch_stream(),
        metrics = ?config.metrics.as_ref().map(|metrics| metrics.endpoint.as_str()),
        "telemetry started"
    );
    Ok(telemetry)
}
