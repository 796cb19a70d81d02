//! The daemon as an OTLP gateway: OTLP/HTTP in on the TCP port (protobuf, JSON, gzip; answers as the OTLP spec
//! says), to X-Ray as segments (PutTraceSegments) or as OTLP (X-Ray's OTLP endpoint, SigV4-verified by the
//! stand-in), and fanned out to an OTLP receiver with its headers; UDP segments fanned out as spans; faults.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use cruddur_telemetry::{Telemetry, TelemetryConfig};
use http::StatusCode;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;
use test_support::otlp::OtlpReceiver;
use test_support::otlp_metrics::{OtlpMetricsReceiver, ReceivedMetric};
use test_support::xray_endpoint::{Failure, XrayEndpoint};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use xray_daemon::{Config, OtlpDestination, XrayDelivery};

use crate::helpers::{Daemon, assert_signed_for_xray, name_of};

pub(crate) const HONEYCOMB_KEY: &str = "hc-test-key";

/// A trace id as X-Ray makes them: the first 4 bytes are the epoch seconds.
fn trace_id() -> [u8; 16] {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as u32;
    let mut id: [u8; 16] = rand::random();
    id[..4].copy_from_slice(&now.to_be_bytes());
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn span(trace_id: &[u8], id: u64, parent: Option<u64>, name: &str, kind: SpanKind) -> Span {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|parent| parent.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: now - 50_000_000,
        end_time_unix_nano: now,
        attributes: vec![KeyValue {
            key: "http.request.method".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue("GET".into())) }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue(service.into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// A browser span and the backend's server span under it, in one trace.
fn browser_and_backend(trace_id: &[u8]) -> ExportTraceServiceRequest {
    let mut request =
        export("cruddur-frontend", vec![span(trace_id, 1, None, "GET /api/activities/home", SpanKind::Client)]);
    request.resource_spans.extend(
        export("cruddur-backend", vec![span(trace_id, 2, Some(1), "GET /api/activities/home", SpanKind::Server)])
            .resource_spans,
    );
    request
}

/// The daemon against `endpoint`, fanning out to `receiver` with Honeycomb's header, changed by `tune`.
pub(crate) async fn with_fan_out(
    endpoint: &XrayEndpoint,
    receiver: &OtlpReceiver,
    tune: impl FnOnce(&mut Config),
) -> Daemon {
    let destination = OtlpDestination {
        traces_endpoint: receiver.traces_url(),
        headers: vec![("x-honeycomb-team".into(), HONEYCOMB_KEY.into())],
        metrics: None,
    };
    Daemon::start(endpoint, |config| {
        config.gateway.otlp_destination = Some(destination);
        tune(config);
    })
    .await
}

async fn post(daemon: &Daemon, content_type: &str, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
    post_to(daemon, "/v1/traces", content_type, headers, body).await
}

async fn post_to(
    daemon: &Daemon,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().post(format!("http://{}{path}", daemon.tcp)).header("content-type", content_type);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.expect("posting OTLP")
}

async fn post_protobuf(daemon: &Daemon, request: &ExportTraceServiceRequest) -> reqwest::Response {
    post(daemon, "application/x-protobuf", &[], request.encode_to_vec()).await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn otlp_spans_reach_xray_as_segments_and_the_fan_out_with_its_headers() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |_| {}).await;
    let trace = trace_id();

    let answer = post_protobuf(&daemon, &browser_and_backend(&trace)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/x-protobuf");
    let body = ExportTraceServiceResponse::decode(answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body.partial_success, None, "everything was taken");

    let documents = endpoint.wait_for_documents(2).await;
    for batch in endpoint.accepted_batches() {
        assert_signed_for_xray(&batch);
    }
    let xray_trace = format!("1-{}-{}", hex(&trace[..4]), hex(&trace[4..]));
    let documents: Vec<Value> = documents.iter().map(|document| serde_json::from_str(document).unwrap()).collect();
    assert!(documents.iter().all(|document| document["trace_id"] == xray_trace.as_str()), "{documents:?}");
    let mut names: Vec<&str> = documents.iter().map(|document| document["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["cruddur-backend", "cruddur-frontend"], "each span is a segment of its service");

    let spans = receiver.wait_for_spans("fanned out", 2, |span| span.trace_id() == hex(&trace)).await;
    assert!(spans.iter().all(|span| span.headers["x-honeycomb-team"] == HONEYCOMB_KEY));
    let browser = spans.iter().find(|span| span.kind() == SpanKind::Client).unwrap();
    assert_eq!(browser.resource_string_attribute("service.name"), Some("cruddur-frontend"));
    assert!(endpoint.requests_to("/v1/traces").is_empty(), "segments delivery does not use X-Ray's OTLP endpoint");
    daemon.stop().await.unwrap();
}

/// The backend as the daemon topology runs it: its segments by UDP and its spans by OTLP, both to the daemon, the
/// browser's spans in that OTLP too. X-Ray gets every span once (the backend's as the segments it sent, the
/// browser's converted); the OTLP destination gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_sends_segments_and_otlp_reaches_xray_once_and_the_browser_is_converted() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |_| {}).await;
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", daemon.tcp)),
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.udp.to_string()),
        ("AWS_XRAY_SAMPLING_RULES", cruddur_telemetry::sampling::EVERY_TRACE.to_owned()),
    ]);
    let config = TelemetryConfig::from_lookup("cruddur-backend", |name| env.get(name).cloned()).unwrap();
    let telemetry = Telemetry::new(&config).unwrap();
    let backend_span =
        tracing::subscriber::with_default(tracing_subscriber::registry().with(telemetry.layer()), || {
            let span = tracing::info_span!("GET /api/activities/home", otel.kind = "server");
            let id = span.context().span().span_context().span_id();
            drop(span);
            format!("{id}")
        });
    // The exporters block on the daemon, which runs on the other worker.
    tokio::task::block_in_place(|| telemetry.force_flush());
    let browser_trace = trace_id();
    let browser = export("cruddur-frontend", vec![span(&browser_trace, 1, None, "GET /", SpanKind::Client)]);
    assert_eq!(post_protobuf(&daemon, &browser).await.status(), 200);

    // The fan-out has both, so the gateway has handled the backend's OTLP; X-Ray has the backend's own segment.
    receiver.wait_for_span("the backend's span", |span| span.span_id() == backend_span).await;
    receiver.wait_for_span("the browser's span", |span| span.trace_id() == hex(&browser_trace)).await;
    endpoint
        .wait_for("the backend's segment", |_| {
            endpoint.accepted_documents().iter().find(|document| document.contains(&backend_span)).cloned()
        })
        .await;
    tokio::task::block_in_place(|| drop(telemetry));
    daemon.stop().await.unwrap();

    let documents: Vec<Value> =
        endpoint.accepted_documents().iter().map(|document| serde_json::from_str(document).unwrap()).collect();
    let with_id = |id: &str| documents.iter().filter(|document| document["id"] == id).count();
    assert_eq!(with_id(&backend_span), 1, "the backend's span once, as its own segment: {documents:?}");
    assert_eq!(with_id("0000000000000001"), 1, "the browser's span, converted: {documents:?}");
}

/// A metrics export with one sum of `value`, from `service`.
fn metrics_export(service: &str, value: i64) -> ExportMetricsServiceRequest {
    let point = NumberDataPoint { value: Some(number_data_point::Value::AsInt(value)), ..Default::default() };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: export(service, Vec::new()).resource_spans.remove(0).resource,
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "cruddur.test.count".into(),
                    data: Some(metric::Data::Sum(Sum { data_points: vec![point], ..Default::default() })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// An app whose OTLP endpoint is the daemon sends its metrics there too: they reach the destination's metrics
/// endpoint with the destination's headers (protobuf or JSON in), beside the daemon's own counters; without a
/// destination they are taken, not kept.
#[tokio::test]
async fn metrics_sent_to_the_daemon_reach_the_destination_s_metrics_endpoint_with_its_headers() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let metrics = OtlpMetricsReceiver::start();
    // The destination's metrics as the daemon reads them: Honeycomb's key, a dataset, a short export interval.
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", metrics.endpoint()),
        ("HONEYCOMB_API_KEY", HONEYCOMB_KEY.to_owned()),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-honeycomb-dataset=cruddur-metrics".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "100".to_owned()),
    ]);
    let metrics_config = TelemetryConfig::from_lookup("xray-daemon", |name| env.get(name).cloned()).unwrap().metrics;
    let daemon = with_fan_out(&endpoint, &receiver, |config| {
        config.gateway.otlp_destination.as_mut().unwrap().metrics = metrics_config;
    })
    .await;

    let protobuf = metrics_export("cruddur-backend", 3).encode_to_vec();
    let answer = post_to(&daemon, "/v1/metrics", "application/x-protobuf", &[], protobuf).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/x-protobuf");
    let json = serde_json::to_vec(&metrics_export("cruddur-frontend", 5)).unwrap();
    let answer = post_to(&daemon, "/v1/metrics", "application/json", &[("content-encoding", "identity")], json).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");

    for (service, value) in [("cruddur-backend", 3.0), ("cruddur-frontend", 5.0)] {
        let metric = metrics.wait_for_metric(service, |metric| metric.service_name.as_deref() == Some(service)).await;
        assert_eq!((metric.name.as_str(), metric.points[0].value), ("cruddur.test.count", Some(value)));
        assert_eq!(metric.headers["x-honeycomb-team"], HONEYCOMB_KEY);
        assert_eq!(metric.headers["x-honeycomb-dataset"], "cruddur-metrics");
    }
    // The daemon's own counters go there too.
    daemon.send_segment("counted");
    let counted = |metric: &ReceivedMetric| {
        metric.name == "xray.daemon.segments"
            && metric.points.iter().any(|point| point.attributes["outcome"] == "sent" && point.value == Some(1.0))
    };
    let own = metrics.wait_for_metric("the daemon's sent segment", counted).await;
    assert_eq!(own.service_name.as_deref(), Some("xray-daemon"));
    assert_eq!(own.headers["x-honeycomb-dataset"], "cruddur-metrics");

    let garbage = post_to(&daemon, "/v1/metrics", "application/x-protobuf", &[], b"\xff\xff".to_vec()).await;
    assert_eq!(garbage.status(), 400);
    let snapshot = daemon.wait_for("2 data points sent", |snapshot| snapshot.otlp.metrics.sent == 2).await;
    assert_eq!((snapshot.otlp.metrics.offered, snapshot.otlp.bad_requests), (2, 1));
    daemon.stop().await.unwrap();

    let alone = Daemon::start(&endpoint, |_| {}).await;
    let protobuf = metrics_export("cruddur-backend", 1).encode_to_vec();
    let answer = post_to(&alone, "/v1/metrics", "application/x-protobuf", &[], protobuf).await;
    assert_eq!(answer.status(), 200, "no destination: taken, so the app's exporter keeps quiet");
    assert_eq!(alone.snapshot().otlp.metrics.offered, 0);
    alone.stop().await.unwrap();
}

