//! The provider's sampler: makes the OTLP and the X-Ray decisions of each new span and records what either takes,
//! writing both decisions into the trace's `tracestate` ([`super::decision`]'s table).
//!
//! OTLP's decision: a caller's, for the `parentbased_` samplers, unless the caller made none (`otlp=?`); else the
//! ratio, read from the trace id. X-Ray's decision is made once per trace and service entry, at the local root (no
//! parent, or a remote caller that made no X-Ray decision), by the first matching rule; a caller that recorded
//! nothing gets nothing in X-Ray either. A trace is recorded when either exporter takes it; `otlp=0` marks one
//! recorded for X-Ray only.

use std::sync::Arc;

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

use super::decision::{OtlpDecision, TraceDecisions, XrayDecision};
use super::ratio::ratio_takes;
use super::rules::XraySampler;
use crate::config::OtlpSampling;

/// The span attribute Honeycomb weights sampled events by.
const HONEYCOMB_SAMPLE_RATE: &str = "SampleRate";

#[derive(Debug, Clone)]
pub(crate) struct TraceSampler {
    /// `None`: OTLP export is off.
    otlp: Option<OtlpSampling>,
    /// `None`: X-Ray export is off.
    xray: Option<Arc<XraySampler>>,
}

impl TraceSampler {
    pub(crate) fn new(otlp: Option<OtlpSampling>, xray: Option<Arc<XraySampler>>) -> Self {
        Self { otlp, xray }
    }

    /// Whether OTLP takes the trace: the caller's decision when it follows callers and the caller made one, else the
    /// ratio.
    fn otlp_takes(&self, parent: Option<(&SpanContext, TraceDecisions)>, trace_id: TraceId) -> bool {
        match (&self.otlp, parent) {
            (None, _) => false,
            (Some(otlp), Some((parent, decisions)))
                if otlp.parent_based && decisions.otlp != OtlpDecision::Undecided =>
            {
                parent.is_sampled() && decisions.otlp != OtlpDecision::Declined
            }
            (Some(otlp), _) => ratio_takes(otlp.ratio, trace_id),
        }
    }
}

