//! Database spans for every sqlx query, without touching a call site.
//!
//! sqlx 0.8 ends every query with a `tracing` event of target `sqlx::query` (its `QueryLogger`, on drop) that holds
//! the statement (`summary`, and `db.statement` when the statement is longer than the summary), the rows and the
//! elapsed time; it emits it only when a subscriber is interested in that target at the statement's level
//! (`debug` by default, `warn` for slow statements). A layer of this module is interested at every level, and turns each
//! event into an OpenTelemetry client span that started `elapsed` ago and ends now, child of the event's span:
//! `db.system.name=postgresql`, `db.query.text` (the statement with its `$1` placeholders: sqlx never logs the
//! values), `db.namespace`, `server.address`/`server.port` from the [`DatabaseTarget`] the binary declared.
//!
//! The same layer records each query's elapsed time into `db.client.operation.duration` when metrics are on (see
//! [`crate::metrics`]), traced or not: one layer with one filter, since every per-layer filter costs a look-up of the
//! span on each enter and exit of every span.
//!
//! The log output is not affected: the fmt layer keeps its own filter (`RUST_LOG`, default `info`), so per-query
//! events stay out of the log while slow-statement warnings still show. Queries outside any span (migrations at
//! start-up) make no span: they belong to no trace.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_semantic_conventions::attribute::{
    DB_NAMESPACE, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_RESPONSE_RETURNED_ROWS, DB_SYSTEM_NAME, SERVER_ADDRESS,
    SERVER_PORT,
};
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context as LayerContext;
use url::Url;

use crate::TelemetryError;
use crate::context::DispatchSlot;
use crate::metrics::BoundSeries;

/// The `tracing` target sqlx logs its statements under.
pub const SQLX_QUERY_TARGET: &str = "sqlx::query";

/// Which database the queries go to, for the span attributes. Never holds the user or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    /// `db.namespace`: the database name.
    pub namespace: String,
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
}

impl DatabaseTarget {
    /// From a `postgres://user:password@host:port/database` URL (the port defaults to 5432).
    pub fn from_url(url: &str) -> Result<Self, TelemetryError> {
        let invalid = |reason: &str| TelemetryError::DatabaseUrl(reason.to_owned());
        let url = Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(invalid("the scheme must be postgres or postgresql"));
        }
        let namespace = url.path().trim_start_matches('/');
        Ok(Self {
            namespace: if namespace.is_empty() { "postgres".to_owned() } else { namespace.to_owned() },
            server_address: url.host_str().map(str::to_owned),
            server_port: Some(url.port().unwrap_or(5432)),
        })
    }
}

/// Where [`QuerySpans`] reads the target, set after start-up with [`crate::Telemetry::set_database`].
pub(crate) type SharedTarget = Arc<RwLock<Option<Arc<SpanTarget>>>>;

/// A [`DatabaseTarget`] made ready for spans once, when it is set: the attributes hold shared strings, so each
/// query span copies pointers, not text.
#[derive(Debug)]
pub(crate) struct SpanTarget {
    namespace: Arc<str>,
    attributes: Vec<KeyValue>,
}

impl SpanTarget {
    pub(crate) fn new(target: DatabaseTarget) -> Self {
        let namespace: Arc<str> = target.namespace.into();
        let mut attributes = vec![KeyValue::new(DB_NAMESPACE, namespace.clone())];
        if let Some(address) = target.server_address {
            attributes.push(KeyValue::new(SERVER_ADDRESS, Arc::<str>::from(address)));
        }
        if let Some(port) = target.server_port {
            attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
        Self { namespace, attributes }
    }
}

/// The layer turning sqlx's query events into client spans, and into query durations when `durations` is set (see
/// the module doc).
pub(crate) struct QuerySpans<T> {
    tracer: T,
    target: SharedTarget,
    /// `db.client.operation.duration`, when metrics are on.
    durations: Option<Arc<BoundSeries<StringValue>>>,
    /// Where the parent span's context is looked up.
    dispatch: DispatchSlot,
}

impl<T> QuerySpans<T> {
    pub(crate) fn new(tracer: T, target: SharedTarget, durations: Option<Arc<BoundSeries<StringValue>>>) -> Self {
        Self { tracer, target, durations, dispatch: DispatchSlot::default() }
    }
}

impl<S, T> Layer<S> for QuerySpans<T>
where
    S: Subscriber,
    T: Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.dispatch.register(dispatch);
    }

    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        if event.metadata().target() != SQLX_QUERY_TARGET {
            return;
        }
        // Not in a trace, or in one that is not recorded (nothing exported): no span to make.
        let parent = self.dispatch.event_context(event).filter(|parent| parent.span().span_context().is_sampled());
        if parent.is_none() && self.durations.is_none() {
            return;
        }
        let mut query = QueryEvent::default();
        event.record(&mut query);
        let Some(text) = query.take_text() else { return };
        let operation = operation_name(&text);
        if let Some(durations) = &self.durations {
            durations.record(
                query.elapsed.as_secs_f64(),
                |series| series.as_str() == operation.as_str(),
                || {
                    let attributes = vec![
                        KeyValue::new(DB_SYSTEM_NAME, "postgresql"),
                        KeyValue::new(DB_OPERATION_NAME, operation.clone()),
                    ];
                    (operation.clone(), attributes)
                },
            );
        }
        let Some(parent) = parent else { return };
        let end = SystemTime::now();
        let start = end.checked_sub(query.elapsed).unwrap_or(end);
        let target = self.target.read().ok().and_then(|target| target.clone());
        let name = match &target {
            Some(target) => format!("{operation} {}", target.namespace),
            None => operation.to_string(),
        };

        let mut attributes = Vec::with_capacity(4 + target.as_ref().map_or(0, |target| target.attributes.len()));
        attributes.extend([
            KeyValue::new(DB_SYSTEM_NAME, "postgresql"),
            KeyValue::new(DB_QUERY_TEXT, text),
            KeyValue::new(DB_OPERATION_NAME, operation),
            KeyValue::new(DB_RESPONSE_RETURNED_ROWS, query.rows_returned as i64),
        ]);
        if let Some(target) = target {
            attributes.extend(target.attributes.iter().cloned());
        }
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes);
        let mut span = self.tracer.build_with_context(builder, &parent);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, end);
    }
}

