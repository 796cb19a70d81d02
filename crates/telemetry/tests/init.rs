//! `init` installs the globals once per process: this binary holds the only test that calls it.

mod support;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use support::{app, database, seed_config, serve};
use test_support::otlp::OtlpReceiver;
use test_support::udp_sink::UdpSink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_installs_the_global_subscriber_provider_and_propagator() {
    let receiver = OtlpReceiver::start();
    let sink = UdpSink::start();
    let mut config = seed_config(&receiver, &sink, &[]);
    config.log.format = cruddur_telemetry::LogFormat::Off;
    let telemetry = cruddur_telemetry::init_with(&config).expect("the first init");
    assert!(
        matches!(cruddur_telemetry::init_with(&config), Err(cruddur_telemetry::TelemetryError::Subscriber(_))),
        "a second init is refused"
    );

    // Requests handled on any worker thread are traced through the global subscriber.
    let (pool, _) = database(&telemetry).await;
    let (address, _stop) = serve(app(pool)).await;
    let response = reqwest::get(format!("http://{address}/api/activities/andrewbrown")).await.unwrap();
    assert!(response.status().is_success());
    telemetry.force_flush();
    let server = receiver.wait_for_span("the server span", |span| span.kind() == SpanKind::Server).await;
    receiver
        .wait_for_span("the query span", |span| span.kind() == SpanKind::Client && span.trace_id() == server.trace_id())
        .await;
    sink.wait_for_segment("the segment", |segment| segment.otlp_trace_id() == Some(server.trace_id())).await;

    // The global propagator writes both formats, for code that uses OpenTelemetry directly.
    let mut headers = std::collections::HashMap::new();
    let span_context = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
        opentelemetry::trace::SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
        opentelemetry::trace::TraceFlags::SAMPLED,
        false,
        Default::default(),
    );
    let cx =
        opentelemetry::trace::TraceContextExt::with_remote_span_context(&opentelemetry::Context::new(), span_context);
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&cx, &mut headers));
    assert!(headers.contains_key("traceparent") && headers.contains_key("x-amzn-trace-id"), "{headers:?}");
}
