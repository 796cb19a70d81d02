//! Errors, logs and metrics, each joined to its trace: a traced axum app behind the signals layer, exporting to the
//! local stand-ins (OTLP traces and metrics receivers, the UDP segment sink, a Rollbar API, a CloudWatch Logs
//! endpoint), configured through the documented variables, in test-support's traced-app harness. Each test installs
//! its pipeline as the thread's default subscriber on a single-threaded runtime, so tests share no global state.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cruddur_telemetry::Telemetry;
use cruddur_telemetry::exceptions::Exception;
use cruddur_telemetry::rollbar::{Level, Person, Report, Reported};
use cruddur_telemetry::server::ServerLayer;
use http::StatusCode;
use support::options;
use test_support::cloudwatch_logs::{CloudWatchFailure, CloudWatchLogsEndpoint};
use test_support::otlp::WAIT;
use test_support::otlp_metrics::OtlpMetricsReceiver;
use test_support::rollbar::{RollbarEndpoint, RollbarFailure};
use test_support::sigv4;
use test_support::traced::{Pipeline, TracedApp, Variables};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;
use xray_protocol::segment::xray_trace_id as xray_id;

const PANIC_ROUTE: &str = "/api/boom/{what}";

/// How the harness installs this file's pipeline: telemetry's layer, and the CloudWatch Logs layer when it is on.
const SIGNALS: Pipeline<Telemetry> = Pipeline { install, flush: Telemetry::force_flush };

fn install(telemetry: &Telemetry) -> DefaultGuard {
    let traced = tracing_subscriber::registry().with(telemetry.layer());
    match telemetry.cloudwatch_layer().expect("the CloudWatch layer") {
        Some(cloudwatch) => tracing::subscriber::set_default(traced.with(cloudwatch)),
        None => tracing::subscriber::set_default(traced),
    }
}

/// The app behind the signals layer, with telemetry configured by the seed's variables plus `extra`.
async fn harness(extra: &[(&str, &str)]) -> TracedApp<Telemetry> {
    let telemetry = |variables: &Variables| support::telemetry(variables, |_| {});
    TracedApp::start(options(extra), SIGNALS, telemetry, async |telemetry: &Telemetry, _: Option<&str>| app(telemetry))
        .await
}

/// Routes that succeed, panic and fail a query, behind the signals layer (which names the caller from a test
/// header) and the server layer.
fn app(telemetry: &Telemetry) -> Router {
    let signals =
        telemetry.signals_layer().with_panic_response(json_internal_error).with_person_lookup(Arc::new(|headers| {
            let user = headers.get("x-test-user").and_then(|value| value.to_str().ok()).map(str::to_owned);
            Box::pin(
                async move { user.map(|handle| Person { id: format!("uuid-of-{handle}"), username: Some(handle) }) },
            )
        }));
    Router::new()
        .route("/api/ok", get(|| async { "fine" }))
        .route(PANIC_ROUTE, get(panicking))
        .route("/api/failing-query", get(failing_query))
        .layer(signals)
        .layer(ServerLayer::new())
}

async fn panicking() -> &'static str {
    panic!("the secret internals of the feed")
}

fn json_internal_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(serde_json::json!({ "errors": ["internal"] }))).into_response()
}

#[derive(Debug, thiserror::Error)]
#[error("relation \"activities\" does not exist")]
struct QueryFailed;

/// A 500 whose exception the handler attached, as the backend's `ApiError` does for a failed query.
async fn failing_query() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(Exception::from_error(&QueryFailed));
    response
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/", listener.local_addr().unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_answers_500_without_internals_is_a_fault_with_its_cause_and_the_server_keeps_serving() {
    let test = harness(&[]).await;
    let response = test.get("/api/boom/feed", &[]).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let xray_header = response.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    assert_eq!(body, r#"{"errors":["internal"]}"#);
    assert_eq!(test.get("/api/ok", &[]).await.status(), StatusCode::OK, "the server keeps serving");

    // X-Ray: the real opentelemetry-aws translation, as the datagram carries it.
    test.telemetry.force_flush();
    let segment = test
        .sink
        .wait_for_segment("the panicking request's segment", |segment| segment.document["fault"] == true)
        .await;
    assert!(xray_header.contains(segment.trace_id().unwrap()), "{xray_header}");
    let exceptions = segment.document["cause"]["exceptions"].as_array().expect("cause.exceptions").clone();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0]["type"], "panic");
    let message = exceptions[0]["message"].as_str().unwrap();
    assert!(message.starts_with("the secret internals of the feed at "), "{message}");

    // OTLP: the exception event on the server span, its status in error.
    let server = test
        .receiver
        .wait_for_span("the panicking server span", |span| span.string_attribute("http.route") == Some(PANIC_ROUTE))
        .await;
    assert_eq!(xray_id(&server.trace_id()), segment.trace_id().unwrap());
    let event = server.span.events.iter().find(|event| event.name == "exception").expect("an exception event");
    let attribute = |key: &str| {
        event.attributes.iter().find(|attribute| attribute.key == key).and_then(|attribute| attribute.value.clone())
    };
    assert!(attribute("exception.type").is_some() && attribute("exception.message").is_some());
    assert!(attribute("exception.stacktrace").is_some());
    assert_eq!(server.span.status.as_ref().map(|status| status.code), Some(2), "ERROR");
}

