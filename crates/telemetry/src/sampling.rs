//! Which traces are recorded, and which of them go to X-Ray.
//!
//! OTLP (Honeycomb) gets every trace, as the original app's OpenTelemetry SDK sent them. X-Ray gets a sample, as the
//! X-Ray SDKs take it: a rule matching the request (host, method, path; the first that matches, else the default)
//! takes its `fixed_target` traces each second, then `rate` of the rest. Without a rules file that is X-Ray's
//! default rule, 1 trace per second and 5% of the others, so a busy service costs a fraction of the segments (X-Ray
//! bills per trace recorded) and of the export work.
//!
//! The X-Ray decision is made once per trace and service entry, at the local root (no parent, or a caller that
//! made no X-Ray decision, such as the browser), and travels with the trace in the W3C `tracestate` entry
//! `xray=1|0`: child spans inherit it, outgoing requests carry it in `tracestate` and as `Sampled=` in
//! `X-Amzn-Trace-Id` (see [`crate::propagation`]), and a caller's `Sampled=1|0` is obeyed. The X-Ray exporter only
//! takes spans whose trace X-Ray sampled ([`xray_sampled`]). With OTLP off, a trace X-Ray does not sample is not
//! recorded at all.
//!
//! Rules come from `AWS_XRAY_SAMPLING_RULES`, in the X-Ray SDKs' local rules format (version 2):
//!
//! ```json
//! {
//!   "version": 2,
//!   "rules": [{ "description": "health checks", "host": "*", "http_method": "GET", "url_path": "/api/health*",
//!               "fixed_target": 0, "rate": 0.0 }],
//!   "default": { "fixed_target": 1, "rate": 0.05 }
//! }
//! ```
//!
//! A rate decision is read from the trace id (as the SDK's ratio sampler does), so services with the same rate agree
//! on a trace without asking each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};
use opentelemetry_semantic_conventions::attribute::{HTTP_REQUEST_METHOD, SERVER_ADDRESS, URL_PATH};
use serde::Deserialize;
use wildmatch::WildMatch;

/// Rules that send every trace to X-Ray, as `AWS_XRAY_SAMPLING_RULES` takes them (development, tests).
pub const EVERY_TRACE: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1.0}}"#;

/// The `tracestate` key of the X-Ray decision.
pub const XRAY_DECISION_KEY: &str = "xray";

/// Whether X-Ray takes the spans of this trace: recorded, and not refused by the X-Ray decision.
pub fn xray_sampled(span_context: &SpanContext) -> bool {
    span_context.is_sampled() && span_context.trace_state().get(XRAY_DECISION_KEY) != Some("0")
}

/// X-Ray sampling rules, as `AWS_XRAY_SAMPLING_RULES` gives them (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRules {
    rules: Vec<Rule>,
    default: Target,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    description: String,
    host: String,
    http_method: String,
    url_path: String,
    fixed_target: u32,
    rate: f64,
}

impl Rule {
    fn target(&self) -> Target {
        Target { fixed_target: self.fixed_target, rate: self.rate }
    }
}

/// Traces per second taken first, then the fraction of the others.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    fixed_target: u32,
    rate: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    version: u32,
    #[serde(default)]
    rules: Vec<Rule>,
    default: Target,
}

impl Default for SamplingRules {
    /// X-Ray's default rule: 1 trace per second, then 5%.
    fn default() -> Self {
        Self { rules: Vec::new(), default: Target { fixed_target: 1, rate: 0.05 } }
    }
}

impl SamplingRules {
    /// Every trace (for development and tests).
    pub fn all() -> Self {
        Self { rules: Vec::new(), default: Target { fixed_target: 0, rate: 1.0 } }
    }

    /// Reads the local rules format; the error says what is wrong.
    pub fn parse(json: &str) -> Result<Self, String> {
        let file: RuleFile = serde_json::from_str(json).map_err(|error| error.to_string())?;
        if file.version != 2 {
            return Err(format!("version {} is not supported (only 2)", file.version));
        }
        let targets = file.rules.iter().map(|rule| (rule.description.as_str(), rule.target()));
        for (name, target) in targets.chain([("default", file.default)]) {
            if !(0.0..=1.0).contains(&target.rate) {
                return Err(format!("rule {name:?}: rate must be between 0 and 1, got {}", target.rate));
            }
        }
        Ok(Self { rules: file.rules, default: file.default })
    }
}

/// The provider's sampler: records what some exporter takes, and makes the X-Ray decision (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct TraceSampler {
    /// OTLP takes every recorded trace.
    otlp: bool,
    /// `None`: X-Ray export is off.
    xray: Option<Arc<XraySampler>>,
}

