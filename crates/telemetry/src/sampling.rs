//! Which traces are recorded, and which of them go to OTLP and to X-Ray.
//!
//! OTLP (Honeycomb) gets every trace by default, as the original app's OpenTelemetry SDK sent them; the standard
//! `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, and their `parentbased_` forms) with
//! `OTEL_TRACES_SAMPLER_ARG` (the ratio) takes a sample instead, and each span of a sampled trace then carries
//! `SampleRate` (1 in N), which Honeycomb weights its counts by.
//!
//! X-Ray gets a sample, as the X-Ray SDKs take it: the first rule matching the request (service name, host, method,
//! path) takes its reservoir's traces each second, then its rate of the rest. X-Ray bills per trace recorded, and a
//! sampled-out trace costs X-Ray's export nothing.
//!
//! The rules come, as in the X-Ray SDKs, from X-Ray itself through the daemon (module `centralized`: the rules of
//! `cargo run -p infra -- apply`, or of the daemon's rule file offline), with X-Ray's default rule (1 trace per
//! second, then 5%) until they arrive; or, when `AWS_XRAY_SAMPLING_RULES` is set, from the X-Ray SDKs' local rules
//! format (version 2), as a file or inline, and then from there only:
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
//! The two decisions are independent; a trace is recorded when either exporter takes it, and not at all when neither
//! does. When only X-Ray takes it, the `tracestate` entry `otlp=0` says so, to the OTLP exporter and to the services
//! downstream (the W3C `sampled` flag says "recorded"). A caller known only by its `X-Amzn-Trace-Id` (a load balancer,
//! an X-Ray SDK) made no OTLP decision: this service's sampler makes it.
//!
//! The X-Ray decision is made once per trace and service entry, at the local root (no parent, or a caller that
//! made no X-Ray decision, such as the browser), and travels with the trace in the W3C `tracestate` entry
//! `xray=1|0`: child spans inherit it, outgoing requests carry it in `tracestate` and as `Sampled=` in
//! `X-Amzn-Trace-Id` (see [`crate::propagation`]), and a caller's `Sampled=1|0` is obeyed. The X-Ray exporter only
//! takes spans whose trace X-Ray sampled ([`xray_sampled`]). A rate decision is read from the trace id (as the SDK's
//! ratio sampler does), so services with the same rate agree on a trace without asking each other.

pub(crate) mod centralized;

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};
use opentelemetry_semantic_conventions::attribute::{HTTP_REQUEST_METHOD, SERVER_ADDRESS, URL_PATH};
use serde::Deserialize;
use xray_protocol::{Patterns, Request, Reservoir, RuleMatcher, Statistics};

use crate::config::XrayConfig;
use crate::xray::SegmentNaming;

/// Rules that send every trace to X-Ray, as `AWS_XRAY_SAMPLING_RULES` takes them (development, tests).
pub const EVERY_TRACE: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1.0}}"#;

/// The `tracestate` key of the X-Ray decision.
pub const XRAY_DECISION_KEY: &str = "xray";

/// The `tracestate` key saying OTLP declined a trace that is recorded for X-Ray (`otlp=0`).
pub const OTLP_DECISION_KEY: &str = "otlp";

/// On a caller's context only: the caller (known by its `X-Amzn-Trace-Id`) made no OTLP decision.
pub(crate) const OTLP_UNDECIDED: &str = "?";

/// The span attribute Honeycomb weights sampled events by.
const HONEYCOMB_SAMPLE_RATE: &str = "SampleRate";

/// Whether OTLP takes the spans of this trace: recorded, and not declined by the OTLP decision.
pub fn otlp_sampled(span_context: &SpanContext) -> bool {
    span_context.is_sampled() && span_context.trace_state().get(OTLP_DECISION_KEY) != Some("0")
}

/// Whether X-Ray takes the spans of this trace: recorded, and not refused by the X-Ray decision.
pub fn xray_sampled(span_context: &SpanContext) -> bool {
    span_context.is_sampled() && span_context.trace_state().get(XRAY_DECISION_KEY) != Some("0")
}

/// Which traces OTLP takes (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OtlpSampling {
    /// The fraction of new traces taken.
    pub ratio: f64,
    /// A trace continued from a caller follows the caller's decision (the `parentbased_` samplers).
    pub parent_based: bool,
}

impl Default for OtlpSampling {
    /// `parentbased_always_on`, the OpenTelemetry default.
    fn default() -> Self {
        Self { ratio: 1.0, parent_based: true }
    }
}

