//! `--console`: segments sent by UDP (and spans by OTLP/HTTP) read back over the TCP port with `aws-sdk-xray`'s own
//! client, on X-Ray's paths and shapes; the store's bound under a flood; sampling from the rule file; and, with
//! credentials, forwarding as well.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::primitives::DateTime;
use aws_sdk_xray::types::SamplingStatisticsDocument;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};
use test_support::xray_endpoint::{WAIT, XrayEndpoint};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use xray_daemon::Config;

use crate::helpers::{Daemon, REGION, sdk_config, test_credentials};

/// A region and no credentials at all: what a machine with no AWS account has.
pub(crate) fn no_account() -> SdkConfig {
    SdkConfig::builder().behavior_version(BehaviorVersion::latest()).region(Region::new(REGION)).build()
}

/// The console, answering sampling from the committed rule file (read here, where it is configured).
pub(crate) fn console(config: &mut Config) {
    let rule_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(xray_protocol::rule_file::USUAL_PATH);
    let mut console = xray_console::ConsoleConfig::new();
    console.rules = vec![
        xray_protocol::rule_file::parse(&std::fs::read_to_string(&rule_file).expect("the rule file"))
            .expect("the committed rule file is valid"),
    ];
    config.console = Some(console);
}

/// The AWS SDK's own X-Ray client, pointed at the daemon's TCP port.
fn xray(tcp: SocketAddr) -> aws_sdk_xray::Client {
    let config = aws_sdk_xray::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(test_credentials())
        .endpoint_url(format!("http://{tcp}"))
        .build();
    aws_sdk_xray::Client::from_conf(config)
}

fn now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn trace_id() -> String {
    format!("1-{:08x}-{:024x}", now() as u64, rand::random::<u128>() >> 32)
}

fn send(daemon: &Daemon, document: &Value) {
    daemon.send_datagram(format!("{{\"format\":\"json\",\"version\":1}}\n{document}").as_bytes());
}

