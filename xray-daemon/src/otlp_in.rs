//! OTLP in: `POST /v1/traces` and `POST /v1/metrics` on the TCP port, as the OTLP/HTTP spec asks of a collector.
//!
//! - `application/x-protobuf` or `application/json` (OTLP/JSON), plain or `Content-Encoding: gzip`; anything else
//!   is `415`;
//! - bodies over [`MAX_REQUEST_BYTES`] (sent or once decompressed) are `413`; bodies that do not decode are `400`;
//!   both with a `google.rpc.Status` saying why, in the request's format, and counted;
//! - spans without a valid trace or span id are refused in a partial success (`rejected_spans` and a message) and
//!   the others are taken;
//! - when no consumer has room (every queue full), `503` with `Retry-After`, which exporters retry.
//!
//! Metrics go on to the OTLP destination's metrics endpoint, unchanged (an app that exports to the daemon sends its
//! metrics there too); without one they are taken and not kept, so such an app's exporter stays quiet.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;

use crate::gateway::Gateway;

/// Largest OTLP request taken, compressed or not (the OpenTelemetry Collector's default is 20 MiB; exporters send
/// at most a few MB per request).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// What a client waits before retrying when every queue is full.
const RETRY_AFTER_SECONDS: &str = "1";

/// The routes, on the daemon's TCP port.
pub(crate) fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)))
        .route("/v1/metrics", post(metrics).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)))
        .with_state(gateway)
}

/// Why a request is not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OtlpError {
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("the request is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Malformed(String),
    #[error("every queue is full: retry later")]
    Busy,
}

impl OtlpError {
    fn status_code(&self) -> StatusCode {
        match self {
            OtlpError::UnsupportedContentType(_) | OtlpError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            OtlpError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            OtlpError::Malformed(_) => StatusCode::BAD_REQUEST,
            OtlpError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC code of the `Status` body: INVALID_ARGUMENT, RESOURCE_EXHAUSTED or UNAVAILABLE.
    fn grpc_code(&self) -> i32 {
        match self {
            OtlpError::UnsupportedContentType(_) | OtlpError::UnsupportedEncoding(_) | OtlpError::Malformed(_) => 3,
            OtlpError::TooLarge => 8,
            OtlpError::Busy => 14,
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer (its `details` are never sent).
#[derive(Clone, PartialEq, Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

async fn traces(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&gateway, &headers, body, take_spans)
}

async fn metrics(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&gateway, &headers, body, take_metrics)
}

/// Reads the body in the request's format and answers in it: `take` gets the body (decompressed) and its format.
fn answer<T: Message + serde::Serialize>(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    take: impl FnOnce(&Gateway, Format, Bytes) -> Result<T, OtlpError>,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let format = match content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
        "application/json" => Some(Format::Json),
        _ => None,
    };
    let answered = match format {
        None => Err(OtlpError::UnsupportedContentType(content_type.to_owned())),
        Some(format) => read_body(headers, body).and_then(|body| take(gateway, format, body)),
    };
    let format = format.unwrap_or(Format::Json);
    match answered {
        Ok(response) => encode(format, StatusCode::OK, &response, Vec::new()),
        Err(error) => {
            if !matches!(error, OtlpError::Busy) {
                gateway.counters().otlp_bad_request();
                gateway.bad_requests_log.warn(&format!("OTLP request refused: {error}"));
            }
            let status = RpcStatus { code: error.grpc_code(), message: error.to_string() };
            let retry = matches!(error, OtlpError::Busy).then_some((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
            encode(format, error.status_code(), &status, retry.into_iter().collect())
        }
    }
}

/// The body, within the limit and decompressed.
fn read_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, OtlpError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => OtlpError::TooLarge,
        _ => OtlpError::Malformed(format!("reading the request: {rejection}")),
    })?;
    decompress(headers, body)
}

/// `body` as an OTLP request of type `T`, and its protobuf form when it came as protobuf.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    format: Format,
    body: Bytes,
) -> Result<(T, Option<Bytes>), OtlpError> {
    match format {
        Format::Protobuf => Ok((
            T::decode(body.clone())
                .map_err(|error| OtlpError::Malformed(format!("not an OTLP protobuf request: {error}")))?,
            Some(body),
        )),
        Format::Json => Ok((
            serde_json::from_slice(&body)
                .map_err(|error| OtlpError::Malformed(format!("not an OTLP/JSON request: {error}")))?,
            None,
        )),
    }
}

