//! The frontend server's requests traced and logged as the API's are (a process of its own: the test installs its
//! subscriber as the thread's default).

mod support;

use std::sync::Arc;

use test_support::cloudwatch_logs::CloudWatchLogsEndpoint;
use test_support::otlp::OtlpReceiver;
use test_support::sigv4;
use tracing_subscriber::layer::SubscriberExt;

/// A page load is a trace of its own (a server span), and its access line reaches CloudWatch Logs with that trace id,
/// as the API's do.
#[tokio::test(flavor = "current_thread")]
async fn each_request_is_traced_and_its_access_line_reaches_cloudwatch() {
    let receiver = OtlpReceiver::start();
    let cloudwatch = CloudWatchLogsEndpoint::start();
    let (otlp, logs) = (receiver.endpoint(), cloudwatch.url());
    let telemetry = support::telemetry(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("CLOUDWATCH_LOG_GROUP", "cruddur"),
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", logs.as_str()),
        ("AWS_REGION", sigv4::REGION),
        ("AWS_ACCESS_KEY_ID", sigv4::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", sigv4::SECRET_KEY),
    ]);
    let cloudwatch_layer = telemetry.cloudwatch_layer().unwrap().expect("CloudWatch Logs is on");
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(cloudwatch_layer).with(telemetry.layer()));
    let telemetry = Arc::new(telemetry);
    let served = support::serve("http://localhost:4567", telemetry.clone()).await;

    let response = reqwest::get(format!("{}/messages/@bayko", served.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    telemetry.force_flush();
    let access = cloudwatch
        .wait_for_event("cruddur", "the access line", |event| event.json()["fields"]["path"] == "/messages/@bayko")
        .await
        .json();
    assert_eq!((access["fields"]["status"].as_u64(), access["fields"]["method"].as_str()), (Some(200), Some("GET")));
    let trace_id = access["trace_id"].as_str().expect("the access line's trace id").to_owned();
    let span = receiver.wait_for_span("the page's server span", |span| span.trace_id() == trace_id).await;
    assert_eq!(span.resource_string_attribute("service.name"), Some("cruddur-frontend-server"));
}
