//! A local OTLP/HTTP metrics receiver: what Honeycomb (or a Collector) is to a metrics exporter, on a 127.0.0.1
//! port chosen by the OS. `POST /v1/metrics` takes an `ExportMetricsServiceRequest` (protobuf) and keeps each
//! metric with its data points, attributes flattened to text, for tests to wait on
//! ([`OtlpMetricsReceiver::wait_for_metric`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use prost::Message;

use crate::local_server::{Changed, LocalServer, not_within};

/// One data point, its attributes as text.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub attributes: BTreeMap<String, String>,
    /// A histogram point's count.
    pub count: Option<u64>,
    /// A sum's or gauge's value.
    pub value: Option<f64>,
}

/// One metric of one export.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMetric {
    pub name: String,
    pub unit: String,
    /// `histogram`, `sum`, `gauge`, or `other`.
    pub kind: &'static str,
    pub points: Vec<MetricPoint>,
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    /// The headers of the request that brought it (names in lower case).
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct Shared {
    metrics: Mutex<Vec<ReceivedMetric>>,
}

/// The running receiver; stops when dropped.
pub struct OtlpMetricsReceiver {
    server: LocalServer,
    shared: Arc<Shared>,
}

impl OtlpMetricsReceiver {
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let server = LocalServer::start("otlp-metrics-receiver", move |changed| {
            axum::Router::new().route("/v1/metrics", post(export)).with_state((state, changed))
        });
        Self { server, shared }
    }

    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT` (exporters append `/v1/metrics`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Every metric received so far, in arrival order.
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.shared.metrics.lock().expect("receiver lock").clone()
    }

    /// Waits up to [`crate::otlp::WAIT`] for a metric matching `matches`; panics naming `what` otherwise.
    pub async fn wait_for_metric(&self, what: &str, matches: impl Fn(&ReceivedMetric) -> bool) -> ReceivedMetric {
        let found = self.server.wait_for(|| self.metrics().into_iter().rev().find(|metric| matches(metric))).await;
        found.unwrap_or_else(|| {
            let names: Vec<String> = self.metrics().into_iter().map(|metric| metric.name).collect();
            panic!("{}; received: {names:?}", not_within(what, "OTLP metrics receiver"))
        })
    }
}

type ReceiverState = (Arc<Shared>, Changed);

async fn export(State((shared, changed)): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else { return StatusCode::BAD_REQUEST };
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let mut received = Vec::new();
    for resource_metrics in request.resource_metrics {
        let service_name = resource_metrics
            .resource
            .as_ref()
            .and_then(|resource| attributes(&resource.attributes).remove("service.name"));
        for metric in resource_metrics.scope_metrics.into_iter().flat_map(|scope| scope.metrics) {
            let (kind, points) = match &metric.data {
                Some(Data::Histogram(histogram)) => (
                    "histogram",
                    histogram
                        .data_points
                        .iter()
                        .map(|point| MetricPoint {
                            attributes: attributes(&point.attributes),
                            count: Some(point.count),
                            value: point.sum,
                        })
                        .collect(),
                ),
                Some(Data::Sum(sum)) => ("sum", sum.data_points.iter().map(number_point).collect()),
                Some(Data::Gauge(gauge)) => ("gauge", gauge.data_points.iter().map(number_point).collect()),
                _ => ("other", Vec::new()),
            };
            received.push(ReceivedMetric {
                name: metric.name,
                unit: metric.unit,
                kind,
                points,
                service_name: service_name.clone(),
                headers: headers.clone(),
            });
        }
    }
    shared.metrics.lock().expect("receiver lock").extend(received);
    changed.send_modify(|count| *count += 1);
    StatusCode::OK
}

fn number_point(point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> MetricPoint {
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(value)) => Some(value),
        Some(number_data_point::Value::AsInt(value)) => Some(value as f64),
        None => None,
    };
    MetricPoint { attributes: attributes(&point.attributes), count: None, value }
}

fn attributes(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|attribute| {
            let value = match attribute.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(text) => text.clone(),
                any_value::Value::IntValue(number) => number.to_string(),
                any_value::Value::DoubleValue(number) => number.to_string(),
                any_value::Value::BoolValue(flag) => flag.to_string(),
                _ => return None,
            };
            Some((attribute.key.clone(), value))
        })
        .collect()
}
