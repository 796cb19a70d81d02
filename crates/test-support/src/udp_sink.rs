//! A local UDP segment sink: what the X-Ray daemon's UDP port is to an X-Ray SDK, on a 127.0.0.1 port chosen by the
//! OS.
//!
//! It records every datagram on its own thread. A datagram from an X-Ray SDK is a header line
//! (`{"format": "json", "version": 1}`), a newline, and one segment document; [`Datagram::segment`] splits and parses
//! the two and says what is wrong with a datagram that is not so. Tests wait for the segments they expect with a
//! deadline: [`UdpSink::wait_for_segment`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::sync::watch;

pub use crate::otlp::WAIT;
use crate::otlp::wait_until;

/// One datagram as received.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub bytes: Vec<u8>,
}

/// A datagram split into its header line and its segment document, both parsed.
#[derive(Debug, Clone)]
pub struct Segment {
    pub header: Value,
    pub document: Value,
}

impl Segment {
    pub fn name(&self) -> Option<&str> {
        self.document["name"].as_str()
    }

    /// The X-Ray trace id, `1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx`.
    pub fn trace_id(&self) -> Option<&str> {
        self.document["trace_id"].as_str()
    }

    pub fn id(&self) -> Option<&str> {
        self.document["id"].as_str()
    }

    pub fn parent_id(&self) -> Option<&str> {
        self.document["parent_id"].as_str()
    }

    /// The trace id as OTLP spells it: the X-Ray id without its version and dashes.
    pub fn otlp_trace_id(&self) -> Option<String> {
        let trace_id = self.trace_id()?.strip_prefix("1-")?;
        Some(trace_id.replace('-', ""))
    }
}

impl Datagram {
    /// Splits and parses the datagram, or says why it is not a valid daemon datagram.
    pub fn segment(&self) -> Result<Segment, String> {
        let text = std::str::from_utf8(&self.bytes).map_err(|error| format!("not UTF-8: {error}"))?;
        let (header, document) = text.split_once('\n').ok_or("no newline after the header line")?;
        let header: Value = serde_json::from_str(header).map_err(|error| format!("header line: {error}"))?;
        let document: Value = serde_json::from_str(document).map_err(|error| format!("document: {error}"))?;
        Ok(Segment { header, document })
    }
}

#[derive(Default)]
struct Received {
    datagrams: Mutex<Vec<Datagram>>,
}

/// The running sink; stops when dropped.
pub struct UdpSink {
    address: SocketAddr,
    received: Arc<Received>,
    changes: watch::Receiver<usize>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSink {
    /// Binds 127.0.0.1:0 and starts recording.
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binding the UDP sink");
        let address = socket.local_addr().expect("the sink's address");
        let received = Arc::new(Received::default());
        let (changed, changes) = watch::channel(0);
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let received = received.clone();
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("udp-sink".into())
                .spawn(move || {
                    // Segment documents are at most one datagram: 64 KiB.
                    let mut buffer = vec![0; 65_536];
                    while let Ok(length) = socket.recv(&mut buffer) {
                        if stopping.load(Ordering::Acquire) {
                            break;
                        }
                        let datagram = Datagram { bytes: buffer[..length].to_vec() };
                        received.datagrams.lock().expect("sink lock").push(datagram);
                        changed.send_modify(|count| *count += 1);
                    }
                })
                .expect("spawning the sink thread")
        };
        Self { address, received, changes, stopping, thread: Some(thread) }
    }

    /// The address to give as `AWS_XRAY_DAEMON_ADDRESS`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn datagrams(&self) -> Vec<Datagram> {
        self.received.datagrams.lock().expect("sink lock").clone()
    }

    /// Every document of the datagrams that parse as header line + document, each followed by the subsegments
    /// embedded in it (at any depth), as X-Ray reads them: an embedded subsegment gets the `trace_id` of its datagram
    /// and the `id` of the document around it as `parent_id` (the X-Ray SDKs embed the subsegments of a request in its
    /// segment when they fit a datagram).
    pub fn segments(&self) -> Vec<Segment> {
        let mut segments = Vec::new();
        for segment in self.datagrams().iter().filter_map(|datagram| datagram.segment().ok()) {
            with_embedded(segment, &mut segments);
        }
        segments
    }

    /// Waits up to [`WAIT`] until at least `count` datagrams have arrived, and returns them all; panics with the
    /// number received if they do not come.
    pub async fn wait_for_datagrams(&self, count: usize) -> Vec<Datagram> {
        let found = wait_until(self.changes.clone(), || Some(self.datagrams()).filter(|all| all.len() >= count)).await;
        found.unwrap_or_else(|| {
            panic!("{count} datagrams expected at the UDP sink within {WAIT:?}; received {}", self.datagrams().len())
        })
    }

    /// Waits up to [`WAIT`] for a segment matching `matches`, and panics naming `what` and the segments seen if none
    /// comes.
    pub async fn wait_for_segment(&self, what: &str, matches: impl Fn(&Segment) -> bool) -> Segment {
        let found =
            wait_until(self.changes.clone(), || self.segments().into_iter().find(|segment| matches(segment))).await;
        found.unwrap_or_else(|| {
            let seen: Vec<Option<String>> =
                self.segments().iter().map(|segment| segment.name().map(str::to_owned)).collect();
            panic!("no segment {what} at the UDP sink within {WAIT:?}; received: {seen:?}")
        })
    }
}

/// Pushes `segment`, then each subsegment embedded in it, recursively.
fn with_embedded(segment: Segment, into: &mut Vec<Segment>) {
    let embedded = segment.document.get("subsegments").and_then(Value::as_array).cloned().unwrap_or_default();
    let (trace_id, id) = (segment.document.get("trace_id").cloned(), segment.document.get("id").cloned());
    let header = segment.header.clone();
    into.push(segment);
    for mut document in embedded {
        if let Some(object) = document.as_object_mut() {
            if let Some(trace_id) = &trace_id {
                object.entry("trace_id").or_insert_with(|| trace_id.clone());
            }
            if let Some(id) = &id {
                object.entry("parent_id").or_insert_with(|| id.clone());
            }
        }
        with_embedded(Segment { header: header.clone(), document }, into);
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the receiving thread with an empty datagram so it sees the flag.
        if let Ok(waker) = UdpSocket::bind("127.0.0.1:0") {
            let _ = waker.send_to(&[], self.address);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
