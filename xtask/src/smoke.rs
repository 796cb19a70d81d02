//! `cargo xtask smoke`: the whole stack as real processes, checked end to end without Docker: Postgres, the X-Ray
//! daemon (forwarding to a local stand-in for the X-Ray API), the backend and the frontend server. A request from the
//! frontend's origin, to the backend URL the frontend serves, must pass CORS, answer the seeded feed, and its trace
//! must reach X-Ray through the daemon.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use local_postgres::Cluster;

use crate::install;
use crate::process::{Services, cargo, step, wait_for_port, workspace_root};
use crate::sinks::HttpSink;

pub(crate) fn run() -> anyhow::Result<()> {
    install::postgres()?;
    step(
        "building the stack",
        cargo()
            .args(["build", "--package", "cruddur-backend", "--package", "xray-daemon"])
            .args(["--package", "cruddur-frontend-server"]),
    )?;
    let binary = |name: &str| workspace_root().join("target/debug").join(name);
    let cluster = Cluster::start_throwaway()?;
    cluster.ensure_database("smoke")?;
    let xray_api = HttpSink::start(true)?;
    let [daemon, backend, frontend] = [free_port()?, free_port()?, free_port()?];
    let (frontend_origin, backend_url) = (format!("http://{frontend}"), format!("http://{backend}"));
    let dist = tempfile::tempdir()?;
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>Cruddur</title>")?;

    let mut services = Services::new()?;
    services.start(
        "xray-daemon",
        Command::new(binary("xray"))
            .args(["--local-mode", "--region", "us-east-1", "--bind", &daemon.to_string()])
            .args(["--bind-tcp", &daemon.to_string(), "--endpoint", &format!("http://{}", xray_api.address)])
            .env("AWS_ACCESS_KEY_ID", "smoke-test")
            .env("AWS_SECRET_ACCESS_KEY", "smoke-test"),
    )?;
    services.start(
        "backend",
        Command::new(binary("cruddur-backend"))
            .env("DATABASE_URL", cluster.url("smoke"))
            .env("PORT", backend.port().to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("SEED_IF_EMPTY", "true")
            .env("FRONTEND_URL", &frontend_origin)
            .env("AWS_XRAY_DAEMON_ADDRESS", daemon.to_string())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT"),
    )?;
    services.start(
        "frontend",
        Command::new(binary("cruddur-frontend"))
            .env("PORT", frontend.port().to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("BACKEND_URL", &backend_url)
            .env("FRONTEND_DIST", dist.path()),
    )?;
    for address in [daemon, backend, frontend] {
        wait_for_port(address, Duration::from_secs(60)).or_else(|error| services.check_running().and(Err(error)))?;
    }

    let config = get(frontend, "/config.json", &[])?;
    ensure!(config.body.contains(&backend_url), "the frontend serves the backend URL: {}", config.body);
    let feed = get(backend, "/api/activities/home", &[("Origin", &frontend_origin)])?;
    ensure!(feed.status == 200, "the home feed answered {}: {}", feed.status, feed.body);
    ensure!(
        feed.header("access-control-allow-origin") == Some(frontend_origin.as_str()),
        "CORS admits the frontend's origin: {:?}",
        feed.headers
    );
    ensure!(feed.body.contains("This was imported as seed data!"), "the seeded feed: {}", feed.body);
    let trace_header = feed.header("x-amzn-trace-id").context("the answer names its trace")?;
    let root = trace_header.split(';').find_map(|part| part.strip_prefix("Root=")).context("a Root")?.to_owned();

    // Stopping in reverse order flushes: the backend to the daemon, then the daemon to X-Ray.
    services.stop();
    let delivered = xray_api
        .requests()
        .iter()
        .any(|(path, body)| path == "/TraceSegments" && String::from_utf8_lossy(body).contains(&root));
    if !delivered {
        bail!("trace {root} did not reach the X-Ray API through the daemon");
    }
    eprintln!(
        "smoke: a request from {frontend_origin} reached the backend, and its trace {root} reached X-Ray through the daemon"
    );
    Ok(())
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// A plain HTTP/1.1 GET, as a browser would send it (with the headers given).
fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Answer> {
    let mut stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("an HTTP answer")?;
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).context("a status")?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Answer { status, headers, body: body.to_owned() })
}
