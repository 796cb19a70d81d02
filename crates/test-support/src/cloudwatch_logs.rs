//! A local CloudWatch Logs endpoint: what `https://logs.<region>.amazonaws.com` is to `aws-sdk-cloudwatchlogs`, on a
//! 127.0.0.1 port chosen by the OS (`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`).
//!
//! It speaks the service's JSON 1.1 protocol (`POST /`, `X-Amz-Target: Logs_20140328.<Operation>`), refuses
//! requests not signed for `logs` by the test account ([`crate::sigv4`]: the signature must cover the very body
//! received) as AWS does, and keeps the rules a client can break: `CreateLogGroup` and `CreateLogStream`
//! answer `ResourceAlreadyExistsException` for what exists, `CreateLogStream` and `PutLogEvents`
//! `ResourceNotFoundException` for what does not, and `PutLogEvents` refuses with `InvalidParameterException` a batch
//! that is empty, holds more than 10,000 events or 1,048,576 bytes (each message's UTF-8 size plus 26), an event
//! over 262,144 bytes, events out of chronological order, or events spanning 24 hours or more. It can be told to
//! fail: 500 `ServiceUnavailableException`, or 400 `ThrottlingException` ([`CloudWatchFailure`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::local_server::{Changed, LocalServer, not_within};

const MAX_EVENTS: usize = 10_000;
const MAX_BATCH_BYTES: usize = 1_048_576;
const EVENT_OVERHEAD: usize = 26;
const MAX_EVENT_BYTES: usize = 262_144;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How the endpoint misbehaves until [`CloudWatchLogsEndpoint::recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudWatchFailure {
    /// `500 ServiceUnavailableException`.
    ServerError,
    /// `400 ThrottlingException`, over the account's rate.
    Throttle,
}

/// One log event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub timestamp: i64,
    pub message: String,
}

impl StoredEvent {
    /// The message parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.message).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    /// group -> stream -> events.
    groups: Mutex<BTreeMap<String, BTreeMap<String, Vec<StoredEvent>>>>,
    failure: Mutex<Option<CloudWatchFailure>>,
    /// (operation, status) of every request.
    calls: Mutex<Vec<(String, u16)>>,
}

/// The running endpoint; stops when dropped.
pub struct CloudWatchLogsEndpoint {
    server: LocalServer,
    shared: Arc<Shared>,
}

impl CloudWatchLogsEndpoint {
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let server = LocalServer::start("cloudwatch-logs-endpoint", move |changed| {
            axum::Router::new().fallback(axum::routing::post(operation)).with_state((state, changed))
        });
        Self { server, shared }
    }

    /// The URL to give as `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.address)
    }

    pub fn fail(&self, failure: CloudWatchFailure) {
        *self.shared.failure.lock().expect("cloudwatch lock") = Some(failure);
    }

    pub fn recover(&self) {
        *self.shared.failure.lock().expect("cloudwatch lock") = None;
    }

    /// The (operation, status) of every request so far.
    pub fn calls(&self) -> Vec<(String, u16)> {
        self.shared.calls.lock().expect("cloudwatch lock").clone()
    }

    /// The streams of `group`, with their events.
    pub fn streams(&self, group: &str) -> BTreeMap<String, Vec<StoredEvent>> {
        self.shared.groups.lock().expect("cloudwatch lock").get(group).cloned().unwrap_or_default()
    }

    /// Waits up to [`crate::otlp::WAIT`] for an event of `group` matching `matches`; panics naming `what` otherwise.
    pub async fn wait_for_event(&self, group: &str, what: &str, matches: impl Fn(&StoredEvent) -> bool) -> StoredEvent {
        let find = || self.streams(group).into_values().flatten().find(|event| matches(event));
        self.server.wait_for(find).await.unwrap_or_else(|| {
            panic!(
                "{}; calls: {:?}; streams: {:?}",
                not_within(what, "CloudWatch Logs endpoint"),
                self.calls(),
                self.streams(group)
            )
        })
    }
}

type EndpointState = (Arc<Shared>, Changed);

