//! A local X-Ray-compatible HTTP endpoint: what `https://xray.<region>.amazonaws.com` is to the X-Ray daemon, on a
//! 127.0.0.1 port chosen by the OS.
//!
//! It speaks the X-Ray REST-JSON protocol: `POST /TraceSegments` (PutTraceSegments) and `POST /TelemetryRecords`
//! (PutTelemetryRecords) are decoded as AWS decodes them and answered as AWS answers; any other path (the sampling
//! API, `POST /GetSamplingRules`, `POST /SamplingTargets`, ...) gets canned AWS-shaped JSON, and STS `AssumeRole`
//! on `POST /` gets fixed temporary credentials ([`ASSUMED_ROLE_ACCESS_KEY`]). Every request that reaches
//! it is recorded with its method, path, headers and body, so tests can check batching and SigV4 signatures.
//!
//! It can be told to fail like AWS does: refuse connections (the port is closed, then reopened), answer 500, or
//! throttle with 429 `ThrottledException` ([`Failure`]); and to report chosen documents as
//! `UnprocessedTraceSegments` ([`XrayEndpoint::reject_segments_named`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use xray_protocol::{
    GetSamplingRulesResponse, SamplingRule, SamplingRuleRecord, SamplingTargetDocument, SamplingTargetsRequest,
    SamplingTargetsResponse,
};

pub use crate::otlp::WAIT;
use crate::otlp::wait_until;

/// How the endpoint misbehaves until [`XrayEndpoint::recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The port is closed: connections are refused (open connections are dropped too).
    Refuse,
    /// `500 InternalFailure`.
    ServerError,
    /// `429 ThrottledException`, X-Ray's answer when over its rate.
    Throttle,
    /// `400 InvalidRequestException`: a client error that retrying does not fix.
    BadRequest,
}

/// One request as it reached the endpoint.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `TraceSegmentDocuments` of a PutTraceSegments request, each still the JSON text the client sent.
    pub fn trace_segment_documents(&self) -> Vec<String> {
        match self.json().get("TraceSegmentDocuments") {
            Some(Value::Array(documents)) => {
                documents.iter().filter_map(|doc| doc.as_str().map(str::to_owned)).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[derive(Default)]
struct Behaviour {
    failure: Option<Failure>,
    /// Documents whose `name` is a key are answered as unprocessed with the value as error code.
    rejected_names: HashMap<String, String>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    behaviour: Mutex<Behaviour>,
    /// Documents of PutTraceSegments calls answered 200, counted as they arrive (cheap to read under load).
    accepted_documents: AtomicUsize,
}

impl Shared {
    fn behaviour(&self) -> MutexGuard<'_, Behaviour> {
        self.behaviour.lock().expect("endpoint behaviour lock")
    }
}

type EndpointState = (Arc<Shared>, Arc<watch::Sender<usize>>);

/// The running endpoint; stops when dropped.
pub struct XrayEndpoint {
    address: SocketAddr,
    shared: Arc<Shared>,
    changes: watch::Receiver<usize>,
    /// Whether the port should be open; the server thread follows it. `None` asks it to stop.
    open: watch::Sender<Option<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl XrayEndpoint {
    /// Binds 127.0.0.1:0 and starts serving.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the X-Ray endpoint");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let address = listener.local_addr().expect("the endpoint's address");
        let shared = Arc::new(Shared::default());
        let (changed, changes) = watch::channel(0);
        let (open, open_changes) = watch::channel(Some(true));
        let state: EndpointState = (shared.clone(), Arc::new(changed));
        let thread = std::thread::Builder::new()
            .name("xray-endpoint".into())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("the endpoint's runtime");
                runtime.block_on(serve(listener, address, open_changes, state));
            })
            .expect("spawning the endpoint thread");
        Self { address, shared, changes, open, thread: Some(thread) }
    }

    /// The base URL to give the daemon as its endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Misbehave as `failure` until [`recover`](Self::recover).
    pub fn fail(&self, failure: Failure) {
        self.shared.behaviour().failure = Some(failure);
        if failure == Failure::Refuse {
            self.open.send_replace(Some(false));
        }
    }

    /// Answer normally again (and reopen the port if it was closed).
    pub fn recover(&self) {
        self.shared.behaviour().failure = None;
        self.open.send_replace(Some(true));
    }

    /// From now on, report every document whose `name` is `name` as unprocessed, with `error_code`.
    pub fn reject_segments_named(&self, name: &str, error_code: &str) {
        self.shared.behaviour().rejected_names.insert(name.to_owned(), error_code.to_owned());
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("endpoint requests lock").clone()
    }

    /// The requests received on `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|request| request.path == path).collect()
    }

    /// The PutTraceSegments requests answered 200.
    pub fn accepted_batches(&self) -> Vec<RecordedRequest> {
        self.requests_to("/TraceSegments").into_iter().filter(|request| request.status == 200).collect()
    }

    /// Every document of every PutTraceSegments request answered 200 (unprocessed ones included).
    pub fn accepted_documents(&self) -> Vec<String> {
        self.accepted_batches().iter().flat_map(RecordedRequest::trace_segment_documents).collect()
    }

    /// How many documents were accepted so far, without copying any (for load tests).
    pub fn accepted_document_count(&self) -> usize {
        self.shared.accepted_documents.load(Ordering::Acquire)
    }

    /// Waits up to [`WAIT`] until `check` finds something in the requests, and panics naming `what` if it does not.
    pub async fn wait_for<T>(&self, what: &str, check: impl Fn(&[RecordedRequest]) -> Option<T>) -> T {
        let found = wait_until(self.changes.clone(), || check(&self.requests())).await;
        found.unwrap_or_else(|| {
            let seen: Vec<(String, u16)> =
                self.requests().into_iter().map(|request| (request.path, request.status)).collect();
            panic!("no {what} at the X-Ray endpoint within {WAIT:?}; received (path, status): {seen:?}")
        })
    }

    /// Waits until at least `count` documents were accepted, and returns them all.
    pub async fn wait_for_documents(&self, count: usize) -> Vec<String> {
        self.wait_for(&format!("{count} accepted segment documents"), |_| {
            let documents = self.accepted_documents();
            (documents.len() >= count).then_some(documents)
        })
        .await
    }
}

