//! The Cruddur API: the original Flask backend's routes and JSON shapes on axum, with Postgres through sqlx.
//!
//! [`app`] builds the router from an [`AppState`] and [`serve`] runs it on a listener until a shutdown future
//! completes, so tests drive the real server on port 0 and `main` stays a few lines.

pub mod auth;
pub mod config;
pub mod db;
mod error;
mod extract;
mod routes;
pub mod seed;

use std::future::Future;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use cruddur_telemetry::relay::Relay;
use cruddur_telemetry::server::ServerLayer;
use http::{HeaderName, HeaderValue, Method, header};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::Tokens;
pub use config::Config;
pub use error::ApiError;

/// Largest request body the API reads; far above any valid request (a reply is at most 1024 characters).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler may reach, through `State<...>` and `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub tokens: Tokens,
}

/// The whole API, traced: one server span per request, and the browser's spans relayed by `relay` to the OTLP
/// destination (`POST /v1/traces`). `frontend_origins` are the origins allowed by CORS (the `FRONTEND_URL`s).
pub fn app(state: AppState, frontend_origins: Vec<HeaderValue>, relay: Relay) -> Router {
    Router::new()
        .merge(routes::router())
        .fallback(|| async { ApiError::NotFound })
        // Innermost of the layers that need the route: the server span reads axum's `MatchedPath`.
        .layer(ServerLayer::new())
        // Outside the server span: each of the browser's exports would otherwise be a trace of its own.
        .merge(cruddur_telemetry::relay::router(relay))
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
