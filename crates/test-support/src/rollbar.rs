//! A local Rollbar API: what `https://api.rollbar.com/api/1/` is to a notifier, on a 127.0.0.1 port chosen by the OS.
//!
//! `POST /api/1/item/` is checked as Rollbar checks it: the `X-Rollbar-Access-Token` header (else 403), a JSON body
//! whose `data` has an `environment` and a `body` with exactly one of `trace`, `trace_chain`, `message` or
//! `crash_report`, and a known `level` (else 422); accepted items are answered as Rollbar answers them
//! (`{"err": 0, "result": {"id": null, "uuid": ...}}`) and kept for the test. It can be told to fail: 500s, or
//! 429 as Rollbar's rate limit answers ([`RollbarFailure`]).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::local_server::{Changed, LocalServer, not_within};

/// How the endpoint misbehaves until [`RollbarEndpoint::recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbarFailure {
    /// `500`.
    ServerError,
    /// `429`, over the project's rate limit.
    Throttle,
}

/// One item request as it reached the endpoint.
#[derive(Debug, Clone)]
pub struct RollbarItem {
    pub headers: HeaderMap,
    /// The whole JSON body (`{"data": {...}}`).
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
}

impl RollbarItem {
    /// `data`, the item itself.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

#[derive(Default)]
struct Shared {
    items: Mutex<Vec<RollbarItem>>,
    failure: Mutex<Option<RollbarFailure>>,
}

/// The running endpoint; stops when dropped.
pub struct RollbarEndpoint {
    server: LocalServer,
    shared: Arc<Shared>,
}

impl RollbarEndpoint {
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let server = LocalServer::start("rollbar-endpoint", move |changed| {
            axum::Router::new().route("/api/1/item/", post(item)).with_state((state, changed))
        });
        Self { server, shared }
    }

    /// The API base URL, as `ROLLBAR_ENDPOINT` takes it.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/1/", self.server.address)
    }

    pub fn fail(&self, failure: RollbarFailure) {
        *self.shared.failure.lock().expect("rollbar lock") = Some(failure);
    }

    pub fn recover(&self) {
        *self.shared.failure.lock().expect("rollbar lock") = None;
    }

    /// Every item request so far, answered or refused.
    pub fn items(&self) -> Vec<RollbarItem> {
        self.shared.items.lock().expect("rollbar lock").clone()
    }

    /// The items accepted (answered 200) so far.
    pub fn accepted(&self) -> Vec<RollbarItem> {
        self.items().into_iter().filter(|item| item.status == 200).collect()
    }

    /// Waits up to [`crate::otlp::WAIT`] for `count` item requests refused (as [`RollbarEndpoint::fail`] said).
    pub async fn wait_for_refused(&self, count: usize) {
        let refused = || self.items().iter().filter(|item| item.status != 200).count();
        if self.server.wait_for(|| (refused() >= count).then_some(())).await.is_none() {
            panic!(
                "{}; refused so far: {}",
                not_within(&format!("{count} refused items"), "Rollbar endpoint"),
                refused()
            );
        }
    }

    /// Waits up to [`crate::otlp::WAIT`] for an accepted item matching `matches`; panics naming `what` otherwise.
    pub async fn wait_for_item(&self, what: &str, matches: impl Fn(&RollbarItem) -> bool) -> RollbarItem {
        let found = self.server.wait_for(|| self.accepted().into_iter().find(|item| matches(item))).await;
        found.unwrap_or_else(|| {
            let seen: Vec<(u16, Value)> = self.items().into_iter().map(|item| (item.status, item.body)).collect();
            panic!("{}; received: {seen:?}", not_within(what, "Rollbar endpoint"))
        })
    }
}

type ItemState = (Arc<Shared>, Changed);

async fn item(
    State((shared, changed)): State<ItemState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let failure = *shared.failure.lock().expect("rollbar lock");
    let token = headers.get("x-rollbar-access-token").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let (status, answer) = match failure {
        Some(RollbarFailure::ServerError) => (StatusCode::INTERNAL_SERVER_ERROR, refusal("Internal server error")),
        Some(RollbarFailure::Throttle) => (StatusCode::TOO_MANY_REQUESTS, refusal("Rate limit exceeded")),
        None if token.is_empty() => (StatusCode::FORBIDDEN, refusal("missing access token")),
        None => match invalid(&body) {
            Some(reason) => (StatusCode::UNPROCESSABLE_ENTITY, refusal(reason)),
            None => (StatusCode::OK, json!({ "err": 0, "result": { "id": null, "uuid": uuid::Uuid::new_v4() } })),
        },
    };
    shared.items.lock().expect("rollbar lock").push(RollbarItem { headers, body, status: status.as_u16() });
    changed.send_modify(|count| *count += 1);
    (status, Json(answer))
}

fn refusal(message: &str) -> Value {
    json!({ "err": 1, "message": message })
}

/// Why Rollbar would refuse the item, if it would.
fn invalid(body: &Value) -> Option<&'static str> {
    let Some(data) = body.get("data").and_then(Value::as_object) else { return Some("data must be an object") };
    if !data.get("environment").is_some_and(Value::is_string) {
        return Some("data.environment is required");
    }
    let kinds = ["trace", "trace_chain", "message", "crash_report"];
    let present = data
        .get("body")
        .and_then(Value::as_object)
        .map_or(0, |body| kinds.iter().filter(|kind| body.contains_key(**kind)).count());
    if present != 1 {
        return Some("data.body must have exactly one of trace, trace_chain, message, crash_report");
    }
    let levels = ["critical", "error", "warning", "info", "debug"];
    if data.get("level").is_some_and(|level| !level.as_str().is_some_and(|level| levels.contains(&level))) {
        return Some("data.level is not a level");
    }
    None
}
