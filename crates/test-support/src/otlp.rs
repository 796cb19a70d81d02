//! A local OTLP/HTTP trace receiver: what Honeycomb (or an OpenTelemetry Collector) is to an exporter, on a
//! 127.0.0.1 port chosen by the OS.
//!
//! It serves `POST /v1/traces` on its own thread (with its own small runtime, so a test may block on a flush
//! without starving it), decodes each `ExportTraceServiceRequest` (protobuf, or JSON as OTLP/JSON defines it) with
//! the `opentelemetry-proto` crate, and records the request headers next to the spans. Tests wait for the spans they
//! expect with a deadline: [`OtlpReceiver::wait_for_span`]. It can be told to answer every export with an error
//! status (429 or 503, with `Retry-After`, as a busy collector does) until it recovers: [`OtlpReceiver::fail_with`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tokio::sync::{oneshot, watch};

/// How long the `wait_for_*` helpers wait before failing the test.
pub const WAIT: Duration = Duration::from_secs(15);

/// One decoded export request, with the headers it came with.
#[derive(Debug, Clone)]
pub struct ReceivedExport {
    pub headers: HeaderMap,
    pub request: ExportTraceServiceRequest,
}

/// One span as received, with its resource and the headers of the request that carried it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub headers: HeaderMap,
    pub resource: Option<Resource>,
    pub scope_name: String,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id as 32 lowercase hex digits, as OTLP/JSON and the W3C `traceparent` spell it.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent's span id in hex, empty for a root span.
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    pub fn attribute(&self, key: &str) -> Option<&any_value::Value> {
        find(&self.span.attributes, key)
    }

    pub fn string_attribute(&self, key: &str) -> Option<&str> {
        match self.attribute(key)? {
            any_value::Value::StringValue(value) => Some(value),
            _ => None,
        }
    }

    pub fn int_attribute(&self, key: &str) -> Option<i64> {
        match self.attribute(key)? {
            any_value::Value::IntValue(value) => Some(*value),
            _ => None,
        }
    }

    pub fn resource_string_attribute(&self, key: &str) -> Option<&str> {
        match find(&self.resource.as_ref()?.attributes, key)? {
            any_value::Value::StringValue(value) => Some(value),
            _ => None,
        }
    }

    /// Every attribute key of the span, to assert what is absent.
    pub fn attribute_keys(&self) -> Vec<&str> {
        self.span.attributes.iter().map(|attribute| attribute.key.as_str()).collect()
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|AnyValue { value }| value.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Default)]
struct Received {
    exports: Mutex<Vec<ReceivedExport>>,
    /// The status every export is answered with while not 0.
    failing_with: AtomicU16,
    /// Exports answered with an error status.
    refused: AtomicUsize,
    /// Spans of the exports taken.
    spans: AtomicUsize,
}

/// The running receiver; stops when dropped.
pub struct OtlpReceiver {
    address: SocketAddr,
    received: Arc<Received>,
    changes: watch::Receiver<usize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Binds 127.0.0.1:0 and starts serving.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the OTLP receiver");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let address = listener.local_addr().expect("the receiver's address");
        let received = Arc::new(Received::default());
        let (changed, changes) = watch::channel(0);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let state = (received.clone(), Arc::new(changed));
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("the receiver's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let app = Router::new().route("/v1/traces", post(export)).with_state(state);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                        .expect("serving OTLP");
                });
            })
            .expect("spawning the receiver thread");
        Self { address, received, changes, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT` (exporters append `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The full traces URL, as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` takes it.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint())
    }

    pub fn exports(&self) -> Vec<ReceivedExport> {
        self.received.exports.lock().expect("receiver lock").clone()
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        spans_of(self.exports())
    }

    /// How many spans were received so far, without copying any (for load tests).
    pub fn span_count(&self) -> usize {
        self.received.spans.load(Ordering::Acquire)
    }

    /// Answers every export with `status` (with `Retry-After: 1`) until [`OtlpReceiver::recover`].
    pub fn fail_with(&self, status: StatusCode) {
        self.received.failing_with.store(status.as_u16(), Ordering::SeqCst);
    }

    /// Takes exports again.
    pub fn recover(&self) {
        self.received.failing_with.store(0, Ordering::SeqCst);
    }

    /// Waits up to [`WAIT`] until at least `count` exports were answered with an error status.
    pub async fn wait_for_refused(&self, count: usize) {
        let refused = || self.received.refused.load(Ordering::SeqCst);
        let found = wait_until(self.changes.clone(), || (refused() >= count).then_some(())).await;
        assert!(found.is_some(), "fewer than {count} exports refused within {WAIT:?}: {}", refused());
    }
}

/// The spans of `exports`, each with its resource, scope and request headers, in order.
pub(crate) fn spans_of(exports: Vec<ReceivedExport>) -> Vec<ReceivedSpan> {
    exports
        .into_iter()
        .flat_map(|export| {
            let headers = export.headers;
            export.request.resource_spans.into_iter().flat_map(move |resource_spans| {
                let headers = headers.clone();
                let resource = resource_spans.resource;
                resource_spans.scope_spans.into_iter().flat_map(move |scope_spans| {
                    let headers = headers.clone();
                    let resource = resource.clone();
                    let scope_name = scope_spans.scope.map(|scope| scope.name).unwrap_or_default();
                    scope_spans.spans.into_iter().map(move |span| ReceivedSpan {
                        headers: headers.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        span,
                    })
                })
            })
        })
        .collect()
}

impl OtlpReceiver {
    /// Waits up to [`WAIT`] for a span matching `matches`, and panics naming `what` and the spans seen if none comes.
    pub async fn wait_for_span(&self, what: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        self.wait_for_spans(what, 1, matches).await.remove(0)
    }

    /// Waits up to [`WAIT`] until at least `count` spans match, and returns all that match.
    pub async fn wait_for_spans(
        &self,
        what: &str,
        count: usize,
        matches: impl Fn(&ReceivedSpan) -> bool,
    ) -> Vec<ReceivedSpan> {
        let found = wait_until(self.changes.clone(), || {
            let found: Vec<_> = self.spans().into_iter().filter(|span| matches(span)).collect();
            (found.len() >= count).then_some(found)
        })
        .await;
        found.unwrap_or_else(|| {
            let seen: Vec<String> = self.spans().iter().map(|span| span.name().to_owned()).collect();
            panic!("no {count} span(s) {what} at the OTLP receiver within {WAIT:?}; received: {seen:?}")
        })
    }
}

/// Evaluates `check` now and each time `changes` moves, until it gives a value or [`WAIT`] has passed (`None`).
pub(crate) async fn wait_until<T>(mut changes: watch::Receiver<usize>, check: impl Fn() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        changes.mark_unchanged();
        if let Some(found) = check() {
            return Some(found);
        }
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return None;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type ReceiverState = (Arc<Received>, Arc<watch::Sender<usize>>);

async fn export(
    State((received, changed)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let failing_with = received.failing_with.load(Ordering::SeqCst);
    if let Ok(status) = StatusCode::from_u16(failing_with) {
        received.refused.fetch_add(1, Ordering::SeqCst);
        changed.send_modify(|count| *count += 1);
        return (status, [(header::RETRY_AFTER, "1")]).into_response();
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let request = if content_type.starts_with("application/json") {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|error| error.to_string())
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|error| error.to_string())
    };
    match request {
        Ok(request) => {
            let spans: usize = request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
            received.spans.fetch_add(spans, Ordering::AcqRel);
            received.exports.lock().expect("receiver lock").push(ReceivedExport { headers, request });
            changed.send_modify(|count| *count += 1);
            StatusCode::OK.into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
