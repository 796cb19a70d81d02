//! CloudWatch Logs: every log line of the process, as the JSON object the console's `json` format prints (with
//! `trace_id` and `span_id` inside a request), goes to the log group `CLOUDWATCH_LOG_GROUP`, in a stream of its own
//! per process (`host/service/start time/pid`), as watchtower sent the original Flask app's.
//!
//! Lines are appended to a bounded in-memory buffer by whichever thread logs them (never waiting on the network);
//! a thread of its own (with a small tokio runtime for `aws-sdk-cloudwatchlogs`) creates the group and the stream
//! if missing, and ships the buffer every [`FLUSH_INTERVAL`], sooner when a batch is full, and at shutdown, in
//! `PutLogEvents` calls that keep the service's rules: at most [`MAX_BATCH_EVENTS`] events and [`MAX_BATCH_BYTES`]
//! (each event's UTF-8 size plus 26 bytes), spanning less than 24 hours, in chronological order (timestamps are
//! taken under the buffer's lock and never go back), each event at most [`MAX_EVENT_BYTES`] (longer lines are cut).
//!
//! A batch that fails (the endpoint down, 500s, throttling, after the SDK's own retries) is tried again at the next
//! flush, up to [`BATCH_ATTEMPTS`] times; a full buffer drops new lines. Losses are counted ([`CloudWatchStats`])
//! and written to stderr at most once every [`WARN_INTERVAL`], never through `tracing`: a warning about CloudWatch
//! must not be one more line for CloudWatch. Lines logged by the shipping thread itself are never shipped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use opentelemetry::Context;
use tokio::sync::{Notify, mpsc};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::CloudWatchConfig;
use crate::context::DispatchSlot;
use crate::logs::{Nested, json_line, with_thread_buffer};

/// How often the buffer is shipped.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// PutLogEvents' limits.
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What PutLogEvents counts for each event on top of its message.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The largest event PutLogEvents takes, overhead included.
pub const MAX_EVENT_BYTES: usize = 262_144;
const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

/// The buffer's bound, in PutLogEvents bytes: eight full batches.
const MAX_BUFFER_BYTES: usize = 8 * MAX_BATCH_BYTES;

/// How many flushes a failing batch is tried at before it is dropped.
pub const BATCH_ATTEMPTS: u32 = 3;

/// Losses are written to stderr at most this often.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// How long shutdown waits for the last lines to be shipped.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

thread_local! {
    /// Set on the shipping thread(s): what they log is not shipped.
    static SHIPPING: Cell<bool> = const { Cell::new(false) };
}

/// Counters of the shipper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloudWatchStats {
    /// Events PutLogEvents accepted.
    pub sent: u64,
    /// Events dropped: the buffer was full, a batch failed [`BATCH_ATTEMPTS`] times, or CloudWatch rejected them.
    pub dropped: u64,
    /// Failed PutLogEvents calls (each may be tried again).
    pub failed_calls: u64,
}

/// A log event as PutLogEvents takes it (`InputLogEvent`), its message already escaped as the inside of the JSON
/// string it travels in.
struct LogEvent {
    timestamp: i64,
    escaped_message: Box<[u8]>,
    /// What PutLogEvents counts: the message's UTF-8 size, plus [`EVENT_OVERHEAD_BYTES`].
    size: usize,
}

/// The body of a PutLogEvents call that ships `batch` (`PutLogEventsRequest` in the service's JSON 1.1 protocol).
fn put_log_events_body(log_group: &str, log_stream: &str, batch: &[LogEvent]) -> Bytes {
    // Room for each event's timestamp and punctuation (about 40 bytes), and the request's own (about 60).
    let events: usize = batch.iter().map(|event| event.escaped_message.len() + 40).sum();
    let mut body = Vec::with_capacity(log_group.len() + log_stream.len() + events + 64);
    // Strings and integers always serialize, and writing to a Vec cannot fail.
    body.extend_from_slice(b"{\"logGroupName\":");
    let _ = serde_json::to_writer(&mut body, log_group);
    body.extend_from_slice(b",\"logStreamName\":");
    let _ = serde_json::to_writer(&mut body, log_stream);
    body.extend_from_slice(b",\"logEvents\":[");
    for (index, event) in batch.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"timestamp\":");
        let _ = serde_json::to_writer(&mut body, &event.timestamp);
        body.extend_from_slice(b",\"message\":\"");
        body.extend_from_slice(&event.escaped_message);
        body.extend_from_slice(b"\"}");
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

