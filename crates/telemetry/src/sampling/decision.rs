//! The sampling decisions a trace carries in its W3C `tracestate`, so that every span of the trace, in this service
//! and downstream, agrees on which exporters take it.
//!
//! Two entries, each present or not, together with the W3C `sampled` flag ("recorded"):
//!
//! | `xray` | `otlp` | sampled | [`TraceDecisions`] | meaning |
//! |---|---|---|---|---|
//! | `1` | - | set | X-Ray [`Sampled`](XrayDecision::Sampled), OTLP [`Takes`](OtlpDecision::Takes) | both exporters take the trace (OTLP when it is on) |
//! | `1` | `0` | set | X-Ray `Sampled`, OTLP [`Declined`](OtlpDecision::Declined) | recorded for X-Ray only |
//! | `0` | - | set | X-Ray [`NotSampled`](XrayDecision::NotSampled), OTLP `Takes` | recorded for OTLP only |
//! | - | - | set | X-Ray [`Undecided`](XrayDecision::Undecided), OTLP `Takes` | a caller that made no X-Ray decision (the browser, any W3C caller): the local root makes it |
//! | any | `?` | set | OTLP [`Undecided`](OtlpDecision::Undecided) | only on a caller's context: a caller known by its `X-Amzn-Trace-Id` (a load balancer, an X-Ray SDK) made no OTLP decision; this service's sampler makes it, and the entry goes no further |
//! | any | any | unset | - | not recorded: neither exporter takes it |
//!
//! `xray=0` with `otlp=0` is never written: a trace neither takes is not recorded at all.
//!
//! `X-Amzn-Trace-Id` reads into the same states ([`crate::propagation`]): `Sampled=1` is `xray=1`, `Sampled=0` is
//! `xray=0`, and `Sampled=?` or none (the X-Ray propagator's deferred flag) leaves X-Ray undecided; each comes with
//! `otlp=?`. Going out, `Sampled=` is the X-Ray decision.

use opentelemetry::trace::{SpanContext, TraceState};

/// The `tracestate` key of the X-Ray decision.
pub const XRAY_DECISION_KEY: &str = "xray";

/// The `tracestate` key of the OTLP decision.
pub const OTLP_DECISION_KEY: &str = "otlp";

/// X-Ray's decision for a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrayDecision {
    /// `xray=1`.
    Sampled,
    /// `xray=0`.
    NotSampled,
    /// No entry: nobody upstream decided.
    Undecided,
}

/// OTLP's decision for a recorded trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpDecision {
    /// No entry: OTLP takes what is recorded.
    Takes,
    /// `otlp=0`: recorded for X-Ray only.
    Declined,
    /// `otlp=?`: a caller's context only; this service's sampler decides.
    Undecided,
}

/// Both decisions, as a trace's `tracestate` carries them (see the module doc for every state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceDecisions {
    pub xray: XrayDecision,
    pub otlp: OtlpDecision,
}

impl Default for TraceDecisions {
    /// A new trace: nothing decided for X-Ray, OTLP takes what is recorded.
    fn default() -> Self {
        Self { xray: XrayDecision::Undecided, otlp: OtlpDecision::Takes }
    }
}

impl XrayDecision {
    fn entry(self) -> Option<&'static str> {
        match self {
            Self::Sampled => Some("1"),
            Self::NotSampled => Some("0"),
            Self::Undecided => None,
        }
    }

    fn from_entry(entry: Option<&str>) -> Self {
        match entry {
            Some("1") => Self::Sampled,
            Some("0") => Self::NotSampled,
            _ => Self::Undecided,
        }
    }

    /// From a yes or no.
    pub fn of(sampled: bool) -> Self {
        if sampled { Self::Sampled } else { Self::NotSampled }
    }
}

impl OtlpDecision {
    fn entry(self) -> Option<&'static str> {
        match self {
            Self::Takes => None,
            Self::Declined => Some("0"),
            Self::Undecided => Some("?"),
        }
    }

    fn from_entry(entry: Option<&str>) -> Self {
        match entry {
            Some("0") => Self::Declined,
            Some("?") => Self::Undecided,
            _ => Self::Takes,
        }
    }
}

impl TraceDecisions {
    pub fn read(trace_state: &TraceState) -> Self {
        Self {
            xray: XrayDecision::from_entry(trace_state.get(XRAY_DECISION_KEY)),
            otlp: OtlpDecision::from_entry(trace_state.get(OTLP_DECISION_KEY)),
        }
    }

