//! The frontend's web server: the built wasm bundle from a folder, `index.html` for every other path (the app routes
//! in the browser), and `/config.json` with the settings the app reads at run time, so one bundle serves any
//! deployment (the backend URL is not compiled into the wasm).
//!
//! It is traced and signals as the API does (`cruddur-telemetry`, configured by the same variables): a server span
//! per request, the access log (to CloudWatch Logs too when `CLOUDWATCH_LOG_GROUP` is set), the HTTP duration metric,
//! and a failure or panic as an exception on the span and a Rollbar item.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use cruddur_telemetry::Telemetry;
use cruddur_telemetry::server::ServerLayer;
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

/// Serves the Cruddur frontend.
#[derive(Debug, Clone, Parser)]
#[command(name = "cruddur-frontend", version, about)]
pub struct Config {
    /// Port to serve on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    /// Where the browser reaches the API.
    #[arg(long, env = "BACKEND_URL", default_value = "http://localhost:4567")]
    pub backend_url: String,
    /// The built bundle (index.html, the wasm and its JavaScript, CSS).
    #[arg(long, env = "FRONTEND_DIST", default_value = "frontend/dist")]
    pub dist: PathBuf,
}

impl Config {
    pub fn listen_address(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }
}

/// What the app fetches at start-up.
#[derive(Debug, Clone, Serialize)]
struct RuntimeConfig {
    backend_url: String,
}

/// The routes, each in a server span with the signals of `telemetry`.
pub fn app(config: &Config, telemetry: &Telemetry) -> Router {
    let runtime = RuntimeConfig { backend_url: config.backend_url.trim_end_matches('/').to_owned() };
    let index = config.dist.join("index.html");
    Router::new()
        .route("/config.json", get(move || async move { Json(runtime) }))
        .route("/health", get(|| async { "ok" }))
        .fallback_service(ServeDir::new(&config.dist).fallback(ServeFile::new(index)))
        // Inside the server span, so that exceptions land on it and the access log carries its trace id.
        .layer(telemetry.signals_layer())
        .layer(ServerLayer::new())
        .layer(CompressionLayer::new())
}

/// Serves until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    telemetry: &Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address, for the access log's client when no proxy names one.
    let service = app(config, telemetry).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