impl LogEvent {
    fn size(&self) -> usize {
        self.size
    }
}

#[derive(Default)]
struct Buffer {
    events: VecDeque<LogEvent>,
    bytes: usize,
    last_timestamp: i64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed_calls: AtomicU64,
}

struct Shared {
    buffer: Mutex<Buffer>,
    counters: Counters,
    /// Woken when a full batch is waiting.
    batch_ready: Notify,
}

impl Shared {
    /// Buffers one event: `escaped_message` is its message escaped as the inside of a JSON string, `message_len`
    /// the message's own length (at most [`MAX_EVENT_BYTES`] - [`EVENT_OVERHEAD_BYTES`]).
    fn push(&self, escaped_message: &[u8], message_len: usize) {
        if message_len == 0 {
            return;
        }
        let escaped_message = Box::from(escaped_message);
        let size = message_len + EVENT_OVERHEAD_BYTES;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64);
        let Ok(mut buffer) = self.buffer.lock() else { return };
        let event = LogEvent { timestamp: now.max(buffer.last_timestamp), escaped_message, size };
        if buffer.bytes + event.size() > MAX_BUFFER_BYTES {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.last_timestamp = event.timestamp;
        buffer.bytes += event.size();
        buffer.events.push_back(event);
        let full = buffer.events.len() >= MAX_BATCH_EVENTS || buffer.bytes >= MAX_BATCH_BYTES;
        drop(buffer);
        if full {
            self.batch_ready.notify_one();
        }
    }

    /// The oldest events that fit in one PutLogEvents call, taken out of the buffer.
    fn take_batch(&self) -> Vec<LogEvent> {
        let Ok(mut buffer) = self.buffer.lock() else { return Vec::new() };
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(event) = buffer.events.front() {
            let first = batch.first().map_or(event.timestamp, |first: &LogEvent| first.timestamp);
            if batch.len() == MAX_BATCH_EVENTS
                || bytes + event.size() > MAX_BATCH_BYTES
                || event.timestamp - first >= MAX_BATCH_SPAN_MS
            {
                break;
            }
            bytes += event.size();
            let event = buffer.events.pop_front().expect("looked at above");
            batch.push(event);
        }
        buffer.bytes -= bytes;
        batch
    }

    fn is_empty(&self) -> bool {
        self.buffer.lock().map_or(true, |buffer| buffer.events.is_empty())
    }

    fn stats(&self) -> CloudWatchStats {
        CloudWatchStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed_calls: self.counters.failed_calls.load(Ordering::Relaxed),
        }
    }
}

/// `line` cut to the longest message PutLogEvents takes, on a character boundary, escaped as the inside of a JSON
/// string into `escaped`; the message's own length.
fn escape_cut(line: &str, escaped: &mut Vec<u8>) -> usize {
    let message = &line[..line.floor_char_boundary(MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES)];
    escaped.clear();
    // A str always serializes, and writing to a Vec cannot fail; the quotes around it are not the message's.
    let _ = serde_json::to_writer(&mut *escaped, message);
    escaped.pop();
    escaped.remove(0);
    message.len()
}

