//! Outgoing HTTP: a `reqwest` client (through `reqwest-middleware`) that makes one client span per request and
//! injects the trace context in every format (`traceparent`, `tracestate`, `baggage`, `X-Amzn-Trace-Id`) with
//! `opentelemetry-http`'s `HeaderInjector`, so the callee continues the trace whether it speaks W3C or X-Ray.
//!
//! The span records `http.request.method`, `url.full` (without credentials or query, which may hold tokens),
//! `server.address`, `server.port` and `http.response.status_code`; it is in error on a 4xx/5xx answer or a
//! failed request. Request headers are never recorded.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::inject;
use crate::server::record_status;

/// A client whose every request is traced: use it for every outbound call.
pub fn traced_client(client: reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client).with(TracingMiddleware).build()
}

/// The middleware behind [`traced_client`], to add to a `reqwest-middleware` stack of your own.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingMiddleware;

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let url = request.url();
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.set_fragment(None);
        let method = request.method().as_str().to_owned();
        let span = tracing::info_span!(
            "HTTP client request",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = method,
            url.full = shown.as_str(),
            server.address = url.host_str(),
            server.port = url.port_or_known_default().map(i64::from),
            http.response.status_code = Empty,
            error.type = Empty,
        );
        inject(&span.context(), request.headers_mut());
        let result = next.run(request, extensions).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                let status = response.status();
                record_status(&span, status, status.is_client_error() || status.is_server_error());
            }
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error_type(error));
            }
        }
        result
    }
}

/// A low-cardinality name for a failure, as `error.type` wants.
fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Reqwest(error) if error.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(error) if error.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(_) => "request",
        reqwest_middleware::Error::Middleware(_) => "middleware",
    }
}
