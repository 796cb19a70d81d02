//! `GET /api/health-check`, for load balancers and compose healthchecks.

use axum::Router;
use axum::routing::get;
use cruddur_api::HealthCheck;

use crate::AppState;
use crate::extract::Json;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/health-check", get(health_check))
}

async fn health_check() -> Json<HealthCheck> {
    Json(HealthCheck { success: true, ver: 1 })
}
