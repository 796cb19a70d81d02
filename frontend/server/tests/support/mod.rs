//! The frontend server on 127.0.0.1:0 over a bundle folder, with the telemetry a test gives it.

use std::sync::Arc;

use clap::Parser;
use cruddur_frontend_server::{Config, run};
use cruddur_telemetry::{Telemetry, TelemetryConfig};
use tokio::sync::oneshot;

pub(crate) struct Served {
    pub(crate) base: String,
    _dist: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// Telemetry from `variables`, with X-Ray, metrics and console logs off unless they say otherwise.
pub(crate) fn telemetry(variables: &[(&str, &str)]) -> Telemetry {
    let quiet = [("AWS_XRAY_SDK_ENABLED", "false"), ("OTEL_METRICS_EXPORTER", "none"), ("LOG_FORMAT", "off")];
    let config = TelemetryConfig::from_lookup("cruddur-frontend-server", |name| {
        variables.iter().chain(&quiet).find(|(variable, _)| *variable == name).map(|(_, value)| (*value).to_owned())
    })
    .expect("a valid configuration");
    Telemetry::new(&config).expect("telemetry")
}

/// Serves a small bundle (an index and a stylesheet) with `backend_url` as the app's API.
pub(crate) async fn serve(backend_url: &str, telemetry: Arc<Telemetry>) -> Served {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>Cruddur</title>").unwrap();
    std::fs::write(dist.path().join("app.css"), "body { background: #1b1030; }".repeat(100)).unwrap();
    let config = Config::try_parse_from([
        "cruddur-frontend",
        "--backend-url",
        backend_url,
        "--dist",
        dist.path().to_str().unwrap(),
    ])
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        run(listener, &config, &telemetry, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Served { base, _dist: dist, _stop: stop }
}
