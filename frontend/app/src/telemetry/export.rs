//! Span export from the browser: a span processor that buffers ended spans and posts them as OTLP/JSON
//! (`opentelemetry-proto`'s own types and serde) to the backend's relay.
//!
//! A batch goes when [`BATCH`] spans are waiting, every [`FLUSH_INTERVAL`], and when the page is hidden or left
//! (then with `keepalive`, so the request outlives the page). The buffer is bounded: past [`MAX_BUFFERED`] the oldest
//! spans are dropped and counted, so a dead relay never grows the page's memory. Export never blocks the page: each
//! post is a fetch whose promise nobody waits for on the way.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

/// Spans per request; also the count that triggers an early flush.
pub(crate) const BATCH: usize = 64;
/// Spans kept while the relay is slow or away; older ones are dropped beyond this.
pub(crate) const MAX_BUFFERED: usize = 1024;
/// The longest a span waits in the buffer while the page stays open.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// How a batch leaves the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// An ordinary fetch.
    Normal,
    /// A fetch that survives the page being closed (limited to 64 KB in flight by browsers).
    Keepalive,
}

/// The ended spans waiting to go, and where they go.
#[derive(Debug)]
pub(crate) struct Outbox {
    endpoint: String,
    state: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    spans: Vec<SpanData>,
    resource: ResourceAttributesWithSchema,
    dropped: u64,
}

impl Outbox {
    pub(crate) fn new(endpoint: String) -> Arc<Self> {
        Arc::new(Self { endpoint, state: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // The page has one thread: a poisoned lock only means a panic elsewhere, and the spans are still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Buffers `span`; true when a batch is ready.
    fn push(&self, span: SpanData) -> bool {
        let mut pending = self.lock();
        if pending.spans.len() >= MAX_BUFFERED {
            pending.spans.remove(0);
            pending.dropped += 1;
            if pending.dropped.is_power_of_two() {
                leptos::logging::warn!(
                    "browser tracing: {} spans dropped (the relay is not keeping up)",
                    pending.dropped
                );
            }
        }
        pending.spans.push(span);
        pending.spans.len() >= BATCH
    }

    /// Sends everything buffered, in batches of [`BATCH`].
    fn flush(&self, delivery: Delivery) {
        let bodies: Vec<String> = {
            let mut pending = self.lock();
            let spans = std::mem::take(&mut pending.spans);
            let resource = &pending.resource;
            let mut spans = spans.into_iter().peekable();
            let mut bodies = Vec::new();
            while spans.peek().is_some() {
                let batch: Vec<SpanData> = spans.by_ref().take(BATCH).collect();
                let request =
                    ExportTraceServiceRequest { resource_spans: group_spans_by_resource_and_scope(batch, resource) };
                match serde_json::to_string(&request) {
                    Ok(body) => bodies.push(body),
                    Err(error) => leptos::logging::warn!("browser tracing: encoding a batch: {error}"),
                }
            }
            bodies
        };
        for body in bodies {
            post(&self.endpoint, body, delivery);
        }
    }
}

/// Posts one OTLP/JSON body; a failure is logged to the console and otherwise ignored (tracing must never break the
/// page).
fn post(endpoint: &str, body: String, delivery: Delivery) {
    let Some(window) = web_sys::window() else { return };
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    if delivery == Delivery::Keepalive {
        // web-sys has no setter for the fetch standard's `keepalive` member; the init is a plain object.
        let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &true.into());
    }
    let headers = web_sys::Headers::new().expect("a Headers object");
    let _ = headers.set("content-type", "application/json");
    init.set_headers(&headers);
    let sent = window.fetch_with_str_and_init(endpoint, &init);
    let endpoint = endpoint.to_owned();
    wasm_bindgen_futures::spawn_local(async move {
        match wasm_bindgen_futures::JsFuture::from(sent).await {
            Ok(response) => {
                let status = response.unchecked_into::<web_sys::Response>().status();
                if status != 200 {
                    leptos::logging::warn!("browser tracing: {endpoint} answered {status}");
                }
            }
            Err(_) => leptos::logging::warn!("browser tracing: {endpoint} is unreachable; spans lost"),
        }
    });
}

/// The SDK side: every ended span goes to the [`Outbox`].
#[derive(Debug)]
pub(crate) struct RelayProcessor {
    outbox: Arc<Outbox>,
}

impl RelayProcessor {
    pub(crate) fn new(outbox: Arc<Outbox>) -> Self {
        Self { outbox }
    }
}

impl SpanProcessor for RelayProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.outbox.push(span) {
            self.outbox.flush(Delivery::Normal);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.outbox.flush(Delivery::Normal);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.outbox.flush(Delivery::Keepalive);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.outbox.lock().resource = resource.into();
    }
}

/// Flushes on a timer, and with `keepalive` when the page is hidden or left (a closed tab never sees a timer fire).
pub(crate) fn schedule_flushes(outbox: &Arc<Outbox>) {
    let timer_outbox = outbox.clone();
    gloo_timers::callback::Interval::new(FLUSH_INTERVAL.as_millis() as u32, move || {
        timer_outbox.flush(Delivery::Normal)
    })
    .forget();

    let Some(window) = web_sys::window() else { return };
    let on_page_hide = {
        let outbox = outbox.clone();
        Closure::<dyn Fn()>::new(move || outbox.flush(Delivery::Keepalive))
    };
    let on_visibility_change = {
        let outbox = outbox.clone();
        Closure::<dyn Fn()>::new(move || {
            let hidden = web_sys::window()
                .and_then(|window| window.document())
                .is_some_and(|document| document.visibility_state() == web_sys::VisibilityState::Hidden);
            if hidden {
                outbox.flush(Delivery::Keepalive);
            }
        })
    };
    let _ = window.add_event_listener_with_callback("pagehide", on_page_hide.as_ref().unchecked_ref());
    if let Some(document) = window.document() {
        let _ = document
            .add_event_listener_with_callback("visibilitychange", on_visibility_change.as_ref().unchecked_ref());
    }
    // Both listen for the life of the page.
    on_page_hide.forget();
    on_visibility_change.forget();
}
