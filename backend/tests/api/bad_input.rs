//! Hostile and broken requests: every one is answered in the API's error shape, none with a 500.

use cruddur_api::ErrorKey;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{FRONTEND_ORIGIN, assert_error, ok_json, spawn_app};

#[tokio::test]
async fn broken_bodies_get_their_own_keys() {
    let app = spawn_app().await;
    let user = app.signup("xavier").await;
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut request =
            app.client.post(format!("{}/api/activities", app.address)).bearer_auth(&user.token).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    assert_error(
        post("{not json", Some("application/json")).await.unwrap(),
        StatusCode::BAD_REQUEST,
        &[ErrorKey::MalformedJson],
    )
    .await;
    assert_error(
        post(r#"{"message": 42, "ttl": ["1-day"]}"#, Some("application/json")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[ErrorKey::InvalidBody],
    )
    .await;
    assert_error(
        post(r#"{"message":"hi","ttl":"1-day"}"#, None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &[ErrorKey::UnsupportedMediaType],
    )
    .await;
    assert_error(
        post(r#"[1, 2]"#, Some("application/json")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[ErrorKey::InvalidBody],
    )
    .await;
}

#[tokio::test]
async fn huge_bodies_are_refused_before_they_are_read() {
    let app = spawn_app().await;
    let user = app.signup("yara").await;
    let huge = json!({"message": "x".repeat(cruddur_backend::BODY_LIMIT_BYTES * 4), "ttl": "1-day"});
    let response = app.post("/api/activities", &huge).bearer_auth(&user.token).send().await.unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, &[ErrorKey::PayloadTooLarge]).await;
}

#[tokio::test]
async fn sql_metacharacters_are_just_text() {
    let app = spawn_app().await;
    let user = app.signup("zed").await;
    let message = r#"'); DROP TABLE users; -- \ % _ " $1"#;
    let crud = app.post_crud(&user.token, message).await;
    assert_eq!(crud.message, message);
    assert_eq!(app.home().await[0].message, message);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let response = app.get("/api/nothing/here").send().await.unwrap();
    assert_error(response, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    let response = app.get("/api/activities/search?term=a&term=b").send().await.unwrap();
    assert!(response.status().is_success() || response.status().is_client_error());
}

#[tokio::test]
async fn cors_admits_the_frontend_with_its_trace_headers_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/api/activities", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,traceparent,x-amzn-trace-id")
            .send()
    };
    let allowed = preflight(FRONTEND_ORIGIN).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], FRONTEND_ORIGIN);
    let allowed_headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_owned();
    for header in ["authorization", "content-type", "traceparent", "x-amzn-trace-id"] {
        assert!(allowed_headers.contains(header), "{header} in {allowed_headers}");
    }
    let refused = preflight("http://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let health: cruddur_api::HealthCheck =
        ok_json(app.get("/api/health-check").header("origin", FRONTEND_ORIGIN).send().await.unwrap()).await;
    assert!(health.success);
}