async fn operation(State((shared, changed)): State<EndpointState>, request: Parts, body: Bytes) -> Response {
    let Parts { method, uri, headers, .. } = request;
    let target = headers.get("x-amz-target").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let operation = target.strip_prefix("Logs_20140328.").unwrap_or(target).to_owned();
    let failure = *shared.failure.lock().expect("cloudwatch lock");
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let signature = crate::sigv4::verify(
        &crate::sigv4::Signed { method: method.as_str(), path, header: &header, body: &body },
        "logs",
    );
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = match failure {
        Some(CloudWatchFailure::ServerError) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceUnavailableException", "The service is unavailable")
        }
        Some(CloudWatchFailure::Throttle) => error(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded"),
        None if header("authorization").is_none() => {
            error(StatusCode::BAD_REQUEST, "MissingAuthenticationTokenException", "Missing Authentication Token")
        }
        None if signature.is_err() => {
            let reason = signature.as_ref().err().map_or("", String::as_str);
            error(StatusCode::BAD_REQUEST, "InvalidSignatureException", reason)
        }
        None => {
            let mut groups = shared.groups.lock().expect("cloudwatch lock");
            let group = request["logGroupName"].as_str().unwrap_or_default().to_owned();
            let stream = request["logStreamName"].as_str().unwrap_or_default().to_owned();
            match operation.as_str() {
                "CreateLogGroup" if groups.contains_key(&group) => {
                    error(StatusCode::BAD_REQUEST, "ResourceAlreadyExistsException", "The log group already exists")
                }
                "CreateLogGroup" => {
                    groups.insert(group, BTreeMap::new());
                    (StatusCode::OK, json!({}))
                }
                "CreateLogStream" => match groups.get_mut(&group) {
                    None => error(StatusCode::BAD_REQUEST, "ResourceNotFoundException", "The log group does not exist"),
                    Some(streams) if streams.contains_key(&stream) => error(
                        StatusCode::BAD_REQUEST,
                        "ResourceAlreadyExistsException",
                        "The log stream already exists",
                    ),
                    Some(streams) => {
                        streams.insert(stream, Vec::new());
                        (StatusCode::OK, json!({}))
                    }
                },
                "PutLogEvents" => match groups.get_mut(&group).and_then(|streams| streams.get_mut(&stream)) {
                    None => {
                        error(StatusCode::BAD_REQUEST, "ResourceNotFoundException", "The log stream does not exist")
                    }
                    Some(stored) => match batch(&request["logEvents"]) {
                        Ok(events) => {
                            stored.extend(events);
                            (StatusCode::OK, json!({ "nextSequenceToken": stored.len().to_string() }))
                        }
                        Err(reason) => error(StatusCode::BAD_REQUEST, "InvalidParameterException", &reason),
                    },
                },
                _ => error(StatusCode::BAD_REQUEST, "UnknownOperationException", "Unknown operation"),
            }
        }
    };
    shared.calls.lock().expect("cloudwatch lock").push((operation, status.as_u16()));
    changed.send_modify(|count| *count += 1);
    (status, [("content-type", "application/x-amz-json-1.1")], answer.to_string()).into_response()
}

/// The events of a PutLogEvents request, or why CloudWatch refuses them.
fn batch(events: &Value) -> Result<Vec<StoredEvent>, String> {
    let events: Vec<StoredEvent> = events
        .as_array()
        .ok_or("logEvents is required")?
        .iter()
        .map(|event| {
            let timestamp = event["timestamp"].as_i64().ok_or("every event needs a timestamp")?;
            let message = event["message"].as_str().ok_or("every event needs a message")?.to_owned();
            Ok(StoredEvent { timestamp, message })
        })
        .collect::<Result<_, &str>>()?;
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(format!("a batch holds 1 to {MAX_EVENTS} events, not {}", events.len()));
    }
    let bytes: usize = events.iter().map(|event| event.message.len() + EVENT_OVERHEAD).sum();
    if bytes > MAX_BATCH_BYTES {
        return Err(format!("the batch is {bytes} bytes, over {MAX_BATCH_BYTES}"));
    }
    if events.iter().any(|event| event.message.len() + EVENT_OVERHEAD > MAX_EVENT_BYTES) {
        return Err(format!("an event is over {MAX_EVENT_BYTES} bytes"));
    }
    if events.windows(2).any(|pair| pair[1].timestamp < pair[0].timestamp) {
        return Err("log events in a single PutLogEvents request must be in chronological order".into());
    }
    if events[events.len() - 1].timestamp - events[0].timestamp >= DAY_MS {
        return Err("a batch of log events cannot span more than 24 hours".into());
    }
    Ok(events)
}

fn error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({ "__type": kind, "message": message }))
}