/// Waits until the console's stats (`GET /console/stats`) satisfy `check`; returns them.
pub(crate) async fn wait_for_console(tcp: SocketAddr, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats: Value = reqwest::get(format!("http://{tcp}/console/stats")).await.unwrap().json().await.unwrap();
        if check(&stats) {
            return stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "console stats: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn segments_sent_by_udp_come_back_through_the_aws_sdk_with_no_account() {
    let daemon = Daemon::start_with(None, no_account(), console).await;
    let (failing, fine) = (trace_id(), trace_id());
    let start = now();
    send(
        &daemon,
        &json!({"name": "cruddur-backend", "id": "70de5b6f19ff9a0a", "trace_id": failing, "start_time": start,
            "end_time": start + 0.25, "fault": true, "annotations": {"handle": "andrewbrown"},
            "http": {"request": {"method": "POST", "url": "http://localhost:4567/api/activities", "client_ip": "127.0.0.1"},
                     "response": {"status": 500}}}),
    );
    // A subsegment sent on its own, as the SDKs stream them.
    send(
        &daemon,
        &json!({"name": "cruddur@localhost", "id": "0aaaaaaaaaaaaaaa", "trace_id": failing, "type": "subsegment",
            "parent_id": "70de5b6f19ff9a0a", "start_time": start + 0.05, "end_time": start + 0.1, "namespace": "remote",
            "sql": {"sanitized_query": "INSERT INTO activities VALUES ($1)", "database_type": "postgresql"}}),
    );
    send(
        &daemon,
        &json!({"name": "cruddur-backend", "id": "1bbbbbbbbbbbbbbb", "trace_id": fine, "start_time": start + 1.0,
            "end_time": start + 1.02, "http": {"request": {"method": "GET", "url": "http://localhost:4567/api/activities/home"},
            "response": {"status": 200}}}),
    );
    wait_for_console(daemon.tcp, |stats| stats["documents"] == 3).await;
    let client = xray(daemon.tcp);

    let summaries = client
        .get_trace_summaries()
        .start_time(DateTime::from_secs_f64(start - 60.0))
        .end_time(DateTime::from_secs_f64(start + 60.0))
        .send()
        .await
        .expect("GetTraceSummaries through aws-sdk-xray");
    let listed: Vec<&str> = summaries.trace_summaries().iter().filter_map(|summary| summary.id()).collect();
    assert_eq!(listed, [fine.as_str(), failing.as_str()], "newest first");
    let summary = &summaries.trace_summaries()[1];
    assert_eq!(summary.has_fault(), Some(true));
    assert_eq!(summary.has_error(), Some(false));
    assert!((summary.response_time().unwrap() - 0.25).abs() < 1e-6);
    let http = summary.http().unwrap();
    assert_eq!((http.http_method(), http.http_status()), (Some("POST"), Some(500)));
    assert_eq!(http.http_url(), Some("http://localhost:4567/api/activities"));
    assert_eq!(summary.entry_point().and_then(|entry| entry.name()), Some("cruddur-backend"));
    let services: Vec<&str> = summary.service_ids().iter().filter_map(|service| service.name()).collect();
    assert_eq!(services, ["cruddur-backend", "cruddur@localhost"]);
    let handle = &summary.annotations().unwrap()["handle"][0];
    assert_eq!(handle.annotation_value().unwrap().as_string_value().unwrap(), "andrewbrown");

    for (expression, expected) in [
        ("http.status = 500", vec![failing.as_str()]),
        ("fault", vec![failing.as_str()]),
        ("ok", vec![fine.as_str()]),
        ("service(\"cruddur@localhost\")", vec![failing.as_str()]),
        ("responsetime > 0.1", vec![failing.as_str()]),
        ("service(\"cruddur-backend\") {fault OR error}", vec![failing.as_str()]),
        ("annotation.handle = \"bayko\"", vec![]),
    ] {
        let found = client
            .get_trace_summaries()
            .start_time(DateTime::from_secs_f64(start - 60.0))
            .end_time(DateTime::from_secs_f64(start + 60.0))
            .filter_expression(expression)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{expression}: {error:?}"));
        let ids: Vec<&str> = found.trace_summaries().iter().filter_map(|summary| summary.id()).collect();
        assert_eq!(ids, expected, "{expression}");
    }
    let refused = client
        .get_trace_summaries()
        .start_time(DateTime::from_secs_f64(start - 60.0))
        .end_time(DateTime::from_secs_f64(start + 60.0))
        .filter_expression("http.status = ")
        .send()
        .await
        .unwrap_err();
    assert!(refused.as_service_error().is_some_and(|error| error.is_invalid_request_exception()), "{refused:?}");

    let traces = client
        .batch_get_traces()
        .trace_ids(&failing)
        .trace_ids("1-00000000-000000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(traces.unprocessed_trace_ids(), ["1-00000000-000000000000000000000000"]);
    let trace = &traces.traces()[0];
    assert_eq!(trace.id(), Some(failing.as_str()));
    let [segment] = trace.segments() else { panic!("one segment: {:?}", trace.segments()) };
    assert_eq!(segment.id(), Some("70de5b6f19ff9a0a"));
    let document: Value = serde_json::from_str(segment.document().unwrap()).unwrap();
    assert_eq!(document["subsegments"][0]["sql"]["sanitized_query"], "INSERT INTO activities VALUES ($1)");

    let graph = client
        .get_service_graph()
        .start_time(DateTime::from_secs_f64(start - 60.0))
        .end_time(DateTime::from_secs_f64(start + 60.0))
        .send()
        .await
        .unwrap();
    let backend = graph.services().iter().find(|service| service.name() == Some("cruddur-backend")).unwrap();
    let statistics = backend.summary_statistics().unwrap();
    assert_eq!((statistics.total_count(), statistics.ok_count()), (Some(2), Some(1)));
    let database = graph.services().iter().find(|service| service.name() == Some("cruddur@localhost")).unwrap();
    assert!(backend.edges().iter().any(|edge| edge.reference_id() == database.reference_id()));
    assert_eq!(database.r#type(), Some("Database::SQL"));

    // No account: nothing was forwarded, and stopping is clean.
    assert_eq!(daemon.snapshot().sent, 0);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn sampling_is_answered_from_the_rule_file_with_x_ray_s_arithmetic() {
    let daemon = Daemon::start_with(None, no_account(), console).await;
    let client = xray(daemon.tcp);
    let rules = client.get_sampling_rules().send().await.expect("GetSamplingRules");
    let rules: Vec<_> = rules.sampling_rule_records().iter().filter_map(|record| record.sampling_rule()).collect();
    let names: Vec<Option<&str>> = rules.iter().map(|rule| rule.rule_name()).collect();
    assert_eq!(names, [Some("Cruddur"), Some("Default")]);
    assert_eq!((rules[0].fixed_rate(), rules[0].reservoir_size(), rules[0].priority()), (0.1, 5, 9000));
    assert_eq!(rules[0].service_name(), "cruddur-backend");

    let report = |client_id: &str| {
        SamplingStatisticsDocument::builder()
            .rule_name("Cruddur")
            .client_id(client_id)
            .timestamp(DateTime::from_secs_f64(now()))
            .request_count(40)
            .sampled_count(9)
            .borrow_count(0)
            .build()
            .unwrap()
    };
    let alone = client
        .get_sampling_targets()
        .sampling_statistics_documents(report("a".repeat(24).as_str()))
        .send()
        .await
        .unwrap();
    let target = &alone.sampling_target_documents()[0];
    assert_eq!((target.rule_name(), target.reservoir_quota(), target.fixed_rate()), (Some("Cruddur"), Some(5), 0.1));
    assert_eq!(target.interval(), Some(10));
    let ttl = target.reservoir_quota_ttl().unwrap().as_secs_f64();
    assert!((ttl - now() - 10.0).abs() < 5.0, "the quota holds for one interval: {ttl}");
    // A second SDK reporting: the five traces per second are shared.
    let second = client
        .get_sampling_targets()
        .sampling_statistics_documents(report("b".repeat(24).as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(second.sampling_target_documents()[0].reservoir_quota(), Some(2));
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_stays_under_its_bound_under_a_flood() {
    const SENT: u64 = 20_000;
    const BOUND: usize = 2 * 1024 * 1024;
    let daemon = Daemon::start_with(None, no_account(), |config| {
        let mut console = xray_console::ConsoleConfig::new();
        console.limits = xray_console::Limits { max_traces: 1_000_000, max_bytes: BOUND };
        config.console = Some(console);
    })
    .await;
    for round in 1..=SENT / 50 {
        for _ in 0..50 {
            daemon.send_segment_with_padding("flood", 800);
        }
        // The test binds a socket with the kernel's default receive buffer (~90 of these): let the reader keep up, so the kernel drops nothing and the arithmetic below is exact.
        daemon.wait_received(round * 50).await;
    }
    daemon.wait_received(SENT).await;
    let stats = wait_for_console(daemon.tcp, |stats| {
        stats["stored"].as_u64().unwrap() + stats["dropped"].as_u64().unwrap() + stats["invalid"].as_u64().unwrap()
            >= SENT
    })
    .await;
    let peak = stats["peakBytes"].as_u64().unwrap() as usize;
    let traces = stats["traces"].as_u64().unwrap();
    eprintln!("flood of {SENT} segments of ~1 KB into a {BOUND}-byte console: {stats}");
    assert!(peak <= BOUND, "peak {peak} over the bound {BOUND}");
    assert!(traces > 0 && traces < SENT, "{traces} traces kept");
    assert_eq!(stats["evictedTraces"].as_u64().unwrap() + traces, stats["stored"].as_u64().unwrap());
    // Nothing was lost without being counted, and UDP counting went on as usual.
    assert_eq!(daemon.snapshot().received, SENT);
    daemon.stop().await.unwrap();
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

#[tokio::test]
async fn otlp_spans_join_their_trace_and_a_span_sent_both_ways_is_stored_once() {
    let daemon = Daemon::start_with(None, no_account(), console).await;
    let trace = trace_id();
    // Only the leading `1-`: the epoch-seconds part may itself end in a 1.
    let trace_hex = trace.strip_prefix("1-").expect("an X-Ray trace id").replace('-', "");
    let bytes = |hex: &str| {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
    };
    let start = now();
    // The backend's segment by UDP; its parent is the browser's fetch span.
    send(
        &daemon,
        &json!({"name": "cruddur-backend", "id": "2ccccccccccccccc", "parent_id": "3ddddddddddddddd", "trace_id": trace,
            "start_time": start + 0.01, "end_time": start + 0.09,
            "http": {"request": {"method": "GET", "url": "http://localhost:4567/api/activities/home"}, "response": {"status": 200}}}),
    );
    let nanos = |seconds: f64| (seconds * 1e9) as u64;
    let span =
        |id: &str, parent: &str, name: &str, kind: SpanKind, from: f64, to: f64, attributes: Vec<KeyValue>| Span {
            trace_id: bytes(&trace_hex),
            span_id: bytes(id),
            parent_span_id: bytes(parent),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: nanos(from),
            end_time_unix_nano: nanos(to),
            attributes,
            ..Default::default()
        };
    let browser = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute("service.name", "cruddur-frontend")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span(
                "3ddddddddddddddd",
                "",
                "GET /api/activities/home",
                SpanKind::Client,
                start,
                start + 0.1,
                vec![
                    attribute("http.request.method", "GET"),
                    attribute("url.full", "http://localhost:4567/api/activities/home"),
                ],
            )],
            ..Default::default()
        }],
        ..Default::default()
    };
    // The backend's own OTLP copy of its server span: the same id as its X-Ray segment.
    let backend = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attribute("service.name", "cruddur-backend")],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span(
                "2ccccccccccccccc",
                "3ddddddddddddddd",
                "GET /api/activities/home",
                SpanKind::Server,
                start + 0.01,
                start + 0.09,
                vec![],
            )],
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest { resource_spans: vec![browser, backend] };
    wait_for_console(daemon.tcp, |stats| stats["documents"] == 1).await;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", daemon.tcp))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/x-protobuf");
    let stats = wait_for_console(daemon.tcp, |stats| stats["documents"] == 2 && stats["duplicates"] == 1).await;
    assert_eq!(stats["traces"], 1);

    let traces = xray(daemon.tcp).batch_get_traces().trace_ids(&trace).send().await.unwrap();
    let mut segments: Vec<Value> = traces.traces()[0]
        .segments()
        .iter()
        .map(|segment| serde_json::from_str(segment.document().unwrap()).unwrap())
        .collect();
    segments.sort_by(|a, b| a["start_time"].as_f64().unwrap().total_cmp(&b["start_time"].as_f64().unwrap()));
    assert_eq!(segments[0]["name"], "cruddur-frontend");
    assert_eq!(segments[1]["name"], "cruddur-backend");
    assert_eq!(segments[1]["parent_id"], "3ddddddddddddddd");
    assert_eq!(segments.len(), 2);
    let summaries = xray(daemon.tcp)
        .get_trace_summaries()
        .start_time(DateTime::from_secs_f64(start - 60.0))
        .end_time(DateTime::from_secs_f64(start + 60.0))
        .send()
        .await
        .unwrap();
    let entry = summaries.trace_summaries()[0].entry_point().and_then(|entry| entry.name());
    assert_eq!(entry, Some("cruddur-frontend"), "the browser started the trace");

    let wrong = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", daemon.tcp))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 415);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn with_credentials_the_console_keeps_and_the_daemon_forwards() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start_with(Some(&endpoint), sdk_config(), console).await;
    let document = daemon.send_segment("both-ways");
    let id: Value = serde_json::from_str(&document).unwrap();
    wait_for_console(daemon.tcp, |stats| stats["documents"] == 1).await;
    daemon.wait_for("the segment sent to X-Ray", |snapshot| snapshot.sent == 1).await;
    let trace = id["trace_id"].as_str().unwrap();
    let kept = xray(daemon.tcp).batch_get_traces().trace_ids(trace).send().await.unwrap();
    assert_eq!(kept.traces().len(), 1);
    // Sampling goes to X-Ray, signed, when there is an X-Ray to ask.
    xray(daemon.tcp).get_sampling_rules().send().await.expect("proxied GetSamplingRules");
    assert!(endpoint.requests().iter().any(|request| request.path == "/GetSamplingRules"));
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn the_telemetry_crate_samples_by_the_rules_the_console_answers() {
    // One rule for the backend: every trace (X-Ray's default rule, until the rules arrive, takes 1 a second + 5%).
    let daemon = Daemon::start_with(None, no_account(), |config| {
        console(config);
        let mut everything = xray_protocol::SamplingRule::default_rule();
        (everything.rule_name, everything.priority, everything.fixed_rate) = ("Everything".into(), 1, 1.0);
        everything.service_name = "cruddur-backend".into();
        config.console.as_mut().expect("the console").rules = vec![everything];
    })
    .await;
    let addresses = format!("tcp:{} udp:{}", daemon.tcp, daemon.udp);
    let env = |name: &str| match name {
        "OTEL_SERVICE_NAME" => Some("cruddur-backend".to_owned()),
        "AWS_XRAY_DAEMON_ADDRESS" => Some(addresses.clone()),
        _ => None,
    };
    let config = cruddur_telemetry::TelemetryConfig::from_lookup("cruddur-backend", env).expect("config");
    let telemetry = cruddur_telemetry::Telemetry::new(&config).expect("telemetry");
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    // What the backend answers in X-Amzn-Trace-Id for a request, made as its server layer makes it.
    let sampled = || {
        let request = tracing::info_span!("request", otel.kind = "server", http.request.method = "GET", url.path = "/");
        let header = cruddur_telemetry::propagation::xray_response_header(&request.context()).expect("a trace");
        header.to_str().expect("ASCII").ends_with(";Sampled=1")
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !(0..10).all(|_| sampled()) {
        assert!(std::time::Instant::now() < deadline, "the console's rule never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
