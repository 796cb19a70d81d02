//! From the buffer to X-Ray: batches of at most 50 documents, sent when full or one idle time (1 s) after their first
//! document, at most
//! `Concurrency` calls in flight, failures retried with exponential backoff and jitter while the buffer holds them.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_xray::Client;
use aws_sdk_xray::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::counters::{BackendError, Counters, buffered_size};
use crate::log_limit::RateLimitedLog;

/// Most documents in one `PutTraceSegments`, as the API allows.
pub const MAX_BATCH: usize = 50;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a failed call is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Connection problems, timeouts, throttling, 5xx: worth trying again.
    Retry(BackendError),
    /// Other 4xx: the request itself is wrong; trying again cannot help.
    Refused(BackendError),
}

pub(crate) struct Sender {
    pub(crate) client: Client,
    pub(crate) counters: Counters,
    pub(crate) concurrency: usize,
    pub(crate) batch_idle: Duration,
    pub(crate) failures_log: Arc<RateLimitedLog>,
}

/// The instant by which sending must end, known once shutdown starts: calls in flight, retries and batches waiting
/// for a free call all give up then, and what they held is counted as spillover.
#[derive(Clone)]
pub(crate) struct FlushDeadline(watch::Receiver<Option<Instant>>);

impl FlushDeadline {
    /// The deadline and the handle that sets it when shutdown starts.
    pub(crate) fn new() -> (watch::Sender<Option<Instant>>, Self) {
        let (set, deadline) = watch::channel(None);
        (set, Self(deadline))
    }

    /// Completes once the deadline is set and reached; never before shutdown.
    pub(crate) async fn passed(&self) {
        let mut deadline = self.0.clone();
        let Ok(instant) = deadline.wait_for(Option::is_some).await.map(|instant| *instant) else {
            // The daemon is going away without a flush: nothing left to bound.
            return std::future::pending().await;
        };
        tokio::time::sleep_until(instant.expect("waited for it")).await;
    }
}

impl Sender {
    /// Batches and sends everything received on `documents` until it closes and every call has ended (by the
    /// flush deadline at the latest).
    pub(crate) async fn run(self, mut documents: mpsc::UnboundedReceiver<String>, deadline: FlushDeadline) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let this = Arc::new(self);
        while let Some(batch) = this.next_batch(&mut documents).await {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = deadline.passed() => {
                    this.give_up(&batch, "no call to X-Ray was free before the shutdown deadline");
                    continue;
                }
            };
            let (sender, deadline) = (this.clone(), deadline.clone());
            tokio::spawn(async move {
                sender.send(&batch, &deadline).await;
                drop(permit);
            });
        }
        // Every permit back means every call ended; each gives up at the deadline, so this is bounded too.
        let all = u32::try_from(this.concurrency).unwrap_or(u32::MAX);
        let _ = permits.acquire_many(all).await;
    }

    /// Up to [`MAX_BATCH`] documents: the first one waits as long as it takes, the others only until the idle time
    /// has passed since the first (as the official daemon's timer, a steady trickle must not hold a batch back until
    /// it fills). `None` once the channel is closed and empty.
    async fn next_batch(&self, documents: &mut mpsc::UnboundedReceiver<String>) -> Option<Vec<String>> {
        let mut batch = vec![documents.recv().await?];
        let due = Instant::now() + self.batch_idle;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(due, documents.recv()).await {
                Ok(Some(document)) => batch.push(document),
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Sends one batch, retrying what is worth retrying until it goes through or the flush deadline passes.
    async fn send(&self, batch: &[String], deadline: &FlushDeadline) {
        let count = batch.len() as u64;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let call = self.client.put_trace_segments().set_trace_segment_documents(Some(batch.to_vec())).send();
            let result = tokio::select! {
                result = call => result,
                () = deadline.passed() => return self.give_up(batch, "the call was still running at the shutdown deadline"),
            };
            let error = match result {
                Ok(output) => {
                    let unprocessed = output.unprocessed_trace_segments();
                    if !unprocessed.is_empty() {
                        let codes: Vec<String> = unprocessed
                            .iter()
                            .map(|segment| {
                                format!(
                                    "{}: {} {}",
                                    segment.id().unwrap_or("?"),
                                    segment.error_code().unwrap_or("?"),
                                    segment.message().unwrap_or("")
                                )
                            })
                            .collect();
                        self.failures_log.warn(&format!(
                            "X-Ray refused {} segment(s): {}",
                            codes.len(),
                            codes.join("; ")
                        ));
                    }
                    let refused = unprocessed.len() as u64;
                    self.counters.rejected(refused);
                    self.counters.sent(count - refused);
                    break;
                }
                Err(error) => error,
            };
            match classify(&error) {
                Failure::Refused(kind) => {
                    self.counters.backend_error(kind);
                    self.failures_log.warn(&format!("X-Ray refused a batch of {count} segment(s): {error:?}"));
                    self.counters.rejected(count);
                    break;
                }
                Failure::Retry(kind) => {
                    self.counters.backend_error(kind);
                    self.failures_log.warn(&format!("sending to X-Ray failed ({kind:?}); retrying"));
                    tokio::select! {
                        () = tokio::time::sleep(jitter(backoff)) => {}
                        () = deadline.passed() => return self.give_up(batch, &format!("X-Ray still failing ({kind:?}) at the shutdown deadline")),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.counters.release(buffered_size(batch));
    }

    /// Drops a batch that cannot be sent before the daemon stops: counted as spillover and logged.
    fn give_up(&self, batch: &[String], why: &str) {
        self.failures_log.warn(&format!("shutting down: {} segment(s) not sent: {why}", batch.len()));
        self.counters.spillover(batch.len() as u64);
        self.counters.release(buffered_size(batch));
    }
}

/// "Full jitter": a random wait up to the backoff, so many daemons do not retry in step.
fn jitter(backoff: Duration) -> Duration {
    let millis = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
}

fn classify<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Failure {
    match error {
        SdkError::TimeoutError(_) => Failure::Retry(BackendError::Timeout),
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                Failure::Retry(BackendError::Timeout)
            } else if failure.is_io() {
                let text = format!("{failure:?}").to_ascii_lowercase();
                if text.contains("dns") || text.contains("resolve") || text.contains("lookup") {
                    Failure::Retry(BackendError::UnknownHost)
                } else {
                    Failure::Retry(BackendError::ConnectionRefused)
                }
            } else {
                Failure::Retry(BackendError::Other)
            }
        }
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = error.raw_response().map(|response| response.status().as_u16()).unwrap_or(0);
            let throttled = status == 429
                || error.code().is_some_and(|code| code.contains("Throttl") || code == "TooManyRequestsException");
            match status {
                _ if throttled => Failure::Retry(BackendError::Http4xx),
                500..=599 => Failure::Retry(BackendError::Http5xx),
                400..=499 => Failure::Refused(BackendError::Http4xx),
                _ => Failure::Retry(BackendError::Other),
            }
        }
        _ => Failure::Retry(BackendError::Other),
    }
}