impl Drop for XrayEndpoint {
    fn drop(&mut self) {
        self.open.send_replace(None);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves while the port should be open; closes the listener and every connection when it should not, so clients
/// see "connection refused", and rebinds the same port when it should be open again.
async fn serve(
    listener: std::net::TcpListener,
    address: SocketAddr,
    mut open: watch::Receiver<Option<bool>>,
    state: EndpointState,
) {
    let app = router(state);
    // Both std and tokio listeners set SO_REUSEADDR, so the port can be bound again after it was closed.
    let mut listener = Some(tokio::net::TcpListener::from_std(listener).expect("a tokio listener"));
    loop {
        let Some(current) = listener.take() else {
            match *open.borrow_and_update() {
                None => return,
                Some(true) => {
                    let rebound = tokio::net::TcpListener::bind(address).await;
                    listener = Some(rebound.expect("rebinding the X-Ray endpoint's port"));
                }
                Some(false) => {}
            }
            if listener.is_none() && open.changed().await.is_err() {
                return;
            }
            continue;
        };
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let service = TowerToHyperService::new(app.clone());
                    connections.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                changed = open.changed() => {
                    if changed.is_err() || *open.borrow() != Some(true) {
                        break;
                    }
                }
            }
        }
        // Dropping the listener and aborting the connections closes the port for good until reopened.
        drop(current);
        connections.shutdown().await;
    }
}

fn router(state: EndpointState) -> Router {
    Router::new().fallback(answer).with_state(state)
}

async fn answer(
    State((shared, changed)): State<EndpointState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |path| path.as_str().to_owned());
    let failure = shared.behaviour().failure;
    let (status, response) = match failure {
        Some(Failure::ServerError) => aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "Internal error"),
        Some(Failure::Throttle) => aws_error(StatusCode::TOO_MANY_REQUESTS, "ThrottledException", "Rate exceeded"),
        Some(Failure::BadRequest) => {
            aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "The request is not valid")
        }
        // Refuse closes the port; a request that slipped in before it closed is answered normally.
        Some(Failure::Refuse) | None => operation(&shared, &method, uri.path(), &body),
    };
    let recorded = RecordedRequest {
        method: method.to_string(),
        path,
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
        status: status.as_u16(),
    };
    shared.requests.lock().expect("endpoint requests lock").push(recorded);
    changed.send_modify(|count| *count += 1);
    response
}

