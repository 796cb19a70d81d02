//! The OpenTelemetry context of an event, for code that runs inside the subscriber (the database-span layer, the log
//! formatter), where `opentelemetry::Context::current()` is not kept up to date.
//!
//! The OpenTelemetry layer runs without context activation: attaching and detaching a context at every poll of every
//! instrumented future costs CPU on every request, traced or not (measured in the README). The two places that need
//! the context look it up
//! from the event's span instead, through the [`Dispatch`] the subscriber was registered with (inside a subscriber
//! callback, `tracing::dispatcher::get_default` only sees the global default, not one set with `set_default` as
//! tests do).

use std::sync::{Arc, OnceLock};

use opentelemetry::Context;
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event};
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

/// The dispatch a layer was registered with (see [`tracing_subscriber::Layer::on_register_dispatch`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct DispatchSlot(Arc<OnceLock<WeakDispatch>>);

impl DispatchSlot {
    pub(crate) fn register(&self, dispatch: &Dispatch) {
        // A layer serves one subscriber: the first registration is the one.
        let _ = self.0.set(dispatch.downgrade());
    }

    /// The context of the innermost span around `event` that the OpenTelemetry layer traces (spans it filters out,
    /// such as `debug` ones, are skipped); `None` outside any traced span or before registration. The subscriber
    /// must be built on a [`Registry`], as [`crate::init`] builds it.
    pub(crate) fn event_context(&self, event: &Event<'_>) -> Option<Context> {
        let dispatch = self.0.get()?.upgrade()?;
        let start =
            if event.is_contextual() { dispatch.current_span().id().cloned() } else { event.parent().cloned() }?;
        let registry = dispatch.downcast_ref::<Registry>()?;
        registry.span(&start)?.scope().find_map(|span| tracing_opentelemetry::get_otel_context(&span.id(), &dispatch))
    }
}
