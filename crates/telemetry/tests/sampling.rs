//! Which traces OTLP and X-Ray get: each by its own decision, a caller's decision obeyed, X-Ray's rules local or
//! the daemon's (with each rule's counts reported back). Every wait is on the event that proves the condition (a
//! report naming the rule, a segment arriving); the timeouts are safety nets.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cruddur_telemetry::Telemetry;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use support::{SamplingApi, harness, sampling_rule};
use test_support::otlp::ReceivedSpan;
use test_support::traced::{TracedApp, is_lower_hex, xray_header};
use test_support::udp_sink::{Segment, UdpSink};
use xray_protocol::SamplingTargetsRequest;

/// A quarter of the traces, by rate alone: no reservoir, so how fast requests come does not matter.
const XRAY_QUARTER: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 0.25}}"#;
const XRAY_NEVER: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 0.0}}"#;

/// How long a wait may take before the test gives up: far beyond what any machine needs.
const SAFETY_NET: Duration = Duration::from_secs(120);
/// How often a waiting test sends a request that the awaited report will count.
const POLL: Duration = Duration::from_millis(100);

/// Waits for `wanted`'s segments, then returns the trace ids (OTLP form) of every segment the sink holds.
async fn xray_traces_after(test: &TracedApp<Telemetry>, wanted: &[String]) -> BTreeSet<String> {
    test.flush();
    for trace in wanted {
        test.segment_of(trace, "a sampled request's segment", |_| true).await;
    }
    test.sink.segments().iter().filter_map(Segment::otlp_trace_id).collect()
}

/// Sends requests to `/api/status/204` until a report to `api` counts one under `rule`: the event that proves the
/// daemon's rule is in force (only rules in force are counted; reports go every 10 s).
async fn wait_for_a_report_of(test: &TracedApp<Telemetry>, api: &SamplingApi, rule: &str) {
    let deadline = Instant::now() + SAFETY_NET;
    while !reported_counts(&api.reports()).contains_key(rule) {
        assert!(Instant::now() < deadline, "no report counted {rule}: {:?}", api.reports());
        test.get("/api/status/204", &[]).await;
        tokio::time::sleep(POLL).await;
    }
}

/// The OTLP trace id in an `X-Amzn-Trace-Id` response header, and its `Sampled=` flag.
fn answered_trace(response: &reqwest::Response) -> (String, bool) {
    let header = xray_header(response);
    let root = header.strip_prefix("Root=1-").and_then(|rest| rest.split(';').next()).expect("a Root field");
    (root.replace('-', ""), header.ends_with(";Sampled=1"))
}

/// Per rule: requests, sampled, borrowed, summed over `reports`.
fn reported_counts(reports: &[SamplingTargetsRequest]) -> BTreeMap<String, [u64; 3]> {
    let mut counts = BTreeMap::<String, [u64; 3]>::new();
    for document in reports.iter().flat_map(|report| &report.sampling_statistics_documents) {
        let total = counts.entry(document.rule_name.clone()).or_default();
        let reported = [document.request_count, document.sampled_count, document.borrow_count];
        for (sum, count) in total.iter_mut().zip(reported) {
            *sum += count;
        }
    }
    counts
}

#[tokio::test]
async fn otlp_gets_every_request_and_xray_the_sample_its_rule_takes() {
    let test = harness(&[("AWS_XRAY_SAMPLING_RULES", XRAY_QUARTER)]).await;
    const REQUESTS: usize = 40;
    let mut answered = Vec::new();
    for _ in 0..REQUESTS {
        answered.push(answered_trace(&test.get("/api/status/204", &[]).await));
    }
    let sampled: Vec<String> =
        answered.iter().filter(|(_, sampled)| *sampled).map(|(trace, _)| trace.clone()).collect();
    // A quarter of 40 is 10 on average; none or half would be a broken rate (1 in 100,000 by chance).
    assert!(!sampled.is_empty() && sampled.len() < REQUESTS / 2, "{} of {REQUESTS} sampled", sampled.len());

    test.flush();
    let servers = test
        .receiver
        .wait_for_spans("of the requests", REQUESTS, |span| {
            span.string_attribute("url.path") == Some("/api/status/204")
        })
        .await;
    assert_eq!(servers.len(), REQUESTS, "OTLP gets every request");
    let in_xray = xray_traces_after(&test, &sampled).await;
    assert_eq!(in_xray, sampled.iter().cloned().collect(), "X-Ray gets exactly the requests answered Sampled=1");
}

#[tokio::test]
async fn otlp_takes_its_ratio_of_requests_weighted_for_honeycomb_and_xray_its_own() {
    // X-Ray: every trace (the harness's rules); OTLP: a quarter, by the standard variables.
    let sampler = [("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")];
    let test = harness(&sampler).await;
    const REQUESTS: usize = 40;
    let mut traces = Vec::new();
    for _ in 0..REQUESTS {
        let (trace, sampled) = answered_trace(&test.get("/api/status/204", &[]).await);
        assert!(sampled, "X-Ray takes every trace");
        traces.push(trace);
    }
    assert_eq!(xray_traces_after(&test, &traces).await.len(), REQUESTS, "X-Ray got them all");

    test.flush();
    let in_otlp: Vec<ReceivedSpan> = test
        .receiver
        .spans()
        .into_iter()
        .filter(|span| span.kind() == SpanKind::Server && span.string_attribute("url.path") == Some("/api/status/204"))
        .collect();
    // A quarter of 40 is 10 on average; none or over half would be a broken ratio.
    assert!((1..=REQUESTS / 2).contains(&in_otlp.len()), "{} of {REQUESTS} in OTLP", in_otlp.len());
    for span in &in_otlp {
        assert!(traces.contains(&span.trace_id()));
        assert_eq!(span.int_attribute("SampleRate"), Some(4), "Honeycomb weights each by 1 in 4");
    }
}

