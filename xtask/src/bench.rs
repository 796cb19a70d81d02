//! `cargo xtask bench-api`: requests/s and p99 latency of `GET /api/activities/home` on the seeded database,
//! measured with `wrk` against the release build of the backend and a throwaway Postgres, with tracing off, to
//! OTLP only, to X-Ray only, and to both (to local sinks that count what they receive).

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use local_postgres::Cluster;

use crate::install;
use crate::process::{Services, cargo, step, wait_for_port, workspace_root};
use crate::sinks::{HttpSink, SegmentSink};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long each measurement runs, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Which exporters to measure; `all` compares the four.
    #[arg(long, value_enum, default_value_t = Tracing::All)]
    tracing: Tracing,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tracing {
    Off,
    Otlp,
    Xray,
    Both,
    /// OTLP pointed at a closed port: exports fail, requests must not notice.
    DeadOtlp,
    All,
}

impl Tracing {
    fn label(self) -> &'static str {
        match self {
            Tracing::Off => "tracing off",
            Tracing::Otlp => "OTLP only",
            Tracing::Xray => "X-Ray only",
            Tracing::Both => "OTLP + X-Ray",
            Tracing::DeadOtlp => "dead OTLP",
            Tracing::All => "all",
        }
    }
}

/// One measurement.
struct Measured {
    requests_per_second: f64,
    p99: String,
    non_2xx: String,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    install::postgres()?;
    install::debian_packages(&["wrk"], "the load generator")?;
    step("building the backend (release)", cargo().args(["build", "--release", "--package", "cruddur-backend"]))?;
    let cluster = Cluster::start_throwaway()?;
    cluster.ensure_database("bench")?;
    let otlp = HttpSink::start(false)?;
    let xray = SegmentSink::start()?;

    let modes = match args.tracing {
        Tracing::All => vec![Tracing::Off, Tracing::Otlp, Tracing::Xray, Tracing::Both, Tracing::DeadOtlp],
        one => vec![one],
    };
    let mut results = Vec::new();
    for mode in modes {
        let (exports, segments) = (otlp.exports.load(Ordering::Relaxed), xray.segments.load(Ordering::Relaxed));
        let measured = measure(&args, &cluster, mode, &otlp, &xray)?;
        println!(
            "{:<13} {:>9.0} requests/s  p99 {:>8}  non-2xx {}  (OTLP exports received: {}, X-Ray segments: {})",
            mode.label(),
            measured.requests_per_second,
            measured.p99,
            measured.non_2xx,
            otlp.exports.load(Ordering::Relaxed) - exports,
            xray.segments.load(Ordering::Relaxed) - segments,
        );
        results.push((mode, measured));
    }
    let throughput = |mode| results.iter().find(|(measured, _)| *measured == mode).map(|(_, m)| m.requests_per_second);
    if let (Some(off), Some(both)) = (throughput(Tracing::Off), throughput(Tracing::Both)) {
        println!("both exporters cost {:.1}% of the throughput with tracing off", 100.0 * (1.0 - both / off));
    }
    println!("({} connections, {} s each, GET /api/activities/home)", args.connections, args.seconds);
    Ok(())
}

fn measure(
    args: &Args,
    cluster: &Cluster,
    mode: Tracing,
    otlp: &HttpSink,
    xray: &SegmentSink,
) -> anyhow::Result<Measured> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut backend = Command::new(workspace_root().join("target/release/cruddur-backend"));
    backend
        .env("DATABASE_URL", cluster.url("bench"))
        .env("PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("SEED_IF_EMPTY", "true")
        .env("RUST_LOG", "warn")
        .env("OTEL_SERVICE_NAME", "cruddur-backend-bench")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if matches!(mode, Tracing::Otlp | Tracing::Both) {
        backend.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", otlp.address));
    } else if mode == Tracing::DeadOtlp {
        let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        backend.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}"));
    } else {
        backend.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    }
    if matches!(mode, Tracing::Xray | Tracing::Both) {
        backend.env("AWS_XRAY_SDK_ENABLED", "true").env("AWS_XRAY_DAEMON_ADDRESS", xray.address.to_string());
    } else {
        backend.env("AWS_XRAY_SDK_ENABLED", "false");
    }
    let mut services = Services::new()?;
    services.start("backend", &mut backend)?;
    wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(60))?;

    let url = format!("http://127.0.0.1:{port}/api/activities/home");
    // Warm the connection pool and the statement caches before measuring.
    wrk(&url, 2, args.connections)?;
    let output = wrk(&url, args.seconds, args.connections)?;
    services.check_running()?;
    services.stop();
    Ok(Measured {
        requests_per_second: field(&output, "Requests/sec:").context("wrk printed no Requests/sec")?.parse()?,
        p99: output
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix("99%"))
            .map(|p99| p99.trim().to_owned())
            .context("wrk printed no 99% latency")?,
        non_2xx: field(&output, "Non-2xx or 3xx responses:").unwrap_or("0").to_owned(),
    })
}

fn wrk(url: &str, seconds: u32, connections: u32) -> anyhow::Result<String> {
    let output = Command::new("wrk")
        .args(["--threads", "2", "--connections", &connections.to_string(), "--duration", &format!("{seconds}s")])
        .args(["--latency", url])
        .output()
        .context("running wrk")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn field<'a>(output: &'a str, label: &str) -> Option<&'a str> {
    output.lines().find_map(|line| line.trim().strip_prefix(label)).map(str::trim)
}
