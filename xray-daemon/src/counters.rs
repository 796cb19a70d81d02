//! What the daemon counts: the official telemetry counters, kept exact so that at rest
//! `received = sent + spillover + rejected`; and the OTLP gateway's, per destination, so that at rest
//! `queued = sent + refused + dropped` (spans a full queue never took are dropped too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What holding one document costs beyond its text: the `String` and its slot in the queue, rounded up. Counted
/// so that a flood of tiny documents cannot exceed the bound either.
const DOCUMENT_OVERHEAD_BYTES: u64 = 64;

/// The bytes one buffered document counts for against the limit.
pub(crate) fn document_size(document: &str) -> u64 {
    document.len() as u64 + DOCUMENT_OVERHEAD_BYTES
}

/// The bytes a batch of buffered documents counts for.
pub(crate) fn buffered_size(batch: &[String]) -> u64 {
    batch.iter().map(|document| document_size(document)).sum()
}

/// The live counters, shared by every task. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    received: AtomicU64,
    sent: AtomicU64,
    spillover: AtomicU64,
    rejected: AtomicU64,
    timeout: AtomicU64,
    connection_refused: AtomicU64,
    http_4xx: AtomicU64,
    http_5xx: AtomicU64,
    unknown_host: AtomicU64,
    other: AtomicU64,
    buffered_bytes: AtomicU64,
    peak_buffered_bytes: AtomicU64,
    otlp_received_spans: AtomicU64,
    otlp_rejected_spans: AtomicU64,
    otlp_bad_requests: AtomicU64,
    xray_otlp: DestinationCounters,
    fan_out: DestinationCounters,
    metrics: DestinationCounters,
}

/// One OTLP destination's counters.
#[derive(Debug, Default)]
pub(crate) struct DestinationCounters {
    offered: AtomicU64,
    sent: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    queued_bytes: AtomicU64,
    peak_queued_bytes: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Datagrams received on UDP, valid or not.
    pub received: u64,
    /// Segments X-Ray accepted.
    pub sent: u64,
    /// Segments dropped because the buffer was full (or still unsent when shutdown ran out of time).
    pub spillover: u64,
    /// Malformed datagrams, and segments X-Ray refused.
    pub rejected: u64,
    pub backend: BackendErrors,
    /// Bytes of documents waiting now (with their bookkeeping), and the most there ever were.
    pub buffered_bytes: u64,
    pub peak_buffered_bytes: u64,
    pub otlp: OtlpSnapshot,
}

/// What the OTLP gateway counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpSnapshot {
    /// Spans received on `POST /v1/traces` in requests that decoded.
    pub received_spans: u64,
    /// Spans refused in a partial success (no valid trace or span id).
    pub rejected_spans: u64,
    /// Requests answered 400, 413 or 415 (malformed, oversized, or in an unknown format).
    pub bad_requests: u64,
    /// X-Ray's OTLP endpoint (`--xray-delivery otlp`).
    pub xray: DestinationSnapshot,
    /// The OTLP destination of `OTEL_EXPORTER_OTLP_*`.
    pub fan_out: DestinationSnapshot,
    /// That destination's metrics endpoint, in data points (received on `POST /v1/metrics`).
    pub metrics: DestinationSnapshot,
}

/// One OTLP destination at one moment: at rest, `offered = sent + refused + dropped`. Counted in spans (in data
/// points on the metrics lane).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestinationSnapshot {
    /// Spans handed to the destination.
    pub offered: u64,
    /// Spans it accepted.
    pub sent: u64,
    /// Spans it refused (a 4xx other than 429, or rejected in its partial success).
    pub refused: u64,
    /// Spans its full queue did not take, or still unsent at the shutdown deadline.
    pub dropped: u64,
    /// Attempts retried (connection errors, 429, 502, 503, 504).
    pub retries: u64,
    /// Bytes waiting now, and the most there ever were.
    pub queued_bytes: u64,
    pub peak_queued_bytes: u64,
}

/// Which OTLP destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Xray,
    FanOut,
    Metrics,
}

impl Lane {
    /// What the lane counts, for the log.
    pub(crate) fn units(self) -> &'static str {
        match self {
            Lane::Xray | Lane::FanOut => "span(s)",
            Lane::Metrics => "data point(s)",
        }
    }
}

/// Failed calls to X-Ray, by kind: the official `BackendConnectionErrors`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendErrors {
    pub timeout: u64,
    pub connection_refused: u64,
    pub http_4xx: u64,
    pub http_5xx: u64,
    pub unknown_host: u64,
    pub other: u64,
}