enum Command {
    /// Ship everything buffered now, then answer.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The running shipper; dropping it ships what is left (waiting up to a few seconds) and stops the thread.
pub(crate) struct CloudWatchLogs {
    shared: Arc<Shared>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<JoinHandle<()>>,
    log_stream: String,
}

impl CloudWatchLogs {
    /// Starts the shipping thread; `service_name` goes into the stream's name.
    pub(crate) fn start(config: &CloudWatchConfig, service_name: &str) -> io::Result<Self> {
        let shared =
            Arc::new(Shared { buffer: Mutex::default(), counters: Counters::default(), batch_ready: Notify::new() });
        let log_stream = stream_name(service_name);
        let (commands, receiver) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(|| SHIPPING.set(true))
            .build()?;
        let shipper = Shipper {
            shared: shared.clone(),
            config: config.clone(),
            log_stream: log_stream.clone(),
            pending: None,
            last_error: None,
            warned: Warned::default(),
        };
        let thread = std::thread::Builder::new().name("cloudwatch-logs".into()).spawn(move || {
            SHIPPING.set(true);
            runtime.block_on(shipper.run(receiver));
        })?;
        Ok(Self { shared, commands: Some(commands), thread: Some(thread), log_stream })
    }

    /// The layer that buffers every event it is given as a JSON line.
    pub(crate) fn layer(&self) -> CloudWatchLayer {
        CloudWatchLayer { shared: self.shared.clone(), dispatch: DispatchSlot::default() }
    }

    pub(crate) fn log_stream(&self) -> &str {
        &self.log_stream
    }

    pub(crate) fn stats(&self) -> CloudWatchStats {
        self.shared.stats()
    }

    /// Ships everything buffered now, waiting up to `timeout` for it.
    pub(crate) fn flush(&self, timeout: Duration) {
        let Some(commands) = &self.commands else { return };
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        if commands.send(Command::Flush(done)).is_ok() {
            // A blocking wait is fine: the shipper runs on its own thread and runtime.
            let _ = finished.recv_timeout(timeout);
        }
    }
}

impl Drop for CloudWatchLogs {
    fn drop(&mut self) {
        self.flush(SHUTDOWN_WAIT);
        // Closing the channel stops the thread.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `host/service/2026-12-03T10-56-17Z/pid`: unique per process, readable, and without the `:` and `*` stream
/// names may not hold.
fn stream_name(service_name: &str) -> String {
    let started = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ");
    let name = format!("{}/{service_name}/{started}/{}", crate::rollbar::host_name(), std::process::id());
    name.replace([':', '*'], "-")
}

/// Buffers each event as the JSON line the console's `json` format prints ([`crate::logs::json_line`]), made
/// here rather than by a formatting layer and a writer, so a line is written once, already escaped as the string
/// it is shipped in ([`Nested`]).
pub(crate) struct CloudWatchLayer {
    shared: Arc<Shared>,
    dispatch: DispatchSlot,
}

/// Where a line is written: the line (as the inside of a JSON string), [`Nested`]'s scratch space, and a line too
/// long for PutLogEvents, written again as JSON.
#[derive(Default)]
struct LineBuffers {
    escaped: Vec<u8>,
    scratch: Vec<u8>,
    long: Vec<u8>,
}

thread_local! {
    /// Each thread's, so that writing a line allocates nothing.
    static LINE: RefCell<LineBuffers> = RefCell::default();
}

impl CloudWatchLayer {
    fn buffer_line(&self, buffers: &mut LineBuffers, event: &Event<'_>, span: Option<&str>, context: Option<&Context>) {
        let LineBuffers { escaped, scratch, long } = buffers;
        escaped.clear();
        let mut nested = Nested::new(escaped, scratch);
        json_line(&mut nested, event, span, context);
        let mut message_len = nested.plain_len;
        if message_len > MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES {
            // Written again as JSON to be cut where a character ends: rare, and never on a request's line.
            long.clear();
            json_line(long, event, span, context);
            message_len = escape_cut(&String::from_utf8_lossy(long), escaped);
        }
        self.shared.push(escaped, message_len);
    }
}

impl<S> Layer<S> for CloudWatchLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.dispatch.register(dispatch);
    }

