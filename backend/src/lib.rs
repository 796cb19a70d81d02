//! The Cruddur API: the original Flask backend's routes and JSON shapes on axum, with Postgres through sqlx.
//!
//! [`start`] makes the database ready and builds the router from the [`Config`] (it calls [`app`], which builds it
//! from an [`AppState`]), and [`serve`] runs it on a listener until a shutdown future completes, so tests drive the
//! real server on port 0 and `main` stays a few lines.

pub mod auth;
pub mod config;
pub mod db;
mod error;
mod extract;
mod feeds;
mod routes;
pub mod seed;
mod signals;

use std::future::Future;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use cruddur_telemetry::server::ServerLayer;
use cruddur_telemetry::{DatabaseTarget, Telemetry, TelemetryError};
use http::{HeaderName, HeaderValue, Method, header};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::db::Plans;

pub use auth::Tokens;
pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use signals::ROLLBAR_TEST_MESSAGE;

/// Largest request body the API reads; far above any valid request (a reply is at most 1024 characters).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler may reach, through `State<...>` and `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub search_db: SearchDb,
    pub tokens: Tokens,
}

/// The pool searches run on: their own connections, each statement planned for its term ([`db::Plans::PerExecution`]).
#[derive(Clone)]
pub struct SearchDb(pub PgPool);

/// The whole API, traced: one server span per request, with the access log, metrics, and failures recorded as
/// exceptions and sent to Rollbar (`telemetry`'s signals), and the browser's spans relayed to the OTLP destination
/// (`POST /v1/traces`). `frontend_origins` are the origins allowed by CORS (the `FRONTEND_URL`s).
pub fn app(state: AppState, frontend_origins: Vec<HeaderValue>, telemetry: &Telemetry) -> Router {
    app_with_routes(Router::new(), state, frontend_origins, telemetry)
}

/// [`app`] with `extra` routes served as the API's own are (tests add a handler that panics).
pub fn app_with_routes(
    extra: Router<AppState>,
    state: AppState,
    frontend_origins: Vec<HeaderValue>,
    telemetry: &Telemetry,
) -> Router {
    let signals = signals::layer(telemetry, &state);
    Router::new()
        .merge(routes::router())
        .merge(signals::router(telemetry.rollbar()))
        .merge(extra)
        .fallback(|| async { ApiError::NotFound })
        // Inside the server span, so that exceptions land on it and the access log carries its trace id.
        .layer(signals)
        // Innermost of the layers that need the route: the server span reads axum's `MatchedPath`.
        .layer(ServerLayer::new())
        // Outside the server span: each of the browser's exports would otherwise be a trace of its own.
        .merge(cruddur_telemetry::relay::router(telemetry.relay()))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(cors(frontend_origins))
        .with_state(state)
}

/// Browsers may call the API from the frontend's origin, with a bearer token and trace headers.
fn cors(origins: Vec<HeaderValue>) -> CorsLayer {
    let trace_headers = ["traceparent", "tracestate", "baggage", "x-amzn-trace-id"].map(HeaderName::from_static);
    let allowed_headers: Vec<HeaderName> =
        [header::AUTHORIZATION, header::CONTENT_TYPE].into_iter().chain(trace_headers).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(allowed_headers)
        .expose_headers([HeaderName::from_static("x-amzn-trace-id")])
}

/// Why the API could not start, each named as the operator would fix it (the cause follows as the error's source).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading DATABASE_URL")]
    DatabaseUrl(#[source] TelemetryError),
    #[error("connecting to Postgres (DATABASE_URL)")]
    Connect(#[source] sqlx::Error),
    #[error("migrating the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("loading the seed")]
    Seed(#[source] ApiError),
}

/// The API as `config` sets it up, ready to serve: the database connected, migrated, and seeded when
/// `SEED_IF_EMPTY` is set and it has no users, with the sweep of expired activities running in the background; its queries' spans name that database in `telemetry`, and the router
/// relays browser spans there.
pub async fn start(config: &Config, telemetry: &Telemetry) -> Result<Router, StartError> {
    let database_url = config.database_url()?;
    telemetry.set_database(DatabaseTarget::from_url(database_url).map_err(StartError::DatabaseUrl)?);
    let tokens = config.tokens()?;
    let db = db::connect(database_url, config.database_max_connections, config.statement_timeout(), Plans::Generic)
        .await
        .map_err(StartError::Connect)?;
    let search_db =
        db::connect(database_url, config.database_search_connections, config.statement_timeout(), Plans::PerExecution)
            .await
            .map_err(StartError::Connect)?;
    db::migrate(database_url).await?;
    if config.seed_if_empty && seed::load_if_empty(&db).await.map_err(StartError::Seed)? {
        tracing::info!(password = seed::SEED_PASSWORD, "seed loaded: andrewbrown, altbrown, bayko, londo");
    }
    tokio::spawn(db::sweep_expired(db.clone()));
    for (name, pool) in [("cruddur", &db), ("cruddur-search", &search_db)] {
        let pool = pool.clone();
        telemetry.observe_connection_pool(name, move || {
            let idle = pool.num_idle() as u64;
            (u64::from(pool.size()).saturating_sub(idle), idle)
        });
    }
    Ok(app(AppState { db, search_db: SearchDb(search_db), tokens }, config.frontend_url.clone(), telemetry))
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use cruddur_telemetry::TelemetryConfig;

    use super::*;

    /// Telemetry that exports nothing.
    fn no_telemetry() -> Telemetry {
        let config = TelemetryConfig::from_lookup("cruddur-backend", |name| {
            (name == "AWS_XRAY_SDK_ENABLED").then(|| "false".to_owned())
        })
        .expect("config");
        Telemetry::new(&config).expect("telemetry")
    }

    async fn start_error(args: &[&str]) -> String {
        let config = Config::try_parse_from(std::iter::once("cruddur-backend").chain(args.iter().copied())).unwrap();
        let error = start(&config, &no_telemetry()).await.expect_err("the API must not start");
        // As `main` shows it: the error, then its causes.
        format!("{:?}", anyhow::Error::from(error))
    }

    #[tokio::test]
    async fn a_bad_setting_stops_start_up_naming_the_variable() {
        let mysql = start_error(&["--database-url", "mysql://db/cruddur"]).await;
        assert!(mysql.starts_with("reading DATABASE_URL") && mysql.contains("postgres"), "{mysql}");
        let weak = start_error(&["--database-url", "postgres://db/cruddur", "--token-secret", "short"]).await;
        assert!(weak.starts_with("TOKEN_SECRET must be at least 32 characters"), "{weak}");
    }
}
