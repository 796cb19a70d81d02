//! Export never holds up a request: a closed or stuck OTLP endpoint changes nothing for the user (losses are
//! counted), and each exporter is switched on its own.

mod support;

use reqwest::StatusCode;
use support::{harness, options, traced};
use test_support::traced::xray_header;

#[tokio::test]
async fn a_closed_otlp_port_changes_nothing_for_requests() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let endpoint = format!("http://{closed}");
    let test = harness(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    for _ in 0..20 {
        let response = test.get("/api/activities/andrewbrown", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Vec<String>>().await.unwrap().len(), 2);
    }
    test.flush();
    let stats = test.telemetry.export_stats();
    let otlp = stats.otlp.expect("OTLP is configured");
    assert!(otlp.failed > 0 && otlp.exported == 0, "{otlp:?}");
    // X-Ray is unaffected by the OTLP outage.
    assert!(stats.xray.expect("X-Ray is configured").exported > 0, "{stats:?}");
    // The flush has sent the datagrams; the sink's thread may not have read them yet.
    test.sink.wait_for_segment("the query's subsegment", |segment| segment.document.get("sql").is_some()).await;
}

#[tokio::test]
async fn a_stuck_endpoint_fills_the_queue_and_drops_are_counted_not_waited_for() {
    // Accepts connections and never answers: every export hangs until its timeout.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    let options = options(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("AWS_XRAY_SDK_ENABLED", "false")]);
    let test = traced(options, |config| config.export_queue = 8).await;
    for round in 0..50 {
        let response = test.get("/api/status/200", &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "request {round}");
    }
    let stats = test.telemetry.export_stats().otlp.expect("OTLP is configured");
    // One batch of 8 is stuck in the export, 8 more fill the queue: the rest is dropped on the spot.
    assert!(stats.dropped >= 50 - 2 * 8, "the full queue drops: {stats:?}");
    // Let the hanging export fail at once instead of at its timeout, so shutdown is quick.
    drop(black_hole);
}

#[tokio::test]
async fn each_exporter_switches_on_its_own() {
    let test = harness(&[("AWS_XRAY_SDK_ENABLED", "false")]).await;
    test.get("/api/status/200", &[]).await;
    test.server_span("/api/status/200").await;
    assert_eq!(test.telemetry.export_stats().xray, None);
    assert!(test.sink.datagrams().is_empty());

    let off = traced(options(&[]), |config| (config.otlp, config.xray) = (None, None)).await;
    let response = off.get("/api/status/200", &[]).await;
    let header = xray_header(&response);
    assert!(header.starts_with("Root=1-") && header.ends_with(";Sampled=0"), "ids are still made: {header}");
    assert_eq!((off.telemetry.export_stats().otlp, off.telemetry.export_stats().xray), (None, None));
}
