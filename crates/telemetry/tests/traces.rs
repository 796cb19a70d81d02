//! What a request of the traced test app becomes: one trace in OTLP and in X-Ray, with the X-Ray SDKs' segment
//! conventions (http block, sql subsegment, error/throttle/fault, naming), nothing secret in any span, and one
//! datagram per request unless it does not fit one.

mod support;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use reqwest::StatusCode;
use serde_json::json;
use support::{ACTIVITIES_QUERY, ACTIVITIES_ROUTE, harness, options, traced};
use test_support::traced::{is_lower_hex, xray_header, xray_trace_id};
use test_support::udp_sink::Segment;

#[tokio::test]
async fn one_request_reaches_otlp_and_xray_as_one_trace() {
    let test = harness(&[]).await;
    let response = test
        .get("/api/activities/andrewbrown", &[("user-agent", "cruddur-test/1"), ("x-forwarded-for", "203.0.113.7")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let xray_response = xray_header(&response);
    assert_eq!(response.json::<Vec<String>>().await.unwrap(), ["andrewbrown", "second message"]);

    // OTLP: the server span with the current HTTP conventions.
    let server = test.server_span("/api/activities/andrewbrown").await;
    let trace = server.trace_id();
    assert!(is_lower_hex(&trace, 32) && is_lower_hex(&server.span_id(), 16));
    assert_eq!(server.parent_span_id(), "", "a request without trace headers starts a trace");
    assert_eq!(server.name(), format!("GET {ACTIVITIES_ROUTE}"));
    assert_eq!(server.string_attribute("http.request.method"), Some("GET"));
    assert_eq!(server.string_attribute("http.route"), Some(ACTIVITIES_ROUTE));
    assert_eq!(server.int_attribute("http.response.status_code"), Some(200));
    assert_eq!(server.string_attribute("user_agent.original"), Some("cruddur-test/1"));
    assert_eq!(server.string_attribute("client.address"), Some("203.0.113.7"));
    assert_eq!(server.string_attribute("server.address"), Some("127.0.0.1"));
    assert_eq!(server.headers["x-honeycomb-team"], "test-honeycomb-key");
    assert_eq!(server.resource_string_attribute("service.name"), Some("backend-rust"));
    assert_eq!(xray_response, format!("Root={};Sampled=1", xray_trace_id(&trace)));

    // The hand-made span and its child, with their attributes, under the server span.
    let home = test.span_in(&trace, "home-activities").await;
    assert_eq!(home.parent_span_id(), server.span_id());
    assert_eq!(home.string_attribute("app.now"), Some("2024-03-01T12:00:00+00:00"));
    assert_eq!(home.int_attribute("app.result_length"), Some(2));
    let child = test.span_in(&trace, "user-activities").await;
    assert_eq!(child.parent_span_id(), home.span_id());
    assert_eq!(child.int_attribute("metadata.results-size"), Some(2));

    // The query, as a client span under the span that ran it, with the statement but not the parameter.
    let query = test
        .receiver
        .wait_for_span("the query span", |span| span.trace_id() == trace && span.kind() == SpanKind::Client)
        .await;
    assert_eq!(query.parent_span_id(), home.span_id());
    assert_eq!(query.name(), format!("SELECT {}", test.database()));
    assert_eq!(query.string_attribute("db.system.name"), Some("postgresql"));
    assert_eq!(query.string_attribute("db.query.text"), Some(ACTIVITIES_QUERY));
    assert_eq!(query.string_attribute("db.namespace"), Some(test.database()));
    assert_eq!(query.string_attribute("server.address"), Some("127.0.0.1"));
    assert!(query.span.start_time_unix_nano < query.span.end_time_unix_nano);
    assert!(query.span.start_time_unix_nano >= home.span.start_time_unix_nano);

    // X-Ray: the segment, with its http block, under the same trace id.
    let segment = test.segment_of(&trace, "the request's segment", |segment| segment.parent_id().is_none()).await;
    assert_eq!(segment.trace_id(), Some(xray_trace_id(&trace).as_str()));
    assert_eq!(segment.id(), Some(server.span_id().as_str()));
    assert_eq!(segment.name(), Some("backend-rust"));
    assert_eq!(segment.document["http"]["request"]["method"], "GET");
    assert_eq!(segment.document["http"]["request"]["client_ip"], "203.0.113.7");
    assert_eq!(segment.document["http"]["response"]["status"], 200);

    let home_document = test.segment_of(&trace, "home-activities", |s| s.name() == Some("home-activities")).await;
    assert_eq!(home_document.parent_id(), Some(server.span_id().as_str()));
    assert_eq!(home_document.document["metadata"]["app.result_length"], 2);
    let child_document = test.segment_of(&trace, "user-activities", |s| s.name() == Some("user-activities")).await;
    assert_eq!(child_document.document["metadata"]["now"], "2024-03-01T12:00:00+00:00");
    assert_eq!(child_document.document["metadata"]["results-size"], 2);

    let sql = test.segment_of(&trace, "the query's sql subsegment", |s| s.document.get("sql").is_some()).await;
    assert_eq!(sql.parent_id(), Some(home.span_id().as_str()));
    assert_eq!(sql.name(), Some(format!("{}@127.0.0.1", test.database()).as_str()));
    assert_eq!(sql.document["namespace"], "remote");
    assert_eq!(sql.document["sql"]["database_type"], "postgresql");
    assert_eq!(sql.document["sql"]["sanitized_query"], ACTIVITIES_QUERY);

    // The request is one datagram, as the X-Ray SDKs send it: the segment with its subsegments embedded.
    let datagrams = test.sink.datagrams();
    let of_the_trace = |datagram: &&test_support::udp_sink::Datagram| {
        datagram.segment().is_ok_and(|segment| segment.otlp_trace_id().as_deref() == Some(trace.as_str()))
    };
    assert_eq!(datagrams.iter().filter(of_the_trace).count(), 1, "one datagram for the request's four spans");
    assert_eq!(segment.document["subsegments"][0]["name"], "home-activities", "{}", segment.document);
    // Every datagram is a valid daemon datagram.
    for datagram in datagrams {
        let segment = datagram.segment().expect("header line + document");
        assert_eq!(segment.header, json!({"format": "json", "version": 1}));
        assert!(is_lower_hex(segment.id().unwrap_or_default(), 16), "{}", segment.document);
        let trace_id = segment.trace_id().unwrap_or_default();
        assert!(
            trace_id.starts_with("1-") && is_lower_hex(&trace_id[2..10], 8) && is_lower_hex(&trace_id[11..], 24),
            "{trace_id}"
        );
        assert_eq!(&trace_id[10..11], "-");
    }
}

#[tokio::test]
async fn statuses_become_error_throttle_and_fault_as_in_the_xray_sdks() {
    let test = harness(&[]).await;
    for (code, flags) in [
        (200, json!([null, null, null])),
        (404, json!([true, null, null])),
        (429, json!([true, true, null])),
        (503, json!([null, null, true])),
    ] {
        let path = format!("/api/status/{code}");
        assert_eq!(test.get(&path, &[]).await.status().as_u16(), code);
        let server = test.server_span(&path).await;
        let otlp_error = server.span.status.as_ref().map(|status| status.code) == Some(OtlpStatus::Error as i32);
        assert_eq!(otlp_error, code >= 500, "OTLP status for {code}: only 5xx is an error of a server span");
        let segment = test.segment_of(&server.trace_id(), "the status route's segment", |_| true).await;
        let document = &segment.document;
        assert_eq!(json!([document["error"], document["throttle"], document["fault"]]), flags, "{code}: {document}");
        assert_eq!(document["http"]["response"]["status"], code);
    }
}

#[tokio::test]
async fn tokens_cookies_and_authorization_never_reach_a_span() {
    let test = harness(&[]).await;
    let response = test
        .get(
            "/api/status/200?token=secret-query",
            &[("authorization", "Bearer secret-bearer"), ("cookie", "session=secret-cookie")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let server = test.server_span("/api/status/200").await;
    let segment = test.segment_of(&server.trace_id(), "the segment", |_| true).await;

    let recorded = format!("{:?}", test.receiver.spans().iter().map(|span| &span.span).collect::<Vec<_>>());
    let sent: Vec<String> =
        test.sink.datagrams().iter().map(|datagram| String::from_utf8_lossy(&datagram.bytes).into_owned()).collect();
    for secret in ["secret-query", "secret-bearer", "secret-cookie"] {
        assert!(!recorded.contains(secret), "{secret} in an OTLP span");
        assert!(!sent.iter().any(|document| document.contains(secret)), "{secret} in a segment");
    }
    assert!(!server.attribute_keys().iter().any(|key| key.contains("authorization") || key.contains("cookie")));
    assert_eq!(segment.document["http"]["request"]["url"], format!("{}/api/status/200", test.base));
}

#[tokio::test]
async fn segments_are_named_by_tracing_name_or_by_matching_host() {
    let test = harness(&[("AWS_XRAY_TRACING_NAME", "backend-flask"), ("AWS_XRAY_URL", "*.gitpod.io")]).await;
    test.get("/api/status/200", &[]).await;
    test.get("/api/status/201", &[("host", "4567-cruddur.ws.gitpod.io")]).await;
    let local = test.server_span("/api/status/200").await;
    let gitpod = test.server_span("/api/status/201").await;
    let local = test.segment_of(&local.trace_id(), "the local segment", |_| true).await;
    let gitpod = test.segment_of(&gitpod.trace_id(), "the gitpod segment", |_| true).await;
    assert_eq!(local.name(), Some("backend-flask"));
    assert_eq!(gitpod.name(), Some("4567-cruddur.ws.gitpod.io"));
}

#[tokio::test]
async fn a_request_is_one_datagram_unless_its_documents_do_not_fit_one() {
    let test = traced(options(&[]), |config| config.otlp = None).await;
    let (sink, telemetry) = (&test.sink, &test.telemetry);
    let request = |name: &'static str, children: usize, payload: &str| {
        let root = tracing::info_span!("request", otel.kind = "server", app.request = name);
        let _entered = root.enter();
        for _ in 0..children {
            tracing::info_span!("child", app.payload = payload).in_scope(|| ());
        }
    };
    request("small", 3, "x");
    // 40 children of 2 KiB: together larger than a datagram, each alone much smaller.
    request("large", 40, &"y".repeat(2048));
    telemetry.force_flush();

    let small = sink
        .wait_for_segment("the small request", |segment| segment.document["metadata"]["app.request"] == "small")
        .await;
    assert_eq!(small.document["subsegments"].as_array().map(Vec::len), Some(3), "{}", small.document);
    let large = sink
        .wait_for_segment("the large request", |segment| segment.document["metadata"]["app.request"] == "large")
        .await;
    assert!(large.document.get("subsegments").is_none(), "too large to embed: {}", large.document);
    let datagrams_of = |segment: &Segment| {
        let trace_id = segment.trace_id().map(str::to_owned);
        sink.datagrams().iter().filter(|datagram| datagram.segment().unwrap().trace_id() == trace_id.as_deref()).count()
    };
    // The small request's datagram and the large one's 41.
    sink.wait_for_datagrams(42).await;
    assert_eq!(datagrams_of(&small), 1, "the small request's segment carries its subsegments");
    assert_eq!(datagrams_of(&large), 41, "the large request's subsegments go one by one");
    for segment in sink.segments().iter().filter(|segment| segment.trace_id() == large.trace_id()) {
        if segment.name() == Some("child") {
            assert_eq!(segment.document["type"], "subsegment");
            assert_eq!(segment.parent_id(), large.id());
        }
    }
}

#[tokio::test]
async fn every_request_of_a_large_export_arrives_as_one_datagram() {
    let test = traced(options(&[]), |config| config.otlp = None).await;
    let (sink, telemetry) = (&test.sink, &test.telemetry);
    // Many requests in one export: each trace of the batch is its own datagram, none lost or merged.
    const REQUESTS: usize = 101;
    for request in 0..REQUESTS {
        let root = tracing::info_span!("request", otel.kind = "server", app.request = request as i64);
        root.in_scope(|| tracing::info_span!("child").in_scope(|| ()));
    }
    telemetry.force_flush();

    let mut requests: Vec<i64> = sink
        .wait_for_datagrams(REQUESTS)
        .await
        .iter()
        .map(|datagram| datagram.segment().expect("a segment").document["metadata"]["app.request"].as_i64())
        .map(|request| request.expect("each datagram is a request's segment"))
        .collect();
    requests.sort_unstable();
    assert_eq!(requests, (0..REQUESTS as i64).collect::<Vec<_>>(), "each request once, as one datagram");
    assert_eq!(telemetry.export_stats().xray.map(|lane| (lane.dropped, lane.failed)), Some((0, 0)));
}

#[tokio::test]
async fn each_query_is_measured_in_the_database_duration_histogram() {
    let metrics = test_support::otlp_metrics::OtlpMetricsReceiver::start();
    let endpoint = format!("{}/v1/metrics", metrics.endpoint());
    let test = harness(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint)]).await;
    for handle in ["andrewbrown", "bayko"] {
        assert_eq!(test.get(&format!("/api/activities/{handle}"), &[]).await.status(), StatusCode::OK);
    }
    test.telemetry.force_flush();
    let histogram =
        metrics.wait_for_metric("the database duration", |metric| metric.name == "db.client.operation.duration").await;
    assert_eq!((histogram.kind, histogram.unit.as_str()), ("histogram", "s"));
    let select = histogram
        .points
        .iter()
        .find(|point| point.attributes["db.operation.name"] == "SELECT")
        .unwrap_or_else(|| panic!("a SELECT point: {:?}", histogram.points));
    assert_eq!(select.attributes["db.system.name"], "postgresql");
    assert_eq!(select.count, Some(2), "one measurement per query");
}
