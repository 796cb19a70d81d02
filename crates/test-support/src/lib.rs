//! Test support: real local stand-ins for everything Cruddur talks to, each started on a 127.0.0.1 port chosen by the
//! OS and stopped when dropped, so tests exercise the real protocols without any account or network; and one
//! harness for the tests of a traced app ([`traced`]).
//!
//! Used as a dev-dependency only.

pub mod browser;
pub mod cloudwatch_logs;
mod local_server;
pub mod otlp;
pub mod otlp_metrics;
pub mod postgres;
pub mod rollbar;
pub mod sigv4;
pub mod traced;
pub mod udp_sink;
pub mod xray_control;
pub mod xray_endpoint;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Request headers from `(name, value)` pairs, as a test writes them (a trace header, a `Host`, a user agent).
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::try_from(*name).unwrap_or_else(|error| panic!("header name {name:?}: {error}"));
            let value = HeaderValue::try_from(*value).unwrap_or_else(|error| panic!("header {name}: {error}"));
            (name, value)
        })
        .collect()
}
