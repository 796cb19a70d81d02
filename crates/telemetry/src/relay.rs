//! The browser span relay: `POST /v1/traces` on the backend, what the original's OpenTelemetry Collector on port
//! 4318 was to the React app.
//!
//! The browser exports its spans here (OTLP/HTTP, JSON or protobuf); the relay checks them, converts JSON to
//! protobuf, and forwards them to the configured OTLP traces endpoint with the server's configured headers, so the
//! Honeycomb key never reaches the browser. Forwarding happens on a thread of its own behind a bounded queue: the
//! request is answered at once, and a full queue drops (and counts) instead of waiting. When OTLP is off the relay
//! accepts and drops, so the browser never sees an error for it.
//!
//! Answers: 200 with an empty `ExportTraceServiceResponse` (in the request's format), 400 for a body that does not
//! decode, 413 over [`MAX_BODY`], 415 for another content type, 429 over the rate limit.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::config::OtlpConfig;
use crate::export::{Lane, LaneStats};

/// The largest body accepted, in bytes: a browser batch is far smaller.
pub const MAX_BODY: usize = 512 * 1024;

/// Requests forwarded or waiting; more are dropped.
const QUEUE: usize = 256;

/// How long one forward may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The relay's state: where to forward (if anywhere) and the rate limit. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    forward: Option<SyncSender<Vec<u8>>>,
    lane: Arc<Lane>,
    limit: Arc<Mutex<TokenBucket>>,
}

impl Relay {
    /// A relay that accepts and drops: OTLP is off.
    pub fn disabled() -> Self {
        Self { forward: None, lane: Lane::new("browser relay", QUEUE), limit: Arc::default() }
    }

    /// Starts the forwarding thread towards `otlp`.
    pub(crate) fn start(otlp: &OtlpConfig) -> std::io::Result<Self> {
        let (forward, requests) = sync_channel(QUEUE);
        let lane = Lane::new("browser relay", QUEUE);
        let headers = otlp
            .headers
            .iter()
            .filter_map(|(name, value)| Some((HeaderName::try_from(name).ok()?, HeaderValue::try_from(value).ok()?)))
            .collect();
        let forwarder = Forwarder { url: otlp.traces_endpoint.clone(), headers, lane: lane.clone() };
        std::thread::Builder::new().name("otlp-relay".into()).spawn(move || forwarder.run(requests))?;
        Ok(Self { forward: Some(forward), lane, limit: Arc::default() })
    }

    /// Allows `burst` requests at once and `per_second` on average (the default: 50 and 10).
    pub fn with_rate_limit(self, burst: u32, per_second: f64) -> Self {
        Self { limit: Arc::new(Mutex::new(TokenBucket::new(burst, per_second))), ..self }
    }

    /// Forwarded, dropped (queue full) and failed requests so far.
    pub fn stats(&self) -> LaneStats {
        self.lane.stats()
    }
}

/// The router to merge into the backend's: `POST /v1/traces`.
pub fn router<S: Clone + Send + Sync + 'static>(relay: Relay) -> Router<S> {
    Router::new().route("/v1/traces", post(accept)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(relay)
}

async fn accept(State(relay): State<Relay>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_json = match media_type.as_str() {
        JSON => true,
        PROTOBUF | "application/protobuf" => false,
        _ => {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "OTLP/HTTP takes application/json or application/x-protobuf")
                .into_response();
        }
    };
    if !relay.limit.lock().map(|mut bucket| bucket.take()).unwrap_or(false) {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let protobuf = if is_json {
        match serde_json::from_slice::<ExportTraceServiceRequest>(&body) {
            Ok(request) => request.encode_to_vec(),
            Err(_) => return (StatusCode::BAD_REQUEST, "not an OTLP/JSON trace export").into_response(),
        }
    } else {
        match ExportTraceServiceRequest::decode(body.clone()) {
            Ok(_) => body.to_vec(),
            Err(_) => return (StatusCode::BAD_REQUEST, "not an OTLP/protobuf trace export").into_response(),
        }
    };
    if let Some(forward) = &relay.forward {
        match forward.try_send(protobuf) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => relay.lane.count_dropped(1),
        }
    }
    // An empty ExportTraceServiceResponse: `{}` in JSON, no bytes in protobuf.
    if is_json {
        ([(header::CONTENT_TYPE, JSON)], "{}").into_response()
    } else {
        ([(header::CONTENT_TYPE, PROTOBUF)], Bytes::new()).into_response()
    }
}

/// Sends queued exports one by one with a blocking client (built on this thread, outside any async runtime).
struct Forwarder {
    url: url::Url,
    headers: HeaderMap,
    lane: Arc<Lane>,
}

impl Forwarder {
    fn run(self, requests: Receiver<Vec<u8>>) {
        let client = match reqwest::blocking::Client::builder().timeout(FORWARD_TIMEOUT).build() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "the browser span relay cannot build its HTTP client; browser spans are dropped");
                return;
            }
        };
        for body in requests {
            let sent = client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header(header::CONTENT_TYPE, PROTOBUF)
                .body(body)
                .send()
                .and_then(|response| response.error_for_status());
            match sent {
                Ok(_) => {
                    self.lane.count_exported(1);
                    self.lane.report(None);
                }
                Err(error) => self.lane.count_failed(1, &error.without_url()),
            }
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `per_second`.
struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl Default for TokenBucket {
    fn default() -> Self {
        Self::new(50, 10.0)
    }
}

impl TokenBucket {
    fn new(burst: u32, per_second: f64) -> Self {
        Self { tokens: f64::from(burst), burst: f64::from(burst), per_second, last: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