impl OtlpSampling {
    /// From the standard variables' values; the error says what is wrong.
    pub fn from_variables(sampler: Option<&str>, argument: Option<&str>) -> Result<Self, String> {
        let ratio = || match argument {
            None => Ok(1.0),
            Some(argument) => match argument.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(format!("OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got {argument}")),
            },
        };
        let (ratio, parent_based) = match sampler.unwrap_or("parentbased_always_on") {
            "always_on" => (1.0, false),
            "always_off" => (0.0, false),
            "traceidratio" => (ratio()?, false),
            "parentbased_always_on" => (1.0, true),
            "parentbased_always_off" => (0.0, true),
            "parentbased_traceidratio" => (ratio()?, true),
            other => {
                return Err(format!(
                    "{other} is not supported (always_on, always_off, traceidratio, or their parentbased_ forms; \
                     X-Ray's own sampling is AWS_XRAY_SAMPLING_RULES)"
                ));
            }
        };
        Ok(Self { ratio, parent_based })
    }

    /// Whether a new trace is taken.
    fn takes_new(&self, trace_id: TraceId) -> bool {
        ratio_takes(self.ratio, trace_id)
    }
}

/// Whether `ratio` of traces takes this one, read from the trace id as the SDK's ratio sampler reads it (so every
/// service with the same ratio agrees).
fn ratio_takes(ratio: f64, trace_id: TraceId) -> bool {
    let sampler = Sampler::TraceIdRatioBased(ratio);
    sampler.should_sample(None, trace_id, "", &SpanKind::Server, &[], &[]).decision == SamplingDecision::RecordAndSample
}

/// Where X-Ray's sampling rules come from.
#[derive(Debug, Clone, PartialEq)]
pub enum XraySampling {
    /// From X-Ray through the daemon's TCP `host:port` (`AWS_XRAY_DAEMON_ADDRESS`), X-Ray's default rule until then.
    Centralized { daemon_address: String },
    /// These rules only (`AWS_XRAY_SAMPLING_RULES`).
    Local(SamplingRules),
}

/// X-Ray sampling rules in the X-Ray SDKs' local format (see the module doc).
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

/// X-Ray's sampler for `config`, and the thread fetching its rules when they are centralized.
pub(crate) fn xray_sampler(config: &XrayConfig) -> std::io::Result<(Arc<XraySampler>, Option<centralized::Poller>)> {
    let naming = SegmentNaming::new(config);
    match &config.sampling {
        XraySampling::Local(rules) => Ok((Arc::new(XraySampler::new(naming, RuleSet::local(rules))), None)),
        XraySampling::Centralized { daemon_address } => {
            let sampler = Arc::new(XraySampler::new(naming, RuleSet::local(&SamplingRules::default())));
            let poller = centralized::Poller::start(daemon_address, sampler.clone())?;
            Ok((sampler, Some(poller)))
        }
    }
}

/// The provider's sampler: makes the OTLP and the X-Ray decisions and records what either takes (see the module
/// doc).
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
        let parent_recorded = parent.is_none_or(SpanContext::is_sampled);
        let mut trace_state = parent.map(|parent| parent.trace_state().clone()).unwrap_or_default();

        let otlp_takes = match (&self.otlp, parent) {
            (None, _) => false,
            (Some(otlp), Some(parent))
                if otlp.parent_based && parent.trace_state().get(OTLP_DECISION_KEY) != Some(OTLP_UNDECIDED) =>
            {
                otlp_sampled(parent)
            }
            (Some(otlp), _) => otlp.takes_new(trace_id),
        };

        // A local parent always has the X-Ray decision; a remote one has it when the caller made it.
        let undecided =
            parent.is_none_or(|parent| parent.is_remote() && parent.trace_state().get(XRAY_DECISION_KEY).is_none());
        if let Some(xray) = &self.xray
            && undecided
        {
            // A caller that recorded nothing gets nothing in X-Ray either.
            let decision = if parent_recorded && xray.sample(trace_id, attributes) { "1" } else { "0" };
            trace_state = trace_state.insert(XRAY_DECISION_KEY, decision).unwrap_or(trace_state);
        }
        let xray_takes = self.xray.is_some() && trace_state.get(XRAY_DECISION_KEY) != Some("0");

        let recorded = otlp_takes || xray_takes;
        // `otlp=0` where OTLP declined a recorded trace: here, or upstream when this service has no OTLP (then the
        // recorded flag is X-Ray's decision, as with X-Ray's own OpenTelemetry sampler). A caller's `otlp=?` stops here.
        let otlp_entry = trace_state.get(OTLP_DECISION_KEY);
        let wanted = (recorded && !otlp_takes && (self.otlp.is_some() || otlp_entry == Some("0"))).then_some("0");
        if wanted != otlp_entry {
            trace_state = match wanted {
                Some(declined) => trace_state.insert(OTLP_DECISION_KEY, declined),
                None => trace_state.delete(OTLP_DECISION_KEY),
            }
            .unwrap_or(trace_state);
        }
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

