//! One OTLP/HTTP destination (X-Ray's OTLP endpoint, or any collector, Honeycomb included): its own bounded queue
//! (bytes, [`crate::GatewayConfig::queue_bytes`]), its own batches, its own calls in flight, its own retries, so a
//! slow or dead destination never delays another, the console or the UDP path.
//!
//! Exports are queued as protobuf `ExportTraceServiceRequest`s (or `ExportMetricsServiceRequest`s); a batch is
//! their concatenation, which protobuf decodes as one request holding every `resource_spans` (repeated fields of
//! concatenated messages are appended), so batching costs a copy and no re-encoding. The two answers' partial
//! successes have the same wire form (field 1, the count rejected; field 2, the message), read here as the traces
//! one. Retried as the OTLP exporter spec says: connection errors, 429, 502,
//! 503 and 504, after `Retry-After` when the answer has one, else with exponential backoff and jitter; any other
//! answer is final. Whatever does not fit the queue, or is still unsent at the shutdown deadline, is dropped and
//! counted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use rand::Rng;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::counters::{Counters, Lane};
use crate::log_limit::RateLimitedLog;
use crate::sender::FlushDeadline;

/// A batch is sent once it holds this many bytes (or its idle time has passed).
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Calls in flight per destination: enough to hide a round trip at the goal rate, few enough to be polite.
const CONCURRENCY: usize = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Credentials are fetched again this long before they expire.
const CREDENTIALS_REFRESH: Duration = Duration::from_secs(300);

/// One export waiting in a queue.
pub(crate) struct Export {
    /// A protobuf `ExportTraceServiceRequest` (`ExportMetricsServiceRequest` on the metrics lane).
    pub(crate) body: Bytes,
    /// Its spans (data points).
    pub(crate) spans: u64,
}

/// How requests to a destination are authenticated.
pub(crate) enum Auth {
    /// Fixed headers (an API key).
    Headers(Vec<(HeaderName, HeaderValue)>),
    /// SigV4 for service `xray`, with the daemon's credentials.
    SigV4(Box<SigV4>),
}

/// The side of a destination that takes exports; the sending side stops once every clone is dropped and its
/// queue is empty.
#[derive(Clone)]
pub(crate) struct Destination {
    queue: mpsc::UnboundedSender<Export>,
    counters: Counters,
    lane: Lane,
    limit: u64,
}

impl Destination {
    /// Queues `export` unless the queue is full (then its spans are counted as dropped); never waits.
    pub(crate) fn offer(&self, export: Export) -> bool {
        let lane = self.counters.destination(self.lane);
        if !lane.offer(export.spans, export.body.len() as u64, self.limit) {
            return false;
        }
        let (spans, bytes) = (export.spans, export.body.len() as u64);
        if self.queue.send(export).is_err() {
            lane.done(spans, bytes, 0, 0);
            return false;
        }
        true
    }
}

/// What a destination is and how it is reached.
pub(crate) struct Target {
    /// For the log: "X-Ray OTLP endpoint", "OTLP destination".
    pub(crate) name: &'static str,
    pub(crate) url: String,
    pub(crate) auth: Auth,
    pub(crate) client: reqwest::Client,
    pub(crate) lane: Lane,
}

/// Starts a destination's sending task; it ends when every [`Destination`] clone is dropped and the queue is
/// sent (or the deadline has passed).
pub(crate) fn start(
    target: Target,
    counters: Counters,
    limit: u64,
    batch_idle: Duration,
    deadline: FlushDeadline,
) -> (Destination, JoinHandle<()>) {
    let (queue, exports) = mpsc::unbounded_channel();
    let destination = Destination { queue, counters: counters.clone(), lane: target.lane, limit };
    let worker =
        Arc::new(Worker { target, counters, batch_idle, failures_log: RateLimitedLog::new(Duration::from_secs(10)) });
    (destination, tokio::spawn(worker.run(exports, deadline)))
}

struct Worker {
    target: Target,
    counters: Counters,
    batch_idle: Duration,
    failures_log: RateLimitedLog,
}

struct Batch {
    body: Vec<u8>,
    spans: u64,
}

/// How one attempt ended.
enum Outcome {
    /// Accepted; the partial success's rejected spans are refused.
    Sent { rejected: u64 },
    /// Final: retrying cannot help.
    Refused(String),
    /// Worth another attempt, after the server's `Retry-After` if it gave one.
    Retry { why: String, after: Option<Duration> },
}

