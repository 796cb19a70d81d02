//! `cruddur-frontend`: serves the built frontend until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use cruddur_frontend_server::{Config, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    anyhow::ensure!(
        config.dist.join("index.html").is_file(),
        "no index.html in {} (FRONTEND_DIST): build the frontend first (cargo xtask frontend)",
        config.dist.display()
    );
    let listener = tokio::net::TcpListener::bind(config.listen_address())
        .await
        .with_context(|| format!("binding {} (PORT)", config.listen_address()))?;
    tracing::info!(address = %listener.local_addr()?, backend = %config.backend_url, "Cruddur frontend listening");
    run(listener, &config, shutdown::signal()).await.context("serving")
}
