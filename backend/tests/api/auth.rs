//! Accounts and sessions: sign up, sign in, and the 401s of protected routes.

use chrono::TimeDelta;
use cruddur_api::{AuthResponse, ErrorKey, HealthCheck, SigninRequest, SignupRequest};
use cruddur_backend::Tokens;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TEST_SECRET, assert_error, ok_json, spawn_app, spawn_seeded_app};

#[tokio::test]
async fn health_check_answers_like_the_original() {
    let app = spawn_app().await;
    let health: HealthCheck = ok_json(app.get("/api/health-check").send().await.unwrap()).await;
    assert_eq!(health, HealthCheck { success: true, ver: 1 });
}

#[tokio::test]
async fn sign_up_then_sign_in_returns_working_tokens() {
    let app = spawn_app().await;
    let signed_up = app.signup("Alice_1").await;
    assert_eq!(signed_up.user.handle, "alice_1", "handles are stored lower-case");
    assert_eq!(signed_up.user.display_name, "Alice_1 Person");

    let signin = SigninRequest { email: "ALICE_1@example.com".into(), password: "correct horse battery".into() };
    let signed_in: AuthResponse = ok_json(app.post("/api/auth/signin", &signin).send().await.unwrap()).await;
    assert_eq!(signed_in.user, signed_up.user);

    // The token is what makes a write work.
    let crud = app.post_crud(&signed_in.token, "my first crud").await;
    assert_eq!(crud.handle, "alice_1");
}

#[tokio::test]
async fn seed_accounts_sign_in_with_the_documented_password() {
    let app = spawn_seeded_app().await;
    let signin =
        SigninRequest { email: "andrew@exampro.co".into(), password: cruddur_backend::seed::SEED_PASSWORD.into() };
    let signed_in: AuthResponse = ok_json(app.post("/api/auth/signin", &signin).send().await.unwrap()).await;
    assert_eq!(signed_in.user.handle, "andrewbrown");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_401() {
    let app = spawn_app().await;
    app.signup("bob").await;
    for (email, password) in
        [("bob@example.com", "wrong password"), ("nobody@example.com", "correct horse battery"), ("", "")]
    {
        let signin = SigninRequest { email: email.into(), password: password.into() };
        let response = app.post("/api/auth/signin", &signin).send().await.unwrap();
        assert_error(response, StatusCode::UNAUTHORIZED, &[ErrorKey::InvalidCredentials]).await;
    }
}

#[tokio::test]
async fn taken_handles_and_emails_are_conflicts_not_500s() {
    let app = spawn_app().await;
    app.signup("carol").await;
    let same_handle = SignupRequest {
        display_name: "Other Carol".into(),
        handle: "CAROL".into(),
        email: "other@example.com".into(),
        password: "long enough password".into(),
    };
    let response = app.post("/api/auth/signup", &same_handle).send().await.unwrap();
    assert_error(response, StatusCode::CONFLICT, &[ErrorKey::HandleTaken]).await;

    let same_email = SignupRequest { handle: "carol2".into(), email: "Carol@Example.com".into(), ..same_handle };
    let response = app.post("/api/auth/signup", &same_email).send().await.unwrap();
    assert_error(response, StatusCode::CONFLICT, &[ErrorKey::EmailTaken]).await;
}

#[tokio::test]
async fn sign_up_lists_every_invalid_field_at_once() {
    let app = spawn_app().await;
    let response = app
        .post("/api/auth/signup", &json!({"handle": "a b", "email": "nope", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[ErrorKey::DisplayNameBlank, ErrorKey::HandleInvalid, ErrorKey::EmailInvalid, ErrorKey::PasswordTooShort],
    )
    .await;
}

#[tokio::test]
async fn protected_routes_refuse_missing_bad_and_expired_tokens() {
    let app = spawn_app().await;
    let user = app.signup("dave").await;
    let expired = Tokens::new(TEST_SECRET, TimeDelta::seconds(-5)).issue(user.user.uuid).unwrap();
    let foreign = Tokens::random(TimeDelta::hours(1)).issue(user.user.uuid).unwrap();
    let crud = json!({"message": "hello", "ttl": "1-day"});
    let protected = [
        ("POST", "/api/activities"),
        ("POST", "/api/profile/update"),
        ("GET", "/api/message_groups"),
        ("POST", "/api/messages"),
        ("GET", "/api/messages/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/activities/00000000-0000-0000-0000-000000000000/reply"),
    ];
    for (method, path) in protected {
        for authorization in [
            None,
            Some("Bearer not-a-token".to_owned()),
            Some(format!("Bearer {expired}")),
            Some(format!("Bearer {foreign}")),
            Some(format!("Basic {}", user.token)),
        ] {
            let request = match method {
                "GET" => app.get(path),
                _ => app.post(path, &crud),
            };
            let request = match &authorization {
                Some(value) => request.header("authorization", value),
                None => request,
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} with {authorization:?}");
            assert_error(response, StatusCode::UNAUTHORIZED, &[ErrorKey::Unauthorized]).await;
        }
    }
}

#[tokio::test]
async fn the_home_feed_works_signed_in_and_out_but_not_with_a_bad_token() {
    let app = spawn_seeded_app().await;
    let user = app.signup("erin").await;
    let signed_out = app.home().await;
    let signed_in: Vec<cruddur_api::Activity> =
        ok_json(app.get("/api/activities/home").bearer_auth(&user.token).send().await.unwrap()).await;
    assert_eq!(signed_in, signed_out);
    let response = app.get("/api/activities/home").bearer_auth("garbage").send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, &[ErrorKey::Unauthorized]).await;
}
