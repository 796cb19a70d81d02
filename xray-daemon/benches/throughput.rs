//! Sustained throughput of the `xray` binary: a load generator sends segments over UDP at a fixed rate for a fixed
//! time to a daemon that forwards them to a local X-Ray endpoint; a rate passes when every segment arrives. For each
//! rate it prints what the daemon received, what arrived, what was lost (dropped by the kernel before the daemon read
//! it, or spilled by the daemon's full buffer), and the daemon's peak RSS.
//!
//! ```text
//! cargo bench -p xray-daemon --bench throughput
//! XRAY_BENCH_RATES=2000,10000,40000 XRAY_BENCH_SECONDS=10 cargo bench -p xray-daemon --bench throughput
//! XRAY_BENCH_RATES=150000 XRAY_BENCH_BUFFER_MB=16 cargo bench -p xray-daemon --bench throughput   # -m 16
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::xray_endpoint::XrayEndpoint;

/// A segment as the backend sends one: an HTTP server segment with a SQL subsegment, about 900 bytes.
fn datagram(index: usize) -> Vec<u8> {
    let document = serde_json::json!({
        "name": "backend-flask", "id": format!("{index:016x}"), "trace_id": format!("1-6560a1b2-{index:024x}"),
        "start_time": 1_700_000_000.125, "end_time": 1_700_000_000.175, "origin": "AWS::ECS::Container",
        "http": { "request": { "method": "GET", "url": "http://backend:4567/api/activities/home",
                               "client_ip": "172.18.0.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)" },
                  "response": { "status": 200, "content_length": 1834 } },
        "annotations": { "app.now": "2023-11-24T12:00:00Z", "app.result_length": 3 },
        "subsegments": [{ "name": "home-activities", "id": format!("{:016x}", index + 1),
                          "start_time": 1_700_000_000.130, "end_time": 1_700_000_000.170,
                          "subsegments": [{ "name": "cruddur@db", "id": format!("{:016x}", index + 2),
                                            "namespace": "remote", "start_time": 1_700_000_000.131,
                                            "end_time": 1_700_000_000.168,
                                            "sql": { "url": "postgres://db:5432/cruddur", "database_type": "PostgreSQL",
                                                     "sanitized_query": "SELECT activities.uuid, users.display_name FROM activities LEFT JOIN users ON users.uuid = activities.user_uuid ORDER BY activities.created_at DESC" } }] }]
    });
    format!("{{\"format\":\"json\",\"version\":1}}\n{document}").into_bytes()
}

mod support;

/// What the daemon counted, from its last log line.
struct Totals {
    received: u64,
    spillover: u64,
}

fn start_daemon(endpoint: &XrayEndpoint, buffer_mb: Option<&str>) -> support::Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xray"));
    command
        .args(["-o", "-n", "us-east-1", "-b", "127.0.0.1:0", "-t", "127.0.0.1:0"])
        .args(buffer_mb.map(|mb| ["-m", mb]).into_iter().flatten())
        .args(["--endpoint", &endpoint.url()])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        // The start-up line is at info; everything else only when something goes wrong.
        .env("RUST_LOG", "warn,xray_daemon=info");
    support::Running::start(command, "udp=")
}

/// SIGTERM, then the totals of the daemon's last line.
fn stop(daemon: &mut support::Running) -> Totals {
    let line = daemon.stop();
    let field = |name: &str| -> u64 {
        let prefix = format!("{name}=");
        line.split_whitespace()
            .find_map(|field| field.strip_prefix(prefix.as_str())?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line:?}"))
    };
    Totals { received: field("received"), spillover: field("spillover") }
}

/// Sends `rate` datagrams per second for `seconds`, paced per millisecond; returns how many were sent.
fn generate(target: SocketAddr, rate: u64, seconds: u64, datagrams: &[Vec<u8>]) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("the generator's socket");
    let start = Instant::now();
    let total = rate * seconds;
    let mut sent = 0;
    while sent < total {
        let due = (u128::from(rate) * start.elapsed().as_micros() / 1_000_000).min(u128::from(total)) as u64;
        while sent < due {
            socket.send_to(&datagrams[sent as usize % datagrams.len()], target).expect("sending");
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    sent
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing special: run one short rate then.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let rates: Vec<u64> = std::env::var("XRAY_BENCH_RATES")
        .unwrap_or_else(|_| if quick { "500".into() } else { "1000,10000,40000,80000,120000".into() })
        .split(',')
        .map(|rate| rate.trim().parse().expect("XRAY_BENCH_RATES: numbers separated by commas"))
        .collect();
    let seconds: u64 =
        std::env::var("XRAY_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 1 } else { 10 });
    // The daemon's -m; unset: its default, 1% of the host's memory.
    let buffer_mb = std::env::var("XRAY_BENCH_BUFFER_MB").ok();
    let datagrams: Vec<Vec<u8>> = (0..1000).map(|index| datagram(index * 3)).collect();
    println!(
        "segment datagram: {} bytes; {seconds} s per rate; buffer: {}",
        datagrams[0].len(),
        buffer_mb.as_deref().map_or("default (1% of memory)".to_owned(), |mb| format!("{mb} MB"))
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10} {:>9}",
        "rate/s", "sent", "received", "arrived", "lost", "in kernel", "spillover", "peak RSS"
    );
    for rate in rates {
        let endpoint = XrayEndpoint::start();
        let mut daemon = start_daemon(&endpoint, buffer_mb.as_deref());
        let sent = generate(daemon.address, rate, seconds, &datagrams);
        // Wait for the stragglers (the last partial batch goes 1 s after its first document), then stop the daemon:
        // it sends what it still holds.
        let deadline = Instant::now() + Duration::from_secs(5);
        while (endpoint.accepted_document_count() as u64) < sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let peak = daemon.peak_rss_kb() as f64 / 1024.0;
        let totals = stop(&mut daemon);
        let arrived = endpoint.accepted_document_count() as u64;
        println!(
            "{rate:>8} {sent:>9} {:>9} {arrived:>9} {:>8} {:>10} {:>10} {peak:>6.1} MB",
            totals.received,
            sent.saturating_sub(arrived),
            sent.saturating_sub(totals.received),
            totals.spillover,
        );
    }
}
