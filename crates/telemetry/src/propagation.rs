//! Trace context in and out of HTTP headers: W3C `traceparent`/`tracestate`, W3C `baggage` and X-Ray's
//! `X-Amzn-Trace-Id`, all extracted and all injected, so a caller speaking either continues the trace and a callee
//! receives both.
//!
//! On extraction `traceparent` wins when a request carries both (the two normally hold the same ids, since our
//! client injects both from one context). The server answers with `X-Amzn-Trace-Id: Root=...;Sampled=...` as the
//! X-Ray SDKs do: [`xray_response_header`].
//!
//! X-Ray's `Sampled=` is X-Ray's decision, not OTLP's (see [`crate::sampling`]): it is written from the trace's X-Ray
//! decision, and read into it (`tracestate` entry `xray`); a caller known only by `X-Amzn-Trace-Id` leaves OTLP's
//! decision to this service.

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId};
use opentelemetry_aws::trace::{MissingSampledBehavior, XrayPropagator};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::sampling::{OtlpDecision, TraceDecisions, XrayDecision, xray_sampled};

/// The X-Ray trace header, lowercase as HTTP/2 sends it.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(propagator);

/// A new composite propagator: X-Ray, then W3C trace context (so it wins), then W3C baggage.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(XrayDecisions::default()),
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// The context the request's headers carry, or an empty one: never the caller's current context, so a request
/// without trace headers starts a new trace.
pub fn extract(headers: &HeaderMap) -> Context {
    PROPAGATOR.extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// Writes `cx`'s trace context into `headers` in every format.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    PROPAGATOR.inject_context(cx, &mut HeaderInjector(headers));
}

/// `opentelemetry-aws`'s X-Ray propagator with `Sampled=` standing for the trace's X-Ray decision.
#[derive(Debug)]
struct XrayDecisions {
    inner: XrayPropagator,
}

impl Default for XrayDecisions {
    fn default() -> Self {
        // `Sampled=` missing or `?` (as a load balancer sends it) comes out deferred: the decision is this service's.
        Self { inner: XrayPropagator::new().with_missing_sampled_behavior(MissingSampledBehavior::Deferred) }
    }
}

/// The trace flag `opentelemetry-aws` sets for a deferred decision (not exported by the crate; the propagation
/// tests pin it).
const DEFERRED: u8 = 0x02;

impl TextMapPropagator for XrayDecisions {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        let trace_state = span_context.trace_state();
        if !TraceDecisions::present_in(trace_state) {
            return self.inner.inject_context(cx, injector);
        }
        let flags = if xray_sampled(span_context) { TraceFlags::SAMPLED } else { TraceFlags::default() };
        // The inner propagator writes trace state entries into the header as fields: X-Ray's decision is `Sampled=`,
        // OTLP's is none of X-Ray's business.
        let trace_state = TraceDecisions::remove(trace_state);
        let as_xray_sees_it = SpanContext::new(
            span_context.trace_id(),
            span_context.span_id(),
            flags,
            span_context.is_remote(),
            trace_state,
        );
        self.inner.inject_context(&Context::new().with_remote_span_context(as_xray_sees_it), injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let extracted = self.inner.extract_with_context(cx, extractor);
        let span = extracted.span();
        let caller = span.span_context();
        // A load balancer sends a trace id without a parent (`Root=` only): that still continues the trace.
        if caller.trace_id() == TraceId::INVALID || !caller.is_remote() {
            return extracted;
        }
        // The header speaks for X-Ray only: `Sampled=` is X-Ray's decision, and OTLP makes its own (`otlp=?`), so a
        // load balancer's header neither forces nor stops OTLP's sampling.
        let flags = caller.trace_flags();
        let xray = match (flags.is_sampled(), flags.to_u8() & DEFERRED != 0) {
            (true, _) => XrayDecision::Sampled,
            (false, true) => XrayDecision::Undecided,
            (false, false) => XrayDecision::NotSampled,
        };
        let trace_state = TraceDecisions { xray, otlp: OtlpDecision::Undecided }.write(caller.trace_state());
        let caller = SpanContext::new(caller.trace_id(), caller.span_id(), TraceFlags::SAMPLED, true, trace_state);
        cx.with_remote_span_context(caller)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.inner.fields()
    }
}

