//! The API's side of the error signals (see `cruddur_telemetry::signals`): a panicking handler answers in the API's
//! error shape, Rollbar items name the signed-in caller, and `GET /rollbar/test` checks the Rollbar setup as the
//! original's route did.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cruddur_api::{ErrorBody, ErrorKey};
use cruddur_telemetry::Telemetry;
use cruddur_telemetry::rollbar::{Level, Person, Report, Reported, RequestInfo, Rollbar};
use cruddur_telemetry::signals::{SignalsLayer, current_trace_id};
use http::{HeaderMap, StatusCode, header};

use crate::AppState;
use crate::feeds;

/// What `GET /rollbar/test` reports and answers.
pub const ROLLBAR_TEST_MESSAGE: &str = "Hello World!";

/// How long the person of a Rollbar item may take to look up; the item goes without it after that.
const PERSON_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The signals layer of `telemetry`, answering panics with `{"errors": ["internal"]}` and naming the caller.
pub(crate) fn layer(telemetry: &Telemetry, state: &AppState) -> SignalsLayer {
    let state = state.clone();
    telemetry.signals_layer().with_panic_response(internal_error).with_person_lookup(Arc::new(move |headers| {
        let state = state.clone();
        Box::pin(async move { tokio::time::timeout(PERSON_LOOKUP_TIMEOUT, person(&state, &headers)).await.ok()? })
    }))
}

fn internal_error() -> Response<Body> {
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(ErrorBody::new(vec![ErrorKey::Internal]))).into_response()
}

/// The bearer token's user, with their handle when the database answers.
async fn person(state: &AppState, headers: &HeaderMap) -> Option<Person> {
    let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.split_once(' ')?.1.trim();
    let uuid = state.tokens.verify(token).ok()?;
    let profile = feeds::profile_by_uuid(uuid).fetch_optional(&state.db).await.ok().flatten();
    Some(Person { id: uuid.to_string(), username: profile.map(|profile| profile.handle) })
}

/// `GET /rollbar/test`.
pub(crate) fn router(rollbar: Rollbar) -> Router<AppState> {
    Router::new().route("/rollbar/test", get(rollbar_test)).with_state(rollbar)
}

/// Reports "Hello World!" at level warning, with the request and its trace, and answers it.
async fn rollbar_test(State(rollbar): State<Rollbar>, request: http::Request<Body>) -> &'static str {
    let (parts, _) = request.into_parts();
    rollbar.report(Report {
        level: Level::Warning,
        what: Reported::Message(ROLLBAR_TEST_MESSAGE.to_owned()),
        request: Some(RequestInfo::new(&parts, Some("/rollbar/test"), None)),
        person: None,
        trace_id: current_trace_id(),
    });
    ROLLBAR_TEST_MESSAGE
}
