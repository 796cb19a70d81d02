//! The pieces around the pipeline: log lines with trace ids, the traced HTTP client, the browser span relay.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use cruddur_telemetry::relay::{self, MAX_BODY, Relay};
use cruddur_telemetry::server::ServerLayer;
use cruddur_telemetry::{LogConfig, LogFormat, Telemetry, client::traced_client, logs};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::StatusCode;
use serde_json::Value;
use support::{app, database, seed_config, serve};
use test_support::otlp::OtlpReceiver;
use test_support::udp_sink::UdpSink;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// What a log layer wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }
}

/// Serves the test app with logs in `format` filtered by `filter`; returns the trace id of one home-feed request and
/// the captured log lines.
async fn logged_request(format: LogFormat, filter: &str) -> (String, Vec<String>) {
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let telemetry = Telemetry::new(&seed_config(&receiver, &sink, &[])).unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let log_layer = logs::layer(&LogConfig { format, filter: filter.into() }, move || writer.clone(), false)
        .unwrap()
        .expect("a log layer");
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(log_layer).with(telemetry.layer()));
    let (pool, _) = database(&telemetry).await;
    let (address, _stop) = serve(app(pool)).await;
    let response = reqwest::get(format!("http://{address}/api/activities/andrewbrown")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = response.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    let trace_id = header["Root=1-".len()..].split(';').next().unwrap().replace('-', "");
    (trace_id, captured.lines())
}

#[tokio::test]
async fn json_log_lines_carry_the_trace_id_and_sql_statements_stay_out() {
    let (trace_id, lines) = logged_request(LogFormat::Json, "info").await;
    let events: Vec<Value> =
        lines.iter().map(|line| serde_json::from_str(line).expect("one JSON object a line")).collect();
    let loading = events
        .iter()
        .find(|event| event["fields"]["message"] == "loading activities")
        .unwrap_or_else(|| panic!("no log line of the handler in {lines:#?}"));
    assert_eq!(loading["trace_id"], trace_id.as_str());
    assert_eq!(
        loading["span"],
        serde_json::json!({"name": "home-activities"}),
        "the span's name; its fields are in the trace"
    );
    assert_eq!(loading.get("spans"), None);
    assert!(events.iter().all(|event| event["target"] != "sqlx::query"), "{lines:#?}");
}

#[tokio::test]
async fn text_log_lines_end_with_the_trace_id_and_rust_log_filters() {
    let (trace_id, lines) = logged_request(LogFormat::Text, "info").await;
    let loading = lines.iter().find(|line| line.contains("loading activities")).expect("the handler's line");
    assert!(loading.ends_with(&format!(" trace_id={trace_id}")), "{loading}");

    let (_, quiet) = logged_request(LogFormat::Text, "warn").await;
    assert!(!quiet.iter().any(|line| line.contains("loading activities")), "{quiet:#?}");
}

#[tokio::test]
async fn rust_log_filters_by_span_too() {
    let (_, lines) = logged_request(LogFormat::Text, "warn,[home-activities]=info").await;
    assert!(lines.iter().any(|line| line.contains("loading activities")), "the line in the span named: {lines:#?}");

    let (_, elsewhere) = logged_request(LogFormat::Text, "warn,[another-span]=info").await;
    assert!(!elsewhere.iter().any(|line| line.contains("loading activities")), "{elsewhere:#?}");
}

#[tokio::test]
async fn lines_in_spans_that_are_not_traced_carry_the_trace_id_of_the_traced_span_around() {
    let (trace_id, lines) = logged_request(LogFormat::Text, "info,pieces=debug").await;
    let fetched = lines.iter().find(|line| line.contains("activities fetched")).expect("the line in the debug span");
    assert!(fetched.contains("fetching"), "the line is logged in the debug span: {fetched}");
    assert!(fetched.ends_with(&format!(" trace_id={trace_id}")), "{fetched}");
}

