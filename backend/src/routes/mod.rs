//! The API's routes, one module per resource, each with its own `router()`.

mod activities;
mod auth;
mod health;
mod messages;
mod users;

use axum::Router;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(activities::router())
        .merge(users::router())
        .merge(messages::router())
}
