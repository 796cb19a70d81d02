//! From the buffer to X-Ray: batches of at most 50 documents, sent when full or after the idle time, at most
//! `Concurrency` calls in flight, failures retried with exponential backoff and jitter while the buffer holds them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_xray::Client;
use aws_sdk_xray::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rand::Rng;
use tokio::sync::{Semaphore, mpsc};

use crate::counters::{BackendError, Counters};
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

impl Sender {
    /// Batches and sends everything received on `documents` until it closes, then waits up to `flush_timeout`
    /// for the calls in flight; what is still unsent then is counted as spillover.
    pub(crate) async fn run(self, mut documents: mpsc::UnboundedReceiver<String>, flush_timeout: Duration) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let this = Arc::new(self);
        let mut closed = false;
        // Set once shutdown starts: retries stop at this instant.
        let deadline: Arc<std::sync::OnceLock<Instant>> = Arc::default();
        while !closed {
            let Some(first) = documents.recv().await else { break };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout(this.batch_idle, documents.recv()).await {
                    Ok(Some(document)) => batch.push(document),
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_idle) => break,
                }
            }
            if closed {
                let _ = deadline.set(Instant::now() + flush_timeout);
            }
            let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (sender, deadline) = (this.clone(), deadline.clone());
            tokio::spawn(async move {
                sender.send(batch, &deadline).await;
                drop(permit);
            });
        }
        let _ = deadline.set(Instant::now() + flush_timeout);
        // Every permit back means every call finished.
        let all = u32::try_from(this.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(flush_timeout + Duration::from_secs(1), permits.acquire_many(all)).await;
    }

    async fn send(&self, batch: Vec<String>, deadline: &std::sync::OnceLock<Instant>) {
        let bytes: u64 = batch.iter().map(|document| document.len() as u64).sum();
        let count = batch.len() as u64;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = self.client.put_trace_segments().set_trace_segment_documents(Some(batch.clone())).send().await;
            match result {
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
                Err(error) => {
                    let failure = classify(&error);
                    let (Failure::Retry(kind) | Failure::Refused(kind)) = failure;
                    self.counters.backend_error(kind);
                    let give_up = deadline.get().is_some_and(|deadline| Instant::now() + backoff > *deadline);
                    match failure {
                        Failure::Refused(_) => {
                            self.failures_log.warn(&format!("X-Ray refused a batch of {count} segment(s): {error:?}"));
                            self.counters.rejected(count);
                            break;
                        }
                        Failure::Retry(_) if give_up => {
                            self.failures_log
                                .warn(&format!("shutting down: {count} segment(s) could not be sent ({kind:?})"));
                            self.counters.spillover(count);
                            break;
                        }
                        Failure::Retry(_) => {
                            self.failures_log.warn(&format!("sending to X-Ray failed ({kind:?}); retrying"));
                            tokio::time::sleep(jitter(backoff)).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            }
        }
        self.counters.release(bytes);
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
