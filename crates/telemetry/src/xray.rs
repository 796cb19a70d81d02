//! X-Ray export: segment documents over UDP to the daemon, as the X-Ray SDKs send them.
//!
//! `opentelemetry-aws` does the translation (`SegmentTranslator`: server spans become segments, others
//! subsegments; `http`, `sql`, `namespace: remote` for client spans, `annotation.`/`metadata.` prefixes, error and
//! fault from the span status). This module sends the documents and fills what the crate leaves to the SDKs, on the
//! X-Ray copy of each span only (OTLP gets the span as made):
//!
//! - one datagram per request, as the SDKs send it: the spans of a batch are grouped by trace, and each local root
//!   (the server span) goes as one segment document with its subsegments embedded. A child whose root is not in the
//!   same batch (a long request, or a batch boundary between them) goes as an independent subsegment document, and
//!   so does every span of a group whose nested document would not fit a datagram ([`MAX_DATAGRAM`]) or that has a
//!   local root the translator cannot send (see [`nestable`]). Each datagram
//!   costs a system call and a wake-up of the daemon, most of X-Ray's export cost when sent one per span;
//! - segment naming: `AWS_XRAY_TRACING_NAME` (or the service name), or the request's host when it matches the
//!   `AWS_XRAY_URL` pattern, as the SDKs' dynamic naming does;
//! - a 4xx response marks the segment `error` (429 also `throttle`), as the SDKs do (`xray_protocol::segment`'s
//!   conventions); OpenTelemetry leaves the status of a server span unset for 4xx, and the translator only flags
//!   spans in error;
//! - a database span is named `database@host`, as the SDKs name SQL subsegments;
//! - the attributes `tracing` adds for its own bookkeeping (code location, thread, target) stay out of the
//!   documents; the application's attributes go to `metadata`;
//! - the daemon address may be a host name (`xray-daemon:2000` in compose): it is resolved here.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Mutex;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_aws::xray_exporter::SegmentTranslator;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_semantic_conventions::attribute::{
    DB_NAMESPACE, DB_SYSTEM_NAME, HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, SERVICE_NAME,
};
use xray_protocol::segment::{Outcome, sql_subsegment_name};

use crate::config::XrayConfig;
use crate::naming::SegmentNaming;

/// Read by the translator to name a subsegment (before the span name).
const DB_SERVICE: &str = "db.service";

/// Attributes `tracing-opentelemetry` adds that say nothing about the traced work.
const BOOKKEEPING_PREFIXES: [&str; 2] = ["code.", "thread."];
const BOOKKEEPING_KEYS: [&str; 4] = ["target", "level", "busy_ns", "idle_ns"];

/// What starts every datagram the daemon reads.
const DAEMON_HEADER: &[u8] = b"{\"format\": \"json\", \"version\": 1}\n";

/// The largest datagram sent, header included: under the 65,507 bytes of a UDP/IPv4 payload and the daemon's
/// 64 KiB receive buffer, with room to spare.
pub(crate) const MAX_DATAGRAM: usize = 63 * 1024;

/// The X-Ray exporter with the SDK-like touches above.
#[derive(Debug)]
pub(crate) struct XraySegments {
    /// Embeds the subsegments of a batch in their parents.
    nested: SegmentTranslator,
    /// One document per span, for the groups too large to nest.
    flat: SegmentTranslator,
    daemon: Daemon,
    naming: SegmentNaming,
}

impl XraySegments {
    pub(crate) fn new(config: &XrayConfig) -> io::Result<Self> {
        let address = config.daemon_udp_address.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{} resolves to no address", config.daemon_udp_address))
        })?;
        Ok(Self {
            nested: translator().always_nest_subsegments(),
            flat: translator(),
            daemon: Daemon::new(address)?,
            naming: SegmentNaming::new(&config.segment_name, config.dynamic_naming.as_deref()),
        })
    }

    /// The SDKs' touches on the X-Ray copy of a span (see the module doc).
    fn prepare(&self, span: &mut SpanData) {
        span.attributes.retain(|attribute| !is_bookkeeping(attribute.key.as_str()));
        match span.span_kind {
            SpanKind::Server => {
                let name = self.naming.segment_name(string(span, SERVER_ADDRESS)).to_owned();
                // A span attribute overrides the resource's service.name, which the translator names segments by.
                span.attributes.push(KeyValue::new(SERVICE_NAME, name));
                let failed = matches!(span.status, Status::Error { .. });
                if !failed && Outcome::of(integer(span, HTTP_RESPONSE_STATUS_CODE), failed).error {
                    span.status = Status::error("");
                }
            }
            SpanKind::Client if string(span, DB_SYSTEM_NAME).is_some() => {
                if let (Some(database), Some(host)) = (string(span, DB_NAMESPACE), string(span, SERVER_ADDRESS)) {
                    span.attributes.push(KeyValue::new(DB_SERVICE, sql_subsegment_name(database, host)));
                }
            }
            _ => {}
        }
    }

    /// Translates and sends the spans of one trace (sorted together in the batch); the first error, if any.
    fn send_trace(&self, spans: &[SpanData], sender: &mut Sender<'_>) -> io::Result<()> {
        if spans.len() > 1 && nestable(spans) {
            let documents = self.nested.translate_spans(spans);
            if sender.encode_all(documents.iter().map(|document| |buffer: &mut Vec<u8>| document.to_writer(buffer))) {
                return sender.send_encoded();
            }
        }
        let documents = self.flat.translate_spans(spans);
        let mut outcome = Ok(());
        for document in documents {
            if sender.encode_all(std::iter::once(|buffer: &mut Vec<u8>| document.to_writer(buffer))) {
                outcome = outcome.and(sender.send_encoded());
            } else {
                // Even alone it does not fit a datagram: the daemon could not take it either.
                outcome = outcome.and(Err(io::Error::other("a segment document is larger than a datagram")));
            }
        }
        outcome
    }
}