/// X-Ray's decisions: the rule set in force (local rules, or the daemon's once fetched) and the segment naming its
/// `ServiceName` patterns match.
#[derive(Debug)]
pub(crate) struct XraySampler {
    naming: SegmentNaming,
    rules: RwLock<Arc<RuleSet>>,
}

impl XraySampler {
    pub(crate) fn new(naming: SegmentNaming, rules: RuleSet) -> Self {
        Self { naming, rules: RwLock::new(Arc::new(rules)) }
    }

    pub(crate) fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub(crate) fn replace_rules(&self, rules: RuleSet) {
        *self.rules.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(rules);
    }

    fn sample(&self, trace_id: TraceId, attributes: &[KeyValue]) -> bool {
        let request = self.request(attributes);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.rules().matching(&request).decide(now, trace_id)
    }

    /// What rules match on: the segment name (which `ServiceName` patterns match), and the HTTP request of a server
    /// span's attributes (empty for a span that is not an HTTP request).
    fn request<'a>(&'a self, attributes: &'a [KeyValue]) -> Request<'a> {
        let mut request = Request::default();
        for attribute in attributes {
            let opentelemetry::Value::String(value) = &attribute.value else { continue };
            match attribute.key.as_str() {
                SERVER_ADDRESS => request.host = value.as_str(),
                HTTP_REQUEST_METHOD => request.http_method = value.as_str(),
                URL_PATH => request.url_path = value.as_str(),
                _ => {}
            }
        }
        request.service_name = self.naming.segment_name((!request.host.is_empty()).then_some(request.host));
        request
    }
}

/// Rules in the order they are tried; the last one matches everything.
#[derive(Debug)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<AppliedRule>,
}

impl RuleSet {
    /// Local rules, then their default.
    pub(crate) fn local(rules: &SamplingRules) -> Self {
        let default = Rule {
            description: "default".into(),
            host: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            fixed_target: rules.default.fixed_target,
            rate: rules.default.rate,
        };
        let rules = rules.rules.iter().chain([&default]).enumerate().map(|(index, rule)| {
            let name =
                if rule.description.is_empty() { format!("rule {}", index + 1) } else { rule.description.clone() };
            let patterns = Patterns {
                host: &rule.host,
                http_method: &rule.http_method,
                url_path: &rule.url_path,
                ..Patterns::ANY
            };
            AppliedRule::new(name, patterns, Reservoir::fixed(rule.fixed_target, rule.rate))
        });
        Self { rules: rules.collect() }
    }

    pub(crate) fn named(&self, name: &str) -> Option<&AppliedRule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    fn matching(&self, request: &Request<'_>) -> &AppliedRule {
        let last = self.rules.last().expect("a rule set ends with a rule matching everything");
        self.rules.iter().find(|rule| rule.matcher.matches(request)).unwrap_or(last)
    }
}

/// A rule as it is applied: its patterns, its reservoir, and its counts since the last report to X-Ray.
#[derive(Debug)]
pub(crate) struct AppliedRule {
    pub(crate) name: String,
    matcher: RuleMatcher,
    pub(crate) reservoir: Reservoir,
    pub(crate) statistics: Statistics,
}

impl AppliedRule {
    pub(crate) fn new(name: String, patterns: Patterns<'_>, reservoir: Reservoir) -> Self {
        Self { name, matcher: RuleMatcher::new(patterns), reservoir, statistics: Statistics::default() }
    }

    fn decide(&self, now: u64, trace_id: TraceId) -> bool {
        let decision = self.reservoir.decide(now, |rate| ratio_takes(rate, trace_id));
        self.statistics.count(decision);
        decision.sampled()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceState};
    use xray_protocol::Decision;

    use super::*;