impl TraceSampler {
    pub(crate) fn new(otlp: bool, xray: Option<&SamplingRules>) -> Self {
        Self { otlp, xray: xray.map(|rules| Arc::new(XraySampler::new(rules))) }
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
        let parent = parent_context.filter(|cx| cx.has_active_span()).map(|cx| cx.span().span_context().clone());
        let parent_recorded = parent.as_ref().is_none_or(SpanContext::is_sampled);
        let mut trace_state = parent.as_ref().map(|parent| parent.trace_state().clone()).unwrap_or_default();
        // A local parent always has the decision; a remote one has it when the caller made it.
        let undecided = parent
            .as_ref()
            .is_none_or(|parent| parent.is_remote() && parent.trace_state().get(XRAY_DECISION_KEY).is_none());
        if let Some(xray) = &self.xray
            && undecided
            && parent_recorded
        {
            let decision = if xray.sample(trace_id, attributes) { "1" } else { "0" };
            trace_state = trace_state.insert(XRAY_DECISION_KEY, decision).unwrap_or(trace_state);
        }
        let xray_takes = self.xray.is_some() && trace_state.get(XRAY_DECISION_KEY) != Some("0");
        let decision = if parent_recorded && (self.otlp || xray_takes) {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        SamplingResult { decision, attributes: Vec::new(), trace_state }
    }
}

/// The rules, ready to match, each with its reservoir.
#[derive(Debug)]
struct XraySampler {
    rules: Vec<(Matcher, Reservoir)>,
    default: Reservoir,
}

impl XraySampler {
    fn new(rules: &SamplingRules) -> Self {
        Self {
            rules: rules.rules.iter().map(|rule| (Matcher::new(rule), Reservoir::new(rule.target()))).collect(),
            default: Reservoir::new(rules.default),
        }
    }

    fn sample(&self, trace_id: TraceId, attributes: &[KeyValue]) -> bool {
        let reservoir = if self.rules.is_empty() {
            &self.default
        } else {
            let request = RequestAttributes::from(attributes);
            self.rules
                .iter()
                .find(|(matcher, _)| matcher.matches(&request))
                .map_or(&self.default, |(_, reservoir)| reservoir)
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        reservoir.take(now) || reservoir.by_rate(trace_id)
    }
}

/// What rules match on, from the server span's attributes (empty for a span that is not an HTTP request).
#[derive(Default)]
struct RequestAttributes<'a> {
    host: &'a str,
    method: &'a str,
    path: &'a str,
}

impl<'a> From<&'a [KeyValue]> for RequestAttributes<'a> {
    fn from(attributes: &'a [KeyValue]) -> Self {
        let mut request = Self::default();
        for attribute in attributes {
            let opentelemetry::Value::String(value) = &attribute.value else { continue };
            match attribute.key.as_str() {
                SERVER_ADDRESS => request.host = value.as_str(),
                HTTP_REQUEST_METHOD => request.method = value.as_str(),
                URL_PATH => request.path = value.as_str(),
                _ => {}
            }
        }
        request
    }
}

/// A rule's patterns (`*` and `?`, case-insensitive, as X-Ray matches them).
#[derive(Debug)]
struct Matcher {
    host: WildMatch,
    method: WildMatch,
    path: WildMatch,
}

impl Matcher {
    fn new(rule: &Rule) -> Self {
        Self {
            host: WildMatch::new_case_insensitive(&rule.host),
            method: WildMatch::new_case_insensitive(&rule.http_method),
            path: WildMatch::new_case_insensitive(&rule.url_path),
        }
    }

    fn matches(&self, request: &RequestAttributes<'_>) -> bool {
        self.host.matches(request.host) && self.method.matches(request.method) && self.path.matches(request.path)
    }
}

/// A rule's `fixed_target` per second, then its rate.
#[derive(Debug)]
struct Reservoir {
    per_second: u32,
    /// The epoch second being counted (high 32 bits, enough until 2106) and the traces taken in it (low 32 bits).
    taken: AtomicU64,
    rate: Sampler,
}

impl Reservoir {
    fn new(target: Target) -> Self {
        Self {
            per_second: target.fixed_target,
            taken: AtomicU64::new(0),
            rate: Sampler::TraceIdRatioBased(target.rate),
        }
    }