/// The statement's first word in capitals (`db.operation.name`), without allocating for the usual ones.
pub(crate) fn operation_name(text: &str) -> StringValue {
    const KNOWN: [&str; 8] = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK"];
    let word = text.split_whitespace().next().unwrap_or_default();
    match KNOWN.into_iter().find(|known| known.eq_ignore_ascii_case(word)) {
        Some(known) => known.into(),
        None => word.to_ascii_uppercase().into(),
    }
}

/// The fields of one `sqlx::query` event.
#[derive(Default)]
struct QueryEvent {
    summary: Option<Arc<str>>,
    statement: Option<Arc<str>>,
    rows_returned: u64,
    elapsed: Duration,
}

impl QueryEvent {
    /// The whole statement: sqlx sends it in `db.statement` (padded with newlines) unless it is no longer than the
    /// summary, its first four words.
    fn take_text(&mut self) -> Option<Arc<str>> {
        self.statement.take().or_else(|| self.summary.take())
    }
}

/// The trimmed value, shared, or `None` when blank.
fn shared(value: &str) -> Option<Arc<str>> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.into())
}

impl Visit for QueryEvent {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = shared(value),
            "db.statement" => self.statement = shared(value),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows_returned = value;
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = Duration::try_from_secs_f64(value).unwrap_or_default();
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {
        // The Debug-only fields (`elapsed`, `slow_threshold`) repeat what `elapsed_secs` says.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_comes_from_the_url_without_credentials() {
        let target = DatabaseTarget::from_url("postgresql://postgres:password@db:5432/cruddur").unwrap();
        assert_eq!(
            target,
            DatabaseTarget { namespace: "cruddur".into(), server_address: Some("db".into()), server_port: Some(5432) }
        );
        let default_port = DatabaseTarget::from_url("postgres://localhost/cruddur").unwrap();
        assert_eq!(default_port.server_port, Some(5432));
        assert!(DatabaseTarget::from_url("mysql://db/cruddur").is_err());
        let error = DatabaseTarget::from_url("not a url with secret").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn the_statement_is_preferred_to_the_summary() {
        let mut short = QueryEvent { summary: shared("SELECT 1"), statement: shared(""), ..QueryEvent::default() };
        assert_eq!(short.take_text().as_deref(), Some("SELECT 1"));
        let mut long = QueryEvent {
            summary: shared("SELECT * FROM activities …"),
            statement: shared("\n\nSELECT * FROM activities WHERE handle = $1\n"),
            ..QueryEvent::default()
        };
        assert_eq!(long.take_text().as_deref(), Some("SELECT * FROM activities WHERE handle = $1"));
        assert_eq!(QueryEvent::default().take_text(), None);
    }

    #[test]
    fn operations_are_named_in_capitals() {
        assert_eq!(operation_name("select 1").as_str(), "SELECT");
        assert_eq!(operation_name("\n  WITH x AS (SELECT 1) SELECT * FROM x").as_str(), "WITH");
        assert_eq!(operation_name("vacuum activities").as_str(), "VACUUM");
        assert_eq!(operation_name("").as_str(), "");
    }
}
