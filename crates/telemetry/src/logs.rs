//! Log lines: `tracing-subscriber`'s fmt layer, filtered by `RUST_LOG` (default `info`), as one-line text (coloured
//! on a terminal), multi-line pretty text, or JSON, each line carrying the OpenTelemetry trace id of the span it was
//! logged in, so a line leads to its trace in Honeycomb (and, with `1-` and a dash after 8 digits, in X-Ray). JSON
//! lines (stdout's `json` format, and CloudWatch Logs) hold the event's fields, its span's name, `trace_id` and
//! `span_id`, not the fields of the spans around it: those are in the trace.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::thread::LocalKey;

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::TelemetryError;
use crate::config::{ConfigError, LogConfig, LogFormat};
use crate::context::DispatchSlot;

/// A log layer boxed so that each format fits one type.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

/// The log layer `config` asks for, writing to stdout; `None` when logs are off.
pub fn stdout_layer<S>(config: &LogConfig) -> Result<Option<BoxedLayer<S>>, TelemetryError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    layer(config, std::io::stdout, std::io::stdout().is_terminal())
}

/// The log layer `config` asks for, writing to `writer`, with ANSI colours in text formats when `ansi`.
pub fn layer<S, W>(config: &LogConfig, writer: W, ansi: bool) -> Result<Option<BoxedLayer<S>>, TelemetryError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = log_filter(&config.filter)?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    let dispatch = DispatchSlot::default();
    let layer: BoxedLayer<S> = match config.format {
        LogFormat::Off => return Ok(None),
        LogFormat::Text => {
            let format =
                WithTraceId { inner: format::format().with_ansi(ansi), style: Style::Line, dispatch: dispatch.clone() };
            fmt.event_format(format).with_filter(filter).boxed()
        }
        LogFormat::Pretty => {
            let format = WithTraceId {
                inner: format::format().pretty().with_ansi(ansi),
                style: Style::Pretty,
                dispatch: dispatch.clone(),
            };
            fmt.pretty().event_format(format).with_filter(filter).boxed()
        }
        LogFormat::Json => {
            let format = JsonLines { dispatch: dispatch.clone() };
            fmt.fmt_fields(SpanNamesOnly).event_format(format).with_filter(filter).boxed()
        }
    };
    // The formatter has no registration hook of its own; this layer, interested in nothing, lends it one. It goes
    // inside: a tree of layers over the registry takes its level hint from the outer one (tracing-subscriber 0.3),
    // and this layer's `OFF` outside would turn every event off where the log layer is the only one.
    let layer = RegisterDispatch(dispatch).with_filter(LevelFilter::OFF).and_then(layer).boxed();
    Ok(Some(layer))
}

/// `RUST_LOG` as a per-layer filter. Directives by target and level only (`info`, `warn,cruddur=debug`) become
/// [`Targets`], decided once per call site; an [`EnvFilter`] serves the others (`[span{field=value}]`), and for every
/// span it takes a lock on each enter and exit to track which spans it filters by, a cost each poll of an
/// instrumented future would pay.
pub(crate) fn log_filter<S>(directives: &str) -> Result<BoxedFilter<S>, ConfigError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let env_filter = EnvFilter::try_new(directives)
        .map_err(|error| ConfigError { variable: "RUST_LOG", reason: error.to_string() })?;
    let by_target_and_level = !directives.contains(['[', '{']);
    match directives.parse::<Targets>() {
        Ok(targets) if by_target_and_level => Ok(Box::new(targets)),
        _ => Ok(Box::new(env_filter)),
    }
}

/// A per-layer filter boxed so that each kind fits one type.
pub(crate) type BoxedFilter<S> = Box<dyn Filter<S> + Send + Sync + 'static>;

/// The span fields the formatter keeps: none. JSON lines name their span and the trace holds the spans' fields, so
/// recording them for each span would be work no line reads.
struct SpanNamesOnly;

impl<'writer> FormatFields<'writer> for SpanNamesOnly {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, _fields: R) -> fmt::Result {
        writer.write_str("{}")
    }

    fn add_fields(&self, _current: &'writer mut FormattedFields<Self>, _fields: &Record<'_>) -> fmt::Result {
        Ok(())
    }
}

/// How the trace id is added to what the inner formatter wrote.
#[derive(Clone, Copy)]
enum Style {
    /// ` trace_id=...` at the end of the line.
    Line,
    /// An indented `trace_id: ...` line, as the pretty format lays out fields.
    Pretty,
}

/// Adds the current OpenTelemetry trace (and span) id to the line of an inner formatter.
struct WithTraceId<F> {
    inner: F,
    style: Style,
    dispatch: DispatchSlot,
}

