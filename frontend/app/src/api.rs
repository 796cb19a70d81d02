//! The API client: every call traced (a client span whose context goes out as `traceparent` and `X-Amzn-Trace-Id`),
//! the bearer token attached when signed in, and every failure turned into an [`ApiError`] a person can read.

use std::sync::Arc;

use cruddur_api::{ErrorBody, ErrorKey};
use gloo_net::http::{Method, RequestBuilder};
use leptos::prelude::*;
use opentelemetry::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Session;
use crate::telemetry::Telemetry;

/// Why a call failed, in the words shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// The backend refused the input: one sentence per error key.
    #[error("{}", describe(.0))]
    Rejected(Vec<ErrorKey>),
    /// No token, or an expired one (the session has been cleared).
    #[error("Please sign in to do that.")]
    Unauthorized,
    #[error("That does not exist (or it has expired).")]
    NotFound,
    #[error("Cruddur cannot be reached right now. Check your connection and try again.")]
    Network,
    #[error("Something went wrong on our side (HTTP {0}). Try again in a moment.")]
    Server(u16),
    #[error("The server's answer was not understood.")]
    Unreadable,
}

fn describe(keys: &[ErrorKey]) -> String {
    keys.iter().map(|key| key.describe()).collect::<Vec<_>>().join(" ")
}

impl ApiError {
    /// The answer to a non-2xx `status` with `body`.
    fn from_answer(status: u16, body: &str) -> Self {
        let keys = serde_json::from_str::<ErrorBody>(body).map(|body| body.errors).unwrap_or_default();
        match status {
            500.. => Self::Server(status),
            404 => Self::NotFound,
            // A refused sign-in is a 401 too, with its own key.
            401 if keys.iter().all(|key| *key == ErrorKey::Unauthorized) => Self::Unauthorized,
            _ if keys.is_empty() => Self::Unreadable,
            _ => Self::Rejected(keys),
        }
    }
}

/// The backend, as the pages call it. Cheap to clone; provided through context.
#[derive(Clone)]
pub(crate) struct Api {
    base: Arc<str>,
    session: Session,
    telemetry: Telemetry,
    /// The span the calls are children of, when not the page's (a form submission's).
    parent: Option<Context>,
}

impl Api {
    pub(crate) fn new(base: &str, session: Session, telemetry: Telemetry) -> Self {
        Self { base: base.into(), session, telemetry, parent: None }
    }

    /// The same client, its calls children of `parent`.
    pub(crate) fn within(&self, parent: &Context) -> Self {
        Self { parent: Some(parent.clone()), ..self.clone() }
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        let body = serde_json::to_string(body).map_err(|_| ApiError::Unreadable)?;
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<String>) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let call = self.telemetry.api_call(self.parent.as_ref(), method.as_ref(), &url);
        let mut request = RequestBuilder::new(&url).method(method);
        for (name, value) in self.telemetry.headers(&call) {
            request = request.header(&name, &value);
        }
        if let Some(token) = self.session.token() {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let sent = match body {
            Some(body) => match request.header("content-type", "application/json").body(body) {
                Ok(request) => request.send().await,
                Err(error) => Err(error),
            },
            None => request.send().await,
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                self.telemetry.api_call_ended(&call, Err(&error.to_string()));
                return Err(ApiError::Network);
            }
        };
        let status = response.status();
        self.telemetry.api_call_ended(&call, Ok(status));
        let text = response.text().await.map_err(|_| ApiError::Network)?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|_| ApiError::Unreadable);
        }
        let error = ApiError::from_answer(status, &text);
        if error == ApiError::Unauthorized && self.session.token().is_some() {
            // The token expired or the secret changed: the user has to sign in again.
            self.session.sign_out();
        }
        Err(error)
    }
}

/// The API client from context.
pub(crate) fn use_api() -> Api {
    expect_context()
}

/// A resource that GETs `path()`, again whenever the signals `path` reads change (a route parameter, say).
pub(crate) fn load<T>(path: impl Fn() -> String + 'static) -> LocalResource<Result<T, ApiError>>
where
    T: DeserializeOwned + 'static,
{
    let api = use_api();
    LocalResource::new(move || {
        let api = api.clone();
        let path = path();
        async move { api.get(&path).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_readable_errors() {
        let rejected = ApiError::from_answer(422, r#"{"errors":["ttl_blank","message_exceed_max_chars"]}"#);
        assert_eq!(rejected, ApiError::Rejected(vec![ErrorKey::TtlBlank, ErrorKey::MessageExceedMaxChars]));
        assert_eq!(rejected.to_string(), "Choose how long the crud should live. That is too long.");
        assert_eq!(ApiError::from_answer(401, ""), ApiError::Unauthorized);
        assert_eq!(ApiError::from_answer(401, r#"{"errors":["unauthorized"]}"#), ApiError::Unauthorized);
        let refused = ApiError::from_answer(401, r#"{"errors":["invalid_credentials"]}"#);
        assert_eq!(refused.to_string(), "Wrong email or password.");
        assert_eq!(ApiError::from_answer(404, r#"{"errors":["not_found"]}"#), ApiError::NotFound);
        assert_eq!(ApiError::from_answer(502, "<html>bad gateway</html>"), ApiError::Server(502));
        assert_eq!(ApiError::from_answer(400, "not json"), ApiError::Unreadable);
    }
}

/// Calls from a real browser (`cargo test --target wasm32-unknown-unknown`, headless Chromium).
#[cfg(all(test, target_arch = "wasm32"))]
mod browser {
    use cruddur_api::Activity;
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;
    use crate::auth::Session;

    #[wasm_bindgen_test]
    async fn an_unreachable_backend_is_a_readable_error() {
        let owner = Owner::new();
        owner.set();
        // Port 9 (discard) is closed here: the fetch fails like a network that is down.
        let telemetry = Telemetry::start("http://127.0.0.1:9");
        let api = Api::new("http://127.0.0.1:9", Session::restore(), telemetry);
        let error = api.get::<Vec<Activity>>("/api/activities/home").await.unwrap_err();
        assert_eq!(error, ApiError::Network);
        assert_eq!(error.to_string(), "Cruddur cannot be reached right now. Check your connection and try again.");
    }
}