    /// Takes a place in second `now`'s reservoir, if one is left.
    fn take(&self, now: u64) -> bool {
        let mut current = self.taken.load(Ordering::Relaxed);
        loop {
            let (second, taken) = (current >> 32, current & u64::from(u32::MAX));
            let taken = if second == now { taken } else { 0 };
            if taken >= u64::from(self.per_second) {
                return false;
            }
            let next = (now << 32) | (taken + 1);
            match self.taken.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    fn by_rate(&self, trace_id: TraceId) -> bool {
        let result = self.rate.should_sample(None, trace_id, "", &SpanKind::Server, &[], &[]);
        result.decision == SamplingDecision::RecordAndSample
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceState};

    use super::*;

    /// Trace ids spread over the id space, the same on every run.
    fn trace_ids(count: u64) -> impl Iterator<Item = TraceId> {
        (1..=count).map(|n| TraceId::from(u128::from(n) << 64 | u128::from(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
    }

    fn request(method: &'static str, path: &'static str) -> Vec<KeyValue> {
        vec![KeyValue::new(HTTP_REQUEST_METHOD, method), KeyValue::new(URL_PATH, path)]
    }

    #[test]
    fn the_default_rule_takes_one_trace_a_second_then_five_percent() {
        let sampler = XraySampler::new(&SamplingRules::default());
        let reservoir = &sampler.default;
        assert!(reservoir.take(100));
        assert!(!reservoir.take(100), "one per second");
        assert!(reservoir.take(101), "a new second, a new place");
        let by_rate = trace_ids(10_000).filter(|id| reservoir.by_rate(*id)).count();
        assert!((350..=650).contains(&by_rate), "{by_rate} of 10000 sampled by the 5% rate");
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = SamplingRules::parse(
            r#"{"version": 2,
                "rules": [{"description": "health", "host": "*", "http_method": "GET", "url_path": "/api/health*",
                           "fixed_target": 0, "rate": 0.0},
                          {"host": "*", "http_method": "*", "url_path": "/api/*", "fixed_target": 0, "rate": 1.0}],
                "default": {"fixed_target": 0, "rate": 0.0}}"#,
        )
        .unwrap();
        let sampler = XraySampler::new(&rules);
        let id = trace_ids(1).next().unwrap();
        assert!(!sampler.sample(id, &request("GET", "/api/health-check")));
        assert!(sampler.sample(id, &request("get", "/API/activities/home")), "case-insensitive, as X-Ray matches");
        assert!(!sampler.sample(id, &request("GET", "/index.html")), "no rule: the default");
        assert!(!sampler.sample(id, &[]), "not a request: only rules matching anything apply");
    }

    #[test]
    fn bad_rule_files_are_explained() {
        let error = |json: &str| SamplingRules::parse(json).unwrap_err();
        assert!(error(r#"{"version": 1, "default": {"fixed_target": 1, "rate": 0.1}}"#).contains("version 1"));
        assert!(error(r#"{"version": 2, "default": {"fixed_target": 1, "rate": 5}}"#).contains("between 0 and 1"));
        assert!(error(r#"{"version": 2}"#).contains("default"));
        assert!(error(r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.1, "typo": 1}}"#).contains("typo"));
    }

    fn decide(sampler: &TraceSampler, parent: Option<SpanContext>) -> SamplingResult {
        let cx = parent.map(|parent| Context::new().with_remote_span_context(parent));
        let id = trace_ids(1).next().unwrap();
        sampler.should_sample(cx.as_ref(), id, "span", &SpanKind::Server, &[], &[])
    }

    fn remote(sampled: bool, trace_state: &str) -> SpanContext {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanContext::new(TraceId::from(7), SpanId::from(9), flags, true, trace_state.parse().unwrap())
    }

    #[test]
    fn a_root_gets_an_xray_decision_and_is_recorded_for_otlp_either_way() {
        let never = SamplingRules { rules: Vec::new(), default: Target { fixed_target: 0, rate: 0.0 } };
        let both = TraceSampler::new(true, Some(&never));
        let root = decide(&both, None);
        assert_eq!(root.decision, SamplingDecision::RecordAndSample);
        assert_eq!(root.trace_state.get(XRAY_DECISION_KEY), Some("0"));

        let xray_only = TraceSampler::new(false, Some(&never));
        assert_eq!(decide(&xray_only, None).decision, SamplingDecision::Drop, "nobody would take it");
        let all = TraceSampler::new(false, Some(&SamplingRules::all()));
        assert_eq!(decide(&all, None).trace_state.get(XRAY_DECISION_KEY), Some("1"));

        let otlp_only = TraceSampler::new(true, None);
        assert_eq!(decide(&otlp_only, None).trace_state, TraceState::default(), "no X-Ray, no decision");
        assert_eq!(decide(&TraceSampler::new(false, None), None).decision, SamplingDecision::Drop);
    }

    #[test]
    fn a_callers_decision_is_kept_and_a_caller_without_one_gets_ours() {
        let never = SamplingRules { rules: Vec::new(), default: Target { fixed_target: 0, rate: 0.0 } };
        let sampler = TraceSampler::new(true, Some(&never));
        let kept = decide(&sampler, Some(remote(true, "xray=1,vendor=x")));
        assert_eq!(kept.trace_state.get(XRAY_DECISION_KEY), Some("1"));
        assert_eq!(kept.trace_state.get("vendor"), Some("x"));
        let browser = decide(&sampler, Some(remote(true, "vendor=x")));
        assert_eq!(browser.trace_state.get(XRAY_DECISION_KEY), Some("0"));
        assert_eq!(browser.trace_state.get("vendor"), Some("x"), "the caller's entries stay");
        let unsampled = decide(&sampler, Some(remote(false, "")));
        assert_eq!(unsampled.decision, SamplingDecision::Drop);
    }
}