fn take_spans(gateway: &Gateway, format: Format, body: Bytes) -> Result<ExportTraceServiceResponse, OtlpError> {
    let (request, encoded) = decode::<ExportTraceServiceRequest>(format, body)?;
    let rejected = gateway.export(request, encoded)?;
    Ok(ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: format!("{rejected} span(s) without a valid trace id (16 bytes) or span id (8 bytes)"),
        }),
    })
}

fn take_metrics(gateway: &Gateway, format: Format, body: Bytes) -> Result<ExportMetricsServiceResponse, OtlpError> {
    let (request, encoded) = decode::<ExportMetricsServiceRequest>(format, body)?;
    let points = data_points(&request);
    let encoded = encoded.unwrap_or_else(|| request.encode_to_vec().into());
    gateway.export_metrics(encoded, points)?;
    Ok(ExportMetricsServiceResponse { partial_success: None })
}

/// The data points of a metrics request: what its destination's counters count.
fn data_points(request: &ExportMetricsServiceRequest) -> u64 {
    let metrics = request.resource_metrics.iter().flat_map(|resource| &resource.scope_metrics);
    metrics
        .flat_map(|scope| &scope.metrics)
        .map(|metric| match &metric.data {
            Some(metric::Data::Gauge(gauge)) => gauge.data_points.len(),
            Some(metric::Data::Sum(sum)) => sum.data_points.len(),
            Some(metric::Data::Histogram(histogram)) => histogram.data_points.len(),
            Some(metric::Data::ExponentialHistogram(histogram)) => histogram.data_points.len(),
            Some(metric::Data::Summary(summary)) => summary.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}

/// The body as sent, or gunzipped, never past [`MAX_REQUEST_BYTES`] (a small bomb cannot grow into memory).
fn decompress(headers: &HeaderMap, body: Bytes) -> Result<Bytes, OtlpError> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok()).unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(body.as_ref())
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|error| OtlpError::Malformed(format!("not gzip: {error}")))?;
            if plain.len() > MAX_REQUEST_BYTES {
                return Err(OtlpError::TooLarge);
            }
            Ok(plain.into())
        }
        _ => Err(OtlpError::UnsupportedEncoding(encoding.to_owned())),
    }
}

fn encode<T: Message + serde::Serialize>(
    format: Format,
    status: StatusCode,
    message: &T,
    extra: Vec<(header::HeaderName, &'static str)>,
) -> Response {
    let (content_type, body) = match format {
        Format::Protobuf => ("application/x-protobuf", message.encode_to_vec()),
        Format::Json => ("application/json", serde_json::to_vec(message).unwrap_or_default()),
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, http::HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap().into()
    }

    fn gzip_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
        headers
    }

    #[test]
    fn gzip_is_undone_and_a_bomb_stops_at_the_limit() {
        assert_eq!(decompress(&gzip_headers(), gzip(b"spans")).unwrap(), Bytes::from_static(b"spans"));
        let bomb = gzip(&vec![0u8; MAX_REQUEST_BYTES + 1]);
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(decompress(&gzip_headers(), bomb), Err(OtlpError::TooLarge)));
        assert!(matches!(decompress(&gzip_headers(), Bytes::from_static(b"plain")), Err(OtlpError::Malformed(_))));
        let mut brotli = HeaderMap::new();
        brotli.insert(header::CONTENT_ENCODING, http::HeaderValue::from_static("br"));
        assert!(matches!(decompress(&brotli, Bytes::new()), Err(OtlpError::UnsupportedEncoding(_))));
    }
}
