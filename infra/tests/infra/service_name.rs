//! The group's service name and the backend's segment name come from the same variables in the same order: this
//! compares infra's resolution with the telemetry crate's own, so neither can drift from the other unnoticed.

use std::collections::HashMap;

use cruddur_telemetry::TelemetryConfig;
use infra::service_name::{Naming, resolve};

#[test]
fn the_group_filters_on_the_name_the_backend_gives_its_segments() {
    let cases: [&[(&str, &str)]; 6] = [
        &[],
        &[("OTEL_SERVICE_NAME", "otel")],
        &[("HONEYCOMB_SERVICE_NAME", "honeycomb")],
        &[("OTEL_SERVICE_NAME", "otel"), ("HONEYCOMB_SERVICE_NAME", "honeycomb")],
        &[("AWS_XRAY_TRACING_NAME", "tracing"), ("OTEL_SERVICE_NAME", "otel")],
        &[("AWS_XRAY_TRACING_NAME", " "), ("OTEL_SERVICE_NAME", ""), ("HONEYCOMB_SERVICE_NAME", "honeycomb")],
    ];
    for variables in cases {
        let variables: HashMap<&str, &str> = variables.iter().copied().collect();
        let lookup = |name: &str| variables.get(name).map(|value| value.to_string());
        let backend = TelemetryConfig::from_lookup("cruddur-backend", lookup).unwrap().xray.unwrap().segment_name;
        let naming = Naming { service_name: None, xray_url: None, backend_url: "http://localhost:4567".into() };
        assert_eq!(resolve(&naming, lookup).unwrap(), backend, "with {variables:?}");
    }
}