    fn on_event(&self, event: &Event<'_>, ctx: layer::Context<'_, S>) {
        if SHIPPING.get() {
            return;
        }
        let span = ctx.event_span(event);
        let span = span.as_ref().map(|span| span.name());
        let context = self.dispatch.event_context(event);
        with_thread_buffer(&LINE, |buffers| self.buffer_line(buffers, event, span, context.as_ref()));
    }
}

#[derive(Default)]
struct Warned {
    at: Option<Instant>,
    stats: CloudWatchStats,
}

/// The shipping thread's side.
struct Shipper {
    shared: Arc<Shared>,
    config: CloudWatchConfig,
    log_stream: String,
    /// A batch that failed, with how many times it was tried, to try again first.
    pending: Option<(Vec<LogEvent>, u32)>,
    last_error: Option<String>,
    warned: Warned,
}

impl Shipper {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let client = self.client().await;
        let mut ready = false;
        let mut interval = tokio::time::interval(FLUSH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flushed = tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Flush(done)) => Some(done),
                    None => break,
                },
                _ = interval.tick() => None,
                () = self.shared.batch_ready.notified() => None,
            };
            if !ready {
                ready = self.create_group_and_stream(&client).await;
            }
            if ready {
                self.ship(&client).await;
            }
            self.warn_about_losses();
            if let Some(done) = flushed {
                let _ = done.send(());
            }
        }
    }

    async fn client(&self) -> Client {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_secs(10)).build());
        if let Some(region) = &self.config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &self.config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret, token)) = &self.config.static_credentials {
            let credentials =
                aws_credential_types::Credentials::new(id, secret, token.clone(), None, "cruddur-telemetry");
            loader = loader.credentials_provider(credentials);
        }
        Client::new(&loader.load().await)
    }

    /// Creates the group and the stream, each unless it exists; false when CloudWatch could not be reached.
    async fn create_group_and_stream(&mut self, client: &Client) -> bool {
        let group = &self.config.log_group;
        if let Err(error) = client.create_log_group().log_group_name(group).send().await
            && !error.as_service_error().is_some_and(|error| error.is_resource_already_exists_exception())
        {
            self.failed_call(format!("creating the log group {group}: {}", error_text(&error)));
            return false;
        }
        let stream = client.create_log_stream().log_group_name(group).log_stream_name(&self.log_stream).send().await;
        if let Err(error) = stream
            && !error.as_service_error().is_some_and(|error| error.is_resource_already_exists_exception())
        {
            self.failed_call(format!("creating the log stream {}: {}", self.log_stream, error_text(&error)));
            return false;
        }
        true
    }

    /// Ships the failed batch again, then the buffer, batch by batch, until it is empty or a call fails.
    async fn ship(&mut self, client: &Client) {
        loop {
            let (batch, attempts) = match self.pending.take() {
                Some(pending) => pending,
                None => (self.shared.take_batch(), 0),
            };
            if batch.is_empty() {
                return;
            }
            match self.put(client, &batch).await {
                Ok(rejected) => {
                    let counters = &self.shared.counters;
                    counters.sent.fetch_add((batch.len() - rejected) as u64, Ordering::Relaxed);
                    counters.dropped.fetch_add(rejected as u64, Ordering::Relaxed);
                }
                Err(Retry::Later) if attempts + 1 < BATCH_ATTEMPTS => {
                    self.pending = Some((batch, attempts + 1));
                    return;
                }
                Err(Retry::StreamMissing) => {
                    // Deleted while we ran: made again, and the batch tried again at once.
                    if self.create_group_and_stream(client).await && attempts + 1 < BATCH_ATTEMPTS {
                        self.pending = Some((batch, attempts + 1));
                        continue;
                    }
                    self.shared.counters.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(_) => {
                    self.shared.counters.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    if self.shared.is_empty() {
                        return;
                    }
                }
            }
        }
    }

    /// One PutLogEvents call; the number of events CloudWatch rejected (too old or too new) on success.
    ///
    /// The SDK sends the call (credentials, region, endpoint, signature, retries) but its body is the one
    /// [`put_log_events_body`] writes: the SDK's JSON writer escapes each message a byte at a time into a new
    /// string, and every line is JSON, full of quotes to escape; that took more of the process's work per request
    /// than writing the line did. The SDK is given the group and the stream and no events, and the body it made is
    /// replaced before it is signed.
    async fn put(&mut self, client: &Client, batch: &[LogEvent]) -> Result<usize, Retry> {
        let body = put_log_events_body(&self.config.log_group, &self.log_stream, batch);
        let sent = client
            .put_log_events()
            .log_group_name(&self.config.log_group)
            .log_stream_name(&self.log_stream)
            .set_log_events(Some(Vec::new()))
            .customize()
            .mutate_request(move |request| {
                request.headers_mut().insert("content-length", body.len().to_string());
                *request.body_mut() = SdkBody::from(body.clone());
            })
            .send()
            .await;
        match sent {
            Ok(output) => Ok(output.rejected_log_events_info().map_or(0, |rejected| {
                let too_new = rejected.too_new_log_event_start_index().map_or(0, |start| batch.len() - start as usize);
                let too_old = rejected.too_old_log_event_end_index().map_or(0, |end| end as usize + 1);
                let expired = rejected.expired_log_event_end_index().map_or(0, |end| end as usize + 1);
                (too_new + too_old.max(expired)).min(batch.len())
            })),
            Err(error) => {
                let service = error.as_service_error();
                let retry = if service.is_some_and(|error| error.is_resource_not_found_exception()) {
                    Retry::StreamMissing
                } else if service.is_some_and(|error| {
                    error.is_invalid_parameter_exception() || error.is_data_already_accepted_exception()
                }) {
                    Retry::Never
                } else {
                    Retry::Later
                };
                self.failed_call(format!("PutLogEvents: {}", error_text(&error)));
                Err(retry)
            }
        }
    }

    fn failed_call(&mut self, error: String) {
        self.shared.counters.failed_calls.fetch_add(1, Ordering::Relaxed);
        self.last_error = Some(error);
    }

    /// Writes new losses to stderr, at most once per [`WARN_INTERVAL`].
    fn warn_about_losses(&mut self) {
        let stats = self.shared.stats();
        let (dropped, failed) =
            (stats.dropped - self.warned.stats.dropped, stats.failed_calls - self.warned.stats.failed_calls);
        let due = self.warned.at.is_none_or(|at| at.elapsed() >= WARN_INTERVAL);
        if (dropped > 0 || failed > 0) && due {
            let last_error = self.last_error.take().unwrap_or_default();
            eprintln!(
                "cruddur-telemetry: CloudWatch Logs ({}): {dropped} log events dropped and {failed} calls failed since \
                 the last report; requests are not affected. Last error: {last_error}",
                self.config.log_group
            );
            self.warned = Warned { at: Some(Instant::now()), stats };
        }
    }
}

