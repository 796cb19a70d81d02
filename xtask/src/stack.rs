//! The whole stack as real processes on free loopback ports, for the checks that follow requests through it: a
//! throwaway Postgres, the X-Ray daemon forwarding to a local stand-in for the X-Ray API, the backend and the
//! frontend server. The backend sends X-Ray segments (UDP) and OTLP (its own spans and the browser's it relays) to
//! the daemon, which delivers both to X-Ray and, when an OTLP destination is given, fans the OTLP out to it.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use local_postgres::Cluster;

use crate::install;
use crate::process::{Services, cargo, step, wait_for_port, workspace_root};
use crate::sinks::HttpSink;

/// X-Ray sampling rules that take every trace: `cruddur_telemetry::sampling::EVERY_TRACE`, written here so that
/// xtask builds without the telemetry crate (a test keeps the two equal).
pub(crate) const EVERY_TRACE: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1.0}}"#;

/// Where the daemon fans OTLP out to, and the headers it sends with it (`OTEL_EXPORTER_OTLP_HEADERS`).
pub(crate) struct Otlp<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) headers: &'a str,
}

/// The running stack; [`Stack::stop`] stops it in reverse order so traces flush.
pub(crate) struct Stack {
    pub(crate) frontend: SocketAddr,
    pub(crate) backend: SocketAddr,
    /// What the daemon sent to "X-Ray".
    pub(crate) xray_api: HttpSink,
    services: Services,
    _cluster: Cluster,
}

impl Stack {
    /// Builds and starts everything, the frontend server serving `dist`; returns once every port answers.
    pub(crate) fn start(dist: &Path, otlp: Option<Otlp<'_>>) -> anyhow::Result<Self> {
        install::postgres()?;
        step(
            "building the stack",
            cargo()
                .args(["build", "--package", "cruddur-backend", "--package", "xray-daemon"])
                .args(["--package", "cruddur-frontend-server"]),
        )?;
        let binary = |name: &str| workspace_root().join("target/debug").join(name);
        let cluster = Cluster::start_throwaway()?;
        cluster.ensure_database("stack")?;
        let xray_api = HttpSink::start(true)?;
        let [daemon, backend, frontend] = [free_port()?, free_port()?, free_port()?];

        let mut services = Services::new()?;
        let mut daemon_command = Command::new(binary("xray"));
        daemon_command
            .args(["--local-mode", "--region", "us-east-1", "--bind", &daemon.to_string()])
            .args(["--bind-tcp", &daemon.to_string(), "--endpoint", &format!("http://{}", xray_api.address)])
            .env("AWS_ACCESS_KEY_ID", "stack-test")
            .env("AWS_SECRET_ACCESS_KEY", "stack-test")
            .env_remove("HONEYCOMB_API_KEY")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        match otlp {
            Some(Otlp { endpoint, headers }) => {
                daemon_command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_EXPORTER_OTLP_HEADERS", headers)
            }
            None => daemon_command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").env_remove("OTEL_EXPORTER_OTLP_HEADERS"),
        };
        services.start("xray-daemon", &mut daemon_command)?;
        let mut backend_command = Command::new(binary("cruddur-backend"));
        backend_command
            .env("DATABASE_URL", cluster.url("stack"))
            .env("PORT", backend.port().to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("SEED_IF_EMPTY", "true")
            .env("FRONTEND_URL", format!("http://{frontend}"))
            // Every trace to X-Ray (not X-Ray's default sample): the checks follow one request there.
            .env("AWS_XRAY_SAMPLING_RULES", EVERY_TRACE);
        services.start("backend", traced_through(&mut backend_command, daemon))?;
        let mut frontend_command = Command::new(binary("cruddur-frontend"));
        frontend_command
            .env("PORT", frontend.port().to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("BACKEND_URL", format!("http://{backend}"))
            .env("FRONTEND_DIST", dist)
            // Its own name, whatever the environment names the backend with (as compose does).
            .env("OTEL_SERVICE_NAME", "cruddur-frontend-server")
            .env_remove("AWS_XRAY_TRACING_NAME");
        services.start("frontend", traced_through(&mut frontend_command, daemon))?;
        for address in [daemon, backend, frontend] {
            wait_for_port(address, Duration::from_secs(60))
                .or_else(|error| services.check_running().and(Err(error)))?;
        }
        Ok(Self { frontend, backend, xray_api, services, _cluster: cluster })
    }

    pub(crate) fn frontend_origin(&self) -> String {
        format!("http://{}", self.frontend)
    }

    pub(crate) fn backend_url(&self) -> String {
        format!("http://{}", self.backend)
    }

    /// Stops the frontend, the backend (flushing to the daemon), then the daemon (flushing to X-Ray), and returns
    /// what reached the X-Ray API.
    pub(crate) fn stop(self) -> HttpSink {
        self.services.stop();
        self.xray_api
    }
}

/// Whether a `PutTraceSegments` call carried a segment of trace `root` (`1-xxxxxxxx-...`).
pub(crate) fn delivered_to_xray(xray_api: &HttpSink, root: &str) -> bool {
    !segments_of_trace(xray_api, root).is_empty()
}

/// The segment documents of trace `root` that `PutTraceSegments` calls carried.
pub(crate) fn segments_of_trace(xray_api: &HttpSink, root: &str) -> Vec<serde_json::Value> {
    xray_api
        .requests()
        .iter()
        .filter(|(path, _)| path == "/TraceSegments")
        .filter_map(|(_, body)| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flat_map(|call| call["TraceSegmentDocuments"].as_array().cloned().unwrap_or_default())
        .filter_map(|document| serde_json::from_str::<serde_json::Value>(document.as_str()?).ok())
        .filter(|document| document["trace_id"] == root)
        .collect()
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// `command` (a binary running `cruddur-telemetry`) sending its segments and its OTLP to the daemon at `daemon`, which
/// holds the destination's key: the binary needs none.
fn traced_through(command: &mut Command, daemon: SocketAddr) -> &mut Command {
    command
        .env("AWS_XRAY_DAEMON_ADDRESS", daemon.to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{daemon}"))
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("HONEYCOMB_API_KEY")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_trace_is_the_telemetry_crates_rule() {
        assert_eq!(super::EVERY_TRACE, cruddur_telemetry::sampling::EVERY_TRACE);
    }
}
