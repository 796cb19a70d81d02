//! `cargo xtask smoke`: the whole stack as real processes, checked end to end without Docker: Postgres, the X-Ray
//! daemon (forwarding to a local stand-in for the X-Ray API), the backend and the frontend server. A request from the
//! frontend's origin, to the backend URL the frontend serves, must pass CORS, answer the seeded feed, and its trace
//! must reach X-Ray through the daemon.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use crate::stack::{Stack, delivered_to_xray};

pub(crate) fn run() -> anyhow::Result<()> {
    // The API's side of the stack is what this checks; the frontend server serves a stand-in page.
    let dist = tempfile::tempdir()?;
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>Cruddur</title>")?;
    let stack = Stack::start(dist.path(), None)?;
    let (frontend_origin, backend_url) = (stack.frontend_origin(), stack.backend_url());

    let config = get(stack.frontend, "/config.json", &[])?;
    ensure!(config.body.contains(&backend_url), "the frontend serves the backend URL: {}", config.body);
    let feed = get(stack.backend, "/api/activities/home", &[("Origin", &frontend_origin)])?;
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
    let xray_api = stack.stop();
    if !delivered_to_xray(&xray_api, &root) {
        bail!("trace {root} did not reach the X-Ray API through the daemon");
    }
    eprintln!(
        "smoke: a request from {frontend_origin} reached the backend, and its trace {root} reached X-Ray through the daemon"
    );
    Ok(())
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// A plain HTTP/1.1 GET, as a browser would send it (with the headers given).
pub(crate) fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Answer> {
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
