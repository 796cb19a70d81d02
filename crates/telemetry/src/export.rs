//! Export that never holds up a request.
//!
//! Each exporter (OTLP, X-Ray) runs behind the SDK's batch processor, whose worker thread does the network I/O. In
//! front of it sits a [`Lane`]: a bounded count of spans handed over but not yet taken by an export. When the lane
//! is full, a finished span is dropped on the spot (a counter goes up; nothing waits), so the SDK's own queue never
//! overflows and every loss is counted here. Failed exports (endpoint down, daemon gone) are counted too and
//! swallowed, so the SDK does not log each one; the lane itself reports losses at `warn`, at most once a minute.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::trace::SpanContext;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

/// Losses are reported at most this often.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Counters of one export lane, as [`crate::Telemetry::export_stats`] shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Spans (or relayed requests) handed to the exporter without error.
    pub exported: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Lost because the export failed.
    pub failed: u64,
}

/// A bounded queue count with loss counters, shared by the span processor, the exporter and the relay.
pub(crate) struct Lane {
    name: &'static str,
    capacity: usize,
    queued: AtomicUsize,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    reported: Mutex<Reported>,
}

#[derive(Default)]
struct Reported {
    at: Option<Instant>,
    dropped: u64,
    failed: u64,
}

impl fmt::Debug for Lane {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Lane").field("name", &self.name).field("stats", &self.stats()).finish()
    }
}

impl Lane {
    pub(crate) fn new(name: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            name,
            capacity,
            queued: AtomicUsize::new(0),
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            reported: Mutex::new(Reported::default()),
        })
    }

    /// Takes a place in the queue, or counts a drop and says no.
    pub(crate) fn try_enqueue(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            true
        }
    }

    /// Counts a drop of something that never took a place (the relay's full channel).
    pub(crate) fn count_dropped(&self, count: u64) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
    }

    /// Items that hold a place now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Frees the places of items an export has taken.
    pub(crate) fn dequeued(&self, count: usize) {
        self.queued.fetch_sub(count, Ordering::AcqRel);
    }

    pub(crate) fn count_exported(&self, count: u64) {
        self.exported.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn count_failed(&self, count: u64, error: &dyn fmt::Display) {
        self.failed.fetch_add(count, Ordering::Relaxed);
        self.report(Some(error));
    }

    pub(crate) fn stats(&self) -> LaneStats {
        LaneStats {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Logs new losses at `warn`, at most once per [`REPORT_INTERVAL`]. Called from export threads only, never on
    /// a request's path.
    pub(crate) fn report(&self, last_error: Option<&dyn fmt::Display>) {
        let stats = self.stats();
        let Ok(mut reported) = self.reported.try_lock() else { return };
        let (dropped, failed) = (stats.dropped - reported.dropped, stats.failed - reported.failed);
        let due = reported.at.is_none_or(|at| at.elapsed() >= REPORT_INTERVAL);
        if (dropped > 0 || failed > 0) && due {
            let error = last_error.map(ToString::to_string).unwrap_or_default();
            tracing::warn!(
                exporter = self.name,
                dropped_queue_full = dropped,
                failed_exports = failed,
                last_error = %error,
                "telemetry lost data since the last report; requests are not affected"
            );
            *reported = Reported { at: Some(Instant::now()), dropped: stats.dropped, failed: stats.failed };
        }
    }
}

/// The SDK's batch processor behind a [`Lane`], for the spans its exporter takes.
#[derive(Debug)]
pub(crate) struct BoundedProcessor {
    lane: Arc<Lane>,
    /// Which finished spans go to this exporter (by their trace's sampling decisions), as [`Fanout`] asks.
    takes: fn(&SpanContext) -> bool,
    inner: BatchSpanProcessor,
}

impl BoundedProcessor {
    pub(crate) fn new<E: SpanExporter + 'static>(
        name: &'static str,
        exporter: E,
        capacity: usize,
        takes: fn(&SpanContext) -> bool,
    ) -> Self {
        let lane = Lane::new(name, capacity);
        let exporter = CountingExporter { lane: lane.clone(), inner: exporter };
        // The SDK queue is as large as the lane, so it is never the one that drops. The batch config also reads
        // the standard OTEL_BSP_* variables (schedule delay, batch size).
        let config = BatchConfigBuilder::default().with_max_queue_size(capacity).build();
        Self { lane, takes, inner: BatchSpanProcessor::builder(exporter).with_batch_config(config).build() }
    }

    pub(crate) fn lane(&self) -> Arc<Lane> {
        self.lane.clone()
    }
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // [`Fanout`] only hands over the spans this exporter takes.
        if self.lane.try_enqueue() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Every exporter behind one processor. The SDK clones each finished span once per processor it has (the last one
/// too, dropping the original); this hands each lane that takes the span but the last a clone and the last one the
/// span itself, so two exporters cost one copy of each span on the request's thread, not two, and a span only one
/// exporter takes (a trace X-Ray did not sample) costs no copy.
#[derive(Debug)]
pub(crate) struct Fanout {
    processors: Vec<BoundedProcessor>,
}

impl Fanout {
    pub(crate) fn new(processors: Vec<BoundedProcessor>) -> Self {
        assert!(processors.len() <= 64, "one bit per processor");
        Self { processors }
    }
}

impl SpanProcessor for Fanout {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        for processor in &self.processors {
            processor.on_start(span, cx);
        }
    }

    fn on_end(&self, span: SpanData) {
        // Bit i: processor i takes the span (decided before the span moves to the last one).
        let taking = self.processors.iter().enumerate().fold(0u64, |taking, (index, processor)| {
            if (processor.takes)(&span.span_context) { taking | 1 << index } else { taking }
        });
        let Some(last) = taking.checked_ilog2() else { return };
        for (index, processor) in self.processors.iter().enumerate().take(last as usize) {
            if taking & 1 << index != 0 {
                processor.on_end(span.clone());
            }
        }
        self.processors[last as usize].on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Every processor is flushed even when one fails; the first failure is returned.
        self.processors.iter().map(SpanProcessor::force_flush).fold(Ok(()), Result::and)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.processors.iter().map(|processor| processor.shutdown_with_timeout(timeout)).fold(Ok(()), Result::and)
    }

    fn set_resource(&mut self, resource: &Resource) {
        for processor in &mut self.processors {
            processor.set_resource(resource);
        }
    }
}

/// Frees lane places as batches leave, counts the outcome, and swallows errors (they are counted and reported).
#[derive(Debug)]
struct CountingExporter<E> {
    lane: Arc<Lane>,
    inner: E,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        self.lane.dequeued(count);
        match self.inner.export(batch).await {
            Ok(()) => {
                self.lane.count_exported(count as u64);
                self.lane.report(None);
            }
            Err(error) => self.lane.count_failed(count as u64, &error),
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_lane_drops_and_counts_and_frees_places_as_exports_take_them() {
        let lane = Lane::new("test", 2);
        assert!(lane.try_enqueue());
        assert!(lane.try_enqueue());
        assert!(!lane.try_enqueue());
        assert_eq!(lane.stats().dropped, 1);
        lane.dequeued(2);
        assert!(lane.try_enqueue());
        lane.count_exported(2);
        lane.count_failed(1, &"connection refused");
        assert_eq!(lane.stats(), LaneStats { exported: 2, dropped: 1, failed: 1 });
    }
}
