//! The TCP port: SDKs' sampling calls go through the daemon, which signs them and strips what must not travel on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};
use test_support::xray_endpoint::XrayEndpoint;

use crate::helpers::{Daemon, assert_signed_for_xray};

/// Headers a client, a proxy or a sidecar put on the request that must not reach X-Ray.
const NOT_FORWARDED: [&str; 11] = [
    "connection",
    "x-custom-hop",
    "keep-alive",
    "te",
    "proxy-authorization",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-envoy-expected-rq-timeout-ms",
    "x-amz-security-token",
];

/// Sends a raw HTTP/1.1 request, so every header is exactly as a sidecar would leave it; returns status and body.
fn post(tcp: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:2000\r\nConnection: close, X-Custom-Hop\r\nX-Custom-Hop: 1\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic c2lkZWNhcjpzZWNyZXQ=\r\n\
         Via: 1.1 envoy\r\nForwarded: for=10.0.0.7\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\
         X-Envoy-Expected-Rq-Timeout-Ms: 15000\r\nX-Amz-Security-Token: stale\r\nAuthorization: AWS4-HMAC-SHA256 stale\r\n\
         User-Agent: aws-xray-sdk-python/2.14\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(tcp).expect("connecting to the proxy");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|status| status.parse().ok()).expect("a status line");
    let (_, body) = response.split_once("\r\n\r\n").expect("headers end");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn get_sampling_rules_is_forwarded_signed_without_hop_by_hop_or_sidecar_headers() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |_| {}).await;

    let (status, body) = tokio::task::spawn_blocking({
        let tcp = daemon.tcp;
        move || post(tcp, "/GetSamplingRules", &json!({}))
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["SamplingRuleRecords"][0]["SamplingRule"]["RuleName"], "Default");

    let forwarded = endpoint.requests_to("/GetSamplingRules");
    assert_eq!(forwarded.len(), 1);
    let request = &forwarded[0];
    for name in NOT_FORWARDED {
        assert_eq!(request.header(name), None, "{name} reached X-Ray");
    }
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("host"), Some(endpoint.address().to_string().as_str()), "Host names X-Ray");
    assert_eq!(request.json(), json!({}));
    assert_signed_for_xray(request);
    // Only what no hop rewrites is signed: a sidecar changing user-agent or accept-encoding keeps it valid.
    let authorization = request.header("authorization").expect("signed");
    assert!(authorization.contains("SignedHeaders=content-type;host;x-amz-date,"), "{authorization}");
}

#[tokio::test]
async fn sampling_targets_are_forwarded_with_their_body_and_the_answer_comes_back() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    let statistics = json!({ "SamplingStatisticsDocuments": [{
        "RuleName": "Default", "ClientID": "0123456789abcdef01234567", "Timestamp": 1_700_000_000,
        "RequestCount": 10, "SampledCount": 1, "BorrowCount": 0
    }]});

    let (status, body) = tokio::task::spawn_blocking({
        let (tcp, statistics) = (daemon.tcp, statistics.clone());
        move || post(tcp, "/SamplingTargets", &statistics)
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["SamplingTargetDocuments"][0]["RuleName"], "Default");
    let request = &endpoint.requests_to("/SamplingTargets")[0];
    assert_eq!(request.json(), statistics);
    assert_signed_for_xray(request);
}