impl ShouldSample for TraceSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let parent_span = parent_context.filter(|cx| cx.has_active_span()).map(TraceContextExt::span);
        let parent = parent_span.as_ref().map(|span| span.span_context());
        let inherited = parent.map(|parent| TraceDecisions::read(parent.trace_state()));
        let mut decisions = inherited.unwrap_or_default();

        let otlp_takes = self.otlp_takes(parent.zip(inherited), trace_id);

        // A local parent always has the X-Ray decision; a remote one has it when the caller made it.
        let root = parent.is_none_or(|parent| parent.is_remote() && decisions.xray == XrayDecision::Undecided);
        if let Some(xray) = &self.xray
            && root
        {
            let parent_recorded = parent.is_none_or(SpanContext::is_sampled);
            decisions.xray = XrayDecision::of(parent_recorded && xray.sample(trace_id, attributes));
        }
        let xray_takes = self.xray.is_some() && decisions.xray != XrayDecision::NotSampled;

        let recorded = otlp_takes || xray_takes;
        // `otlp=0` where OTLP declined a recorded trace: here, or upstream when this service has no OTLP (then the
        // recorded flag is X-Ray's decision, as with X-Ray's own OpenTelemetry sampler). A caller's `otlp=?` stops here.
        let declined_upstream = decisions.otlp == OtlpDecision::Declined;
        decisions.otlp = if recorded && !otlp_takes && (self.otlp.is_some() || declined_upstream) {
            OtlpDecision::Declined
        } else {
            OtlpDecision::Takes
        };
        let trace_state = match parent {
            Some(parent) => decisions.write(parent.trace_state()),
            None => decisions.write(&Default::default()),
        };
        let attributes = match &self.otlp {
            Some(otlp) if otlp_takes && otlp.ratio < 1.0 => {
                vec![KeyValue::new(HONEYCOMB_SAMPLE_RATE, (1.0 / otlp.ratio).round() as i64)]
            }
            _ => Vec::new(),
        };
        let decision = if recorded { SamplingDecision::RecordAndSample } else { SamplingDecision::Drop };
        SamplingResult { decision, attributes, trace_state }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceState};

    use super::*;
    use crate::config::{EVERY_TRACE, SamplingRules};
    use crate::naming::SegmentNaming;
    use crate::sampling::decision::{OTLP_DECISION_KEY, XRAY_DECISION_KEY, otlp_sampled, xray_sampled};
    use crate::sampling::local::rule_set;

    fn xray(rules: &str) -> Option<Arc<XraySampler>> {
        let rules = SamplingRules::parse(rules).unwrap();
        Some(Arc::new(XraySampler::new(SegmentNaming::new("cruddur-backend", None), rule_set(&rules))))
    }

    const NEVER: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 0.0}}"#;

    fn otlp(sampler: &str, argument: Option<&str>) -> OtlpSampling {
        OtlpSampling::from_variables(Some(sampler), argument).unwrap()
    }

    fn decide(sampler: &TraceSampler, parent: Option<SpanContext>) -> SamplingResult {
        let cx = parent.map(|parent| Context::new().with_remote_span_context(parent));
        let id = TraceId::from(1 << 64 | 0x9E37_79B9_7F4A_7C15);
        sampler.should_sample(cx.as_ref(), id, "span", &SpanKind::Server, &[], &[])
    }

    fn remote(sampled: bool, trace_state: &str) -> SpanContext {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanContext::new(TraceId::from(7), SpanId::from(9), flags, true, trace_state.parse().unwrap())
    }

    #[test]
    fn a_root_gets_an_xray_decision_and_is_recorded_for_otlp_either_way() {
        let both = TraceSampler::new(Some(OtlpSampling::default()), xray(NEVER));
        let root = decide(&both, None);
        assert_eq!(root.decision, SamplingDecision::RecordAndSample);
        assert_eq!(root.trace_state.get(XRAY_DECISION_KEY), Some("0"));

        let xray_only = TraceSampler::new(None, xray(NEVER));
        assert_eq!(decide(&xray_only, None).decision, SamplingDecision::Drop, "nobody would take it");
        let all = TraceSampler::new(None, xray(EVERY_TRACE));
        assert_eq!(decide(&all, None).trace_state.get(XRAY_DECISION_KEY), Some("1"));

        let otlp_only = TraceSampler::new(Some(OtlpSampling::default()), None);
        assert_eq!(decide(&otlp_only, None).trace_state, TraceState::default(), "no X-Ray, no decision");
        assert_eq!(decide(&TraceSampler::new(None, None), None).decision, SamplingDecision::Drop);
    }

    #[test]
    fn a_callers_decision_is_kept_and_a_caller_without_one_gets_ours() {
        let sampler = TraceSampler::new(Some(OtlpSampling::default()), xray(NEVER));
        let kept = decide(&sampler, Some(remote(true, "xray=1,vendor=x")));
        assert_eq!(kept.trace_state.get(XRAY_DECISION_KEY), Some("1"));
        assert_eq!(kept.trace_state.get("vendor"), Some("x"));
        let browser = decide(&sampler, Some(remote(true, "vendor=x")));
        assert_eq!(browser.trace_state.get(XRAY_DECISION_KEY), Some("0"));
        assert_eq!(browser.trace_state.get("vendor"), Some("x"), "the caller's entries stay");
        let unsampled = decide(&sampler, Some(remote(false, "")));
        assert_eq!(unsampled.decision, SamplingDecision::Drop);
    }

    fn root(sampler: &TraceSampler, trace_id: u128) -> SamplingResult {
        sampler.should_sample(None, TraceId::from(trace_id), "span", &SpanKind::Server, &[], &[])
    }

    fn child_of(sampler: &TraceSampler, parent: &SamplingResult, remote: bool) -> SamplingResult {
        let flags = match parent.decision {
            SamplingDecision::RecordAndSample => TraceFlags::SAMPLED,
            _ => TraceFlags::default(),
        };
        let parent = SpanContext::new(TraceId::from(7), SpanId::from(9), flags, remote, parent.trace_state.clone());
        let cx = Context::new().with_remote_span_context(parent);
        sampler.should_sample(Some(&cx), TraceId::from(7), "child", &SpanKind::Internal, &[], &[])
    }

    #[test]
    fn a_ratio_takes_its_share_of_new_traces_each_marked_with_its_sample_rate() {
        let sampler = TraceSampler::new(Some(otlp("parentbased_traceidratio", Some("0.25"))), None);
        let results: Vec<SamplingResult> = (1..=4000u128).map(|n| root(&sampler, n * 0x9E37_79B9_7F4A_7C15)).collect();
        let taken: Vec<&SamplingResult> =
            results.iter().filter(|result| result.decision == SamplingDecision::RecordAndSample).collect();
        assert!((800..=1200).contains(&taken.len()), "{} of 4000", taken.len());
        assert!(taken.iter().all(|result| result.attributes == [KeyValue::new(HONEYCOMB_SAMPLE_RATE, 4)]));
        let child = child_of(&sampler, taken[0], true);
        assert_eq!(child.decision, SamplingDecision::RecordAndSample, "a caller's decision is followed");
    }

    #[test]
    fn a_trace_only_xray_takes_is_recorded_and_marked_for_otlp_to_leave() {
        let sampler = TraceSampler::new(Some(otlp("always_off", None)), xray(EVERY_TRACE));
        let root = root(&sampler, 5);
        assert_eq!(root.decision, SamplingDecision::RecordAndSample);
        assert_eq!(root.trace_state.get(OTLP_DECISION_KEY), Some("0"));
        let span = |result: &SamplingResult| {
            SpanContext::new(TraceId::from(5), SpanId::from(1), TraceFlags::SAMPLED, false, result.trace_state.clone())
        };
        assert!(!otlp_sampled(&span(&root)) && xray_sampled(&span(&root)));
        // Downstream, a parent-based OTLP sampler leaves it too.
        let downstream = TraceSampler::new(Some(OtlpSampling::default()), None);
        assert_eq!(child_of(&downstream, &root, true).decision, SamplingDecision::Drop);
    }

    #[test]
    fn a_caller_known_only_to_xray_leaves_otlp_to_decide_and_the_mark_goes_no_further() {
        let from_load_balancer = SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state: format!("{OTLP_DECISION_KEY}=?").parse().unwrap(),
        };
        let never = TraceSampler::new(Some(otlp("parentbased_always_off", None)), None);
        assert_eq!(child_of(&never, &from_load_balancer, true).decision, SamplingDecision::Drop, "not forced");
        let always = TraceSampler::new(Some(otlp("parentbased_always_on", None)), None);
        let taken = child_of(&always, &from_load_balancer, true);
        assert_eq!(taken.decision, SamplingDecision::RecordAndSample);
        assert_eq!(taken.trace_state.get(OTLP_DECISION_KEY), None);
    }
}
