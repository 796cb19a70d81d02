//! The API's failures as a user and an operator see them: a panicking handler answers `{"errors": ["internal"]}`
//! and the API keeps serving, a failed query is one Rollbar item naming the signed-in user, and `GET /rollbar/test`
//! reports "Hello World!" at level warning.

use axum::Router;
use axum::routing::get;
use cruddur_api::ErrorKey;
use cruddur_backend::{AppState, ROLLBAR_TEST_MESSAGE};
use cruddur_telemetry::{Telemetry, TelemetryConfig};
use reqwest::StatusCode;
use test_support::rollbar::RollbarEndpoint;

use crate::helpers::{assert_error, spawn_app_with};

/// Telemetry exporting nothing but Rollbar items, to `rollbar`.
fn with_rollbar(rollbar: &RollbarEndpoint) -> Telemetry {
    let api = rollbar.api_url();
    let config = TelemetryConfig::from_lookup("cruddur-backend", |name| match name {
        "ROLLBAR_ACCESS_TOKEN" => Some("test-token".to_owned()),
        "ROLLBAR_ENDPOINT" => Some(api.clone()),
        "ROLLBAR_ENVIRONMENT" => Some("test".to_owned()),
        "AWS_XRAY_SDK_ENABLED" => Some("false".to_owned()),
        _ => None,
    });
    Telemetry::new(&config.expect("config")).expect("telemetry")
}

async fn panicking() -> &'static str {
    panic!("internal detail 42")
}

#[tokio::test]
async fn a_panicking_handler_answers_the_api_error_shape_and_the_api_keeps_serving() {
    let telemetry = Telemetry::new(&TelemetryConfig::silent("cruddur-backend")).expect("telemetry");
    let panicking = Router::<AppState>::new().route("/api/panics", get(panicking));
    let app = spawn_app_with(&telemetry, panicking).await;
    let response = app.get("/api/panics").send().await.unwrap();
    let body = response.text().await.unwrap();
    assert!(!body.contains("42"), "{body}");
    let response = app.get("/api/panics").send().await.unwrap();
    assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, &[ErrorKey::Internal]).await;
    assert_eq!(app.get("/api/health-check").send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_failed_query_is_one_rollbar_item_naming_the_signed_in_user() {
    let rollbar = RollbarEndpoint::start();
    let telemetry = with_rollbar(&rollbar);
    let app = spawn_app_with(&telemetry, Router::new()).await;
    let session = app.signup("bayko").await;
    sqlx::query("ALTER TABLE activities RENAME COLUMN message TO body")
        .execute(&app.db)
        .await
        .expect("breaking the feed");
    let response = app.get("/api/activities/home").bearer_auth(&session.token).send().await.unwrap();
    assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, &[ErrorKey::Internal]).await;
    let item = rollbar.wait_for_item("the failed query", |_| true).await;
    let data = item.data();
    assert_eq!(data["environment"], "test");
    assert_eq!(data["level"], "error");
    assert!(data["body"]["trace"]["exception"]["class"].as_str().unwrap().starts_with("sqlx"), "{data}");
    assert_eq!(data["person"]["id"], session.user.uuid.to_string());
    assert_eq!(data["person"]["username"], "bayko");
    assert_eq!(data["request"]["route"], "/api/activities/home");
    assert!(data["request"]["headers"].get("authorization").is_none());
    assert_eq!(rollbar.accepted().len(), 1);
}

#[tokio::test]
async fn rollbar_test_reports_hello_world_at_warning() {
    let rollbar = RollbarEndpoint::start();
    let telemetry = with_rollbar(&rollbar);
    let app = spawn_app_with(&telemetry, Router::new()).await;
    let response = app.get("/rollbar/test").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), ROLLBAR_TEST_MESSAGE);
    let item = rollbar.wait_for_item("the test message", |_| true).await;
    assert_eq!(item.data()["level"], "warning");
    assert_eq!(item.data()["body"]["message"]["body"], "Hello World!");
}
