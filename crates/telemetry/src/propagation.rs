//! Trace context in and out of HTTP headers: W3C `traceparent`/`tracestate`, W3C `baggage` and X-Ray's
//! `X-Amzn-Trace-Id`, all extracted and all injected, so a caller speaking either continues the trace and a callee
//! receives both.
//!
//! On extraction `traceparent` wins when a request carries both (the two normally hold the same ids, since our
//! client injects both from one context). The server answers with `X-Amzn-Trace-Id: Root=...;Sampled=...` as the
//! X-Ray SDKs do: [`xray_response_header`].

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_aws::trace::{MissingSampledBehavior, XrayPropagator};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

/// The X-Ray trace header, lowercase as HTTP/2 sends it.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(propagator);

/// A new composite propagator: X-Ray, then W3C trace context (so it wins), then W3C baggage.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        // A header without `Sampled=` (as a load balancer sends it) continues the trace sampled rather than
        // deferring a decision nobody downstream makes.
        Box::new(XrayPropagator::new().with_missing_sampled_behavior(MissingSampledBehavior::Sampled)),
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

/// The X-Ray form of a trace id: `1-` + 8 hex digits of epoch seconds + `-` + 24 hex digits.
pub fn xray_trace_id(span_context: &SpanContext) -> String {
    let hex = span_context.trace_id().to_string();
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// `Root=<X-Ray trace id>;Sampled=<0|1>` for the span of `cx`, or `None` when there is no valid span.
pub fn xray_response_header(cx: &Context) -> Option<HeaderValue> {
    let span = cx.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let sampled = u8::from(span_context.is_sampled());
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
    fn no_span_no_response_header() {
        assert_eq!(xray_response_header(&Context::new()), None);
    }
}
