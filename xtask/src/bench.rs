//! `cargo xtask bench-api`: requests/s and p99 latency of `GET /api/activities/home` on the seeded database,
//! measured with `wrk` against the release build of the backend and a throwaway Postgres.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use local_postgres::Cluster;

use crate::install;
use crate::process::{Services, cargo, step, wait_for_port, workspace_root};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How long each measurement runs, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Extra environment for the backend, as KEY=VALUE (repeatable), e.g. to turn exporters on.
    #[arg(long = "backend-env", value_parser = parse_key_value)]
    backend_env: Vec<(String, String)>,
}

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or(format!("{raw:?} is not KEY=VALUE"))
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    install::postgres()?;
    install::debian_packages(&["wrk"], "the load generator")?;
    step("building the backend (release)", cargo().args(["build", "--release", "--package", "cruddur-backend"]))?;

    let cluster = Cluster::start_throwaway()?;
    cluster.ensure_database("bench")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut services = Services::new()?;
    services.start(
        "backend",
        Command::new(workspace_root().join("target/release/cruddur-backend"))
            .env("DATABASE_URL", cluster.url("bench"))
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("SEED_IF_EMPTY", "true")
            .env("RUST_LOG", "warn")
            .envs(args.backend_env.iter().map(|(key, value)| (key, value))),
    )?;
    wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(60))?;

    let url = format!("http://127.0.0.1:{port}/api/activities/home");
    // Warm the connection pool and the statement caches before measuring.
    wrk(&url, 2, args.connections)?;
    let output = wrk(&url, args.seconds, args.connections)?;
    let requests_per_second = field(&output, "Requests/sec:").context("wrk printed no Requests/sec")?;
    let p99 = output
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("99%"))
        .map(str::trim)
        .context("wrk printed no 99% latency")?;
    let errors = field(&output, "Non-2xx or 3xx responses:").unwrap_or("0");
    println!(
        "GET /api/activities/home: {requests_per_second} requests/s, p99 {p99}, non-2xx {errors} \
         ({} connections, {} s)",
        args.connections, args.seconds
    );
    services.check_running()?;
    Ok(())
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
