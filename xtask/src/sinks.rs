//! Stand-ins for the telemetry destinations of benchmarks and the smoke check: an HTTP endpoint that answers every
//! request with an empty 200 (what an OTLP receiver or X-Ray's API answers to a successful export), one that answers
//! as CloudWatch Logs does to a call that succeeds, and a UDP socket that swallows X-Ray segments, all on 127.0.0.1,
//! each counting what it received so a run can show the exporters really worked. They check nothing (the tests'
//! stand-ins in `test-support` do): a benchmark measures the backend's work, not a stand-in's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The (path, body) of each request received.
type Recorded = Mutex<Vec<(String, Vec<u8>)>>;

/// An empty success.
const EMPTY_200: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

/// Serves keep-alive HTTP POSTs with `Content-Length` bodies on a port of 127.0.0.1 it returns, a thread per
/// connection, answering each with `response` once `on_request` has seen its path and body.
fn serve(
    on_request: impl Fn(String, Vec<u8>) + Send + Sync + 'static,
    response: &'static [u8],
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let on_request = Arc::new(on_request);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let on_request = on_request.clone();
            std::thread::spawn(move || serve_connection(stream, &*on_request, response));
        }
    });
    Ok(address)
}

/// Accepts HTTP POSTs (keep-alive, `Content-Length` bodies), counts them, and keeps (path, body) when asked to.
pub(crate) struct HttpSink {
    pub(crate) address: SocketAddr,
    pub(crate) exports: Arc<AtomicU64>,
    recorded: Option<Arc<Recorded>>,
}

impl HttpSink {
    /// `record`: keep every request's path and body (for checks; benchmarks only count).
    pub(crate) fn start(record: bool) -> std::io::Result<Self> {
        let exports = Arc::new(AtomicU64::new(0));
        let recorded: Option<Arc<Recorded>> = record.then(Arc::default);
        let (counter, kept) = (exports.clone(), recorded.clone());
        let on_request = move |path, body| {
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some(kept) = &kept {
                kept.lock().expect("never poisoned").push((path, body));
            }
        };
        let address = serve(on_request, EMPTY_200)?;
        Ok(Self { address, exports, recorded })
    }

    /// The (path, body) of every request so far; empty unless started with `record`.
    pub(crate) fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.recorded.as_ref().map(|kept| kept.lock().expect("never poisoned").clone()).unwrap_or_default()
    }
}

/// What CloudWatch Logs answers to a call that succeeds and has nothing to report.
const CLOUDWATCH_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\n\r\n{}";

/// CloudWatch Logs' API as far as a shipper that succeeds sees it: every call (`CreateLogGroup`,
/// `CreateLogStream`, `PutLogEvents`) answers `{}`. It counts the log events of the `PutLogEvents` bodies.
pub(crate) struct CloudWatchLogsSink {
    pub(crate) address: SocketAddr,
    pub(crate) events: Arc<AtomicU64>,
}

impl CloudWatchLogsSink {
    pub(crate) fn start() -> std::io::Result<Self> {
        let events = Arc::new(AtomicU64::new(0));
        let counter = events.clone();
        let on_request = move |_path, body: Vec<u8>| {
            // Each event of a PutLogEvents body opens with its timestamp (`InputLogEvent`'s first member, as the
            // telemetry crate writes it); messages hold it only escaped.
            let opened = memchr::memmem::find_iter(&body, b"{\"timestamp\":").count();
            counter.fetch_add(opened as u64, Ordering::Relaxed);
        };
        let address = serve(on_request, CLOUDWATCH_ANSWER)?;
        Ok(Self { address, events })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

fn serve_connection(stream: TcpStream, on_request: &(dyn Fn(String, Vec<u8>) + Send + Sync), response: &[u8]) {
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
        on_request(path, body);
        if writer.write_all(response).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloudwatch_logs_sink_answers_success_and_counts_the_events_of_each_call() {
        let sink = CloudWatchLogsSink::start().unwrap();
        let body = r#"{"logGroupName":"cruddur","logStreamName":"s","logEvents":[{"timestamp":1,"message":"{\"timestamp\":\"x\"}"},{"timestamp":2,"message":"b"}]}"#;
        let mut stream = TcpStream::connect(sink.address).unwrap();
        let request = format!(
            "POST / HTTP/1.1\r\nhost: x\r\nx-amz-target: Logs_20140328.PutLogEvents\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = vec![0; CLOUDWATCH_ANSWER.len()];
        stream.read_exact(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\n{}"), "{answer}");
        // Counted before the answer was written.
        assert_eq!(sink.events.load(Ordering::Relaxed), 2);
    }
}
