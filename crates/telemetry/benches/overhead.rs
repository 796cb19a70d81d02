//! Tracing overhead of the telemetry pipeline: requests per second and latency percentiles of a small traced axum
//! route (a server span, a hand-made child span, a log event) with telemetry off, OTLP only, X-Ray only and both,
//! exporting to the local OTLP receiver and UDP sink of test-support. Run: `cargo bench -p cruddur-telemetry`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use cruddur_telemetry::server::ServerLayer;
use cruddur_telemetry::{
    OtlpConfig, OtlpSampling, SamplingRules, Telemetry, TelemetryConfig, XrayConfig, XraySampling,
};
use futures::StreamExt;
use test_support::otlp::OtlpReceiver;
use test_support::udp_sink::UdpSink;
use tracing_subscriber::layer::SubscriberExt;

const WARM_UP: usize = 2_000;
const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 16;

fn main() {
    println!("{:<10} {:>10} {:>10} {:>10}  exported", "exporters", "req/s", "p50 µs", "p99 µs");
    for (label, otlp, xray) in
        [("off", false, false), ("otlp", true, false), ("xray", false, true), ("both", true, true)]
    {
        let receiver = OtlpReceiver::start();
        let sink = UdpSink::start();
        let mut config = TelemetryConfig::silent("bench");
        if otlp {
            let traces_endpoint = receiver.traces_url().parse().expect("a URL");
            config.otlp = Some(OtlpConfig {
                traces_endpoint,
                headers: vec![("x-honeycomb-team".into(), "bench".into())],
                sampling: OtlpSampling::default(),
            });
        }
        if xray {
            let daemon_udp_address = sink.address().to_string();
            let (segment_name, sampling) = ("bench".into(), XraySampling::Local(SamplingRules::default()));
            config.xray = Some(XrayConfig { daemon_udp_address, segment_name, dynamic_naming: None, sampling });
        }
        let telemetry = Telemetry::new(&config).expect("telemetry");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let (requests_per_second, p50, p99) = runtime.block_on(async {
            let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding");
            let url = format!("http://{}/api/activities/bench", listener.local_addr().expect("an address"));
            tokio::spawn(async move { axum::serve(listener, app()).await.expect("serving") });
            let client = reqwest::Client::new();
            run(&client, &url, WARM_UP).await;
            let started = Instant::now();
            let mut latencies = run(&client, &url, REQUESTS).await;
            let elapsed = started.elapsed();
            latencies.sort();
            (REQUESTS as f64 / elapsed.as_secs_f64(), percentile(&latencies, 0.50), percentile(&latencies, 0.99))
        });
        telemetry.force_flush();
        let stats = telemetry.export_stats();
        println!(
            "{label:<10} {requests_per_second:>10.0} {:>10} {:>10}  otlp={:?} xray={:?}",
            p50.as_micros(),
            p99.as_micros(),
            stats.otlp.map(|lane| (lane.exported, lane.dropped, lane.failed)),
            stats.xray.map(|lane| (lane.exported, lane.dropped, lane.failed)),
        );
    }
}

fn app() -> Router {
    Router::new()
        .route(
            "/api/activities/{handle}",
            get(|| async {
                let span = tracing::info_span!(
                    "home-activities",
                    app.now = "2024-03-01T12:00:00+00:00",
                    app.result_length = 3
                );
                let _entered = span.enter();
                tracing::info!("loading activities");
                "[]"
            }),
        )
        .layer(ServerLayer::new())
}

/// Sends `count` requests, `CONCURRENCY` at a time, and returns each one's latency.
async fn run(client: &reqwest::Client, url: &str, count: usize) -> Vec<Duration> {
    futures::stream::iter(0..count)
        .map(|_| async {
            let started = Instant::now();
            let response = client.get(url).send().await.expect("a response");
            assert!(response.status().is_success());
            response.bytes().await.expect("a body");
            started.elapsed()
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * quantile) as usize]
}
