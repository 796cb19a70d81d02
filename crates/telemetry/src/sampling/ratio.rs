//! The ratio decision both samplers share: read from the trace id, as the OpenTelemetry SDK's ratio sampler reads
//! it, so every service with the same ratio agrees on a trace without asking the others.

use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};

/// Whether `ratio` of traces takes this one.
pub(crate) fn ratio_takes(ratio: f64, trace_id: TraceId) -> bool {
    let sampler = Sampler::TraceIdRatioBased(ratio);
    sampler.should_sample(None, trace_id, "", &SpanKind::Server, &[], &[]).decision == SamplingDecision::RecordAndSample
}
