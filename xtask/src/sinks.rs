//! Stand-ins for the trace destinations during benchmarks: an HTTP endpoint that answers every OTLP export with
//! 200 and a UDP socket that swallows X-Ray segments, both on 127.0.0.1, both counting what they received so a run
//! can show the exporters really worked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Accepts OTLP/HTTP exports (keep-alive, `Content-Length` bodies) and counts them.
pub(crate) struct OtlpSink {
    pub(crate) address: SocketAddr,
    pub(crate) exports: Arc<AtomicU64>,
}

impl OtlpSink {
    pub(crate) fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let exports = Arc::new(AtomicU64::new(0));
        let counter = exports.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || serve_connection(stream, &counter));
            }
        });
        Ok(Self { address, exports })
    }
}

fn serve_connection(stream: TcpStream, exports: &AtomicU64) {
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        // Request line and headers, up to the blank line.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
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