/// Whether every span can head a document if its parent is not in the batch: a segment (server span), or a
/// subsegment with a parent. The translator drops a subsegment without any parent (a local root that is not a server
/// span, as a background task's), which nested would take its children down with it; sent flat, they still arrive.
fn nestable(spans: &[SpanData]) -> bool {
    spans.iter().all(|span| span.span_kind == SpanKind::Server || span.parent_span_id != SpanId::INVALID)
}

fn translator() -> SegmentTranslator {
    SegmentTranslator::new()
        // Trace ids continued from a W3C caller need not start with a timestamp; X-Ray accepts them.
        .skip_timestamp_validation()
        .metadata_all_attrs()
}

impl SpanExporter for XraySegments {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            self.prepare(span);
        }
        // The spans of a trace side by side (stable: each keeps its order), so each trace is translated at once.
        // The cached-key sort orders (key, index) pairs and then moves each span about once, where a merge sort
        // would move the large `SpanData` values log2(batch) times each (see the README's measurements).
        batch.sort_by_cached_key(|span| u128::from_be_bytes(span.span_context.trace_id().to_bytes()));
        let mut sender = self.daemon.sender();
        let mut outcome = Ok(());
        for trace in batch.chunk_by(|a, b| a.span_context.trace_id() == b.span_context.trace_id()) {
            outcome = outcome.and(self.send_trace(trace, &mut sender));
        }
        outcome.map_err(|error| OTelSdkError::InternalFailure(format!("sending segments to the daemon: {error}")))
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // None of the resource: its attributes would be repeated as metadata in every document, and the one that
        // matters, the service name, is set per segment by `prepare`.
        let empty = Resource::builder_empty().build();
        self.nested.set_resource(&empty);
        self.flat.set_resource(&empty);
    }
}

/// The daemon's UDP socket: connected, non-blocking (a full socket buffer fails the send instead of waiting).
#[derive(Debug)]
struct Daemon {
    socket: UdpSocket,
    /// Datagrams being built, kept from one export to the next.
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl Daemon {
    fn new(address: SocketAddr) -> io::Result<Self> {
        let local: SocketAddr = if address.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        socket.connect(address)?;
        Ok(Self { socket, buffers: Mutex::default() })
    }

    fn sender(&self) -> Sender<'_> {
        let buffers = std::mem::take(&mut *self.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        Sender { daemon: self, buffers, used: 0 }
    }
}

/// Encodes documents into datagrams and sends them; gives its buffers back to the [`Daemon`] when dropped.
struct Sender<'a> {
    daemon: &'a Daemon,
    buffers: Vec<Vec<u8>>,
    /// How many of `buffers` hold the datagrams of the current group.
    used: usize,
}

impl Sender<'_> {
    /// Encodes one datagram per writer; false (nothing to send) when one of them does not fit a datagram.
    fn encode_all<F: FnOnce(&mut Vec<u8>)>(&mut self, writers: impl Iterator<Item = F>) -> bool {
        self.used = 0;
        for write in writers {
            if self.buffers.len() == self.used {
                self.buffers.push(Vec::with_capacity(4096));
            }
            let buffer = &mut self.buffers[self.used];
            buffer.clear();
            buffer.extend_from_slice(DAEMON_HEADER);
            write(buffer);
            self.used += 1;
            if buffer.len() > MAX_DATAGRAM {
                self.used = 0;
                return false;
            }
        }
        true
    }

    /// Sends what [`Sender::encode_all`] encoded; every datagram is tried, the first error is returned.
    fn send_encoded(&mut self) -> io::Result<()> {
        let mut outcome = Ok(());
        for buffer in &self.buffers[..self.used] {
            outcome = outcome.and(self.daemon.socket.send(buffer).map(drop));
        }
        self.used = 0;
        outcome
    }
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        // An occasional huge document must not pin its memory: only modest buffers are kept.
        self.buffers.retain(|buffer| buffer.capacity() <= 2 * MAX_DATAGRAM);
        self.buffers.truncate(8);
        let mut kept = self.daemon.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *kept = std::mem::take(&mut self.buffers);
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