#[tokio::test(flavor = "current_thread")]
async fn each_failure_is_one_rollbar_item_with_the_request_the_person_and_the_trace() {
    let rollbar = RollbarEndpoint::start();
    let api = rollbar.api_url();
    let test = harness(&[("ROLLBAR_ACCESS_TOKEN", "test-rollbar-token"), ("ROLLBAR_ENDPOINT", &api)]).await;
    let response = test
        .get(
            "/api/failing-query?token=secret-query",
            &[("authorization", "Bearer secret-token"), ("x-test-user", "andrewbrown")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let xray_header = response.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    let item = rollbar.wait_for_item("the failed query's item", |_| true).await;
    assert_eq!(item.headers["x-rollbar-access-token"], "test-rollbar-token");
    let data = item.data();
    assert_eq!((data["environment"].as_str(), data["level"].as_str()), (Some("production"), Some("error")));
    assert!(data["body"]["trace"]["exception"]["class"].as_str().unwrap().ends_with("QueryFailed"));
    assert_eq!(data["body"]["trace"]["exception"]["message"], "relation \"activities\" does not exist");
    assert_eq!(data["person"], serde_json::json!({ "id": "uuid-of-andrewbrown", "username": "andrewbrown" }));
    assert_eq!(data["request"]["method"], "GET");
    assert_eq!(data["request"]["route"], "/api/failing-query");
    let url = data["request"]["url"].as_str().unwrap();
    assert!(url.ends_with("/api/failing-query"), "the query string stays out: {url}");
    let request = data["request"].to_string();
    assert!(!request.contains("secret"), "no credential leaves: {request}");
    assert!(xray_header.contains(data["custom"]["xray_trace_id"].as_str().unwrap()), "{xray_header} {data}");
    assert_eq!(data["custom"]["trace_id"].as_str().unwrap().len(), 32);
    assert!(data["server"]["host"].is_string() && data["code_version"].is_string());

    // A panic is one more item; a success is none.
    assert_eq!(test.get("/api/ok", &[]).await.status(), StatusCode::OK);
    assert_eq!(test.get("/api/boom/x", &[]).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let panic = rollbar
        .wait_for_item("the panic's item", |item| item.data()["body"]["trace"]["exception"]["class"] == "panic")
        .await;
    assert!(!panic.data()["body"]["trace"]["frames"].as_array().unwrap().is_empty());
    assert_eq!(panic.data()["person"], serde_json::Value::Null, "signed out");
    assert_eq!(rollbar.accepted().len(), 2);
}

/// What is queued for Rollbar when the process stops still goes: ending telemetry waits for the queue (with retries
/// under way) instead of leaving the items behind.
#[tokio::test(flavor = "current_thread")]
async fn items_queued_when_telemetry_ends_are_sent_first() {
    let rollbar = RollbarEndpoint::start();
    // The first attempt of each item is refused and retried after a backoff: the items are still queued at the end.
    rollbar.fail(RollbarFailure::Throttle);
    let api = rollbar.api_url();
    let test = harness(&[("ROLLBAR_ACCESS_TOKEN", "t"), ("ROLLBAR_ENDPOINT", &api)]).await;
    let client = test.telemetry.rollbar();
    for message in ["first", "second"] {
        client.report(Report {
            level: Level::Error,
            what: Reported::Message(message.to_owned()),
            request: None,
            person: None,
            trace_id: None,
        });
    }
    rollbar.wait_for_refused(1).await;
    rollbar.recover();
    drop(test);
    let sent: Vec<String> = rollbar
        .accepted()
        .iter()
        .map(|item| item.data()["body"]["message"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["first", "second"]);
}

#[tokio::test(flavor = "current_thread")]
async fn failing_rollbar_endpoints_change_nothing_a_user_sees_and_are_counted() {
    let rollbar = RollbarEndpoint::start();
    let (api, closed) = (rollbar.api_url(), closed_port_url());
    for (failure, endpoint) in
        [(Some(RollbarFailure::ServerError), &api), (Some(RollbarFailure::Throttle), &api), (None, &closed)]
    {
        if let Some(failure) = failure {
            rollbar.fail(failure);
        }
        let test = harness(&[("ROLLBAR_ACCESS_TOKEN", "t"), ("ROLLBAR_ENDPOINT", endpoint)]).await;
        let response = test.get("/api/boom/x", &[]).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.text().await.unwrap(), r#"{"errors":["internal"]}"#);
        assert_eq!(test.get("/api/ok", &[]).await.status(), StatusCode::OK);
        // The item is tried four times (with backoff), then counted as failed.
        let deadline = tokio::time::Instant::now() + WAIT;
        while test.telemetry.signal_stats().rollbar.failed == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(test.telemetry.signal_stats().rollbar.failed, 1, "{failure:?} {endpoint}");
    }
    let refused = rollbar.items();
    assert_eq!(refused.iter().filter(|item| item.status == 500).count(), 4, "retried");
    assert_eq!(refused.iter().filter(|item| item.status == 429).count(), 4, "retried");
}

#[tokio::test(flavor = "current_thread")]
async fn every_log_line_of_a_request_reaches_cloudwatch_with_its_trace_id() {
    let cloudwatch = CloudWatchLogsEndpoint::start();
    let url = cloudwatch.url();
    let vars = [
        ("CLOUDWATCH_LOG_GROUP", "cruddur"),
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url.as_str()),
        ("AWS_REGION", sigv4::REGION),
        ("AWS_ACCESS_KEY_ID", sigv4::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", sigv4::SECRET_KEY),
    ];
    let test = harness(&vars).await;
    let response = test.get("/api/failing-query", &[]).await;
    let xray_header = response.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    test.telemetry.force_flush();
    let access = cloudwatch
        .wait_for_event("cruddur", "the access-log line", |event| {
            event.json()["fields"]["path"] == "/api/failing-query"
        })
        .await;
    let line = access.json();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["status"], 500);
    assert_eq!(line["fields"]["route"], "/api/failing-query");
    assert_eq!(line["fields"]["method"], "GET");
    assert!(line["fields"]["duration_ms"].is_number());
    let trace_id = line["trace_id"].as_str().expect("the trace id");
    assert!(xray_header.contains(&xray_id(trace_id)), "{xray_header} {line}");
    assert!(line["span_id"].is_string());
    let error =
        cloudwatch.wait_for_event("cruddur", "the error line", |event| event.json()["level"] == "ERROR").await.json();
    assert_eq!(error["trace_id"], trace_id);
    assert_eq!(error["fields"]["exception_message"], "relation \"activities\" does not exist");
    // A line longer than PutLogEvents takes arrives cut where a character ends, within the service's limit (the
    // stand-in refuses a batch with a longer event).
    tracing::error!(text = "é".repeat(200_000).as_str(), "a line too long for CloudWatch");
    test.telemetry.force_flush();
    let cut = cloudwatch.wait_for_event("cruddur", "the long line, cut", |event| event.message.len() > 200_000).await;
    assert!(cut.message.starts_with(r#"{"timestamp":"#) && cut.message.ends_with("é"), "{}", &cut.message[..200]);
    assert!((262_144 - 27..=262_144 - 26).contains(&cut.message.len()), "{}", cut.message.len());
    let streams = cloudwatch.streams("cruddur");
    let stream = test.telemetry.cloudwatch_stream().unwrap();
    assert_eq!(streams.keys().collect::<Vec<_>>(), vec![stream], "one stream per process");
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_cloudwatch_endpoint_changes_nothing_a_user_sees_and_drops_are_counted() {
    let cloudwatch = CloudWatchLogsEndpoint::start();
    let url = cloudwatch.url();
    let closed = closed_port_url();
    for (failure, endpoint) in
        [(Some(CloudWatchFailure::ServerError), &url), (Some(CloudWatchFailure::Throttle), &url), (None, &closed)]
    {
        if let Some(failure) = failure {
            cloudwatch.fail(failure);
        }
        let vars = [
            ("CLOUDWATCH_LOG_GROUP", "cruddur"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", endpoint.as_str()),
            ("AWS_REGION", sigv4::REGION),
            ("AWS_ACCESS_KEY_ID", sigv4::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", sigv4::SECRET_KEY),
        ];
        let test = harness(&vars).await;
        for _ in 0..3 {
            assert_eq!(test.get("/api/ok", &[]).await.status(), StatusCode::OK, "{failure:?}");
        }
        test.telemetry.force_flush();
        let stats = test.telemetry.signal_stats().cloudwatch.unwrap();
        assert!(stats.failed_calls >= 1 && stats.sent == 0, "{failure:?}: {stats:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_http_duration_histogram_reaches_the_otlp_metrics_destination() {
    let metrics = OtlpMetricsReceiver::start();
    let endpoint = format!("{}/v1/metrics", metrics.endpoint());
    let test = harness(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint)]).await;
    assert_eq!(test.get("/api/ok", &[]).await.status(), StatusCode::OK);
    assert_eq!(test.get("/api/ok", &[]).await.status(), StatusCode::OK);
    assert_eq!(test.get("/api/boom/x", &[]).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    test.telemetry.force_flush();
    let histogram = metrics
        .wait_for_metric("the HTTP server duration", |metric| metric.name == "http.server.request.duration")
        .await;
    assert_eq!((histogram.kind, histogram.unit.as_str()), ("histogram", "s"));
    assert_eq!(histogram.service_name.as_deref(), Some("backend-rust"));
    let point = |route: &str, status: &str| {
        histogram
            .points
            .iter()
            .find(|point| {
                point.attributes["http.route"] == route && point.attributes["http.response.status_code"] == status
            })
            .cloned()
    };
    let ok = point("/api/ok", "200").expect("the /api/ok point");
    assert_eq!((ok.count, ok.attributes["http.request.method"].as_str()), (Some(2), "GET"));
    assert_eq!(point(PANIC_ROUTE, "500").expect("the panic's point").count, Some(1));
}