#[tokio::test]
async fn the_client_makes_a_client_span_and_sends_both_trace_headers() {
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let telemetry = Telemetry::new(&seed_config(&receiver, &sink, &[])).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    let echo = Router::new()
        .route(
            "/echo",
            get(|headers: HeaderMap| async move {
                let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
                axum::Json((header("traceparent"), header("x-amzn-trace-id")))
            }),
        )
        .layer(ServerLayer::new());
    let (address, _stop) = serve(echo).await;

    let client = traced_client(reqwest::Client::new());
    let caller = tracing::info_span!("caller");
    let response = client.get(format!("http://{address}/echo?token=secret")).send().instrument(caller).await.unwrap();
    let (traceparent, xray): (Option<String>, Option<String>) = response.json().await.unwrap();
    let (traceparent, xray) = (traceparent.expect("traceparent sent"), xray.expect("X-Amzn-Trace-Id sent"));

    telemetry.force_flush();
    let client_span = receiver.wait_for_span("the client span", |span| span.kind() == SpanKind::Client).await;
    let trace = client_span.trace_id();
    let caller = receiver.wait_for_span("the caller span", |span| span.name() == "caller").await;
    let server = receiver.wait_for_span("the echo's server span", |span| span.kind() == SpanKind::Server).await;
    assert_eq!(client_span.parent_span_id(), caller.span_id());
    assert_eq!((server.trace_id(), server.parent_span_id()), (trace.clone(), client_span.span_id()));
    assert_eq!(traceparent, format!("00-{trace}-{}-01", client_span.span_id()));
    assert_eq!(xray, format!("Root=1-{}-{};Parent={};Sampled=1", &trace[..8], &trace[8..], client_span.span_id()));
    assert_eq!(client_span.string_attribute("http.request.method"), Some("GET"));
    assert_eq!(client_span.string_attribute("url.full"), Some(format!("http://{address}/echo").as_str()));
    assert_eq!(client_span.int_attribute("http.response.status_code"), Some(200));
    let segment =
        sink.wait_for_segment("the client subsegment", |segment| segment.id() == Some(&client_span.span_id())).await;
    assert_eq!(segment.document["namespace"], "remote");
    assert_eq!(segment.document["http"]["response"]["status"], 200);
}

/// A browser-shaped OTLP/JSON export of one span.
const BROWSER_EXPORT: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"frontend"}}]},"scopeSpans":[{"scope":{"name":"browser"},"spans":[{"traceId":"5759e988bd862e3fe1be46a994272793","spanId":"53995c3f42cd8ad8","name":"documentLoad","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000","attributes":[{"key":"http.url","value":{"stringValue":"http://localhost:3000/"}}]}]}]}]}"#;

async fn post(address: std::net::SocketAddr, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{address}/v1/traces"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_relay_forwards_browser_spans_as_protobuf_with_the_server_headers() {
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let telemetry = Telemetry::new(&seed_config(&receiver, &sink, &[])).unwrap();
    let (address, _stop) = serve(Router::new().merge(relay::router(telemetry.relay()))).await;

    let response = post(address, "application/json", BROWSER_EXPORT.into()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "{}");
    let forwarded = receiver.wait_for_span("the relayed JSON span", |span| span.name() == "documentLoad").await;
    assert_eq!(forwarded.trace_id(), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(forwarded.resource_string_attribute("service.name"), Some("frontend"));
    assert_eq!(forwarded.headers["x-honeycomb-team"], "test-honeycomb-key");
    assert_eq!(forwarded.headers["content-type"], "application/x-protobuf");

    let mut request: ExportTraceServiceRequest = serde_json::from_str(BROWSER_EXPORT).unwrap();
    request.resource_spans[0].scope_spans[0].spans[0].name = "click".into();
    let response = post(address, "application/x-protobuf", request.encode_to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK);
    receiver.wait_for_span("the relayed protobuf span", |span| span.name() == "click").await;
}

#[tokio::test]
async fn the_relay_refuses_what_is_not_an_otlp_trace_export() {
    let (address, _stop) = serve(relay::router(Relay::disabled())).await;
    assert_eq!(post(address, "text/plain", b"hello".to_vec()).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(post(address, "application/json", b"{not json".to_vec()).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(post(address, "application/x-protobuf", vec![0xff; 16]).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        post(address, "application/json", vec![b' '; MAX_BODY + 1]).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // OTLP off: accepted and dropped, so the browser never sees an error.
    assert_eq!(post(address, "application/json; charset=utf-8", BROWSER_EXPORT.into()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_relay_rate_limits() {
    let (address, _stop) = serve(relay::router(Relay::disabled().with_rate_limit(2, 0.0))).await;
    for _ in 0..2 {
        assert_eq!(post(address, "application/json", BROWSER_EXPORT.into()).await.status(), StatusCode::OK);
    }
    assert_eq!(post(address, "application/json", BROWSER_EXPORT.into()).await.status(), StatusCode::TOO_MANY_REQUESTS);
}
