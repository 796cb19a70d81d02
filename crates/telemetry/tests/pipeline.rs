//! End to end: a traced axum app with a real sqlx query, exporting to a local OTLP/HTTP receiver and a local UDP
//! segment sink, through the seed's variables. Each test builds its own pipeline and installs it as the thread's
//! default subscriber (the runtime is single-threaded), so tests share no global state.

mod support;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use reqwest::StatusCode;
use serde_json::json;
use support::{
    ACTIVITIES_QUERY, ACTIVITIES_ROUTE, SamplingApi, app, database, is_hex, sampling_rule, seed_config, serve, xray_id,
};
use test_support::otlp::{OtlpReceiver, ReceivedSpan};
use test_support::udp_sink::{Segment, UdpSink};
use tokio::sync::oneshot;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

use cruddur_telemetry::Telemetry;
use xray_protocol::SamplingTargetsRequest;

struct Harness {
    base: String,
    client: reqwest::Client,
    database: String,
    receiver: OtlpReceiver,
    sink: UdpSink,
    // Dropped in this order: the server, then telemetry (flushing), then the subscriber.
    _stop: oneshot::Sender<()>,
    telemetry: Telemetry,
    _subscriber: DefaultGuard,
}

async fn harness(extra: &[(&str, &str)]) -> Harness {
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let telemetry = Telemetry::new(&seed_config(&receiver, &sink, extra)).expect("telemetry");
    let subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    let (pool, database) = database(&telemetry).await;
    let (address, stop) = serve(app(pool)).await;
    Harness {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        database,
        receiver,
        sink,
        _stop: stop,
        telemetry,
        _subscriber: subscriber,
    }
}

impl Harness {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let request = self.client.get(format!("{}{path}", self.base)).headers(test_support::header_map(headers));
        request.send().await.expect("the request")
    }

    async fn server_span(&self, what: &str, path: &str) -> ReceivedSpan {
        self.telemetry.force_flush();
        self.receiver
            .wait_for_span(what, |span| {
                span.kind() == SpanKind::Server && span.string_attribute("url.path") == Some(path)
            })
            .await
    }

    async fn span_in(&self, trace_id: &str, name: &str) -> ReceivedSpan {
        self.receiver.wait_for_span(name, |span| span.trace_id() == trace_id && span.name() == name).await
    }

    async fn segment_of(&self, trace_id: &str, what: &str, matches: impl Fn(&Segment) -> bool) -> Segment {
        self.sink
            .wait_for_segment(what, |segment| segment.otlp_trace_id().as_deref() == Some(trace_id) && matches(segment))
            .await
    }
}

fn xray_header(response: &reqwest::Response) -> String {
    response.headers()["x-amzn-trace-id"].to_str().expect("an ASCII header").to_owned()
}

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
    let server = test.server_span("the request's server span", "/api/activities/andrewbrown").await;
    let trace = server.trace_id();
    assert!(is_hex(&trace, 32) && is_hex(&server.span_id(), 16));
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
    assert_eq!(xray_response, format!("Root={};Sampled=1", xray_id(&trace)));

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
    assert_eq!(query.name(), format!("SELECT {}", test.database));
    assert_eq!(query.string_attribute("db.system.name"), Some("postgresql"));
    assert_eq!(query.string_attribute("db.query.text"), Some(ACTIVITIES_QUERY));
    assert_eq!(query.string_attribute("db.namespace"), Some(test.database.as_str()));
    assert_eq!(query.string_attribute("server.address"), Some("127.0.0.1"));
    assert!(query.span.start_time_unix_nano < query.span.end_time_unix_nano);
    assert!(query.span.start_time_unix_nano >= home.span.start_time_unix_nano);

    // X-Ray: the segment, with its http block, under the same trace id.
    let segment = test.segment_of(&trace, "the request's segment", |segment| segment.parent_id().is_none()).await;
    assert_eq!(segment.trace_id(), Some(xray_id(&trace).as_str()));
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
    assert_eq!(sql.name(), Some(format!("{}@127.0.0.1", test.database).as_str()));
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
        assert!(is_hex(segment.id().unwrap_or_default(), 16), "{}", segment.document);
        let trace_id = segment.trace_id().unwrap_or_default();
        assert!(trace_id.starts_with("1-") && is_hex(&trace_id[2..10], 8) && is_hex(&trace_id[11..], 24), "{trace_id}");
        assert_eq!(&trace_id[10..11], "-");
    }
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued() {
    let test = harness(&[]).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = test.get("/api/status/204", &[("traceparent", &format!("00-{trace}-{parent}-01"))]).await;
    assert_eq!(xray_header(&response), format!("Root={};Sampled=1", xray_id(trace)));

    let server = test.server_span("the continued server span", "/api/status/204").await;
    assert_eq!((server.trace_id().as_str(), server.parent_span_id().as_str()), (trace, parent));
    let segment = test.segment_of(trace, "the continued segment", |_| true).await;
    assert_eq!(segment.trace_id(), Some(xray_id(trace).as_str()));
    assert_eq!(segment.parent_id(), Some(parent));
}

