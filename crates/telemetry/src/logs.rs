//! Log lines: `tracing-subscriber`'s fmt layer, filtered by `RUST_LOG` (default `info`), as one-line text (coloured
//! on a terminal), multi-line pretty text, or JSON, each line carrying the OpenTelemetry trace id of the span it was
//! logged in, so a line leads to its trace in Honeycomb (and, with `1-` and a dash after 8 digits, in X-Ray). JSON
//! lines (stdout's `json` format, and CloudWatch Logs) hold the event's fields, its span's name, `trace_id` and
//! `span_id`, not the fields of the spans around it: those are in the trace.

use std::cell::RefCell;
use std::fmt;
use std::io::IsTerminal;

use opentelemetry::trace::TraceContextExt;
use tracing::span::Record;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
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
    let filter = EnvFilter::try_new(&config.filter)
        .map_err(|error| ConfigError { variable: "RUST_LOG", reason: error.to_string() })?;
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
            // The line names its span (`span.name`, `trace_id`, `span_id`) and the trace holds the spans' fields:
            // copying them into every line would cost formatting each span's fields as JSON, and parsing them back
            // for each line.
            let json = format::format().json().with_span_list(false);
            let format = WithTraceId { inner: json, style: Style::Json, dispatch: dispatch.clone() };
            fmt.json().fmt_fields(SpanNamesOnly).event_format(format).with_filter(filter).boxed()
        }
    };
    // The formatter has no registration hook of its own; this layer, interested in nothing, lends it one.
    let layer = layer.and_then(RegisterDispatch(dispatch).with_filter(LevelFilter::OFF)).boxed();
    Ok(Some(layer))
}

/// The span fields JSON lines carry: none, as the empty object the JSON formatter reads back, so that its `span`
/// member holds the span's name only (the event's own fields are written by the event formatter itself).
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
    /// `"trace_id"` and `"span_id"` members at the end of the JSON object.
    Json,
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
        LINE.with_borrow_mut(|line| {
            line.clear();
            self.inner.format_event(ctx, Writer::new(line), event)?;
            let body = line.trim_end_matches('\n');
            match self.style {
                Style::Line => writeln!(writer, "{body} trace_id={}", ids.trace_id()),
                Style::Pretty => writeln!(writer, "{body}\n    trace_id: {}\n", ids.trace_id()),
                Style::Json => match body.strip_suffix('}') {
                    Some(object) => {
                        writeln!(writer, r#"{object},"trace_id":"{}","span_id":"{}"}}"#, ids.trace_id(), ids.span_id())
                    }
                    None => writeln!(writer, "{body}"),
                },
            }
        })
    }
}