/// Whether a failed call's batch is worth another try.
enum Retry {
    /// At the next flush (the endpoint is down, answers 500, or throttles).
    Later,
    /// The group or stream is gone: make them, then try again.
    StreamMissing,
    /// CloudWatch refused the batch itself.
    Never,
}

/// An SDK error with its source chain (the SDK's `Display` alone says "dispatch failure" or "service error").
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared { buffer: Mutex::default(), counters: Counters::default(), batch_ready: Notify::new() }
    }

    /// Buffers `line` as the layer does a line it wrote as JSON.
    fn push(shared: &Shared, line: &str) {
        let mut escaped = Vec::new();
        let message_len = escape_cut(line, &mut escaped);
        shared.push(&escaped, message_len);
    }

    /// The events of a PutLogEvents body, as CloudWatch reads them: (timestamp, message).
    fn events_of(body: &[u8]) -> Vec<(i64, String)> {
        let body: serde_json::Value = serde_json::from_slice(body).expect("the body is JSON");
        let events = body["logEvents"].as_array().expect("logEvents");
        events
            .iter()
            .map(|event| (event["timestamp"].as_i64().unwrap(), event["message"].as_str().unwrap().into()))
            .collect()
    }

    #[test]
    fn batches_keep_put_log_events_limits_in_order() {
        let shared = shared();
        let line = "x".repeat(1000);
        for _ in 0..2500 {
            push(&shared, &line);
        }
        let mut sizes = Vec::new();
        loop {
            let batch = shared.take_batch();
            if batch.is_empty() {
                break;
            }
            let bytes: usize = batch.iter().map(LogEvent::size).sum();
            assert!(bytes <= MAX_BATCH_BYTES && batch.len() <= MAX_BATCH_EVENTS);
            assert!(batch.windows(2).all(|pair| pair[0].timestamp <= pair[1].timestamp));
            sizes.push(batch.len());
        }
        // 1026 bytes per event: 1022 fit in a megabyte.
        assert_eq!(sizes, vec![1022, 1022, 456]);
    }

    #[test]
    fn a_batch_spans_less_than_a_day_and_long_lines_are_cut() {
        let shared = shared();
        {
            let mut buffer = shared.buffer.lock().unwrap();
            for timestamp in [0, 1000, MAX_BATCH_SPAN_MS, MAX_BATCH_SPAN_MS + 1] {
                buffer.events.push_back(LogEvent { timestamp, escaped_message: Box::from(&b"a"[..]), size: 27 });
                buffer.bytes += 27;
            }
        }
        assert_eq!(shared.take_batch().len(), 2);
        assert_eq!(shared.take_batch().len(), 2);
        push(&shared, &"é".repeat(MAX_EVENT_BYTES));
        let batch = shared.take_batch();
        assert!(batch[0].size() <= MAX_EVENT_BYTES, "{}", batch[0].size());
        let (_, message) = &events_of(&put_log_events_body("g", "s", &batch))[0];
        assert_eq!(message.len() + EVENT_OVERHEAD_BYTES, batch[0].size());
        assert!(message.len() + EVENT_OVERHEAD_BYTES > MAX_EVENT_BYTES - 2, "{}", message.len());
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let shared = shared();
        let line = "x".repeat(MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES);
        for _ in 0..40 {
            push(&shared, &line);
        }
        assert_eq!(shared.stats().dropped, 8);
    }

    #[test]
    fn the_body_is_put_log_events_json_with_each_line_as_a_string() {
        let lines = [r#"{"fields":{"message":"say \"hi\"\n"},"level":"INFO"}"#, "é", "a\u{1}b\\c"];
        let shared = shared();
        for line in lines {
            push(&shared, line);
        }
        let batch = shared.take_batch();
        let body: serde_json::Value = serde_json::from_slice(&put_log_events_body("cruddur", "a/b", &batch)).unwrap();
        let events: Vec<_> = lines
            .iter()
            .zip(&batch)
            .map(|(line, event)| serde_json::json!({"timestamp": event.timestamp, "message": line}))
            .collect();
        assert_eq!(body, serde_json::json!({"logGroupName": "cruddur", "logStreamName": "a/b", "logEvents": events}));
    }

    #[test]
    fn a_line_logged_while_another_is_written_on_the_same_thread_is_buffered_too() {
        use tracing_subscriber::layer::SubscriberExt as _;

        let shared = Arc::new(shared());
        let layer = CloudWatchLayer { shared: shared.clone(), dispatch: DispatchSlot::default() };
        // Under the global dispatcher, as binaries run, a field whose `Debug` logs is dispatched from inside the
        // outer line's writing, which holds the thread's buffers; a scoped dispatcher would drop it, so the outer
        // line is stood in for by holding the buffers.
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            LINE.with_borrow_mut(|_outer_line| tracing::info!(answer = 42, "the inner line"));
        });
        let batch = shared.take_batch();
        let (_, message) = &events_of(&put_log_events_body("g", "s", &batch))[0];
        let line: serde_json::Value = serde_json::from_str(message).unwrap();
        assert_eq!((&line["fields"]["message"], &line["fields"]["answer"]), (&"the inner line".into(), &42.into()));
    }

    #[test]
    fn stream_names_hold_no_forbidden_characters() {
        let name = stream_name("cruddur-backend");
        assert!(!name.contains(':') && !name.contains('*'), "{name}");
        assert!(name.contains("/cruddur-backend/") && name.ends_with(&format!("/{}", std::process::id())), "{name}");
    }
}