#[tokio::test]
async fn an_incoming_xray_header_is_continued() {
    let test = harness(&[]).await;
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let response = test.get("/api/status/204", &[("x-amzn-trace-id", header)]).await;
    assert_eq!(xray_header(&response), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");

    let server = test.server_span("the continued server span", "/api/status/204").await;
    assert_eq!(server.trace_id(), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(server.parent_span_id(), "53995c3f42cd8ad8");
    let segment = test.segment_of(&server.trace_id(), "the continued segment", |_| true).await;
    assert_eq!(segment.parent_id(), Some("53995c3f42cd8ad8"));
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
        let server = test.server_span("the status route's span", &path).await;
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
    let server = test.server_span("the server span", "/api/status/200").await;
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
    let local = test.server_span("the local request", "/api/status/200").await;
    let gitpod = test.server_span("the gitpod request", "/api/status/201").await;
    let local = test.segment_of(&local.trace_id(), "the local segment", |_| true).await;
    let gitpod = test.segment_of(&gitpod.trace_id(), "the gitpod segment", |_| true).await;
    assert_eq!(local.name(), Some("backend-flask"));
    assert_eq!(gitpod.name(), Some("4567-cruddur.ws.gitpod.io"));
}

#[tokio::test]
async fn a_closed_otlp_port_changes_nothing_for_requests() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let endpoint = format!("http://{closed}");
    let telemetry =
        Telemetry::new(&seed_config(&receiver, &sink, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)])).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    let (pool, _) = database(&telemetry).await;
    let (address, _stop) = serve(app(pool)).await;

    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client.get(format!("http://{address}/api/activities/andrewbrown")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Vec<String>>().await.unwrap().len(), 2);
    }
    telemetry.force_flush();
    let stats = telemetry.export_stats();
    let otlp = stats.otlp.expect("OTLP is configured");
    assert!(otlp.failed > 0 && otlp.exported == 0, "{otlp:?}");
    // X-Ray is unaffected by the OTLP outage.
    assert!(stats.xray.expect("X-Ray is configured").exported > 0, "{stats:?}");
    // The flush has sent the datagrams; the sink's thread may not have read them yet.
    sink.wait_for_segment("the query's subsegment", |segment| segment.document.get("sql").is_some()).await;
}

#[tokio::test]
async fn a_stuck_endpoint_fills_the_queue_and_drops_are_counted_not_waited_for() {
    // Accepts connections and never answers: every export hangs until its timeout.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let mut config =
        seed_config(&receiver, &sink, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("AWS_XRAY_SDK_ENABLED", "false")]);
    config.export_queue = 8;
    let telemetry = Telemetry::new(&config).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    let (address, _stop) = serve(app(sqlx::PgPool::connect_lazy("postgres://unused/unused").unwrap())).await;

    let client = reqwest::Client::new();
    for round in 0..50 {
        let response = client.get(format!("http://{address}/api/status/200")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {round}");
    }
    let stats = telemetry.export_stats().otlp.expect("OTLP is configured");
    // One batch of 8 is stuck in the export, 8 more fill the queue: the rest is dropped on the spot.
    assert!(stats.dropped >= 50 - 2 * 8, "the full queue drops: {stats:?}");
    // Let the hanging export fail at once instead of at its timeout, so shutdown is quick.
    drop(black_hole);
}