/// An AWS REST-JSON error: the type in `x-amzn-ErrorType` and in the body, as AWS sends it.
fn aws_error(status: StatusCode, error_type: &str, message: &str) -> (StatusCode, Response) {
    let body = json!({ "__type": error_type, "message": message });
    (status, (status, [("x-amzn-ErrorType", error_type)], axum::Json(body)).into_response())
}

fn ok(body: Value) -> (StatusCode, Response) {
    (StatusCode::OK, axum::Json(body).into_response())
}

fn operation(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> (StatusCode, Response) {
    if method != Method::POST {
        return aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation");
    }
    if path == "/" && body.starts_with(b"Action=AssumeRole&") {
        return assume_role();
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return aws_error(StatusCode::BAD_REQUEST, "SerializationException", "The body is not JSON");
    };
    match path {
        "/TraceSegments" => put_trace_segments(shared, &request),
        "/TelemetryRecords" => match request.get("TelemetryRecords") {
            Some(Value::Array(_)) => ok(json!({})),
            _ => aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "TelemetryRecords is required"),
        },
        "/GetSamplingRules" => ok(sampling_rules()),
        "/SamplingTargets" => ok(sampling_targets(&request)),
        _ => ok(json!({})),
    }
}

fn put_trace_segments(shared: &Shared, request: &Value) -> (StatusCode, Response) {
    let Some(Value::Array(documents)) = request.get("TraceSegmentDocuments") else {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "TraceSegmentDocuments is required");
    };
    let rejected_names = &shared.behaviour().rejected_names;
    // Parsing every document only matters when some are to be rejected; under load it would dominate.
    let candidates = if rejected_names.is_empty() { &[][..] } else { &documents[..] };
    let unprocessed: Vec<Value> = candidates
        .iter()
        .filter_map(|document| {
            let document: Value = serde_json::from_str(document.as_str()?).ok()?;
            let error_code = rejected_names.get(document.get("name")?.as_str()?)?;
            Some(json!({ "Id": document.get("id"), "ErrorCode": error_code, "Message": "Rejected by the test" }))
        })
        .collect();
    shared.accepted_documents.fetch_add(documents.len(), Ordering::AcqRel);
    ok(json!({ "UnprocessedTraceSegments": unprocessed }))
}

/// The access key of the credentials [`XrayEndpoint`] hands out when asked, as STS, to assume a role; a daemon run
/// with `-r` signs with it.
pub const ASSUMED_ROLE_ACCESS_KEY: &str = "ASIAASSUMEDROLEEXAMPLE";

/// STS `AssumeRole` (query protocol, XML), so a test can point `AWS_ENDPOINT_URL_STS` here too.
fn assume_role() -> (StatusCode, Response) {
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials>\
         <AccessKeyId>{ASSUMED_ROLE_ACCESS_KEY}</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey>\
         <SessionToken>assumed-session-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>\
         </Credentials><AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:xray-daemon</AssumedRoleId>\
         <Arn>arn:aws:sts::123456789012:assumed-role/xray/xray-daemon</Arn></AssumedRoleUser></AssumeRoleResult>\
         <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>"
    );
    (StatusCode::OK, ([("content-type", "text/xml")], body).into_response())
}

/// The rule every account starts with: one request per second, then 5%.
fn sampling_rules() -> Value {
    let default = SamplingRule {
        rule_arn: Some("arn:aws:xray:us-east-1:123456789012:sampling-rule/Default".into()),
        ..SamplingRule::default_rule()
    };
    let record =
        SamplingRuleRecord { sampling_rule: default, created_at: Some(0.0), modified_at: Some(1_700_000_000.0) };
    json!(GetSamplingRulesResponse { sampling_rule_records: vec![record], next_token: None })
}

/// A target for every statistics document sent: keep the default rate, a quota of one per second.
fn sampling_targets(request: &Value) -> Value {
    let request: SamplingTargetsRequest = serde_json::from_value(request.clone()).unwrap_or_default();
    let targets = request
        .sampling_statistics_documents
        .into_iter()
        .map(|document| SamplingTargetDocument {
            rule_name: document.rule_name,
            fixed_rate: 0.05,
            reservoir_quota: Some(1),
            reservoir_quota_ttl: Some(1_900_000_000.0),
            interval: Some(10),
        })
        .collect();
    json!(SamplingTargetsResponse {
        sampling_target_documents: targets,
        last_rule_modification: Some(1_700_000_000.0),
        unprocessed_statistics: Vec::new(),
    })
}