/// Registers the subscriber's dispatch in the formatter's [`DispatchSlot`], and does nothing else.
struct RegisterDispatch(DispatchSlot);

impl<S: Subscriber> Layer<S> for RegisterDispatch {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.0.register(dispatch);
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(cx) = self.dispatch.event_context(event) else { return self.inner.format_event(ctx, writer, event) };
        let span = cx.span();
        let ids = span.span_context();
        with_thread_buffer(&LINE, |line| {
            line.clear();
            self.inner.format_event(ctx, Writer::new(line), event)?;
            let body = line.trim_end_matches('\n');
            match self.style {
                Style::Line => writeln!(writer, "{body} trace_id={}", ids.trace_id()),
                Style::Pretty => writeln!(writer, "{body}\n    trace_id: {}\n", ids.trace_id()),
            }
        })
    }
}

/// Runs `write` with this thread's `buffer`, or with a fresh one when the thread's is in use: a field whose `Debug`
/// logs is formatted while its own line holds the buffer, and under the global dispatcher tracing dispatches that
/// inner line too (as `tracing-subscriber`'s fmt layer does with its own buffer).
pub(crate) fn with_thread_buffer<T: Default, R>(
    buffer: &'static LocalKey<RefCell<T>>,
    write: impl FnOnce(&mut T) -> R,
) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut held) => write(&mut held),
        Err(_) => write(&mut T::default()),
    })
}

/// JSON lines (stdout's `json` format), through [`json_line`].
struct JsonLines {
    dispatch: DispatchSlot,
}

thread_local! {
    static JSON_LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let span = ctx.parent_span();
        let context = self.dispatch.event_context(event);
        with_thread_buffer(&JSON_LINE, |line| {
            line.clear();
            json_line(line, event, span.as_ref().map(|span| span.name()), context.as_ref());
            writer.write_str(std::str::from_utf8(line).map_err(|_| fmt::Error)?)?;
            writer.write_char('\n')
        })
    }
}

/// A [`JsonText`] of a string literal, both forms made when compiling.
macro_rules! json_text {
    ($plain:literal) => {{
        const PLAIN: &str = $plain;
        const NESTED: [u8; crate::logs::nested_len(PLAIN)] = crate::logs::nested(PLAIN);
        crate::logs::JsonText { plain: PLAIN, nested: &NESTED }
    }};
}

/// `event` as one JSON object, written to `out` (without a newline), in the shape of `tracing-subscriber`'s JSON
/// format: `{"timestamp":…,"level":…,"fields":{…},"target":…,"span":{"name":…},"trace_id":…,"span_id":…}`. `span`
/// (the innermost span around the event) is there inside a span, the ids inside a traced one (`context`).
///
/// Written directly rather than through `tracing-subscriber`'s formatter, which collects the fields into a map of
/// JSON values and reads the span's recorded fields back as JSON for each line: the access log writes one line per
/// request, to the console and to CloudWatch.
pub(crate) fn json_line(out: &mut impl JsonOut, event: &Event<'_>, span: Option<&str>, context: Option<&Context>) {
    let metadata = event.metadata();
    out.text(&json_text!("{\"timestamp\":\""));
    rfc3339_micros(out, std::time::SystemTime::now());
    out.text(&json_text!("\",\"level\":\""));
    out.raw(metadata.level().as_str().as_bytes());
    out.text(&json_text!("\",\"fields\":{"));
    event.record(&mut JsonFields { out: &mut *out, first: true, text: String::new() });
    out.text(&json_text!("},\"target\":"));
    out.string(metadata.target());
    if let Some(span) = span {
        out.text(&json_text!(",\"span\":{\"name\":"));
        out.string(span);
        out.raw(b"}");
    }
    if let Some(context) = context {
        let span = context.span();
        let ids = span.span_context();
        out.text(&json_text!(",\"trace_id\":\""));
        hex(out, &ids.trace_id().to_bytes());
        out.text(&json_text!("\",\"span_id\":\""));
        hex(out, &ids.span_id().to_bytes());
        out.text(&json_text!("\""));
    }
    out.raw(b"}");
}

/// Where [`json_line`] writes: a line of JSON (`Vec<u8>`), or the same line as the inside of a JSON string
/// ([`Nested`]), as CloudWatch Logs takes it for an event's message. Writing the nested form directly spares a
/// second pass over every line, and a line is a quote every few bytes.
pub(crate) trait JsonOut {
    /// JSON known when compiling, in both forms (see [`json_text!`]).
    fn text(&mut self, text: &JsonText);
    /// Bytes that read the same in both forms (no `"`, `\` or control characters): names, digits, hex.
    fn raw(&mut self, bytes: &[u8]);
    /// `value` as a JSON string, quoted and escaped.
    fn string(&mut self, value: &str);
    /// A JSON number, `true`, `false` or `null`, which read the same in both forms.
    fn number(&mut self, value: impl serde::Serialize);
}