#[tokio::test]
async fn each_exporter_switches_on_its_own() {
    let test = harness(&[("AWS_XRAY_SDK_ENABLED", "false")]).await;
    test.get("/api/status/200", &[]).await;
    test.server_span("the OTLP-only span", "/api/status/200").await;
    assert_eq!(test.telemetry.export_stats().xray, None);
    assert!(test.sink.datagrams().is_empty());

    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let mut config = seed_config(&receiver, &sink, &[]);
    config.otlp = None;
    config.xray = None;
    let off = Telemetry::new(&config).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(off.layer()));
    let (address, _stop) = serve(app(sqlx::PgPool::connect_lazy("postgres://unused/unused").unwrap())).await;
    let response = reqwest::get(format!("http://{address}/api/status/200")).await.unwrap();
    let header = xray_header(&response);
    assert!(header.starts_with("Root=1-") && header.ends_with(";Sampled=0"), "ids are still made: {header}");
    assert_eq!((off.export_stats().otlp, off.export_stats().xray), (None, None));
}

/// Telemetry exporting to X-Ray only, to a sink of its own; the thread's subscriber while the guard lives.
fn xray_only() -> (UdpSink, Telemetry, tracing::subscriber::DefaultGuard) {
    let sink = UdpSink::start();
    let mut config = seed_config(&OtlpReceiver::start(), &sink, &[]);
    config.otlp = None;
    let telemetry = Telemetry::new(&config).unwrap();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    (sink, telemetry, guard)
}

#[tokio::test]
async fn a_request_is_one_datagram_unless_its_documents_do_not_fit_one() {
    let (sink, telemetry, _subscriber) = xray_only();
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
    let (sink, telemetry, _subscriber) = xray_only();
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

/// X-Ray's default rule, written out (the harness sends every trace to X-Ray).
const XRAY_DEFAULT_RULE: &str = r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}"#;
const XRAY_NEVER: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 0.0}}"#;

impl Harness {
    /// Waits for `wanted`'s segments, then returns the trace ids (OTLP form) of every segment the sink holds.
    async fn xray_traces_after(&self, wanted: &[String]) -> std::collections::BTreeSet<String> {
        self.telemetry.force_flush();
        for trace in wanted {
            self.segment_of(trace, "a sampled request's segment", |_| true).await;
        }
        self.sink.segments().iter().filter_map(Segment::otlp_trace_id).collect()
    }

