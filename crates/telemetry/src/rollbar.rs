//! Rollbar: each unhandled error and panic of a request becomes one Rollbar item, as pyrollbar made them for the
//! original Flask app, sent through Rollbar's item API (`POST {ROLLBAR_ENDPOINT}item/`, a JSON body, the token in
//! `X-Rollbar-Access-Token`). An item carries the exception (class, message, frames of its backtrace), the request
//! (method, URL without its query, route, headers without secrets, client address), the person when signed in, the
//! server, the code version, and the trace id in `custom`, so an item leads to its trace in X-Ray and Honeycomb.
//!
//! No maintained Rollbar crate fits (the `rollbar` crate's last release predates hyper 1 and tokio 1), so this is a
//! small typed client on reqwest. Sending never holds up a request: items wait in a bounded queue for a thread of
//! their own, which retries connection failures, 429s and 5xx with backoff; a full queue drops the item, and drops
//! and failures are counted and logged at `warn` at most once a minute ([`Rollbar::stats`]).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, header};
use serde::Serialize;
use url::Url;

use crate::config::RollbarConfig;
use crate::exceptions::Exception;
use crate::export::{Lane, LaneStats};

/// Items waiting to be sent; more are dropped.
const QUEUE: usize = 128;

/// Tries per item: the first and three retries.
const ATTEMPTS: u32 = 4;

/// The wait before the first retry; doubled for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`Rollbar::flush`] looks whether the queue is empty.
const FLUSH_POLL: Duration = Duration::from_millis(10);

/// Headers whose names contain one of these (in lower case) are never sent: they carry credentials.
const SECRET_HEADER_PARTS: [&str; 7] =
    ["authorization", "cookie", "token", "secret", "password", "api-key", "honeycomb-team"];

/// Rollbar's levels, in its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
}

/// Who made the request, as Rollbar's `person` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// The user's uuid.
    pub id: String,
    /// The user's handle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The request an item happened in, secrets removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestInfo {
    pub method: String,
    /// Scheme, host and path; the query string is left out (it may hold a token).
    pub url: String,
    /// The route template (`/api/activities/@{handle}`), when the router matched one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ip: Option<String>,
}

impl RequestInfo {
    /// The request as Rollbar shows it: `route` as matched, `client` as the server span recorded it.
    pub fn new(parts: &http::request::Parts, route: Option<&str>, client: Option<String>) -> Self {
        let host = parts.headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
        let scheme = parts.uri.scheme_str().unwrap_or("http");
        Self {
            method: parts.method.to_string(),
            url: format!("{scheme}://{host}{}", parts.uri.path()),
            route: route.map(str::to_owned),
            headers: public_headers(&parts.headers),
            user_ip: client,
        }
    }
}

/// The headers that carry no credentials, as text.
fn public_headers(headers: &HeaderMap) -> std::collections::BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| !SECRET_HEADER_PARTS.iter().any(|part| name.as_str().contains(part)))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect()
}

/// What one item says; turned into Rollbar's JSON on the sending thread.
#[derive(Debug, Clone)]
pub struct Report {
    pub level: Level,
    pub what: Reported,
    pub request: Option<RequestInfo>,
    pub person: Option<Person>,
    /// The OTLP trace id (32 hex digits) of the request, if it had one.
    pub trace_id: Option<String>,
}

/// An exception (`body.trace`) or a plain message (`body.message`).
#[derive(Debug, Clone)]
pub enum Reported {
    Exception(Exception),
    Message(String),
}

/// The Rollbar client: reports are queued and sent in the background. Cheap to clone; does nothing when Rollbar is
/// off (no `ROLLBAR_ACCESS_TOKEN`).
#[derive(Clone)]
pub struct Rollbar {
    sender: Option<SyncSender<Report>>,
    lane: Arc<Lane>,
}

impl std::fmt::Debug for Rollbar {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Rollbar").field("enabled", &self.is_enabled()).field("stats", &self.stats()).finish()
    }
}

