//! Errors in traces: an [`Exception`] is what went wrong in a request (a 5xx answer, a failed query, a panic), and
//! [`Exception::record`] puts it on a span as the OpenTelemetry `exception` event (`exception.type`,
//! `exception.message`, `exception.stacktrace`) with the span's status set to error. opentelemetry-aws turns that
//! event into the X-Ray segment's `cause.exceptions` (with `fault` for a 5xx), and Honeycomb shows it as a span event.
//!
//! A handler's error says what it was by putting its [`Exception`] in the response's extensions; the
//! [`crate::signals::SignalsLayer`] records it on the server span and reports it (Rollbar). Panics are caught there
//! too: [`catch_panics`] installs a panic hook that keeps the panic's message, location and backtrace for the thread
//! that panicked while a request runs on it, so the 500 answer carries the whole story while the process keeps
//! serving; panics outside requests go to the previous hook as before.

use std::any::Any;
use std::backtrace::Backtrace;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::Once;

use opentelemetry::KeyValue;
use opentelemetry::trace::Status;
use opentelemetry_semantic_conventions::attribute::{EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE, EXCEPTION_TYPE};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `exception.type` of a caught panic.
pub const PANIC_TYPE: &str = "panic";

/// One error, as a span event and a Rollbar item describe it. Cheap to clone: it travels in response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// `exception.type`: the error's type (`sqlx::error::Error`), [`PANIC_TYPE`], or the HTTP status of a bare 5xx.
    pub kind: Cow<'static, str>,
    /// `exception.message`: the error and its sources, `: `-separated.
    pub message: String,
    /// `exception.stacktrace`: a backtrace in Rust's format, when there is one (panics).
    pub stacktrace: Option<String>,
}

impl Exception {
    pub fn new(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { kind: kind.into(), message: message.into(), stacktrace: None }
    }

    /// `error` named by its type, its message followed by those of its sources.
    pub fn from_error<E: std::error::Error + 'static>(error: &E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::new(std::any::type_name::<E>(), message)
    }

    /// A 5xx answer that came without an exception of its own.
    pub fn from_status(status: http::StatusCode) -> Self {
        Self::new(format!("HTTP {}", status.as_u16()), status.canonical_reason().unwrap_or("server error"))
    }

    pub fn with_stacktrace(self, stacktrace: impl Into<String>) -> Self {
        Self { stacktrace: Some(stacktrace.into()), ..self }
    }

    /// Adds the `exception` event to `span` and sets its status to error with the message.
    pub fn record(&self, span: &tracing::Span) {
        let mut attributes = vec![
            KeyValue::new(EXCEPTION_TYPE, self.kind.to_string()),
            KeyValue::new(EXCEPTION_MESSAGE, self.message.clone()),
        ];
        if let Some(stacktrace) = &self.stacktrace {
            attributes.push(KeyValue::new(EXCEPTION_STACKTRACE, stacktrace.clone()));
        }
        span.add_event("exception", attributes);
        span.set_status(Status::error(self.message.clone()));
    }
}

thread_local! {
    /// How many requests are being polled on this thread (a request polling another one's future counts twice).
    static IN_REQUEST: Cell<u32> = const { Cell::new(0) };
    /// What the hook saw of the last panic in a request on this thread, until [`take_panic`] takes it.
    static LAST_PANIC: RefCell<Option<Exception>> = const { RefCell::new(None) };
}

/// Installs the panic hook (once per process; later calls do nothing).
pub fn catch_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_REQUEST.get() == 0 {
                return previous(info);
            }
            let location = info.location().map(|location| format!(" at {location}")).unwrap_or_default();
            let message = format!("{}{location}", payload_text(info.payload()));
            let exception = Exception::new(PANIC_TYPE, message).with_stacktrace(Backtrace::force_capture().to_string());
            LAST_PANIC.set(Some(exception));
        }));
    });
}

/// Marks the current thread as running a request while the guard lives, so the hook keeps its panics.
pub(crate) struct InRequest(());

impl InRequest {
    pub(crate) fn enter() -> Self {
        IN_REQUEST.set(IN_REQUEST.get() + 1);
        Self(())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        IN_REQUEST.set(IN_REQUEST.get().saturating_sub(1));
    }
}

/// The exception of the panic that unwound with `payload` on this thread: the hook's, or (without the hook) one
/// made from the payload alone.
pub(crate) fn take_panic(payload: &(dyn Any + Send)) -> Exception {
    LAST_PANIC.take().unwrap_or_else(|| Exception::new(PANIC_TYPE, payload_text(payload)))
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
fn payload_text(payload: &(dyn Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connecting to the database")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_is_named_by_its_type_and_says_its_sources() {
        let error = Outer(std::io::Error::other("connection refused"));
        let exception = Exception::from_error(&error);
        assert!(exception.kind.ends_with("exceptions::tests::Outer"), "{}", exception.kind);
        assert_eq!(exception.message, "connecting to the database: connection refused");
        assert_eq!(exception.stacktrace, None);
    }

    #[test]
    fn a_bare_server_error_is_named_by_its_status() {
        let exception = Exception::from_status(http::StatusCode::BAD_GATEWAY);
        assert_eq!((exception.kind.as_ref(), exception.message.as_str()), ("HTTP 502", "Bad Gateway"));
    }

    #[test]
    fn the_hook_keeps_a_request_panic_with_its_location_and_backtrace() {
        catch_panics();
        let payload = {
            let _request = InRequest::enter();
            std::panic::catch_unwind(|| panic!("the feed is {}", "broken")).unwrap_err()
        };
        let exception = take_panic(payload.as_ref());
        assert_eq!(exception.kind, PANIC_TYPE);
        assert!(exception.message.starts_with("the feed is broken at "), "{}", exception.message);
        assert!(exception.message.contains("exceptions.rs"), "{}", exception.message);
        assert!(exception.stacktrace.is_some_and(|trace| !trace.is_empty()));
        // Taken once: a later panic without the hook's record is described by its payload alone.
        assert_eq!(take_panic(&"plain"), Exception::new(PANIC_TYPE, "plain"));
    }
}