    /// Waits until the daemon's rule sampling every `/api/status/*` request applies: before it, X-Ray's default rule
    /// takes 1 a second and 5% of the others, so ten in a row sampled is the rule.
    async fn wait_for_the_status_rule(&self, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let mut sampled = 0;
            for _ in 0..10 {
                sampled += usize::from(answered_trace(&self.get("/api/status/204", &[]).await).1);
            }
            if sampled == 10 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the daemon's rules never applied");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The OTLP trace id in an `X-Amzn-Trace-Id` response header, and its `Sampled=` flag.
fn answered_trace(response: &reqwest::Response) -> (String, bool) {
    let header = xray_header(response);
    let root = header.strip_prefix("Root=1-").and_then(|rest| rest.split(';').next()).expect("a Root field");
    (root.replace('-', ""), header.ends_with(";Sampled=1"))
}

#[tokio::test]
async fn otlp_gets_every_request_and_xray_the_sample_its_rule_takes() {
    let test = harness(&[("AWS_XRAY_SAMPLING_RULES", XRAY_DEFAULT_RULE)]).await;
    const REQUESTS: usize = 40;
    let mut answered = Vec::new();
    for _ in 0..REQUESTS {
        answered.push(answered_trace(&test.get("/api/status/204", &[]).await));
    }
    let sampled: Vec<String> =
        answered.iter().filter(|(_, sampled)| *sampled).map(|(trace, _)| trace.clone()).collect();
    // The reservoir takes the first request of each second; 5% of the others is 2 on average.
    assert!(!sampled.is_empty() && sampled.len() < REQUESTS / 2, "{} of {REQUESTS} sampled", sampled.len());

    test.telemetry.force_flush();
    let servers = test
        .receiver
        .wait_for_spans("of the requests", REQUESTS, |span| {
            span.string_attribute("url.path") == Some("/api/status/204")
        })
        .await;
    assert_eq!(servers.len(), REQUESTS, "OTLP gets every request");
    let in_xray = test.xray_traces_after(&sampled).await;
    assert_eq!(in_xray, sampled.iter().cloned().collect(), "X-Ray gets exactly the requests answered Sampled=1");
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
    assert_eq!(test.xray_traces_after(std::slice::from_ref(&taken)).await, [taken].into());

    let test = harness(&[]).await;
    let declined = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
    let (declined, sampled) = answered_trace(&test.get("/api/status/204", &[("x-amzn-trace-id", declined)]).await);
    assert!(!sampled, "the caller declined it for X-Ray");
    let (fresh, _) = answered_trace(&test.get("/api/status/204", &[]).await);
    test.span_in(&declined, "GET /api/status/{code}").await;
    assert_eq!(test.xray_traces_after(std::slice::from_ref(&fresh)).await, [fresh].into(), "OTLP has it, X-Ray not");
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

    test.wait_for_the_status_rule(std::time::Duration::from_secs(10)).await;
    // Default takes none by rate here, and borrows one a second before X-Ray gives it a quota.
    for _ in 0..3 {
        test.get("/api/health", &[]).await;
    }

    // The counts per rule, summed over the reports (every 10 s; the rules may have applied just before one).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    let counts = loop {
        let counts = reported_counts(&api.reports());
        let requests = |rule: &str| counts.get(rule).map_or(0, |[requests, _, _]| *requests);
        if requests("status-always") >= 10 && requests("Default") >= 3 {
            break counts;
        }
        assert!(std::time::Instant::now() < deadline, "not all counts reported: {:?}", api.reports());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let [requests, sampled, _] = counts["status-always"];
    assert_eq!(sampled, requests, "a rate-1 rule samples every request");
    assert!(!counts.contains_key("unused"), "only rules with requests are reported: {counts:?}");
    let [_, sampled, borrowed] = counts["Default"];
    assert!(borrowed >= 1 && sampled == borrowed, "a rate-0 rule without a quota only borrows: {counts:?}");
    let client_ids: std::collections::BTreeSet<String> = api
        .reports()
        .into_iter()
        .flat_map(|report| report.sampling_statistics_documents)
        .map(|document| document.client_id)
        .collect();
    assert!(client_ids.len() == 1 && client_ids.iter().all(|id| is_hex(id, 24)), "one client id: {client_ids:?}");
}

/// Per rule: requests, sampled, borrowed, summed over `reports`.
fn reported_counts(reports: &[SamplingTargetsRequest]) -> std::collections::BTreeMap<String, [u64; 3]> {
    let mut counts = std::collections::BTreeMap::<String, [u64; 3]>::new();
    for document in reports.iter().flat_map(|report| &report.sampling_statistics_documents) {
        let total = counts.entry(document.rule_name.clone()).or_default();
        for (sum, count) in
            total.iter_mut().zip([document.request_count, document.sampled_count, document.borrow_count])
        {
            *sum += count;
        }
    }
    counts
}

#[tokio::test]
async fn a_daemon_that_starts_after_the_service_is_found_within_seconds() {
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let addresses = format!("tcp:{port} udp:{}", UdpSink::start().address());
    let test = harness(&[("AWS_XRAY_SAMPLING_RULES", ""), ("AWS_XRAY_DAEMON_ADDRESS", &addresses)]).await;
    // The first fetch is refused; the daemon comes up afterwards.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let listener = tokio::net::TcpListener::bind(port).await.expect("the port again");
    let _api = SamplingApi::start_on(listener, vec![sampling_rule("status-always", 10, "/api/status/*", 1.0, 0)]).await;
    test.wait_for_the_status_rule(std::time::Duration::from_secs(20)).await;
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
    assert_eq!(test.xray_traces_after(&traces).await.len(), REQUESTS, "X-Ray got them all");

    test.telemetry.force_flush();
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
    assert!(test.xray_traces_after(std::slice::from_ref(&balanced)).await.contains(&balanced));
}