    /// `trace_state` with these decisions: the entries that differ are set (first, as W3C orders updated entries)
    /// or removed; the other vendors' entries stay.
    pub fn write(self, trace_state: &TraceState) -> TraceState {
        let current = Self::read(trace_state);
        let mut written = trace_state.clone();
        let changes = [
            (XRAY_DECISION_KEY, current.xray != self.xray, self.xray.entry()),
            (OTLP_DECISION_KEY, current.otlp != self.otlp, self.otlp.entry()),
        ];
        for (key, changed, entry) in changes {
            if changed {
                written = match entry {
                    Some(value) => written.insert(key, value),
                    None => written.delete(key),
                }
                .unwrap_or(written);
            }
        }
        written
    }

    /// `trace_state` without our entries (what a propagator speaking only X-Ray may see).
    pub fn remove(trace_state: &TraceState) -> TraceState {
        [XRAY_DECISION_KEY, OTLP_DECISION_KEY]
            .iter()
            .fold(trace_state.clone(), |state, key| state.delete(*key).unwrap_or(state))
    }

    /// Whether `trace_state` carries either decision.
    pub fn present_in(trace_state: &TraceState) -> bool {
        trace_state.get(XRAY_DECISION_KEY).is_some() || trace_state.get(OTLP_DECISION_KEY).is_some()
    }
}

/// Whether OTLP takes the spans of this trace: recorded, and not declined by the OTLP decision.
pub fn otlp_sampled(span_context: &SpanContext) -> bool {
    span_context.is_sampled() && TraceDecisions::read(span_context.trace_state()).otlp != OtlpDecision::Declined
}

/// Whether X-Ray takes the spans of this trace: recorded, and not refused by the X-Ray decision.
pub fn xray_sampled(span_context: &SpanContext) -> bool {
    span_context.is_sampled() && TraceDecisions::read(span_context.trace_state()).xray != XrayDecision::NotSampled
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId};

    use super::*;

    fn span(sampled: bool, trace_state: &str) -> SpanContext {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanContext::new(TraceId::from(7), SpanId::from(9), flags, false, trace_state.parse().unwrap())
    }

    /// Every row of the module doc's table: (tracestate, sampled flag, decisions, OTLP takes, X-Ray takes).
    const STATES: [(&str, bool, XrayDecision, OtlpDecision, bool, bool); 9] = [
        ("xray=1", true, XrayDecision::Sampled, OtlpDecision::Takes, true, true),
        ("otlp=0,xray=1", true, XrayDecision::Sampled, OtlpDecision::Declined, false, true),
        ("xray=0", true, XrayDecision::NotSampled, OtlpDecision::Takes, true, false),
        ("", true, XrayDecision::Undecided, OtlpDecision::Takes, true, true),
        ("vendor=x", true, XrayDecision::Undecided, OtlpDecision::Takes, true, true),
        ("xray=1,otlp=?", true, XrayDecision::Sampled, OtlpDecision::Undecided, true, true),
        ("otlp=?", true, XrayDecision::Undecided, OtlpDecision::Undecided, true, true),
        ("xray=1", false, XrayDecision::Sampled, OtlpDecision::Takes, false, false),
        ("", false, XrayDecision::Undecided, OtlpDecision::Takes, false, false),
    ];

    #[test]
    fn every_state_reads_as_the_table_says() {
        for (trace_state, sampled, xray, otlp, otlp_takes, xray_takes) in STATES {
            let context = span(sampled, trace_state);
            let decisions = TraceDecisions::read(context.trace_state());
            assert_eq!(decisions, TraceDecisions { xray, otlp }, "{trace_state:?}");
            assert_eq!(otlp_sampled(&context), otlp_takes, "OTLP, {trace_state:?} sampled={sampled}");
            assert_eq!(xray_sampled(&context), xray_takes, "X-Ray, {trace_state:?} sampled={sampled}");
        }
    }

    #[test]
    fn every_state_writes_back_as_it_reads_keeping_other_vendors() {
        for (trace_state, _, xray, otlp, _, _) in STATES {
            let written = TraceDecisions { xray, otlp }.write(&"vendor=x".parse().unwrap());
            assert_eq!(TraceDecisions::read(&written), TraceDecisions { xray, otlp }, "{trace_state:?}");
            assert_eq!(written.get("vendor"), Some("x"));
        }
    }

    #[test]
    fn only_changed_entries_are_written_new_ones_first() {
        let state: TraceState = "vendor=x,xray=1,otlp=?".parse().unwrap();
        let decided = TraceDecisions { xray: XrayDecision::Sampled, otlp: OtlpDecision::Declined }.write(&state);
        assert_eq!(decided.header(), "otlp=0,vendor=x,xray=1");
        let taken = TraceDecisions { xray: XrayDecision::Sampled, otlp: OtlpDecision::Takes }.write(&state);
        assert_eq!(taken.header(), "vendor=x,xray=1", "the caller's otlp=? goes no further");
        assert_eq!(TraceDecisions::remove(&decided).header(), "vendor=x");
        assert!(TraceDecisions::present_in(&decided) && !TraceDecisions::present_in(&"vendor=x".parse().unwrap()));
    }
}
