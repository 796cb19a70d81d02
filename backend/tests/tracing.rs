//! The real backend, traced into a local OTLP/HTTP receiver and a local UDP segment sink through the seed's
//! variables: one home-feed request is one trace in both, incoming trace headers are continued, the browser's spans
//! are relayed with the server's key, and a dead OTLP endpoint changes nothing for the user.
//!
//! Each test installs its pipeline as the thread's default subscriber on a single-threaded runtime, so the server
//! task it spawns is traced by it and tests share no global state.

use clap::Parser;
use cruddur_backend::{Config, start};
use cruddur_telemetry::sampling::EVERY_TRACE;
use cruddur_telemetry::{Telemetry, TelemetryConfig};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use reqwest::StatusCode;
use serde_json::json;
use test_support::traced::{Pipeline, TracedApp, TracedOptions, Variables, is_lower_hex, xray_trace_id};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

const TELEMETRY: Pipeline<Telemetry> = Pipeline { install, flush: Telemetry::force_flush };

fn install(telemetry: &Telemetry) -> DefaultGuard {
    tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()))
}

/// The seeded backend with telemetry configured by `vars` on top of the seed's variables; each request is followed
/// into X-Ray here (sampling is the telemetry crate's to test).
async fn traced_backend(vars: &[(&str, &str)]) -> TracedApp<Telemetry> {
    let options = TracedOptions::new("cruddur-backend", EVERY_TRACE).variables(vars).with_database();
    let telemetry = |variables: &Variables| {
        let config = TelemetryConfig::from_lookup("cruddur-backend", |name| variables.get(name)).expect("config");
        Telemetry::new(&config).expect("telemetry")
    };
    TracedApp::start(options, TELEMETRY, telemetry, async |telemetry: &Telemetry, url: Option<&str>| {
        let url = url.expect("a database");
        let config = Config::parse_from(["cruddur-backend", "--database-url", url, "--seed-if-empty"]);
        start(&config, telemetry).await.expect("the API starts")
    })
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn the_home_feed_is_one_trace_in_honeycomb_and_in_xray() {
    let test = traced_backend(&[]).await;
    let response = test.get("/api/activities/home", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let xray_header = response.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    let feed: Vec<cruddur_api::Activity> = response.json().await.unwrap();

    // OTLP: server span -> home-activities -> the query, one trace, sent with the seed's key and service name.
    let server = test.server_span_of_route("/api/activities/home").await;
    let trace = server.trace_id();
    assert_eq!(xray_header, format!("Root={};Sampled=1", xray_trace_id(&trace)));
    assert_eq!(server.headers["x-honeycomb-team"], "test-honeycomb-key");
    assert_eq!(server.resource_string_attribute("service.name"), Some("cruddur-backend"));
    assert_eq!(server.string_attribute("http.request.method"), Some("GET"));
    assert_eq!(server.int_attribute("http.response.status_code"), Some(200));
    let home = test
        .receiver
        .wait_for_span("home-activities", |span| span.trace_id() == trace && span.name() == "home-activities")
        .await;
    assert_eq!(home.parent_span_id(), server.span_id());
    assert_eq!(home.int_attribute("app.result_length"), Some(feed.len() as i64));
    let now = home.string_attribute("app.now").expect("app.now");
    chrono::DateTime::parse_from_rfc3339(now).expect("app.now is RFC 3339");
    let query = test
        .receiver
        .wait_for_span("the feed query", |span| span.trace_id() == trace && span.kind() == SpanKind::Client)
        .await;
    assert_eq!(query.parent_span_id(), home.span_id());
    assert_eq!(query.string_attribute("db.system.name"), Some("postgresql"));
    assert_eq!(query.string_attribute("db.namespace"), Some(test.database()));
    assert!(query.string_attribute("db.query.text").unwrap().contains("FROM activities a"));

    // X-Ray: valid daemon datagrams under the same trace id, with the http block and the sql subsegment.
    let segment = test
        .sink
        .wait_for_segment("the request's segment", |s| {
            s.otlp_trace_id().as_deref() == Some(trace.as_str()) && s.parent_id().is_none()
        })
        .await;
    assert_eq!(segment.header, json!({"format": "json", "version": 1}));
    assert_eq!(segment.trace_id(), Some(xray_trace_id(&trace).as_str()));
    assert!(is_lower_hex(segment.id().unwrap(), 16));
    assert_eq!(segment.name(), Some("cruddur-backend"));
    assert_eq!(segment.document["http"]["request"]["method"], "GET");
    assert_eq!(segment.document["http"]["response"]["status"], 200);
    let sql = test
        .sink
        .wait_for_segment("the sql subsegment", |s| {
            s.otlp_trace_id().as_deref() == Some(trace.as_str()) && s.document.get("sql").is_some()
        })
        .await;
    assert_eq!(sql.document["namespace"], "remote");
    assert_eq!(sql.document["sql"]["database_type"], "postgresql");
    assert_eq!(sql.parent_id(), Some(home.span_id().as_str()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_profile_request_carries_the_user_activities_metadata() {
    let test = traced_backend(&[]).await;
    assert_eq!(test.get("/api/activities/@andrewbrown", &[]).await.status(), StatusCode::OK);
    let server = test.server_span_of_route("/api/activities/@{handle}").await;
    let trace = server.trace_id();
    let segment = test
        .sink
        .wait_for_segment("user-activities", |s| {
            s.otlp_trace_id().as_deref() == Some(trace.as_str()) && s.name() == Some("user-activities")
        })
        .await;
    assert_eq!(segment.document["metadata"]["results-size"], 1);
    assert!(segment.document["metadata"]["now"].is_string());
}

#[tokio::test(flavor = "current_thread")]
async fn incoming_traceparent_and_xray_headers_are_continued() {
    let test = traced_backend(&[]).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    test.get("/api/health-check", &[("traceparent", &format!("00-{trace}-{parent}-01"))]).await;
    let server = test.server_span_of_route("/api/health-check").await;
    assert_eq!((server.trace_id().as_str(), server.parent_span_id().as_str()), (trace, parent));

    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let response = test.get("/api/users/@bayko/short", &[("x-amzn-trace-id", header)]).await;
    assert_eq!(response.headers()["x-amzn-trace-id"], "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    let server = test.server_span_of_route("/api/users/@{handle}/short").await;
    assert_eq!(server.trace_id(), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(server.parent_span_id(), "53995c3f42cd8ad8");
}

#[tokio::test(flavor = "current_thread")]
async fn browser_spans_are_relayed_with_the_server_s_key() {
    let test = traced_backend(&[]).await;
    let browser_span = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cruddur-frontend"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "6759e988bd862e3fe1be46a994272793", "spanId": "1111111111111111",
            "name": "GET /api/activities/home", "kind": 3,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"
        }]}]
    }]});
    let response = test
        .client
        .post(format!("{}/v1/traces", test.base))
        .header("origin", "http://localhost:3000")
        .json(&browser_span)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], "http://localhost:3000");
    let relayed = test
        .receiver
        .wait_for_span("the browser span", |span| span.trace_id() == "6759e988bd862e3fe1be46a994272793")
        .await;
    assert_eq!(relayed.headers["x-honeycomb-team"], "test-honeycomb-key");
    assert_eq!(relayed.resource_string_attribute("service.name"), Some("cruddur-frontend"));
    // The relay request is not traced itself (the browser exports every 2 s: a trace each would bury the rest).
    test.get("/api/health-check", &[]).await;
    test.server_span_of_route("/api/health-check").await;
    let relay_spans =
        test.receiver.spans().into_iter().filter(|span| span.string_attribute("http.route") == Some("/v1/traces"));
    assert_eq!(relay_spans.count(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dead_otlp_endpoint_changes_nothing_for_the_user() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let test = traced_backend(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{closed}"))]).await;
    for _ in 0..20 {
        let response = test.get("/api/activities/home", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Vec<cruddur_api::Activity>>().await.unwrap().len(), 3);
    }
    // X-Ray still receives every request.
    test.sink.wait_for_segment("a segment despite the dead OTLP endpoint", |s| s.parent_id().is_none()).await;
}
