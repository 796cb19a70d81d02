//! Sustained OTLP throughput of the `xray` binary as a gateway: a load generator posts OTLP/HTTP protobuf exports
//! (512 spans each, as the OpenTelemetry SDKs' batch processors send them) at a fixed span rate for a fixed time to
//! the daemon, which forwards every span to both of its destinations at once: X-Ray's OTLP endpoint (a local
//! stand-in that verifies each SigV4 signature, `--xray-delivery otlp`) and an OTLP receiver (the fan-out, with its
//! header). A rate passes when every span the daemon took arrives at both. For each rate it prints what was sent,
//! what arrived at each destination, what was lost, and the daemon's peak RSS.
//!
//! ```text
//! cargo bench -p xray-daemon --bench otlp_gateway
//! XRAY_BENCH_RATES=25000,50000,75000 XRAY_BENCH_SECONDS=10 nice cargo bench -p xray-daemon --bench otlp_gateway
//! ```

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use test_support::otlp::OtlpReceiver;
use test_support::sigv4::{ACCESS_KEY, REGION, SECRET_KEY};
use test_support::xray_endpoint::XrayEndpoint;

/// Spans per export: the batch span processors' default maximum.
const SPANS_PER_EXPORT: u64 = 512;
/// Exports in flight at most, as a few instrumented processes would have.
const IN_FLIGHT: usize = 8;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// One export of the backend's kind of spans (a server span's HTTP and a query's database attributes), each with
/// its own ids, so a lost span cannot hide behind a duplicate.
fn export(index: u64) -> Vec<u8> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let spans = (0..SPANS_PER_EXPORT)
        .map(|offset| {
            let id = index * SPANS_PER_EXPORT + offset;
            let mut trace_id = [0u8; 16];
            trace_id[..4].copy_from_slice(&((now / 1_000_000_000) as u32).to_be_bytes());
            trace_id[8..].copy_from_slice(&id.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (id + 1).to_be_bytes().to_vec(),
                name: "GET /api/activities/home".into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: now - 50_000_000,
                end_time_unix_nano: now,
                attributes: vec![
                    text("http.request.method", "GET"),
                    text("http.route", "/api/activities/home"),
                    text("url.full", "http://backend:4567/api/activities/home"),
                    text("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                    text("db.system.name", "postgresql"),
                    text("db.query.text", "SELECT activities.uuid, users.display_name FROM activities"),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "cruddur-backend")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

mod support;

fn start_daemon(endpoint: &XrayEndpoint, receiver: &OtlpReceiver) -> support::Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xray"));
    command
        .args(["-o", "-n", REGION, "-b", "127.0.0.1:0", "-t", "127.0.0.1:0"])
        .args(["--endpoint", &endpoint.url(), "--xray-delivery", "otlp"])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=bench")
        .env("RUST_LOG", "warn,xray_daemon=info");
    support::Running::start(command, "tcp=")
}

/// Posts `rate` spans per second for `seconds`; returns the spans the daemon took (answered 200) and refused.
async fn generate(daemon: SocketAddr, rate: u64, seconds: u64) -> (u64, u64) {
    let client = reqwest::Client::new();
    let url = format!("http://{daemon}/v1/traces");
    let exports = (rate * seconds).div_ceil(SPANS_PER_EXPORT);
    let mut in_flight = tokio::task::JoinSet::new();
    let (mut taken, mut refused) = (0, 0);
    let start = Instant::now();
    for index in 0..exports {
        let due = start + Duration::from_secs_f64((index * SPANS_PER_EXPORT) as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        while in_flight.len() >= IN_FLIGHT {
            let ok: bool = in_flight.join_next().await.expect("a task").expect("the task");
            if ok { taken += SPANS_PER_EXPORT } else { refused += SPANS_PER_EXPORT }
        }
        let request = client.post(&url).header("content-type", "application/x-protobuf").body(export(index));
        in_flight.spawn(async move { request.send().await.is_ok_and(|answer| answer.status().is_success()) });
    }
    while let Some(ok) = in_flight.join_next().await {
        if ok.expect("the task") { taken += SPANS_PER_EXPORT } else { refused += SPANS_PER_EXPORT }
    }
    (taken, refused)
}

fn main() {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let rates: Vec<u64> = std::env::var("XRAY_BENCH_RATES")
        .unwrap_or_else(|_| if quick { "5000".into() } else { "25000,50000,75000".into() })
        .split(',')
        .map(|rate| rate.trim().parse().expect("XRAY_BENCH_RATES: numbers separated by commas"))
        .collect();
    let seconds: u64 =
        std::env::var("XRAY_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 1 } else { 10 });
    println!(
        "export: {SPANS_PER_EXPORT} spans, {} bytes; {seconds} s per rate; to X-Ray's OTLP endpoint and the fan-out",
        export(0).len()
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "spans/s", "taken", "refused", "at X-Ray", "fan-out", "lost", "peak RSS"
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    for rate in rates {
        let endpoint = XrayEndpoint::start();
        let receiver = OtlpReceiver::start();
        let mut daemon = start_daemon(&endpoint, &receiver);
        let started = Instant::now();
        let (taken, refused) = runtime.block_on(generate(daemon.address, rate, seconds));
        let achieved = taken as f64 / started.elapsed().as_secs_f64();
        let arrived = || (endpoint.accepted_span_count() as u64, receiver.span_count() as u64);
        let deadline = Instant::now() + Duration::from_secs(10);
        while { arrived().0.min(arrived().1) } < taken && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let peak = daemon.peak_rss_kb() as f64 / 1024.0;
        let totals = daemon.stop();
        let (at_xray, at_fan_out) = arrived();
        let lost = taken.saturating_sub(at_xray) + taken.saturating_sub(at_fan_out);
        println!(
            "{rate:>8} {taken:>9} {refused:>9} {at_xray:>9} {at_fan_out:>9} {lost:>8} {peak:>6.1} MB  (achieved {achieved:.0} spans/s)"
        );
        if lost > 0 || refused > 0 {
            println!("         daemon: {totals}");
        }
    }
}
