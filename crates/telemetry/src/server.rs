//! One server span per HTTP request, with the current HTTP semantic conventions, as a tower layer for axum.
//!
//! Apply it with `Router::layer` after the routes are added, so that it runs after routing and sees axum's
//! `MatchedPath`: `http.route` is then the route template (`/api/activities/{handle}`), never the raw path.
//!
//! The span continues the caller's trace (W3C `traceparent` or `X-Amzn-Trace-Id`), records
//! `http.request.method`, `http.route`, `url.path`, `url.scheme`, `server.address`/`server.port` (the `Host`
//! header), `user_agent.original`, `client.address` (first `X-Forwarded-For` hop, else the peer when the app is
//! served with `into_make_service_with_connect_info::<SocketAddr>()`), `network.protocol.version` and
//! `http.response.status_code`, and is in error on 5xx. No other header is read: `Authorization`, cookies and query
//! strings (which may hold tokens) are never recorded. The response carries `X-Amzn-Trace-Id: Root=...;Sampled=...`
//! as the X-Ray SDKs answer.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, MatchedPath};
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, Version, header};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::{XRAY_HEADER, extract, xray_response_header};

/// The layer; see the module doc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerLayer;

impl ServerLayer {
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService { inner }
    }
}

/// The service [`ServerLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct ServerService<S> {
    inner: S,
}

impl<S, B, ResponseBody> Service<Request<B>> for ServerService<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = request_span(&request);
        // The clone that was made ready is the one to call; the fresh clone stays for the next request.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let mut response = ready.call(request).await?;
                record_response(&mut response);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let method = known_method(request.method());
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let (server_address, server_port) = host(request.headers());
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        url.scheme = request.uri().scheme_str().unwrap_or("http"),
        server.address = server_address,
        // tracing-opentelemetry records u64 as a string: integers go in as i64.
        server.port = server_port.map(i64::from),
        user_agent.original = header_str(request.headers(), header::USER_AGENT),
        client.address = client_address(request).as_deref(),
        network.protocol.version = protocol_version(request.version()),
        http.response.status_code = Empty,
        error.type = Empty,
    );
    // An empty context (no trace header) makes the span a root: requests never inherit whatever was current.
    let _ = span.set_parent(extract(request.headers()));
    span
}

/// Inside the request's span: the status, the error state, and the X-Ray response header.
fn record_response<B>(response: &mut Response<B>) {
    let span = tracing::Span::current();
    let status = response.status();
    record_status(&span, status, status.is_server_error());
    if let Some(value) = xray_response_header(&span.context()) {
        response.headers_mut().insert(XRAY_HEADER, value);
    }
}

/// Records `status` on an HTTP span, and the error state when `is_error` (5xx for a server, 4xx too for a client).
pub(crate) fn record_status(span: &tracing::Span, status: http::StatusCode, is_error: bool) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if is_error {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
}

/// The method, or `_OTHER` for one outside the HTTP specs, as the conventions ask (it bounds the names).
pub(crate) fn known_method(method: &http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("_OTHER")
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `server.address` and `server.port` from the `Host` header.
fn host(headers: &HeaderMap) -> (Option<&str>, Option<u16>) {
    let Some(host) = header_str(headers, header::HOST) else { return (None, None) };
    match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (Some(name), port.parse().ok()),
        _ => (Some(host), None),
    }
}

pub(crate) fn client_address<B>(request: &Request<B>) -> Option<String> {
    let forwarded = header_str(request.headers(), header::HeaderName::from_static("x-forwarded-for"))
        .and_then(|list| list.split(',').next())
        .map(str::trim)
        .filter(|first| !first.is_empty());
    match forwarded {
        Some(first) => Some(first.to_owned()),
        None => request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string()),
    }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (header::HeaderName::from_static(name), value.parse().unwrap())).collect()
    }

    #[test]
    fn host_splits_into_address_and_port() {
        assert_eq!(host(&headers(&[("host", "localhost:4567")])), (Some("localhost"), Some(4567)));
        assert_eq!(host(&headers(&[("host", "api.example.com")])), (Some("api.example.com"), None));
        assert_eq!(host(&headers(&[("host", "[::1]:4567")])), (Some("[::1]"), Some(4567)));
        assert_eq!(host(&headers(&[])), (None, None));
    }

    #[test]
    fn unknown_methods_are_folded() {
        assert_eq!(known_method(&http::Method::GET), "GET");
        assert_eq!(known_method(&http::Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
    }

    #[test]
    fn the_client_is_the_first_forwarded_hop_or_the_peer() {
        let mut request = Request::new(());
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 9], 5000))));
        assert_eq!(client_address(&request).as_deref(), Some("10.0.0.9"));
        request.headers_mut().insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        assert_eq!(client_address(&request).as_deref(), Some("203.0.113.7"));
    }
}
