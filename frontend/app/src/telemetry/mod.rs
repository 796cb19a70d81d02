//! Browser tracing: one tracer for the page, and the spans a user's visit is made of.
//!
//! - `documentLoad`: from the browser's navigation start (`performance.timeOrigin`) to the app's first mount;
//! - `route {path}`: each route change, a new trace (the first one a child of `documentLoad`), ending when the new
//!   page has rendered; the API calls the page makes are its children;
//! - `submit {form}`: each form submission, a child of the page's route span; its API call is its child;
//! - `{METHOD} {path}` (kind client): each API call, with `http.request.method`, `url.full`, `server.address`,
//!   `http.response.status_code`, an error status on a 5xx or a network failure. Its context goes out as
//!   `traceparent` and `X-Amzn-Trace-Id`, so the backend's server span is its child in the same trace.
//!
//! Export: [`export`].

pub mod export;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use self::export::{Outbox, RelayProcessor};

/// `service.name` of every browser span.
pub const SERVICE_NAME: &str = "cruddur-frontend";

/// The page's tracer. Cheap to clone; provided to every component through Leptos' context.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    tracer: SdkTracer,
    // Kept so the processor lives as long as the page.
    _provider: SdkTracerProvider,
    propagator: TextMapCompositePropagator,
    /// The span of the page on screen: the parent of its API calls and form submissions.
    page: Mutex<Context>,
    /// `documentLoad`, until the first route span takes it as its parent.
    document_load: Mutex<Option<Context>>,
}

impl Telemetry {
    /// Starts exporting to the relay of the backend at `backend_url`.
    pub fn start(backend_url: &str) -> Self {
        let outbox = Outbox::new(format!("{backend_url}/v1/traces"));
        let provider = SdkTracerProvider::builder()
            .with_id_generator(XrayIdGenerator::default())
            .with_span_processor(RelayProcessor::new(outbox.clone()))
            .with_resource(Resource::builder_empty().with_attributes(resource_attributes()).build())
            .build();
        export::schedule_flushes(&outbox);
        let propagator = TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(XrayPropagator::default()),
        ]);
        Self {
            inner: Arc::new(Inner {
                tracer: provider.tracer("cruddur-frontend"),
                _provider: provider,
                propagator,
                page: Mutex::new(Context::new()),
                document_load: Mutex::new(None),
            }),
        }
    }

    /// Records `documentLoad`, from navigation start until now.
    pub fn document_load(&self) {
        let window = web_sys::window();
        let started = window
            .as_ref()
            .and_then(|window| window.performance())
            .map(|performance| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(performance.time_origin() / 1000.0));
        let mut attributes = vec![KeyValue::new("url.full", location_href())];
        if let Some(agent) = window.and_then(|window| window.navigator().user_agent().ok()) {
            attributes.push(KeyValue::new("user_agent.original", agent));
        }
        let mut builder =
            self.inner.tracer.span_builder("documentLoad").with_kind(SpanKind::Internal).with_attributes(attributes);
        if let Some(started) = started {
            builder = builder.with_start_time(started);
        }
        let span = builder.start_with_context(&self.inner.tracer, &Context::new());
        let context = Context::new().with_span(span);
        context.span().end();
        *lock(&self.inner.document_load) = Some(context);
    }

    /// A route change to `path` (matched route template `route`): a new trace whose span ends once the page is
    /// rendered. Returns its context, which is also the parent of the page's API calls from now on.
    pub fn route_changed(&self, path: &str) -> Context {
        let parent = lock(&self.inner.document_load).take().unwrap_or_default();
        let span = self
            .inner
            .tracer
            .span_builder(format!("route {path}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("url.path", path.to_owned()), KeyValue::new("url.full", location_href())])
            .start_with_context(&self.inner.tracer, &parent);
        let context = parent.with_span(span);
        *lock(&self.inner.page) = context.clone();
        context
    }

    /// A form submission (`form` names it: `crud`, `signin`, ...): a child of the page's span. End it with
    /// [`Telemetry::end`] once the submission is answered.
    pub fn submission(&self, form: &str) -> Context {
        let page = self.page();
        let span = self
            .inner
            .tracer
            .span_builder(format!("submit {form}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("app.form", form.to_owned())])
            .start_with_context(&self.inner.tracer, &page);
        page.with_span(span)
    }

    /// A client span for an API call, a child of `parent` (or of the page's span).
    pub(crate) fn api_call(&self, parent: Option<&Context>, method: &str, url: &str) -> Context {
        let parent = parent.cloned().unwrap_or_else(|| self.page());
        let mut attributes =
            vec![KeyValue::new("http.request.method", method.to_owned()), KeyValue::new("url.full", url.to_owned())];
        if let Ok(parsed) = web_sys::Url::new(url) {
            attributes.push(KeyValue::new("server.address", parsed.hostname()));
            if let Ok(port) = parsed.port().parse::<i64>() {
                attributes.push(KeyValue::new("server.port", port));
            }
            attributes.push(KeyValue::new("url.path", parsed.pathname()));
        }
        let path = web_sys::Url::new(url).map(|parsed| parsed.pathname()).unwrap_or_else(|_| url.to_owned());
        let span = self
            .inner
            .tracer
            .span_builder(format!("{method} {path}"))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.inner.tracer, &parent);
        parent.with_span(span)
    }

    /// Ends an API call's span with what came back: a status code, or the reason nothing did.
    pub(crate) fn api_call_ended(&self, call: &Context, outcome: Result<u16, &str>) {
        let span = call.span();
        match outcome {
            Ok(status) => {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
                if status >= 500 {
                    span.set_attribute(KeyValue::new("error.type", status.to_string()));
                    span.set_status(Status::error(format!("HTTP {status}")));
                }
            }
            Err(reason) => {
                span.set_attribute(KeyValue::new("error.type", "network"));
                span.set_status(Status::error(reason.to_owned()));
            }
        }
        span.end();
    }

    /// Ends the span of `context` (a route or a submission); `error` marks a failed submission.
    pub fn end(&self, context: &Context, error: Option<&str>) {
        let span = context.span();
        if let Some(error) = error {
            span.set_status(Status::error(error.to_owned()));
        }
        span.end();
    }

    /// The trace headers for a request made in `context`: `traceparent` (and `tracestate` when set) and
    /// `X-Amzn-Trace-Id`.
    pub(crate) fn headers(&self, context: &Context) -> HashMap<String, String> {
        let mut headers = HashMap::new();
        self.inner.propagator.inject_context(context, &mut headers);
        headers
    }

    fn page(&self) -> Context {
        lock(&self.inner.page).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn location_href() -> String {
    web_sys::window().and_then(|window| window.location().href().ok()).unwrap_or_default()
}

fn resource_attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("service.name", SERVICE_NAME),
        KeyValue::new("telemetry.sdk.name", "opentelemetry"),
        KeyValue::new("telemetry.sdk.language", "rust"),
        KeyValue::new("browser.language", navigator_language()),
    ]
}

fn navigator_language() -> String {
    web_sys::window().and_then(|window| window.navigator().language()).unwrap_or_default()
}
