//! X-Ray export: segment documents over UDP to the daemon, as the X-Ray SDKs send them.
//!
//! `opentelemetry-aws` does the translation (`SegmentTranslator`: server spans become segments, others
//! subsegments; `http`, `sql`, `namespace: remote` for client spans, `annotation.`/`metadata.` prefixes, error and
//! fault from the span status) and the sending (`XrayDaemonClient`: the header line, one document per datagram).
//! This module fills what it leaves to the SDKs, on the X-Ray copy of each span only (OTLP gets the span as made):
//!
//! - segment naming: `AWS_XRAY_TRACING_NAME` (or the service name), or the request's host when it matches the
//!   `AWS_XRAY_URL` pattern, as the SDKs' dynamic naming does;
//! - a 4xx response marks the segment `error` (429 also `throttle`), as the SDKs do; OpenTelemetry leaves the status
//!   of a server span unset for 4xx, and the translator only flags spans in error;
//! - a database span is named `database@host`, as the SDKs name SQL subsegments;
//! - the attributes `tracing` adds for its own bookkeeping (code location, thread, target) stay out of the
//!   documents; the application's attributes go to `metadata`;
//! - the daemon address may be a host name (`xray-daemon:2000` in compose): it is resolved here.

use std::io;
use std::net::ToSocketAddrs;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_aws::xray_exporter::{SegmentTranslator, XrayExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_semantic_conventions::attribute::{
    DB_NAMESPACE, DB_SYSTEM_NAME, HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, SERVICE_NAME,
};
use wildmatch::WildMatch;

use crate::config::XrayConfig;

/// Read by the translator to name a subsegment (before the span name).
const DB_SERVICE: &str = "db.service";

/// Attributes `tracing-opentelemetry` adds that say nothing about the traced work.
const BOOKKEEPING_PREFIXES: [&str; 2] = ["code.", "thread."];
const BOOKKEEPING_KEYS: [&str; 4] = ["target", "level", "busy_ns", "idle_ns"];

/// The X-Ray exporter with the SDK-like touches above.
#[derive(Debug)]
pub(crate) struct XraySegments {
    inner: XrayExporter<XrayDaemonClient>,
    naming: SegmentNaming,
}

impl XraySegments {
    pub(crate) fn new(config: &XrayConfig) -> io::Result<Self> {
        let daemon = config.daemon_address.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{} resolves to no address", config.daemon_address))
        })?;
        let translator = SegmentTranslator::new()
            // Trace ids continued from a W3C caller need not start with a timestamp; X-Ray accepts them.
            .skip_timestamp_validation()
            .metadata_all_attrs();
        Ok(Self {
            inner: XrayExporter::new(XrayDaemonClient::new(daemon)?).with_translator(translator),
            naming: SegmentNaming::new(config),
        })
    }
}

impl SpanExporter for XraySegments {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            self.naming.prepare(span);
        }
        self.inner.export(batch).await
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // None of the resource: its attributes would be repeated as metadata in every document, and the one that
        // matters, the service name, is set per segment by `prepare`.
        self.inner.set_resource(&Resource::builder_empty().build());
    }
}

#[derive(Debug)]
struct SegmentNaming {
    fixed: String,
    dynamic: Option<WildMatch>,
}

impl SegmentNaming {
    fn new(config: &XrayConfig) -> Self {
        Self {
            fixed: config.segment_name.clone(),
            dynamic: config.dynamic_naming.as_deref().map(WildMatch::new_case_insensitive),
        }
    }

    /// The segment name for a request to `host`.
    fn segment_name(&self, host: Option<&str>) -> String {
        match (host, &self.dynamic) {
            (Some(host), Some(pattern)) if pattern.matches(host) => host.to_owned(),
            _ => self.fixed.clone(),
        }
    }

    fn prepare(&self, span: &mut SpanData) {
        span.attributes.retain(|attribute| !is_bookkeeping(attribute.key.as_str()));
        match span.span_kind {
            SpanKind::Server => {
                let name = self.segment_name(string(span, SERVER_ADDRESS));
                // A span attribute overrides the resource's service.name, which the translator names segments by.
                span.attributes.push(KeyValue::new(SERVICE_NAME, name));
                if matches!(integer(span, HTTP_RESPONSE_STATUS_CODE), Some(400..=499))
                    && !matches!(span.status, Status::Error { .. })
                {
                    span.status = Status::error("");
                }
            }
            SpanKind::Client if string(span, DB_SYSTEM_NAME).is_some() => {
                if let (Some(database), Some(host)) = (string(span, DB_NAMESPACE), string(span, SERVER_ADDRESS)) {
                    let name = format!("{database}@{host}");
                    span.attributes.push(KeyValue::new(DB_SERVICE, name));
                }
            }
            _ => {}
        }
    }
}

fn is_bookkeeping(key: &str) -> bool {
    BOOKKEEPING_KEYS.contains(&key) || BOOKKEEPING_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

fn value<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().rev().find(|attribute| attribute.key.as_str() == key).map(|attribute| &attribute.value)
}

fn string<'a>(span: &'a SpanData, key: &str) -> Option<&'a str> {
    match value(span, key)? {
        Value::String(value) => Some(value.as_str()),
        _ => None,
    }
}

fn integer(span: &SpanData, key: &str) -> Option<i64> {
    match value(span, key)? {
        Value::I64(value) => Some(*value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming(dynamic: Option<&str>) -> SegmentNaming {
        SegmentNaming::new(&XrayConfig {
            daemon_address: "127.0.0.1:2000".into(),
            segment_name: "backend-flask".into(),
            dynamic_naming: dynamic.map(str::to_owned),
        })
    }

    #[test]
    fn segments_are_named_like_the_sdks_do() {
        assert_eq!(naming(None).segment_name(Some("localhost")), "backend-flask");
        let dynamic = naming(Some("*4567-*.gitpod.io"));
        assert_eq!(dynamic.segment_name(Some("4567-abc.ws.GITPOD.io")), "4567-abc.ws.GITPOD.io");
        assert_eq!(dynamic.segment_name(Some("localhost")), "backend-flask");
        assert_eq!(dynamic.segment_name(None), "backend-flask");
    }

    #[test]
    fn bookkeeping_attributes_are_recognised() {
        for key in ["code.file.path", "thread.id", "target", "busy_ns"] {
            assert!(is_bookkeeping(key), "{key}");
        }
        for key in ["app.now", "http.route", "db.query.text"] {
            assert!(!is_bookkeeping(key), "{key}");
        }
    }
}
