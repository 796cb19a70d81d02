//! The OpenTelemetry SDK for Python with its OTLP/HTTP exporter (`opentelemetry-exporter-otlp-proto-http`, pinned,
//! gzip on) sends a trace to the daemon, unchanged, as an app that exports to the daemon does: the spans reach X-Ray's
//! OTLP endpoint (signed) and the fan-out destination (with its headers), with the same trace id.
//!
//! The SDK is installed by the test itself from PyPI into a virtual environment under Cargo's target directory,
//! once; `OTEL_PYTHON` names a Python that already has it instead. Needs `python3` with its `venv` module.

use std::process::Stdio;

use test_support::otlp::OtlpReceiver;
use test_support::xray_endpoint::XrayEndpoint;
use xray_daemon::XrayDelivery;

use crate::helpers::{assert_signed_for_xray, python_with};
use crate::otlp::{HONEYCOMB_KEY, with_fan_out};

const REQUIREMENTS: [&str; 2] = ["opentelemetry-sdk==1.45.2", "opentelemetry-exporter-otlp-proto-http==1.45.2"];

/// One server span with a child, exported at once; prints the trace id.
const SCRIPT: &str = r#"
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

provider = TracerProvider(resource=Resource.create({"service.name": "python-app"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("otlp-compat")
with tracer.start_as_current_span("GET /python", kind=trace.SpanKind.SERVER) as server:
    server.set_attribute("http.request.method", "GET")
    with tracer.start_as_current_span("python-work"):
        pass
print(format(server.get_span_context().trace_id, "032x"))
provider.shutdown()
"#;

#[tokio::test]
async fn the_python_otlp_exporter_reaches_xray_and_the_fan_out_through_the_daemon() {
    let python =
        python_with("otlp-exporter-python", &REQUIREMENTS, "opentelemetry.exporter.otlp.proto.http", "OTEL_PYTHON");
    let endpoint = XrayEndpoint::start();
    let receiver = OtlpReceiver::start();
    let daemon = with_fan_out(&endpoint, &receiver, |config| config.gateway.xray_delivery = XrayDelivery::Otlp).await;

    let output = tokio::process::Command::new(python)
        .args(["-c", SCRIPT])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", daemon.tcp))
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running Python");
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("Failed to export"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let at_xray = endpoint.wait_for_otlp_spans("from Python", 2, |span| span.trace_id() == trace).await;
    let mut names: Vec<&str> = at_xray.iter().map(|span| span.name()).collect();
    names.sort();
    assert_eq!(names, ["GET /python", "python-work"]);
    assert!(at_xray.iter().all(|span| span.resource_string_attribute("service.name") == Some("python-app")));
    for request in endpoint.requests_to("/v1/traces") {
        assert_signed_for_xray(&request);
    }
    let fanned = receiver.wait_for_spans("from Python", 2, |span| span.trace_id() == trace).await;
    assert!(fanned.iter().all(|span| span.headers["x-honeycomb-team"] == HONEYCOMB_KEY));
    let snapshot = daemon.snapshot().otlp;
    assert_eq!((snapshot.bad_requests, snapshot.rejected_spans), (0, 0));
    daemon.stop().await.unwrap();
}