/// The X-Ray form of a trace id: `1-` + 8 hex digits of epoch seconds + `-` + 24 hex digits.
pub fn xray_trace_id(span_context: &SpanContext) -> String {
    let hex = span_context.trace_id().to_string();
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// `Root=<X-Ray trace id>;Sampled=<0|1>` for the span of `cx` (`Sampled=` says whether X-Ray gets the trace), or
/// `None` when there is no valid span.
pub fn xray_response_header(cx: &Context) -> Option<HeaderValue> {
    let span = cx.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let sampled = u8::from(xray_sampled(span_context));
    // Written at once into the string the header value takes over (one allocation per response).
    let id = u128::from_be_bytes(span_context.trace_id().to_bytes());
    let (seconds, rest) = (id >> 96, id & ((1 << 96) - 1));
    HeaderValue::try_from(format!("Root=1-{seconds:08x}-{rest:024x};Sampled={sampled}")).ok()
}

#[cfg(test)]
mod tests {
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;
    use crate::sampling::{OTLP_DECISION_KEY, XRAY_DECISION_KEY};

    const TRACE: &str = "5759e988bd862e3fe1be46a994272793";

    fn remote(headers: &[(&str, &str)]) -> SpanContext {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        extract(&map).span().span_context().clone()
    }

    #[test]
    fn either_header_alone_is_continued() {
        let w3c = remote(&[("traceparent", &format!("00-{TRACE}-53995c3f42cd8ad8-01"))]);
        assert_eq!(w3c.trace_id().to_string(), TRACE);
        assert_eq!(w3c.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(w3c.is_sampled() && w3c.is_remote());

        let xray = remote(&[(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )]);
        assert_eq!(xray.trace_id().to_string(), TRACE);
        assert_eq!(xray.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(xray.is_sampled() && xray.is_remote());
    }

    #[test]
    fn traceparent_wins_when_both_are_sent() {
        let both = remote(&[
            ("x-amzn-trace-id", "Root=1-11111111-111111111111111111111111;Parent=1111111111111111;Sampled=1"),
            ("traceparent", &format!("00-{TRACE}-53995c3f42cd8ad8-01")),
        ]);
        assert_eq!(both.trace_id().to_string(), TRACE);
    }

    #[test]
    fn an_xray_header_without_sampled_is_continued_sampled() {
        let xray = remote(&[("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")]);
        assert!(xray.is_sampled());
    }

    #[test]
    fn inject_writes_both_formats_and_baggage() {
        let span_context = SpanContext::new(
            TraceId::from_hex(TRACE).unwrap(),
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let cx = Context::new()
            .with_remote_span_context(span_context)
            .with_baggage(vec![opentelemetry::KeyValue::new("user", "andrewbrown")]);
        let mut headers = HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(headers["traceparent"], format!("00-{TRACE}-53995c3f42cd8ad8-01"));
        assert_eq!(headers[XRAY_HEADER], "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(headers["baggage"], "user=andrewbrown");
        assert_eq!(xray_response_header(&cx).unwrap(), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    }

    #[test]
    fn sampled_is_the_xray_decision_in_and_out() {
        let declined =
            remote(&[(XRAY_HEADER, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")]);
        assert!(declined.is_sampled(), "recorded, unless OTLP declines it here");
        assert_eq!(declined.trace_state().get(XRAY_DECISION_KEY), Some("0"));
        assert_eq!(declined.trace_state().get(OTLP_DECISION_KEY), Some("?"), "OTLP decides here");
        let taken =
            remote(&[(XRAY_HEADER, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")]);
        assert_eq!(taken.trace_state().get(XRAY_DECISION_KEY), Some("1"));
        let undecided = remote(&[(XRAY_HEADER, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")]);
        assert_eq!(undecided.trace_state().get(XRAY_DECISION_KEY), None, "this service decides");
        let balancer = remote(&[(XRAY_HEADER, "Root=1-5759e988-bd862e3fe1be46a994272793")]);
        assert_eq!(balancer.trace_id().to_string(), TRACE, "a load balancer's trace is continued");
        assert_eq!(balancer.trace_state().get(OTLP_DECISION_KEY), Some("?"));

        // Spans of this service: one only X-Ray takes, then one only OTLP takes.
        let span = |trace_state: &str| {
            let trace_id = TraceId::from_hex(TRACE).unwrap();
            let span_id = SpanId::from_hex("53995c3f42cd8ad8").unwrap();
            let context = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, trace_state.parse().unwrap());
            Context::new().with_remote_span_context(context)
        };
        let mut headers = HeaderMap::new();
        inject(&span("otlp=0,xray=1"), &mut headers);
        assert_eq!(headers[XRAY_HEADER], "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(headers["tracestate"], "otlp=0,xray=1", "downstream services keep both decisions");
        let cx = span("xray=0");
        let mut headers = HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(headers[XRAY_HEADER], "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0");
        assert_eq!(headers["traceparent"], format!("00-{TRACE}-53995c3f42cd8ad8-01"), "recorded for OTLP");
        assert_eq!(headers["tracestate"], "xray=0");
        assert_eq!(xray_response_header(&cx).unwrap(), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0");
        let w3c_caller =
            remote(&[("traceparent", &format!("00-{TRACE}-53995c3f42cd8ad8-01")), ("tracestate", "xray=0")]);
        assert_eq!(w3c_caller.trace_state().get(XRAY_DECISION_KEY), Some("0"), "our own services' decision");
    }

    #[test]
    fn no_span_no_response_header() {
        assert_eq!(xray_response_header(&Context::new()), None);
    }
}