/// The kind of a failed call to X-Ray.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendError {
    Timeout,
    ConnectionRefused,
    Http4xx,
    Http5xx,
    UnknownHost,
    Other,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        let inner = &self.0;
        Snapshot {
            received: load(&inner.received),
            sent: load(&inner.sent),
            spillover: load(&inner.spillover),
            rejected: load(&inner.rejected),
            backend: BackendErrors {
                timeout: load(&inner.timeout),
                connection_refused: load(&inner.connection_refused),
                http_4xx: load(&inner.http_4xx),
                http_5xx: load(&inner.http_5xx),
                unknown_host: load(&inner.unknown_host),
                other: load(&inner.other),
            },
            buffered_bytes: load(&inner.buffered_bytes),
            peak_buffered_bytes: load(&inner.peak_buffered_bytes),
            otlp: OtlpSnapshot {
                received_spans: load(&inner.otlp_received_spans),
                rejected_spans: load(&inner.otlp_rejected_spans),
                bad_requests: load(&inner.otlp_bad_requests),
                xray: inner.xray_otlp.snapshot(),
                fan_out: inner.fan_out.snapshot(),
                metrics: inner.metrics.snapshot(),
            },
        }
    }

    pub(crate) fn otlp_received(&self, spans: u64, rejected: u64) {
        self.0.otlp_received_spans.fetch_add(spans, Ordering::SeqCst);
        self.0.otlp_rejected_spans.fetch_add(rejected, Ordering::SeqCst);
    }

    pub(crate) fn otlp_bad_request(&self) {
        self.0.otlp_bad_requests.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn destination(&self, lane: Lane) -> &DestinationCounters {
        match lane {
            Lane::Xray => &self.0.xray_otlp,
            Lane::FanOut => &self.0.fan_out,
            Lane::Metrics => &self.0.metrics,
        }
    }

    pub(crate) fn received(&self) {
        self.0.received.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn sent(&self, segments: u64) {
        self.0.sent.fetch_add(segments, Ordering::SeqCst);
    }

    pub(crate) fn spillover(&self, segments: u64) {
        self.0.spillover.fetch_add(segments, Ordering::SeqCst);
    }

    pub(crate) fn rejected(&self, segments: u64) {
        self.0.rejected.fetch_add(segments, Ordering::SeqCst);
    }

    pub(crate) fn backend_error(&self, kind: BackendError) {
        let inner = &self.0;
        let counter = match kind {
            BackendError::Timeout => &inner.timeout,
            BackendError::ConnectionRefused => &inner.connection_refused,
            BackendError::Http4xx => &inner.http_4xx,
            BackendError::Http5xx => &inner.http_5xx,
            BackendError::UnknownHost => &inner.unknown_host,
            BackendError::Other => &inner.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Reserves room for `bytes` in a buffer of `limit` bytes; `false` when it does not fit.
    pub(crate) fn reserve(&self, bytes: u64, limit: u64) -> bool {
        reserve(&self.0.buffered_bytes, &self.0.peak_buffered_bytes, bytes, limit)
    }

    pub(crate) fn release(&self, bytes: u64) {
        self.0.buffered_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }
}

/// Adds `bytes` to `held` unless that would pass `limit`, keeping `peak` the most ever held.
fn reserve(held: &AtomicU64, peak: &AtomicU64, bytes: u64, limit: u64) -> bool {
    let mut current = held.load(Ordering::SeqCst);
    loop {
        if current + bytes > limit {
            return false;
        }
        match held.compare_exchange(current, current + bytes, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                peak.fetch_max(current + bytes, Ordering::SeqCst);
                return true;
            }
            Err(actual) => current = actual,
        }
    }
}

impl DestinationCounters {
    fn snapshot(&self) -> DestinationSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        DestinationSnapshot {
            offered: load(&self.offered),
            sent: load(&self.sent),
            refused: load(&self.refused),
            dropped: load(&self.dropped),
            retries: load(&self.retries),
            queued_bytes: load(&self.queued_bytes),
            peak_queued_bytes: load(&self.peak_queued_bytes),
        }
    }

    /// Takes `spans` encoded in `bytes` if the queue (of `limit` bytes) has room; counts them dropped if not.
    pub(crate) fn offer(&self, spans: u64, bytes: u64, limit: u64) -> bool {
        self.offered.fetch_add(spans, Ordering::SeqCst);
        let fits = reserve(&self.queued_bytes, &self.peak_queued_bytes, bytes, limit);
        if !fits {
            self.dropped.fetch_add(spans, Ordering::SeqCst);
        }
        fits
    }

    /// A batch of `spans` in `bytes` is done with: `sent` accepted, `refused` refused, the rest dropped.
    pub(crate) fn done(&self, spans: u64, bytes: u64, sent: u64, refused: u64) {
        self.sent.fetch_add(sent, Ordering::SeqCst);
        self.refused.fetch_add(refused, Ordering::SeqCst);
        self.dropped.fetch_add(spans.saturating_sub(sent + refused), Ordering::SeqCst);
        self.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::SeqCst);
    }
}

impl Snapshot {
    /// What happened between `earlier` and `self`, for one telemetry record.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let b = &self.backend;
        let e = &earlier.backend;
        Snapshot {
            received: self.received - earlier.received,
            sent: self.sent - earlier.sent,
            spillover: self.spillover - earlier.spillover,
            rejected: self.rejected - earlier.rejected,
            backend: BackendErrors {
                timeout: b.timeout - e.timeout,
                connection_refused: b.connection_refused - e.connection_refused,
                http_4xx: b.http_4xx - e.http_4xx,
                http_5xx: b.http_5xx - e.http_5xx,
                unknown_host: b.unknown_host - e.unknown_host,
                other: b.other - e.other,
            },
            buffered_bytes: self.buffered_bytes,
            peak_buffered_bytes: self.peak_buffered_bytes,
            otlp: self.otlp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_never_holds_more_than_its_limit() {
        let counters = Counters::default();
        assert!(counters.reserve(60, 100));
        assert!(!counters.reserve(41, 100));
        assert!(counters.reserve(40, 100));
        counters.release(60);
        assert!(counters.reserve(60, 100));
        let snapshot = counters.snapshot();
        assert_eq!((snapshot.buffered_bytes, snapshot.peak_buffered_bytes), (100, 100));
    }

    #[test]
    fn an_otlp_queue_never_holds_more_than_its_limit_and_counts_what_it_drops() {
        let counters = Counters::default();
        let lane = counters.destination(Lane::FanOut);
        assert!(lane.offer(3, 60, 100));
        assert!(!lane.offer(5, 41, 100));
        lane.done(3, 60, 2, 1);
        let snapshot = counters.snapshot().otlp.fan_out;
        assert_eq!((snapshot.offered, snapshot.sent, snapshot.refused, snapshot.dropped), (8, 2, 1, 5));
        assert_eq!((snapshot.queued_bytes, snapshot.peak_queued_bytes), (0, 60));
    }
}