/// A piece of JSON, and the same as it is written inside a JSON string.
pub(crate) struct JsonText {
    plain: &'static str,
    nested: &'static [u8],
}

/// How long `plain` is once escaped as the inside of a JSON string (it holds no control characters).
pub(crate) const fn nested_len(plain: &str) -> usize {
    let bytes = plain.as_bytes();
    let (mut length, mut index) = (bytes.len(), 0);
    while index < bytes.len() {
        if bytes[index] == b'"' || bytes[index] == b'\\' {
            length += 1;
        }
        index += 1;
    }
    length
}

/// `plain` escaped as the inside of a JSON string; `N` is [`nested_len`] of it.
pub(crate) const fn nested<const N: usize>(plain: &str) -> [u8; N] {
    let bytes = plain.as_bytes();
    let mut nested = [0; N];
    let (mut from, mut to) = (0, 0);
    while from < bytes.len() {
        assert!(bytes[from] >= 0x20, "JSON text holds no control characters");
        if bytes[from] == b'"' || bytes[from] == b'\\' {
            nested[to] = b'\\';
            to += 1;
        }
        nested[to] = bytes[from];
        to += 1;
        from += 1;
    }
    nested
}

impl JsonOut for Vec<u8> {
    fn text(&mut self, text: &JsonText) {
        self.extend_from_slice(text.plain.as_bytes());
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn string(&mut self, value: &str) {
        // Writing to a Vec cannot fail, and a str always serializes.
        let _ = serde_json::to_writer(self, value);
    }

    fn number(&mut self, value: impl serde::Serialize) {
        // A non-finite float serializes as `null`; writing to a Vec cannot fail.
        let _ = serde_json::to_writer(self, &value);
    }
}

/// The line as the inside of a JSON string, written to `out`, counting how long the line itself is.
pub(crate) struct Nested<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    /// The length of the line as JSON (what CloudWatch counts of a message).
    pub(crate) plain_len: usize,
    /// A string value as JSON, before its second escaping (kept by the caller, so that lines reuse it).
    scratch: &'a mut Vec<u8>,
}

impl<'a> Nested<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, scratch: &'a mut Vec<u8>) -> Self {
        Self { out, plain_len: 0, scratch }
    }
}

impl JsonOut for Nested<'_> {
    fn text(&mut self, text: &JsonText) {
        self.out.extend_from_slice(text.nested);
        self.plain_len += text.plain.len();
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.plain_len += bytes.len();
    }

    fn string(&mut self, value: &str) {
        self.scratch.clear();
        self.scratch.string(value);
        self.plain_len += self.scratch.len();
        // The JSON string's own escapes are `\` and `"` followed by what needs no escaping, so a backslash before
        // each of those two is the whole second escaping.
        let mut unescaped = 0;
        for (index, &byte) in self.scratch.iter().enumerate() {
            if byte == b'"' || byte == b'\\' {
                self.out.extend_from_slice(&self.scratch[unescaped..index]);
                self.out.push(b'\\');
                unescaped = index;
            }
        }
        self.out.extend_from_slice(&self.scratch[unescaped..]);
    }

    fn number(&mut self, value: impl serde::Serialize) {
        let before = self.out.len();
        self.out.number(value);
        self.plain_len += self.out.len() - before;
    }
}

thread_local! {
    /// The second [`rfc3339_micros`] wrote last, and its text up to the fraction.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `time` in RFC 3339, UTC, to the microsecond (`2026-12-04T03:14:35.044898Z`), as `tracing-subscriber`'s JSON
/// format writes it. Date and time of day are formatted once a second on each thread, the fraction on each call:
/// formatting a whole date took a fifth of a line's work, and a busy process logs many lines a second.
fn rfc3339_micros(out: &mut impl JsonOut, time: std::time::SystemTime) {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(formatted, text)| {
        if *formatted != second {
            text.clear();
            let date_time = chrono::DateTime::from_timestamp(second as i64, 0).unwrap_or_default();
            let _ = write!(text, "{}", date_time.format("%Y-%m-%dT%H:%M:%S"));
            *formatted = second;
        }
        out.raw(text.as_bytes());
    });
    let micros = since_epoch.subsec_micros();
    let mut fraction = *b".000000Z";
    for (digit, place) in fraction[1..7].iter_mut().zip([100_000, 10_000, 1_000, 100, 10, 1]) {
        *digit = b'0' + (micros / place % 10) as u8;
    }
    out.raw(&fraction);
}