impl Rollbar {
    /// Rollbar off: reports are dropped without a trace.
    pub fn disabled() -> Self {
        Self { sender: None, lane: Lane::new("Rollbar", QUEUE) }
    }

    /// Starts the sending thread for `config`; `service_name` names the server in each item.
    pub(crate) fn start(config: &RollbarConfig, service_name: &str) -> std::io::Result<Self> {
        let (sender, reports) = sync_channel(QUEUE);
        let lane = Lane::new("Rollbar", QUEUE);
        let sending = Sender {
            url: config.endpoint.join("item/").map_err(std::io::Error::other)?,
            config: config.clone(),
            server: Server { host: host_name(), root: service_name.to_owned(), pid: std::process::id() },
            lane: lane.clone(),
        };
        // The blocking client runs a runtime of its own: it is built and dropped on this thread, never in an async
        // context.
        std::thread::Builder::new().name("rollbar".into()).spawn(move || match reqwest::blocking::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
        {
            Ok(client) => sending.run(&client, reports),
            Err(error) => sending.lane.count_failed(1, &format!("building the HTTP client: {error}")),
        })?;
        Ok(Self { sender: Some(sender), lane })
    }

    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues `report` without waiting; a full queue drops it (counted).
    pub fn report(&self, report: Report) {
        let Some(sender) = &self.sender else { return };
        // The lane counts a report from here until it is sent or given up, so that [`Rollbar::flush`] can wait.
        if !self.lane.try_enqueue() {
            return;
        }
        let refused = match sender.try_send(report) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => None,
            // The thread is gone (it never panics): nothing to send with.
            Err(TrySendError::Disconnected(_)) => Some("the Rollbar thread stopped"),
        };
        self.lane.dequeued(1);
        match refused {
            None => self.lane.count_dropped(1),
            Some(why) => self.lane.count_failed(1, &why),
        }
    }

    /// Waits up to `timeout` for the reports queued so far to be sent (or given up), as a process does before it
    /// exits: the panic that ends a request must still reach Rollbar when the process stops right after.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.lane.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(FLUSH_POLL);
        }
    }

    /// Items sent, dropped (queue full) and failed (after retries) so far.
    pub fn stats(&self) -> LaneStats {
        self.lane.stats()
    }
}

/// The machine's name, as the kernel has it (what Rollbar's `server.host` and CloudWatch's stream name show).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The sending thread's side.
struct Sender {
    url: Url,
    config: RollbarConfig,
    server: Server,
    lane: Arc<Lane>,
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
}

impl Sender {
    fn run(&self, client: &reqwest::blocking::Client, reports: Receiver<Report>) {
        for report in reports {
            let body = match serde_json::to_vec(&self.item(report)) {
                Ok(body) => body,
                Err(error) => {
                    self.lane.count_failed(1, &error);
                    self.lane.dequeued(1);
                    continue;
                }
            };
            match self.send(client, &body) {
                Ok(()) => {
                    self.lane.count_exported(1);
                    self.lane.report(None);
                }
                Err(failure) => self.lane.count_failed(1, &failure.message),
            }
            self.lane.dequeued(1);
        }
    }

    /// Sends one item, retrying what may pass later.
    fn send(&self, client: &reqwest::blocking::Client, body: &[u8]) -> Result<(), Failure> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match self.attempt(client, body) {
                Ok(()) => return Ok(()),
                Err(failure) if failure.retry && attempt < ATTEMPTS => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                }
                Err(failure) => return Err(failure),
            }
        }
        unreachable!("the last attempt returns")
    }

    fn attempt(&self, client: &reqwest::blocking::Client, body: &[u8]) -> Result<(), Failure> {
        let response = client
            .post(self.url.clone())
            .header("X-Rollbar-Access-Token", &self.config.access_token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .map_err(|error| Failure { message: format!("sending to {}: {error}", self.url), retry: true })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry = status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        Err(Failure { message: format!("{} answered {status}", self.url), retry })
    }

    fn item<'a>(&'a self, report: Report) -> Item<'a> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let body = match report.what {
            Reported::Exception(exception) => Body::Trace {
                frames: exception.stacktrace.as_deref().map(frames).unwrap_or_default(),
                exception: ExceptionInfo { class: exception.kind.into_owned(), message: exception.message },
            },
            Reported::Message(body) => Body::Message { body },
        };
        Item {
            data: Data {
                environment: &self.config.environment,
                body,
                level: report.level,
                timestamp,
                code_version: &self.config.code_version,
                platform: std::env::consts::OS,
                language: "rust",
                framework: "axum",
                request: report.request,
                person: report.person,
                server: &self.server,
                custom: report.trace_id.map(|trace_id| Custom {
                    xray_trace_id: xray_protocol::segment::xray_trace_id(&trace_id),
                    trace_id,
                }),
                notifier: Notifier { name: "cruddur-telemetry", version: env!("CARGO_PKG_VERSION") },
            },
        }
    }
}