impl Worker {
    async fn run(self: Arc<Self>, mut exports: mpsc::UnboundedReceiver<Export>, deadline: FlushDeadline) {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(batch) = self.next_batch(&mut exports).await {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = deadline.passed() => {
                    self.give_up(&batch, "no call was free before the shutdown deadline");
                    continue;
                }
            };
            let (worker, deadline) = (self.clone(), deadline.clone());
            tokio::spawn(async move {
                worker.send(&batch, &deadline).await;
                drop(permit);
            });
        }
        let _ = permits.acquire_many(CONCURRENCY as u32).await;
    }

    /// Exports concatenated up to [`MAX_BATCH_BYTES`], waiting at most the idle time after the first.
    async fn next_batch(&self, exports: &mut mpsc::UnboundedReceiver<Export>) -> Option<Batch> {
        let first = exports.recv().await?;
        let mut batch = Batch { body: first.body.to_vec(), spans: first.spans };
        let due = Instant::now() + self.batch_idle;
        while batch.body.len() < MAX_BATCH_BYTES {
            match tokio::time::timeout_at(due, exports.recv()).await {
                Ok(Some(export)) => {
                    batch.body.extend_from_slice(&export.body);
                    batch.spans += export.spans;
                }
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn send(&self, batch: &Batch, deadline: &FlushDeadline) {
        let lane = self.counters.destination(self.target.lane);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let outcome = tokio::select! {
                outcome = self.attempt(&batch.body) => outcome,
                () = deadline.passed() => return self.give_up(batch, "the call was still running at the shutdown deadline"),
            };
            let (why, after) = match outcome {
                Outcome::Sent { rejected } => {
                    let rejected = rejected.min(batch.spans);
                    if rejected > 0 {
                        self.failures_log.warn(&format!(
                            "{} rejected {rejected} {}",
                            self.target.name,
                            self.target.lane.units()
                        ));
                    }
                    lane.done(batch.spans, batch.body.len() as u64, batch.spans - rejected, rejected);
                    return;
                }
                Outcome::Refused(why) => {
                    self.failures_log.warn(&format!(
                        "{} ({}) refused {} {}: {why}",
                        self.target.name,
                        self.target.url,
                        batch.spans,
                        self.target.lane.units()
                    ));
                    lane.done(batch.spans, batch.body.len() as u64, 0, batch.spans);
                    return;
                }
                Outcome::Retry { why, after } => (why, after),
            };
            lane.retried();
            let wait = after.unwrap_or_else(|| jitter(backoff)).min(MAX_BACKOFF);
            self.failures_log.warn(&format!(
                "sending to the {} ({}) failed: {why}; retrying in {wait:?}",
                self.target.name, self.target.url
            ));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = deadline.passed() => return self.give_up(batch, &format!("still failing ({why}) at the shutdown deadline")),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt(&self, body: &[u8]) -> Outcome {
        let request = match self.request(body).await {
            Ok(request) => request,
            Err(why) => return Outcome::Retry { why, after: None },
        };
        let response = match self.target.client.execute(request).await {
            Ok(response) => response,
            Err(error) => return Outcome::Retry { why: error.to_string(), after: None },
        };
        let status = response.status();
        let after = retry_after(response.headers());
        let answer = response.bytes().await.unwrap_or_default();
        match status {
            _ if status.is_success() => {
                let rejected = ExportTraceServiceResponse::decode(answer)
                    .ok()
                    .and_then(|response| response.partial_success)
                    .map_or(0, |partial| u64::try_from(partial.rejected_spans).unwrap_or(0));
                Outcome::Sent { rejected }
            }
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Outcome::Retry { why: format!("answered {status}"), after },
            _ => Outcome::Refused(format!("answered {status}: {}", excerpt(&answer))),
        }
    }

    async fn request(&self, body: &[u8]) -> Result<reqwest::Request, String> {
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.target.url)
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(body.to_vec())
            .map_err(|error| format!("{}: {error}", self.target.url))?;
        match &self.target.auth {
            Auth::Headers(headers) => {
                for (name, value) in headers {
                    request.headers_mut().insert(name.clone(), value.clone());
                }
            }
            Auth::SigV4(signer) => signer.sign(&mut request).await?,
        }
        reqwest::Request::try_from(request).map_err(|error| format!("building the request: {error}"))
    }

    /// Drops a batch that cannot be sent before the daemon stops: counted and logged.
    fn give_up(&self, batch: &Batch, why: &str) {
        self.failures_log.warn(&format!(
            "shutting down: {} {} not sent to the {}: {why}",
            batch.spans,
            self.target.lane.units(),
            self.target.name
        ));
        self.counters.destination(self.target.lane).done(batch.spans, batch.body.len() as u64, 0, 0);
    }
}

/// Signs requests for X-Ray with the daemon's credentials, fetched once and again shortly before they expire (a
/// role's credentials come from STS or the instance metadata service, which must not be asked per request).
pub(crate) struct SigV4 {
    sdk: SdkConfig,
    credentials: Mutex<Option<Credentials>>,
}

impl SigV4 {
    pub(crate) fn new(sdk: SdkConfig) -> Self {
        Self { sdk, credentials: Mutex::new(None) }
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.credentials.lock().await;
        let fresh = |credentials: &Credentials| {
            credentials.expiry().is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIALS_REFRESH)
        };
        if let Some(credentials) = cached.as_ref().filter(|credentials| fresh(credentials)) {
            return Ok(credentials.clone());
        }
        let provider = self.sdk.credentials_provider().ok_or("no AWS credentials are configured")?;
        let credentials = provider.provide_credentials().await.map_err(|error| format!("AWS credentials: {error}"))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    async fn sign(&self, request: &mut http::Request<Vec<u8>>) -> Result<(), String> {
        let credentials = self.credentials().await?;
        let host = request.uri().authority().map(|authority| authority.to_string()).unwrap_or_default();
        request.headers_mut().insert(header::HOST, host.parse().map_err(|_| format!("bad endpoint host {host:?}"))?);
        crate::proxy::sign_with(credentials, &self.sdk, request)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from OTLP servers and falls back to the backoff).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// "Full jitter": a random wait between half the backoff and the backoff.
fn jitter(backoff: Duration) -> Duration {
    let millis = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
}

/// The start of an error answer, for the log.
fn excerpt(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]);
    text.chars().filter(|character| !character.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn concatenated_exports_decode_as_one_request_with_every_span() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let export = |name: &str| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span { name: name.into(), ..Default::default() }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut body = export("a").encode_to_vec();
        body.extend(export("b").encode_to_vec());
        let merged = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let names: Vec<&str> = merged.resource_spans.iter().map(|r| r.scope_spans[0].spans[0].name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
