//! What each request leaves besides its span, as one tower layer inside [`crate::server::ServerLayer`] (so it runs in
//! the server span and sees the matched route):
//!
//! - the access-log line, at `info` (target [`ACCESS_LOG_TARGET`]): method, route and path, status, duration,
//!   client address, and the trace id the log formatter adds, as the original's `after_request` line;
//! - the `http.server.request.duration` measurement, when metrics are on;
//! - for a 5xx answer or a panic, the [`Exception`] recorded on the server span (X-Ray `cause`, Honeycomb's
//!   exception event), one line at `error` with the trace id, and one Rollbar item with the request, the person
//!   (resolved after the answer, see [`PersonLookup`]) and the trace id.
//!
//! A panic in a handler is caught here: the caller gets the application's own 500 answer (see
//! [`SignalsLayer::with_panic_response`]) and the process keeps serving. Nothing of the panic reaches the body.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer as _;

use crate::TelemetryError;
use crate::cloudwatch::{CloudWatchLogs, CloudWatchStats};
use crate::config::TelemetryConfig;
use crate::exceptions::{Exception, InRequest, take_panic};
use crate::export::LaneStats;
use crate::logs::BoxedLayer;
use crate::metrics::Meters;
use crate::rollbar::{Level, Person, Report, Reported, RequestInfo, Rollbar};

/// The target of the access-log lines (filter them with `RUST_LOG`, e.g. `info,cruddur_telemetry::access=warn`).
pub const ACCESS_LOG_TARGET: &str = "cruddur_telemetry::access";

/// Finds who made a request from its headers, for Rollbar's `person`. Called only for requests that failed while
/// Rollbar is on, in a task of its own once the answer is ready, so a slow lookup never delays it.
pub type PersonLookup = Arc<dyn Fn(HeaderMap) -> BoxFuture<'static, Option<Person>> + Send + Sync>;

/// The signals besides traces that a [`crate::Telemetry`] runs: Rollbar, metrics, CloudWatch Logs, each on only when
/// configured.
pub(crate) struct Signals {
    rollbar: Rollbar,
    meters: Option<Meters>,
    cloudwatch: Option<CloudWatchLogs>,
    /// `RUST_LOG`: CloudWatch gets the lines the console gets.
    log_filter: String,
}

/// Losses and successes of the error and log senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalStats {
    /// Rollbar items sent, dropped (queue full) and failed; all zero when Rollbar is off.
    pub rollbar: LaneStats,
    /// `None` when CloudWatch Logs is off.
    pub cloudwatch: Option<CloudWatchStats>,
}

impl Signals {
    pub(crate) fn start(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build();
        let rollbar = match &config.rollbar {
            Some(rollbar) => Rollbar::start(rollbar, &config.service_name).map_err(TelemetryError::Rollbar)?,
            None => Rollbar::disabled(),
        };
        let meters = config.metrics.as_ref().map(|metrics| Meters::new(metrics, resource)).transpose()?;
        let cloudwatch = config
            .cloudwatch
            .as_ref()
            .map(|cloudwatch| CloudWatchLogs::start(cloudwatch, &config.service_name))
            .transpose()
            .map_err(TelemetryError::CloudWatch)?;
        Ok(Self { rollbar, meters, cloudwatch, log_filter: config.log.filter.clone() })
    }

    pub(crate) fn layer(&self) -> SignalsLayer {
        SignalsLayer::new(self.rollbar.clone(), self.meters.clone())
    }

    pub(crate) fn rollbar(&self) -> Rollbar {
        self.rollbar.clone()
    }

    pub(crate) fn meters(&self) -> Option<&Meters> {
        self.meters.as_ref()
    }

    /// The JSON log layer writing to CloudWatch Logs, filtered as the console's lines are.
    pub(crate) fn cloudwatch_layer<S>(&self) -> Result<Option<BoxedLayer<S>>, TelemetryError>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let Some(cloudwatch) = &self.cloudwatch else { return Ok(None) };
        let filter = crate::logs::log_filter(&self.log_filter)?;
        Ok(Some(cloudwatch.layer().with_filter(filter).boxed()))
    }

    /// The stream this process's lines go to, when CloudWatch Logs is on.
    pub(crate) fn cloudwatch_stream(&self) -> Option<&str> {
        self.cloudwatch.as_ref().map(CloudWatchLogs::log_stream)
    }

    pub(crate) fn stats(&self) -> SignalStats {
        SignalStats { rollbar: self.rollbar.stats(), cloudwatch: self.cloudwatch.as_ref().map(CloudWatchLogs::stats) }
    }

    /// Sends the Rollbar items queued, exports the metrics and ships the log lines gathered so far, waiting up to
    /// `timeout` for each.
    pub(crate) fn force_flush(&self, timeout: std::time::Duration) {
        self.rollbar.flush(timeout);
        if let Some(meters) = &self.meters
            && let Err(error) = meters.force_flush()
        {
            tracing::warn!(%error, "flushing metrics");
        }
        if let Some(cloudwatch) = &self.cloudwatch {
            cloudwatch.flush(timeout);
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.rollbar.flush(std::time::Duration::from_secs(5));
        if let Some(meters) = &self.meters
            && let Err(error) = meters.shutdown(std::time::Duration::from_secs(5))
        {
            tracing::warn!(%error, "shutting metrics down");
        }
    }
}

/// The layer; see the module doc. Made by [`crate::Telemetry::signals_layer`].
#[derive(Clone)]
pub struct SignalsLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    rollbar: Rollbar,
    meters: Option<Meters>,
    person: Option<PersonLookup>,
    panic_response: fn() -> Response<Body>,
}