/// The frames of a backtrace in Rust's format (`  3: label` then `at path:line:col`), oldest call first as
/// Rollbar wants them.
fn frames(backtrace: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in backtrace.lines().map(str::trim) {
        if let Some(location) = line.strip_prefix("at ") {
            let mut parts = location.rsplitn(3, ':');
            let (_column, line_number, path) = (parts.next(), parts.next(), parts.next());
            if let (Some(frame), Some(path)) = (frames.last_mut(), path) {
                frame.filename = path.to_owned();
                frame.lineno = line_number.and_then(|number| number.parse().ok());
            }
        } else if let Some((index, label)) = line.split_once(": ")
            && index.parse::<u32>().is_ok()
        {
            frames.push(Frame { filename: "unknown".to_owned(), lineno: None, method: label.to_owned() });
        }
    }
    frames.reverse();
    frames
}

#[derive(Serialize)]
struct Item<'a> {
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    environment: &'a str,
    body: Body,
    level: Level,
    timestamp: u64,
    code_version: &'a str,
    platform: &'static str,
    language: &'static str,
    framework: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<RequestInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    person: Option<Person>,
    server: &'a Server,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<Custom>,
    notifier: Notifier,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Body {
    Trace { frames: Vec<Frame>, exception: ExceptionInfo },
    Message { body: String },
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct Frame {
    filename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lineno: Option<u32>,
    method: String,
}

#[derive(Serialize)]
struct ExceptionInfo {
    class: String,
    message: String,
}

#[derive(Serialize)]
struct Server {
    host: String,
    /// The service name: which of Cruddur's binaries.
    root: String,
    pid: u32,
}

#[derive(Serialize)]
struct Custom {
    trace_id: String,
    xray_trace_id: String,
}

#[derive(Serialize)]
struct Notifier {
    name: &'static str,
    version: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_from_a_rust_backtrace_oldest_first() {
        let backtrace = "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/library/std/src/backtrace.rs:312:13\n   1: cruddur_backend::routes::boom\n             at ./backend/src/routes/boom.rs:7:5\n   2: main\n";
        assert_eq!(
            frames(backtrace),
            vec![
                Frame { filename: "unknown".into(), lineno: None, method: "main".into() },
                Frame {
                    filename: "./backend/src/routes/boom.rs".into(),
                    lineno: Some(7),
                    method: "cruddur_backend::routes::boom".into()
                },
                Frame {
                    filename: "/rustc/library/std/src/backtrace.rs".into(),
                    lineno: Some(312),
                    method: "std::backtrace::Backtrace::force_capture".into()
                },
            ]
        );
    }

    #[test]
    fn secrets_never_leave_with_the_headers() {
        let headers: HeaderMap = [
            ("authorization", "Bearer abc"),
            ("cookie", "session=abc"),
            ("x-honeycomb-team", "key"),
            ("x-rollbar-access-token", "abc"),
            ("user-agent", "curl/8"),
        ]
        .into_iter()
        .map(|(name, value)| (header::HeaderName::from_static(name), value.parse().unwrap()))
        .collect();
        let kept = public_headers(&headers);
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![("user-agent".to_owned(), "curl/8".to_owned())]);
    }
}