#[tokio::test]
async fn a_callers_xray_decision_is_obeyed_and_a_browser_gets_this_services() {
    let test = harness(&[("AWS_XRAY_SAMPLING_RULES", XRAY_NEVER)]).await;
    let taken = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let (taken, sampled) = answered_trace(&test.get("/api/status/204", &[("x-amzn-trace-id", taken)]).await);
    assert!(sampled, "the caller sampled it for X-Ray, whatever this service's rule says");
    let browser = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (browser, sampled) = answered_trace(&test.get("/api/status/204", &[("traceparent", browser)]).await);
    assert!(!sampled, "a W3C caller makes no X-Ray decision: this service's rule does");

    test.span_in(&browser, "GET /api/status/{code}").await;
    assert_eq!(xray_traces_after(&test, std::slice::from_ref(&taken)).await, [taken].into());

    let test = harness(&[]).await;
    let declined = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
    let (declined, sampled) = answered_trace(&test.get("/api/status/204", &[("x-amzn-trace-id", declined)]).await);
    assert!(!sampled, "the caller declined it for X-Ray");
    let (fresh, _) = answered_trace(&test.get("/api/status/204", &[]).await);
    test.span_in(&declined, "GET /api/status/{code}").await;
    assert_eq!(xray_traces_after(&test, std::slice::from_ref(&fresh)).await, [fresh].into(), "OTLP has it, X-Ray not");
}

#[tokio::test]
async fn a_load_balancers_xray_header_neither_forces_nor_stops_otlps_own_sampling() {
    // OTLP: only what callers recorded; X-Ray: every trace.
    let test = harness(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")]).await;
    let balancer = "Root=1-5759e988-bd862e3fe1be46a994272793";
    let (balanced, sampled) = answered_trace(&test.get("/api/status/204", &[("x-amzn-trace-id", balancer)]).await);
    assert!(sampled, "X-Ray decides it here");
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (recorded, _) = answered_trace(&test.get("/api/status/204", &[("traceparent", caller)]).await);

    test.span_in(&recorded, "GET /api/status/{code}").await;
    assert!(test.receiver.spans().iter().all(|span| span.trace_id() != balanced), "OTLP's own rule: off");
    assert!(xray_traces_after(&test, std::slice::from_ref(&balanced)).await.contains(&balanced));
}

#[tokio::test]
async fn the_daemons_rules_decide_and_each_rules_counts_go_back_to_it() {
    let api = SamplingApi::start(vec![
        sampling_rule("status-always", 10, "/api/status/*", 1.0, 0),
        sampling_rule("unused", 20, "/nothing/*", 1.0, 0),
        sampling_rule("Default", 10_000, "*", 0.0, 0),
    ])
    .await;
    let addresses = format!("tcp:{} udp:{}", api.address, UdpSink::start().address());
    // No local rules (the harness's are unset): the daemon's apply once fetched.
    let test = harness(&[("AWS_XRAY_SAMPLING_RULES", ""), ("AWS_XRAY_DAEMON_ADDRESS", &addresses)]).await;
    let test_started = Instant::now();

    wait_for_a_report_of(&test, &api, "status-always").await;
    // In force, the rule decides: rate 1, every request (X-Ray's default rule would take one a second and 5%).
    for _ in 0..10 {
        assert!(answered_trace(&test.get("/api/status/204", &[]).await).1, "the daemon's rule samples every request");
    }
    // Requests no other rule matches fall under Default, whose counts go back too.
    let counts = loop {
        let counts = reported_counts(&api.reports());
        if counts.contains_key("Default") {
            break counts;
        }
        assert!(Instant::now() < test_started + SAFETY_NET, "Default's counts never reported: {counts:?}");
        test.get("/api/health", &[]).await;
        tokio::time::sleep(POLL).await;
    };
    let [requests, sampled, _] = counts["status-always"];
    assert_eq!(sampled, requests, "a rate-1 rule samples every request");
    assert!(!counts.contains_key("unused"), "only rules with requests are reported: {counts:?}");
    let [_, sampled, borrowed] = counts["Default"];
    assert!(borrowed >= 1 && sampled == borrowed, "a rate-0 rule without a quota only borrows: {counts:?}");
    let client_ids: BTreeSet<String> = api
        .reports()
        .into_iter()
        .flat_map(|report| report.sampling_statistics_documents)
        .map(|document| document.client_id)
        .collect();
    assert!(client_ids.len() == 1 && client_ids.iter().all(|id| is_lower_hex(id, 24)), "one client id: {client_ids:?}");
}

#[tokio::test]
async fn a_daemon_that_starts_after_the_service_is_found_within_seconds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the daemon's port");
    let port = listener.local_addr().unwrap();
    let addresses = format!("tcp:{port} udp:{}", UdpSink::start().address());
    let test = harness(&[("AWS_XRAY_SAMPLING_RULES", ""), ("AWS_XRAY_DAEMON_ADDRESS", &addresses)]).await;
    // The first fetch finds no daemon yet: its connection is closed unanswered. The daemon comes up afterwards.
    let (first_fetch, _) = listener.accept().await.expect("the first fetch");
    drop(first_fetch);
    let api = SamplingApi::start_on(listener, vec![sampling_rule("status-always", 10, "/api/status/*", 1.0, 0)]).await;
    // Found at the retry within seconds, not at the next fetch in 5 minutes (longer than the safety net).
    wait_for_a_report_of(&test, &api, "status-always").await;
}
