//! `spawn_app()` and typed request helpers shared by the API tests.

use std::time::Duration;

use axum::Router;
use chrono::TimeDelta;
use cruddur_api::{Activity, AuthResponse, CreateActivity, ErrorBody, ErrorKey, PAGE_SIZE, SignupRequest};
use cruddur_backend::db::Plans;
use cruddur_backend::{AppState, SearchDb, Tokens, app_with_routes, db, seed, serve};
use cruddur_telemetry::{Telemetry, TelemetryConfig};
use http::HeaderValue;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The secret the test servers sign tokens with, so tests can forge expired ones.
pub(crate) const TEST_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub(crate) const FRONTEND_ORIGIN: &str = "http://localhost:3000";

pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) client: reqwest::Client,
    pub(crate) db: PgPool,
    /// The pool searches run on.
    pub(crate) search_db: PgPool,
    _shutdown: oneshot::Sender<()>,
}

/// The API on a fresh, migrated, empty database.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with_statement_timeout(Duration::from_secs(30)).await
}

/// [`spawn_app`], its database statements cancelled after `statement_timeout`.
pub(crate) async fn spawn_app_with_statement_timeout(statement_timeout: Duration) -> TestApp {
    let telemetry = Telemetry::new(&TelemetryConfig::silent("cruddur-backend")).expect("telemetry");
    spawn_app_with_options(&telemetry, Router::new(), statement_timeout).await
}

/// [`spawn_app`] with `telemetry`'s signals and `extra` routes served as the API's own.
pub(crate) async fn spawn_app_with(telemetry: &Telemetry, extra: Router<AppState>) -> TestApp {
    spawn_app_with_options(telemetry, extra, Duration::from_secs(30)).await
}

async fn spawn_app_with_options(
    telemetry: &Telemetry,
    extra: Router<AppState>,
    statement_timeout: Duration,
) -> TestApp {
    let url = test_support::postgres::fresh_database().await;
    db::migrate(&url).await.expect("migrate");
    let db = db::connect(&url, 5, statement_timeout, Plans::Generic).await.expect("connect");
    let search_db = db::connect(&url, 2, statement_timeout, Plans::PerExecution).await.expect("connect");
    let state = AppState {
        db: db.clone(),
        search_db: SearchDb(search_db.clone()),
        tokens: Tokens::new(TEST_SECRET, TimeDelta::hours(1)),
    };
    let router = app_with_routes(extra, state, vec![HeaderValue::from_static(FRONTEND_ORIGIN)], telemetry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, async {
        let _ = stopped.await;
    }));
    TestApp { address, client: reqwest::Client::new(), db, search_db, _shutdown: shutdown }
}

/// The API on a fresh database holding the seed.
pub(crate) async fn spawn_seeded_app() -> TestApp {
    let app = spawn_app().await;
    seed::load(&app.db).await.expect("seed");
    app
}

impl TestApp {
    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.address))
    }

    pub(crate) fn post(&self, path: &str, body: &impl Serialize) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.address)).json(body)
    }

    pub(crate) async fn signup(&self, handle: &str) -> AuthResponse {
        let body = SignupRequest {
            display_name: format!("{handle} Person"),
            handle: handle.into(),
            email: format!("{handle}@example.com"),
            password: "correct horse battery".into(),
        };
        ok_json(self.post("/api/auth/signup", &body).send().await.unwrap()).await
    }

    pub(crate) async fn post_crud(&self, token: &str, message: &str) -> Activity {
        let body = CreateActivity { message: message.into(), ttl: "7-days".into() };
        ok_json(self.post("/api/activities", &body).bearer_auth(token).send().await.unwrap()).await
    }

    pub(crate) async fn home(&self) -> Vec<Activity> {
        ok_json(self.get("/api/activities/home").send().await.unwrap()).await
    }

    /// Every page of the feed at `path` (signed in with `token` when given), following `before` until a page is not
    /// full, as a client scrolls: `next_cursor` names the item of a page the next page comes before.
    pub(crate) async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        next_cursor: impl Fn(&[T]) -> Uuid,
    ) -> Vec<Vec<T>> {
        let mut pages: Vec<Vec<T>> = Vec::new();
        loop {
            let mut request = self.get(path);
            if let Some(last) = pages.last() {
                request = request.query(&[("before", next_cursor(last))]);
            }
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let page: Vec<T> = ok_json(request.send().await.unwrap()).await;
            assert!(page.len() <= PAGE_SIZE, "a page holds at most {PAGE_SIZE}");
            let full = page.len() == PAGE_SIZE;
            pages.push(page);
            if !full {
                return pages;
            }
        }
    }
}

/// The body of a 200 answer; anything else fails the test with the body.
pub(crate) async fn ok_json<T: DeserializeOwned>(response: Response) -> T {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// Asserts the answer's status and its error keys.
pub(crate) async fn assert_error(response: Response, status: StatusCode, keys: &[ErrorKey]) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers().get("content-type").map(|value| value.to_str().unwrap()), Some("application/json"));
    let body: ErrorBody = response.json().await.expect("an error body");
    assert_eq!(body.errors, keys);
}
