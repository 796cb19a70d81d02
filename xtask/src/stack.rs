//! The whole stack as real processes on free loopback ports, for the checks that follow requests through it: a
//! throwaway Postgres, the X-Ray daemon forwarding to a local stand-in for the X-Ray API, the backend (optionally
//! exporting OTLP) and the frontend server.

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

/// Where the backend sends OTLP, and the headers it sends with it (`OTEL_EXPORTER_OTLP_HEADERS`).
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
        services.start(
            "xray-daemon",
            Command::new(binary("xray"))
                .args(["--local-mode", "--region", "us-east-1", "--bind", &daemon.to_string()])
                .args(["--bind-tcp", &daemon.to_string(), "--endpoint", &format!("http://{}", xray_api.address)])
                .env("AWS_ACCESS_KEY_ID", "stack-test")
                .env("AWS_SECRET_ACCESS_KEY", "stack-test"),
        )?;
        let mut backend_command = Command::new(binary("cruddur-backend"));
        backend_command
            .env("DATABASE_URL", cluster.url("stack"))
            .env("PORT", backend.port().to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("SEED_IF_EMPTY", "true")
            .env("FRONTEND_URL", format!("http://{frontend}"))
            .env("AWS_XRAY_DAEMON_ADDRESS", daemon.to_string())
            // Every trace to X-Ray (not X-Ray's default sample): the checks follow one request there.
            .env("AWS_XRAY_SAMPLING_RULES", EVERY_TRACE)
            .env_remove("HONEYCOMB_API_KEY")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        match otlp {
            Some(Otlp { endpoint, headers }) => {
                backend_command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_EXPORTER_OTLP_HEADERS", headers)
            }
            None => backend_command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT"),
        };
        services.start("backend", &mut backend_command)?;
        services.start(
            "frontend",
            Command::new(binary("cruddur-frontend"))
                .env("PORT", frontend.port().to_string())
                .env("BIND_ADDRESS", "127.0.0.1")
                .env("BACKEND_URL", format!("http://{backend}"))
                .env("FRONTEND_DIST", dist),
        )?;
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
    xray_api
        .requests()
        .iter()
        .any(|(path, body)| path == "/TraceSegments" && String::from_utf8_lossy(body).contains(root))
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_trace_is_the_telemetry_crates_rule() {
        assert_eq!(super::EVERY_TRACE, cruddur_telemetry::sampling::EVERY_TRACE);
    }
}