/// `bytes` (an id, at most 16 bytes) in lowercase hexadecimal, as trace and span ids are written.
fn hex(out: &mut impl JsonOut, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0; 32];
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&[DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 0xf)]]);
    }
    out.raw(&text[..2 * bytes.len().min(16)]);
}

/// A field's name as a JSON object's key: field names are nearly always identifiers, with nothing to escape.
fn json_key(out: &mut impl JsonOut, name: &str) {
    if name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.')) {
        out.text(&json_text!("\""));
        out.raw(name.as_bytes());
        out.text(&json_text!("\":"));
    } else {
        out.string(name);
        out.raw(b":");
    }
}

/// Writes an event's fields as the members of a JSON object.
struct JsonFields<'a, O> {
    out: &'a mut O,
    first: bool,
    /// Scratch space for values formatted with `Debug` or `Display`.
    text: String,
}

impl<O: JsonOut> JsonFields<'_, O> {
    fn key(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            self.out.raw(b",");
        }
        json_key(self.out, field.name());
    }

    fn number(&mut self, field: &Field, value: impl serde::Serialize) {
        self.key(field);
        self.out.number(value);
    }
}

impl<O: JsonOut> Visit for JsonFields<'_, O> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.out.string(value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text.clear();
        let _ = write!(self.text, "{value}");
        self.key(field);
        self.out.string(&self.text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text.clear();
        let _ = write!(self.text, "{value:?}");
        self.key(field);
        self.out.string(&self.text);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_in_utc_to_the_microsecond() {
        let written = |time| {
            let mut line = Vec::new();
            rfc3339_micros(&mut line, time);
            String::from_utf8(line).unwrap()
        };
        let time = UNIX_EPOCH + Duration::new(1_796_354_075, 44_898_999);
        assert_eq!(written(time), "2026-12-04T03:14:35.044898Z");
        // The same second again comes from the cache; the next one does not.
        assert_eq!(written(time + Duration::from_micros(7)), "2026-12-04T03:14:35.044905Z");
        assert_eq!(written(time + Duration::from_secs(86_400)), "2026-12-05T03:14:35.044898Z");
        assert_eq!(written(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn the_nested_form_is_the_line_escaped_as_a_json_string() {
        fn write(out: &mut impl JsonOut) {
            for value in ["plain", "say \"hi\"", "back\\slash", "new\nline\ttab\u{1}", "é 𝄞", "\\\"", ""] {
                out.text(&json_text!("{\"a\\b\":"));
                out.string(value);
                out.raw(b",");
                out.number(-1.5);
                out.number(f64::NAN);
                json_key(out, "odd \"key\"");
            }
        }
        let mut line = Vec::new();
        write(&mut line);
        let (mut escaped, mut scratch) = (Vec::new(), Vec::new());
        let mut nested = Nested::new(&mut escaped, &mut scratch);
        write(&mut nested);
        let plain_len = nested.plain_len;
        let read: String = serde_json::from_slice(&[b"\"", escaped.as_slice(), b"\""].concat()).unwrap();
        assert_eq!(read.as_bytes(), line.as_slice());
        assert_eq!(plain_len, line.len());
        assert!(read.contains(r#"{"a\b":"say \"hi\"",-1.5null"odd \"key\"":"#), "{read}");
    }

    #[test]
    fn a_json_line_logged_while_another_is_written_on_the_same_thread_is_written_too() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt as _;

        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let captured = Captured::default();
        let writer = captured.clone();
        let config = LogConfig { format: LogFormat::Json, filter: "info".into() };
        let layer = layer(&config, move || writer.clone(), false).unwrap().expect("a log layer");
        // The outer line is stood in for by holding the thread's buffer (see the CloudWatch layer's like test).
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            JSON_LINE.with_borrow_mut(|_outer_line| tracing::info!(answer = 42, "the inner line"));
        });
        let written = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(written.trim_end()).unwrap();
        assert_eq!((&line["fields"]["message"], &line["fields"]["answer"]), (&"the inner line".into(), &42.into()));
    }

    #[test]
    fn ids_are_lowercase_hex_and_odd_keys_are_escaped() {
        let mut line = Vec::new();
        hex(&mut line, &[0x0a, 0xf7, 0x65, 0x00]);
        json_key(&mut line, "http.route");
        json_key(&mut line, "a \"quoted\" key");
        assert_eq!(String::from_utf8(line).unwrap(), r#"0af76500"http.route":"a \"quoted\" key":"#);
    }
}
