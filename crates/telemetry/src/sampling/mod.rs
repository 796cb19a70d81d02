//! Which traces are recorded, and which of them go to OTLP and to X-Ray.
//!
//! OTLP (Honeycomb) gets every trace by default, as the original app's OpenTelemetry SDK sent them; the standard
//! `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, and their `parentbased_` forms) with
//! `OTEL_TRACES_SAMPLER_ARG` (the ratio) takes a sample instead, and each span of a sampled trace then carries
//! `SampleRate` (1 in N), which Honeycomb weights its counts by.
//!
//! X-Ray gets a sample, as the X-Ray SDKs take it: the first rule matching the request (service name, host, method,
//! path) takes its reservoir's traces each second, then its rate of the rest. X-Ray bills per trace recorded, and a
//! sampled-out trace costs X-Ray's export nothing. The rules come, as in the X-Ray SDKs, from X-Ray itself through
//! the daemon (`centralized`: the rules of `cargo run -p infra -- apply`, or of the daemon's rule file offline),
//! with X-Ray's default rule (1 trace per second, then 5%) until they arrive; or, when `AWS_XRAY_SAMPLING_RULES` is
//! set, from the X-Ray SDKs' local format (`local`; the format is [`crate::config::SamplingRules`]'s), and then from
//! there only.
//!
//! The two decisions are independent; a trace is recorded when either exporter takes it, and not at all when neither
//! does. Both travel with the trace in its W3C `tracestate` ([`TraceDecisions`], whose doc has every state): child
//! spans inherit them, outgoing requests carry them (and X-Ray's as `Sampled=` in `X-Amzn-Trace-Id`, see
//! [`crate::propagation`]), and each exporter takes only the spans of traces it was given ([`otlp_sampled`],
//! [`xray_sampled`]). A rate decision is read from the trace id, so services with the same rate agree on a trace
//! without asking each other.
//!
//! The parts: `decision` (the `tracestate` protocol), `sampler` (the provider's sampler, both decisions), `rules`
//! (X-Ray's rules as applied), `local` and `centralized` (where they come from), `ratio`; the rule model, matching
//! and reservoir arithmetic are `xray-protocol`'s.

mod centralized;
mod decision;
mod local;
mod ratio;
mod rules;
mod sampler;

use std::sync::Arc;

pub(crate) use centralized::Poller;
pub use decision::{
    OTLP_DECISION_KEY, OtlpDecision, TraceDecisions, XRAY_DECISION_KEY, XrayDecision, otlp_sampled, xray_sampled,
};
pub(crate) use rules::XraySampler;
pub(crate) use sampler::TraceSampler;

use crate::config::XrayConfig;
pub use crate::config::{EVERY_TRACE, OtlpSampling, SamplingRules, XraySampling};
use crate::naming::SegmentNaming;

/// X-Ray's sampler for `config`, and the thread fetching its rules when they are centralized.
pub(crate) fn xray_sampler(config: &XrayConfig) -> std::io::Result<(Arc<XraySampler>, Option<Poller>)> {
    let naming = SegmentNaming::new(&config.segment_name, config.dynamic_naming.as_deref());
    match &config.sampling {
        XraySampling::Local(rules) => Ok((Arc::new(XraySampler::new(naming, local::rule_set(rules))), None)),
        XraySampling::Centralized { daemon_tcp_address } => {
            let sampler = Arc::new(XraySampler::new(naming, local::xrays_default()));
            let poller = Poller::start(daemon_tcp_address, sampler.clone())?;
            Ok((sampler, Some(poller)))
        }
    }
}
