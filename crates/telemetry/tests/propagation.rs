//! A caller's trace is continued, whichever header it sends.

mod support;

use support::harness;
use test_support::traced::{xray_header, xray_trace_id};

#[tokio::test]
async fn an_incoming_traceparent_is_continued() {
    let test = harness(&[]).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = test.get("/api/status/204", &[("traceparent", &format!("00-{trace}-{parent}-01"))]).await;
    assert_eq!(xray_header(&response), format!("Root={};Sampled=1", xray_trace_id(trace)));

    let server = test.server_span("/api/status/204").await;
    assert_eq!((server.trace_id().as_str(), server.parent_span_id().as_str()), (trace, parent));
    let segment = test.segment_of(trace, "the continued segment", |_| true).await;
    assert_eq!(segment.trace_id(), Some(xray_trace_id(trace).as_str()));
    assert_eq!(segment.parent_id(), Some(parent));
}

#[tokio::test]
async fn an_incoming_xray_header_is_continued() {
    let test = harness(&[]).await;
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let response = test.get("/api/status/204", &[("x-amzn-trace-id", header)]).await;
    assert_eq!(xray_header(&response), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");

    let server = test.server_span("/api/status/204").await;
    assert_eq!(server.trace_id(), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(server.parent_span_id(), "53995c3f42cd8ad8");
    let segment = test.segment_of(&server.trace_id(), "the continued segment", |_| true).await;
    assert_eq!(segment.parent_id(), Some("53995c3f42cd8ad8"));
}
