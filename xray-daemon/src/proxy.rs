//! The TCP port: an HTTP reverse proxy to X-Ray that signs every request with SigV4 (service `xray`), so SDKs
//! without credentials of their own can call `POST /GetSamplingRules` and `POST /SamplingTargets` through the
//! daemon. Hop-by-hop headers and the headers proxies and sidecars add on the way are stripped before signing:
//! signed, they would break the signature as soon as the next hop changes them.

use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, StatusCode};

/// Largest request body forwarded (sampling requests are a few KB).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Never forwarded: hop-by-hop headers (RFC 9110 §7.6.1), what proxies and sidecars add, and the previous
/// signature's headers (we sign anew).
const STRIPPED: [&str; 20] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

#[derive(Clone)]
pub(crate) struct Proxy {
    pub(crate) sdk: SdkConfig,
    pub(crate) endpoint: String,
    pub(crate) client: reqwest::Client,
}

pub(crate) fn router(proxy: Proxy) -> Router {
    Router::new().fallback(forward).with_state(proxy)
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    match try_forward(&proxy, request).await {
        Ok(response) => response,
        Err((status, message)) => {
            tracing::warn!(%status, "proxy: {message}");
            (status, message).into_response()
        }
    }
}

async fn try_forward(proxy: &Proxy, request: Request) -> Result<Response, (StatusCode, String)> {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| (StatusCode::PAYLOAD_TOO_LARGE, format!("reading the request: {error}")))?;
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let url = format!("{}{path}", proxy.endpoint.trim_end_matches('/'));
    let mut outgoing = http::Request::builder()
        .method(parts.method)
        .uri(&url)
        .body(body.to_vec())
        .map_err(|error| (StatusCode::BAD_REQUEST, format!("{url}: {error}")))?;
    *outgoing.headers_mut() = forwardable(&parts.headers);
    let host = outgoing.uri().authority().map(|authority| authority.to_string()).unwrap_or_default();
    outgoing.headers_mut().insert(HOST, host.parse().map_err(|_| (StatusCode::BAD_GATEWAY, "bad endpoint".into()))?);
    sign_request(&proxy.sdk, &mut outgoing).await.map_err(|error| (StatusCode::BAD_GATEWAY, error))?;

    let outgoing = reqwest::Request::try_from(outgoing)
        .map_err(|error| (StatusCode::BAD_GATEWAY, format!("building the request: {error}")))?;
    let response = proxy
        .client
        .execute(outgoing)
        .await
        .map_err(|error| (StatusCode::BAD_GATEWAY, format!("X-Ray endpoint {}: {error}", proxy.endpoint)))?;
    let status = response.status();
    let headers = forwardable(response.headers());
    let body =
        response.bytes().await.map_err(|error| (StatusCode::BAD_GATEWAY, format!("reading the answer: {error}")))?;
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// The headers that may travel to the next hop.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    // Connection may name more hop-by-hop headers.
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = HeaderMap::new();
    for (name, value) in headers {
        let lower = name.as_str();
        let dropped = STRIPPED.contains(&lower)
            || named.iter().any(|named| named == lower)
            || lower.starts_with("x-envoy-")
            || name == HOST
            || name == AUTHORIZATION
            || name == CONTENT_LENGTH;
        if !dropped {
            kept.append(HeaderName::clone(name), value.clone());
        }
    }
    kept
}

/// Adds SigV4 headers for service `xray` with the daemon's credentials.
async fn sign_request(sdk: &SdkConfig, request: &mut http::Request<Vec<u8>>) -> Result<(), String> {
    let provider = sdk.credentials_provider().ok_or("no AWS credentials are configured")?;
    let credentials = provider.provide_credentials().await.map_err(|error| format!("AWS credentials: {error}"))?;
    sign_with(credentials, sdk, request)
}

/// Adds SigV4 headers for service `xray` with `credentials`, in the region of `sdk`.
pub(crate) fn sign_with(
    credentials: Credentials,
    sdk: &SdkConfig,
    request: &mut http::Request<Vec<u8>>,
) -> Result<(), String> {
    let identity = credentials.into();
    let region = sdk.region().map(|region| region.to_string()).ok_or("no AWS region")?;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("xray")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| format!("signing parameters: {error}"))?
        .into();
    // Only the headers no hop has reason to touch are signed; the others travel unsigned, so a sidecar that
    // rewrites one of them (accept-encoding, user-agent...) cannot break the signature.
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter(|(name, _)| is_signed(name))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.uri().to_string(),
        headers.iter().map(|(name, value)| (name.as_str(), value.as_str())),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|error| format!("signing: {error}"))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|error| format!("signing: {error}"))?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// The headers a signature covers: the target, the body's type, and AWS's own.
fn is_signed(name: &HeaderName) -> bool {
    name == HOST || name == http::header::CONTENT_TYPE || name.as_str().starts_with("x-amz-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_sidecar_headers_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-forwarded-for", "10.0.0.1"),
            ("via", "1.1 envoy"),
            ("x-envoy-expected-rq-timeout-ms", "15000"),
            ("authorization", "AWS4-HMAC-SHA256 old"),
            ("content-type", "application/json"),
            ("user-agent", "aws-xray-sdk"),
        ] {
            headers.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        let kept = forwardable(&headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "user-agent"]);
    }
}
