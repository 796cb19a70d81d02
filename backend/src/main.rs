//! `cruddur-backend`: reads the configuration, starts telemetry (logs and traces), connects and migrates the database, serves the API
//! until SIGINT or SIGTERM.

use anyhow::Context;
use chrono::TimeDelta;
use clap::Parser;
use cruddur_backend::{AppState, Config, Tokens, app, db, seed, serve};

/// mimalloc instead of glibc malloc: every traced request allocates spans on a tokio worker that an export thread
/// frees, which glibc's per-thread arenas handle badly. Measured with `cargo xtask bench-api`: tracing's added CPU
/// per request falls by a third and untraced requests get 12% faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Kept to the end of main: dropping it flushes the spans still queued.
    let telemetry = cruddur_telemetry::init("cruddur-backend")?;

    let database_url = config.database_url()?;
    telemetry.set_database(cruddur_telemetry::DatabaseTarget::from_url(database_url)?);
    let token_ttl = TimeDelta::hours(config.token_ttl_hours.into());
    let tokens = match config.token_secret()? {
        Some(secret) => Tokens::new(secret, token_ttl),
        None => {
            tracing::warn!("TOKEN_SECRET is unset: sessions are signed with a random key and end at restart");
            Tokens::random(token_ttl)
        }
    };
    let pool = db::connect(database_url, config.database_max_connections)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    db::MIGRATOR.run(&pool).await.context("migrating the database")?;
    if config.seed_if_empty && seed::load_if_empty(&pool).await.context("loading the seed")? {
        tracing::info!(password = seed::SEED_PASSWORD, "seed loaded: andrewbrown, altbrown, bayko, londo");
    }

    let listener = tokio::net::TcpListener::bind(config.listen_address())
        .await
        .with_context(|| format!("binding {} (PORT)", config.listen_address()))?;
    tracing::info!(address = %listener.local_addr()?, "Cruddur API listening");
    let router = app(AppState { db: pool, tokens }, config.frontend_url.clone(), telemetry.relay());
    serve(listener, router, shutdown::signal()).await.context("serving")?;
    Ok(())
}
