//! Stand-ins for the trace destinations of benchmarks and the smoke check: an HTTP endpoint that answers every
//! request with an empty 200 (what an OTLP receiver or X-Ray's API answers to a successful export), and a UDP socket
//! that swallows X-Ray segments, both on 127.0.0.1, both counting what they received so a run can show the
//! exporters really worked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The (path, body) of each request received.
type Recorded = Mutex<Vec<(String, Vec<u8>)>>;

/// Accepts HTTP POSTs (keep-alive, `Content-Length` bodies), counts them, and keeps (path, body) when asked to.
pub(crate) struct HttpSink {
    pub(crate) address: SocketAddr,
    pub(crate) exports: Arc<AtomicU64>,
    recorded: Option<Arc<Recorded>>,
}

impl HttpSink {
    /// `record`: keep every request's path and body (for checks; benchmarks only count).
    pub(crate) fn start(record: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let exports = Arc::new(AtomicU64::new(0));
        let recorded = record.then(Arc::default);
        let (counter, kept) = (exports.clone(), recorded.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counter, kept) = (counter.clone(), kept.clone());
                std::thread::spawn(move || serve_connection(stream, &counter, kept.as_deref()));
            }
        });
        Ok(Self { address, exports, recorded })
    }

    /// The (path, body) of every request so far; empty unless started with `record`.
    pub(crate) fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.recorded.as_ref().map(|kept| kept.lock().expect("never poisoned").clone()).unwrap_or_default()
    }
}

fn serve_connection(stream: TcpStream, exports: &AtomicU64, kept: Option<&Recorded>) {
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        let mut path = String::new();
        // Request line and headers, up to the blank line.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) if path.is_empty() => path = line.split_whitespace().nth(1).unwrap_or("/").to_owned(),
                Ok(_) => {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        exports.fetch_add(1, Ordering::Relaxed);
        if let Some(kept) = kept {
            kept.lock().expect("never poisoned").push((std::mem::take(&mut path), body));
        }
        if writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// Receives X-Ray segment datagrams and counts them.
pub(crate) struct SegmentSink {
    pub(crate) address: SocketAddr,
    pub(crate) segments: Arc<AtomicU64>,
}

impl SegmentSink {
    pub(crate) fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let address = socket.local_addr()?;
        let segments = Arc::new(AtomicU64::new(0));
        let counter = segments.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0; 65_536];
            while socket.recv(&mut buffer).is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Self { address, segments })
    }
}