impl SignalsLayer {
    pub(crate) fn new(rollbar: Rollbar, meters: Option<Meters>) -> Self {
        crate::exceptions::catch_panics();
        Self { shared: Arc::new(Shared { rollbar, meters, person: None, panic_response: plain_internal_error }) }
    }

    /// The answer to a request whose handler panicked, in the application's error shape (default: an empty 500).
    pub fn with_panic_response(self, panic_response: fn() -> Response<Body>) -> Self {
        self.with(|shared| shared.panic_response = panic_response)
    }

    /// How Rollbar items learn who the caller was.
    pub fn with_person_lookup(self, person: PersonLookup) -> Self {
        self.with(|shared| shared.person = Some(person))
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Self { shared: Arc::new(shared) }
    }
}

fn plain_internal_error() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

impl<S> Layer<S> for SignalsLayer {
    type Service = SignalsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignalsService { inner, shared: self.shared.clone() }
    }
}

/// The service [`SignalsLayer`] wraps around each route.
#[derive(Clone)]
pub struct SignalsService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<Request<B>> for SignalsService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let seen = Seen::new(&request, self.shared.rollbar.is_enabled());
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = match (CatchPanic { inner: Box::pin(ready.call(request)) }).await {
                Ok(response) => response?,
                Err(payload) => {
                    let exception = take_panic(payload.as_ref());
                    let mut response = (shared.panic_response)();
                    response.extensions_mut().insert(exception);
                    response
                }
            };
            Ok(shared.finish(seen, response, started))
        })
    }
}

/// What the layer keeps of a request before handing it on.
struct Seen {
    method: http::Method,
    route: Option<MatchedPath>,
    path: String,
    client: Option<String>,
    /// The request as Rollbar shows it, kept only while Rollbar is on (and the headers for the person lookup).
    for_rollbar: Option<(RequestInfo, HeaderMap)>,
}

impl Seen {
    fn new<B>(request: &Request<B>, rollbar: bool) -> Self {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let client = crate::server::client_address(request);
        let for_rollbar = rollbar.then(|| {
            let (parts, ()) = clone_head(request).into_parts();
            let info = RequestInfo::new(&parts, route.as_ref().map(MatchedPath::as_str), client.clone());
            (info, parts.headers)
        });
        Self { method: request.method().clone(), route, path: request.uri().path().to_owned(), client, for_rollbar }
    }

    fn route(&self) -> &str {
        self.route.as_ref().map_or("", MatchedPath::as_str)
    }
}

/// The method, URI, version and headers of `request`, without its body or extensions.
fn clone_head<B>(request: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    head
}

impl Shared {
    /// Inside the server span, once the answer is known.
    fn finish(&self, seen: Seen, mut response: Response<Body>, started: Instant) -> Response<Body> {
        let status = response.status();
        let elapsed = started.elapsed();
        let exception = response
            .extensions_mut()
            .remove::<Exception>()
            .or_else(|| status.is_server_error().then(|| Exception::from_status(status)));
        if let Some(exception) = exception {
            self.failed(&seen, exception);
        }
        let (method, path, code) = (&seen.method, &seen.path, status.as_u16());
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            method = %method,
            route = seen.route(),
            path = %path,
            status = code,
            duration_ms = elapsed.as_secs_f64() * 1e3,
            client = seen.client.as_deref().unwrap_or("-"),
            "{method} {path} {code}"
        );
        if let Some(meters) = &self.meters {
            let (method, route) = (crate::server::known_method(&seen.method), seen.route());
            meters.http_server_duration.record(
                elapsed.as_secs_f64(),
                |(series_status, series_method, series_route)| {
                    *series_status == code && *series_method == method && **series_route == *route
                },
                || {
                    let attributes = vec![
                        KeyValue::new("http.request.method", method),
                        KeyValue::new("http.route", route.to_owned()),
                        KeyValue::new("http.response.status_code", i64::from(code)),
                        KeyValue::new("url.scheme", "http"),
                    ];
                    ((code, method, route.into()), attributes)
                },
            );
        }
        response
    }

    fn failed(&self, seen: &Seen, exception: Exception) {
        exception.record(&tracing::Span::current());
        let (method, path) = (&seen.method, &seen.path);
        tracing::error!(
            target: ACCESS_LOG_TARGET,
            exception_type = %exception.kind,
            exception_message = %exception.message,
            stacktrace = exception.stacktrace.as_deref(),
            "{method} {path} failed"
        );
        let Some((request, headers)) = seen.for_rollbar.clone() else { return };
        let report = Report {
            level: Level::Error,
            what: Reported::Exception(exception),
            request: Some(request),
            person: None,
            trace_id: current_trace_id(),
        };
        match (&self.person, tokio::runtime::Handle::try_current()) {
            (Some(lookup), Ok(runtime)) => {
                let (lookup, rollbar) = (lookup.clone(), self.rollbar.clone());
                runtime.spawn(async move {
                    let person = lookup(headers).await;
                    rollbar.report(Report { person, ..report });
                });
            }
            _ => self.rollbar.report(report),
        }
    }
}

/// The trace id (32 hex digits) of the current span, `None` outside a trace.
pub fn current_trace_id() -> Option<String> {
    let trace_id = tracing::Span::current().context().span().span_context().trace_id();
    (trace_id != opentelemetry::trace::TraceId::INVALID).then(|| trace_id.to_string())
}

/// Polls the handler's future with the thread marked as running a request, turning a panic into `Err(payload)`.
struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let _request = InRequest::enter();
        let inner = self.inner.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
