//! One harness for the tests of a traced app (the backend's and the telemetry crate's): a local OTLP/HTTP receiver
//! and UDP segment sink, the seed's variables pointing at them, a telemetry pipeline built from those variables and
//! installed as the thread's default subscriber, and the app served on 127.0.0.1:0.
//!
//! Generic over the pipeline, so this crate does not depend on the telemetry crate whose tests use it: the caller
//! builds the pipeline from the variables and says how to install and flush it ([`Pipeline`]). Tests run on a
//! single-threaded runtime, so the server task is traced by the thread's subscriber and tests share no global state.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::sync::oneshot;
use tracing::subscriber::DefaultGuard;

pub use xray_protocol::segment::xray_trace_id;

use crate::otlp::{OtlpReceiver, ReceivedSpan};
use crate::udp_sink::{Segment, UdpSink};

/// The API key the seed's `OTEL_EXPORTER_OTLP_HEADERS` sends, which tests find on every export.
pub const HONEYCOMB_KEY: &str = "test-honeycomb-key";

/// How the harness installs and flushes a pipeline of type `T`.
pub struct Pipeline<T> {
    /// Installs it as the thread's default subscriber, while the guard lives.
    pub install: fn(&T) -> DefaultGuard,
    /// Exports what is queued, waiting for the exports.
    pub flush: fn(&T),
}

/// What the traced app runs with.
#[derive(Debug, Clone)]
pub struct TracedOptions {
    variables: HashMap<String, String>,
    database: bool,
}

impl TracedOptions {
    /// The seed's variables for a service named `service_name`, with `xray_sampling_rules` as
    /// `AWS_XRAY_SAMPLING_RULES` (the telemetry crate's `EVERY_TRACE` follows every request into X-Ray).
    pub fn new(service_name: &str, xray_sampling_rules: &str) -> Self {
        let variables = HashMap::from([
            ("OTEL_EXPORTER_OTLP_HEADERS".to_owned(), format!("x-honeycomb-team={HONEYCOMB_KEY}")),
            ("OTEL_SERVICE_NAME".to_owned(), service_name.to_owned()),
            ("AWS_XRAY_SAMPLING_RULES".to_owned(), xray_sampling_rules.to_owned()),
        ]);
        Self { variables, database: false }
    }

    /// Sets (or, with an empty value, unsets) a variable; the receiver's endpoint and the sink's address are set
    /// unless given here.
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.insert(name.to_owned(), value.to_owned());
        self
    }

    /// [`TracedOptions::variable`] for each pair.
    pub fn variables(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |options, (name, value)| options.variable(name, value))
    }

    /// The variables, pointing at `receiver` and `sink` unless set otherwise.
    pub fn resolve(&self, receiver: &OtlpReceiver, sink: &UdpSink) -> Variables {
        let mut variables = HashMap::from([
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), receiver.endpoint()),
            ("AWS_XRAY_DAEMON_ADDRESS".to_owned(), sink.address().to_string()),
        ]);
        variables.extend(self.variables.clone());
        Variables(variables)
    }

    /// Gives the app a fresh database (on this crate's Postgres).
    pub fn with_database(mut self) -> Self {
        self.database = true;
        self
    }
}

/// The variables the pipeline is built from.
#[derive(Debug, Clone)]
pub struct Variables(HashMap<String, String>);

impl Variables {
    /// A variable's value; an empty one counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|value| !value.is_empty()).cloned()
    }
}

/// A traced app serving on 127.0.0.1, its telemetry, and where its telemetry goes.
pub struct TracedApp<T> {
    pub base: String,
    pub client: reqwest::Client,
    /// The fresh database's URL, when asked for.
    pub database_url: Option<String>,
    pub receiver: OtlpReceiver,
    pub sink: UdpSink,
    flush: fn(&T),
    // Dropped in this order: the server, then telemetry (flushing), then the subscriber.
    _stop: oneshot::Sender<()>,
    pub telemetry: T,
    _subscriber: DefaultGuard,
}

impl<T> TracedApp<T> {
    /// Starts the receiver and the sink, builds the pipeline with `telemetry` from the options' variables, installs
    /// it, and serves the router `app` makes (given the pipeline and the database URL, if any).
    pub async fn start(
        options: TracedOptions,
        pipeline: Pipeline<T>,
        telemetry: impl FnOnce(&Variables) -> T,
        app: impl AsyncFnOnce(&T, Option<&str>) -> Router,
    ) -> Self {
        let receiver = OtlpReceiver::start();
        let sink = UdpSink::start();
        let telemetry = telemetry(&options.resolve(&receiver, &sink));
        let subscriber = (pipeline.install)(&telemetry);
        let database_url = if options.database { Some(crate::postgres::fresh_database().await) } else { None };
        let router = app(&telemetry, database_url.as_deref()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the app");
        let base = format!("http://{}", listener.local_addr().expect("the app's address"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // With the peer's address, as the binaries serve.
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serving the app");
        });
        Self {
            base,
            client: reqwest::Client::new(),
            database_url,
            receiver,
            sink,
            flush: pipeline.flush,
            _stop: stop,
            telemetry,
            _subscriber: subscriber,
        }
    }

    /// The fresh database's name.
    pub fn database(&self) -> &str {
        let url = self.database_url.as_deref().expect("started with a database");
        url.rsplit('/').next().expect("a database name")
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let request = self.client.get(format!("{}{path}", self.base)).headers(crate::header_map(headers));
        request.send().await.expect("the request")
    }

    /// Exports what is queued now.
    pub fn flush(&self) {
        (self.flush)(&self.telemetry);
    }

    /// The server span of a request to `path` (`url.path`), once exported.
    pub async fn server_span(&self, path: &str) -> ReceivedSpan {
        self.server_span_where(&format!("the server span of {path}"), |span| {
            span.string_attribute("url.path") == Some(path)
        })
        .await
    }

    /// The server span of a request to the route `route` (`http.route`), once exported.
    pub async fn server_span_of_route(&self, route: &str) -> ReceivedSpan {
        self.server_span_where(&format!("the server span of {route}"), |span| {
            span.string_attribute("http.route") == Some(route)
        })
        .await
    }

    async fn server_span_where(&self, what: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        self.flush();
        self.receiver.wait_for_span(what, |span| span.kind() == SpanKind::Server && matches(span)).await
    }

    /// The span named `name` in trace `trace_id` (OTLP form), once exported.
    pub async fn span_in(&self, trace_id: &str, name: &str) -> ReceivedSpan {
        self.receiver.wait_for_span(name, |span| span.trace_id() == trace_id && span.name() == name).await
    }

    /// A segment of trace `trace_id` (OTLP form) that `matches`, once it arrives.
    pub async fn segment_of(&self, trace_id: &str, what: &str, matches: impl Fn(&Segment) -> bool) -> Segment {
        self.sink
            .wait_for_segment(what, |segment| segment.otlp_trace_id().as_deref() == Some(trace_id) && matches(segment))
            .await
    }
}

/// Whether `text` is `length` lowercase hex digits.
pub fn is_lower_hex(text: &str, length: usize) -> bool {
    text.len() == length && text.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The `X-Amzn-Trace-Id` header of a response.
pub fn xray_header(response: &reqwest::Response) -> String {
    response.headers()["x-amzn-trace-id"].to_str().expect("an ASCII header").to_owned()
}