    /// Trace ids spread over the id space, the same on every run.
    fn trace_ids(count: u64) -> impl Iterator<Item = TraceId> {
        (1..=count).map(|n| TraceId::from(u128::from(n) << 64 | u128::from(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
    }

    fn request(method: &'static str, path: &'static str) -> Vec<KeyValue> {
        vec![KeyValue::new(HTTP_REQUEST_METHOD, method), KeyValue::new(URL_PATH, path)]
    }

    pub(crate) fn sampler(rules: RuleSet) -> XraySampler {
        let naming = SegmentNaming::new(&XrayConfig {
            daemon_address: "127.0.0.1:2000".into(),
            segment_name: "cruddur-backend".into(),
            dynamic_naming: Some("*.gitpod.io".into()),
            sampling: XraySampling::Local(SamplingRules::default()),
        });
        XraySampler::new(naming, rules)
    }

    #[test]
    fn the_default_rule_takes_one_trace_a_second_then_five_percent() {
        let rules = RuleSet::local(&SamplingRules::default());
        let default = &rules.rules[0];
        let ids: Vec<TraceId> = trace_ids(10_000).collect();
        assert!(default.decide(100, ids[0]), "the reservoir's one");
        let second: Vec<bool> = ids[1..].iter().map(|id| default.decide(100, *id)).collect();
        let by_rate = second.iter().filter(|sampled| **sampled).count();
        assert!((350..=650).contains(&by_rate), "{by_rate} of 9999 sampled by the 5% rate after the reservoir's one");
        assert_eq!(default.reservoir.decide(101, |_| false), Decision::Reserved, "a new second, a new place");
        let counts = default.statistics.take();
        assert_eq!((counts.requests, counts.sampled, counts.borrowed), (10_000, 1 + by_rate as u64, 0));
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
        let sampler = sampler(RuleSet::local(&rules));
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
        let xray = |rules: &SamplingRules| Some(Arc::new(sampler(RuleSet::local(rules))));
        let both = TraceSampler::new(Some(OtlpSampling::default()), xray(&never));
        let root = decide(&both, None);
        assert_eq!(root.decision, SamplingDecision::RecordAndSample);
        assert_eq!(root.trace_state.get(XRAY_DECISION_KEY), Some("0"));

        let xray_only = TraceSampler::new(None, xray(&never));
        assert_eq!(decide(&xray_only, None).decision, SamplingDecision::Drop, "nobody would take it");
        let all = TraceSampler::new(None, xray(&SamplingRules::parse(EVERY_TRACE).unwrap()));
        assert_eq!(decide(&all, None).trace_state.get(XRAY_DECISION_KEY), Some("1"));

        let otlp_only = TraceSampler::new(Some(OtlpSampling::default()), None);
        assert_eq!(decide(&otlp_only, None).trace_state, TraceState::default(), "no X-Ray, no decision");
        assert_eq!(decide(&TraceSampler::new(None, None), None).decision, SamplingDecision::Drop);
    }

    #[test]
    fn a_callers_decision_is_kept_and_a_caller_without_one_gets_ours() {
        let never = SamplingRules { rules: Vec::new(), default: Target { fixed_target: 0, rate: 0.0 } };
        let sampler = TraceSampler::new(Some(OtlpSampling::default()), Some(Arc::new(sampler(RuleSet::local(&never)))));
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

#[cfg(test)]
mod otlp_tests {
    use opentelemetry::trace::{SpanId, TraceFlags};

    use super::tests::sampler;
    use super::*;

    fn otlp(sampler: &str, argument: Option<&str>) -> OtlpSampling {
        OtlpSampling::from_variables(Some(sampler), argument).unwrap()
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
    fn the_standard_variables_are_read_and_others_refused() {
        assert_eq!(OtlpSampling::from_variables(None, None).unwrap(), OtlpSampling::default());
        assert_eq!(otlp("parentbased_traceidratio", Some("0.25")), OtlpSampling { ratio: 0.25, parent_based: true });
        assert_eq!(otlp("traceidratio", None), OtlpSampling { ratio: 1.0, parent_based: false });
        assert_eq!(otlp("always_off", None), OtlpSampling { ratio: 0.0, parent_based: false });
        assert!(OtlpSampling::from_variables(Some("traceidratio"), Some("2")).unwrap_err().contains("between 0 and 1"));
        assert!(OtlpSampling::from_variables(Some("xray"), None).unwrap_err().contains("AWS_XRAY_SAMPLING_RULES"));
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
        let every = SamplingRules::parse(EVERY_TRACE).unwrap();
        let sampler =
            TraceSampler::new(Some(otlp("always_off", None)), Some(Arc::new(sampler(RuleSet::local(&every)))));
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
            trace_state: format!("{OTLP_DECISION_KEY}={OTLP_UNDECIDED}").parse().unwrap(),
        };
        let never = TraceSampler::new(Some(otlp("parentbased_always_off", None)), None);
        assert_eq!(child_of(&never, &from_load_balancer, true).decision, SamplingDecision::Drop, "not forced");
        let always = TraceSampler::new(Some(otlp("parentbased_always_on", None)), None);
        let taken = child_of(&always, &from_load_balancer, true);
        assert_eq!(taken.decision, SamplingDecision::RecordAndSample);
        assert_eq!(taken.trace_state.get(OTLP_DECISION_KEY), None);
    }
}
