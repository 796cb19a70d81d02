//! `cruddur-frontend`: starts telemetry, serves the built frontend until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use cruddur_frontend_server::{Config, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Kept to the end of main: dropping it flushes what is still queued.
    let telemetry = cruddur_telemetry::init("cruddur-frontend-server")?;
    anyhow::ensure!(
        config.dist.join("index.html").is_file(),
        "no index.html in {} (FRONTEND_DIST): build the frontend first (cargo xtask frontend)",
        config.dist.display()
    );
    let listener = tokio::net::TcpListener::bind(config.listen_address())
        .await
        .with_context(|| format!("binding {} (PORT)", config.listen_address()))?;
    tracing::info!(address = %listener.local_addr()?, backend = %config.backend_url, "Cruddur frontend listening");
    run(listener, &config, &telemetry, shutdown::signal()).await.context("serving")
}