#[tokio::test]
async fn otlp_delivery_forwards_signed_otlp_to_xray_and_json_and_gzip_are_taken() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |config| config.gateway.xray_delivery = XrayDelivery::Otlp).await;
    let (first, second) = (trace_id(), trace_id());

    let json = serde_json::to_vec(&browser_and_backend(&first)).unwrap();
    let answer = post(&daemon, "application/json", &[], json).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let compressed = gzip(&browser_and_backend(&second).encode_to_vec());
    let answer = post(&daemon, "application/x-protobuf", &[("content-encoding", "gzip")], compressed).await;
    assert_eq!(answer.status(), 200);

    let spans = endpoint
        .wait_for_otlp_spans("of both traces", 4, |span| [hex(&first), hex(&second)].contains(&span.trace_id()))
        .await;
    assert_eq!(spans.len(), 4);
    let requests = endpoint.requests_to("/v1/traces");
    assert!(requests.iter().all(|request| request.status == 200), "the stand-in verified every signature");
    for request in &requests {
        assert_signed_for_xray(request);
        assert_eq!(request.header("content-type"), Some("application/x-protobuf"));
    }
    assert!(endpoint.requests_to("/TraceSegments").is_empty(), "OTLP delivery sends no segments");
    // The stand-in verifies: unsigned, or signed for another body, is refused.
    let signed = &requests[0];
    let mut forged = reqwest::Client::new()
        .post(format!("{}/v1/traces", endpoint.url()))
        .header("content-type", "application/x-protobuf");
    for name in ["authorization", "x-amz-date"] {
        forged = forged.header(name, signed.header(name).unwrap());
    }
    assert_eq!(forged.body(browser_and_backend(&first).encode_to_vec()).send().await.unwrap().status(), 403);
    let snapshot = daemon.wait_for("4 spans sent", |snapshot| snapshot.otlp.xray.sent == 4).await;
    assert_eq!(snapshot.otlp.received_spans, 4);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_are_answered_with_a_reason_and_counted() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |_| {}).await;

    let garbage = post(&daemon, "application/x-protobuf", &[], b"\xff\xff\xff not protobuf".to_vec()).await;
    assert_eq!(garbage.status(), 400);
    assert_eq!(garbage.headers()["content-type"], "application/x-protobuf");
    let status = garbage.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&status).contains("not an OTLP protobuf request"));

    let json = post(&daemon, "application/json", &[], b"{\"resourceSpans\": 3}".to_vec()).await;
    assert_eq!(json.status(), 400);
    let reason: Value = json.json().await.unwrap();
    assert_eq!(reason["code"], 3);
    assert!(reason["message"].as_str().unwrap().contains("OTLP/JSON"), "{reason}");

    let not_gzip = post(&daemon, "application/x-protobuf", &[("content-encoding", "gzip")], b"plain".to_vec()).await;
    assert_eq!(not_gzip.status(), 400);
    let text = post(&daemon, "text/plain", &[], b"x".to_vec()).await;
    assert_eq!(text.status(), 415);
    let oversized =
        post(&daemon, "application/x-protobuf", &[], vec![0; xray_daemon::otlp_in::MAX_REQUEST_BYTES + 1]).await;
    assert_eq!(oversized.status(), 413);
    let bomb = gzip(&vec![0; xray_daemon::otlp_in::MAX_REQUEST_BYTES + 1]);
    let inflated = post(&daemon, "application/x-protobuf", &[("content-encoding", "gzip")], bomb).await;
    assert_eq!(inflated.status(), 413);

    // Spans without valid ids are refused in a partial success; the others go on.
    let trace = trace_id();
    let mut request = export("partial", vec![span(&trace, 7, None, "kept", SpanKind::Server)]);
    request.resource_spans[0].scope_spans[0].spans.push(span(&[0; 16], 8, None, "no trace id", SpanKind::Server));
    let answer = post_protobuf(&daemon, &request).await;
    assert_eq!(answer.status(), 200);
    let partial = ExportTraceServiceResponse::decode(answer.bytes().await.unwrap()).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("trace id"), "{}", partial.error_message);
    receiver.wait_for_span("kept", |span| span.name() == "kept").await;
    endpoint.wait_for_documents(1).await;

    let snapshot = daemon.snapshot();
    assert_eq!(snapshot.otlp.bad_requests, 6);
    assert_eq!((snapshot.otlp.received_spans, snapshot.otlp.rejected_spans), (2, 1));
    assert!(receiver.spans().iter().all(|span| span.name() == "kept"));
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn udp_segments_are_fanned_out_as_spans_with_the_same_trace_id() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |config| {
        config.gateway.forward_segments_as_otlp = true;
    })
    .await;
    let document: Value = serde_json::from_str(&daemon.send_segment("sdk-app")).unwrap();

    let xray_trace = document["trace_id"].as_str().unwrap().to_owned();
    let otlp_trace = xray_trace.trim_start_matches("1-").replace('-', "");
    let span = receiver.wait_for_span("from the UDP segment", |span| span.trace_id() == otlp_trace).await;
    assert_eq!(span.resource_string_attribute("service.name"), Some("sdk-app"));
    assert_eq!(span.span_id(), document["id"].as_str().unwrap());
    assert_eq!(span.kind(), SpanKind::Server);
    assert_eq!(span.headers["x-honeycomb-team"], HONEYCOMB_KEY);
    let documents = endpoint.wait_for_documents(1).await;
    assert_eq!(name_of(&documents[0]), "sdk-app", "the segment still goes to PutTraceSegments");
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_destination_answering_429_or_503_gets_everything_once_it_recovers() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |config| {
        config.gateway.xray_delivery = XrayDelivery::Otlp;
    })
    .await;
    receiver.fail_with(StatusCode::SERVICE_UNAVAILABLE);
    endpoint.fail(Failure::Throttle);
    let trace = trace_id();
    for index in 0..10 {
        let answer =
            post_protobuf(&daemon, &export("retried", vec![span(&trace, 100 + index, None, "r", SpanKind::Server)]))
                .await;
        assert_eq!(answer.status(), 200, "queued while the destinations fail");
    }
    receiver.wait_for_refused(1).await;
    endpoint
        .wait_for("a throttled OTLP export", |requests| {
            requests.iter().find(|request| request.path == "/v1/traces" && request.status == 429).cloned()
        })
        .await;
    receiver.fail_with(StatusCode::TOO_MANY_REQUESTS);
    receiver.wait_for_refused(2).await;
    receiver.recover();
    endpoint.recover();

    receiver.wait_for_spans("after recovery", 10, |span| span.trace_id() == hex(&trace)).await;
    endpoint.wait_for_otlp_spans("after recovery", 10, |span| span.trace_id() == hex(&trace)).await;
    let snapshot = daemon.snapshot().otlp;
    assert!(snapshot.fan_out.retries >= 2 && snapshot.xray.retries >= 1, "{snapshot:?}");
    assert_eq!((snapshot.fan_out.dropped, snapshot.xray.dropped), (0, 0));
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_destination_drops_and_counts_within_its_bound_and_delays_nothing_else() {
    let endpoint = XrayEndpoint::start();
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    const QUEUE: u64 = 64 * 1024;
    let daemon = Daemon::start(&endpoint, |config| {
        config.gateway.otlp_destination = Some(OtlpDestination {
            traces_endpoint: format!("http://{dead}/v1/traces"),
            headers: vec![],
            metrics: None,
        });
        config.gateway.queue_bytes = QUEUE;
        config.flush_timeout = Duration::from_secs(1);
    })
    .await;
    let trace = trace_id();
    let padding = "x".repeat(2000);
    let requests = 100u64;
    for index in 0..requests {
        let mut request = export("dead-end", vec![span(&trace, 1000 + index, None, "padded", SpanKind::Server)]);
        request.resource_spans[0].scope_spans[0].spans[0].name = format!("padded {padding}");
        assert_eq!(post_protobuf(&daemon, &request).await.status(), 200, "X-Ray still takes it");
    }
    let udp = daemon.send_segment("udp-meanwhile");

    let documents = endpoint.wait_for_documents(requests as usize + 1).await;
    assert!(documents.contains(&udp));
    let snapshot = daemon.snapshot().otlp.fan_out;
    assert_eq!(snapshot.offered, requests);
    assert!(snapshot.dropped > 0 && snapshot.sent == 0, "{snapshot:?}");
    assert!(snapshot.peak_queued_bytes <= QUEUE, "{snapshot:?}");
    let counters = daemon.counters.clone();
    daemon.stop().await.unwrap();
    let after = counters.snapshot().otlp.fan_out;
    assert_eq!(after.dropped, requests, "at the deadline, what was held is dropped and counted: {after:?}");
    assert_eq!(after.queued_bytes, 0);
}

#[tokio::test]
async fn shutdown_flushes_what_the_queues_hold() {
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |config| {
        config.gateway.xray_delivery = XrayDelivery::Otlp;
        // Nothing would leave before shutdown but for the flush.
        config.gateway.batch_idle = Duration::from_secs(3600);
    })
    .await;
    let trace = trace_id();
    for index in 0..5 {
        post_protobuf(&daemon, &export("flushed", vec![span(&trace, 500 + index, None, "f", SpanKind::Server)])).await;
    }
    daemon.wait_for("5 spans queued", |snapshot| snapshot.otlp.fan_out.offered == 5).await;
    assert!(receiver.spans().is_empty());
    let counters = daemon.counters.clone();
    daemon.stop().await.unwrap();

    assert_eq!(receiver.spans().iter().filter(|span| span.trace_id() == hex(&trace)).count(), 5);
    assert_eq!(endpoint.otlp_spans().iter().filter(|span| span.trace_id() == hex(&trace)).count(), 5);
    let totals = counters.snapshot().otlp;
    assert_eq!((totals.fan_out.sent, totals.xray.sent), (5, 5));
}
