//! X-Ray's rules as this process applies them: a [`RuleSet`] (tried in order, the last matching everything), each
//! [`AppliedRule`] with its matcher, reservoir and counts (`xray-protocol`'s), and the [`XraySampler`] holding the
//! set in force, which the poller replaces when the daemon's rules change.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceId;
use opentelemetry_semantic_conventions::attribute::{HTTP_REQUEST_METHOD, SERVER_ADDRESS, URL_PATH};
use xray_protocol::{Patterns, Request, Reservoir, RuleMatcher, Statistics};

use super::ratio::ratio_takes;
use crate::naming::SegmentNaming;

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

    /// Whether X-Ray takes a new trace whose root span has `attributes`, by the first rule matching it.
    pub(crate) fn sample(&self, trace_id: TraceId, attributes: &[KeyValue]) -> bool {
        self.rules().matching(&self.request(attributes)).decide(epoch_second(), trace_id)
    }

    /// The name of the rule a root span with `attributes` falls under.
    #[cfg(test)]
    pub(crate) fn rule_for(&self, attributes: &[KeyValue]) -> String {
        self.rules().matching(&self.request(attributes)).name.clone()
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

fn epoch_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Rules in the order they are tried; the last one matches everything.
#[derive(Debug)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<AppliedRule>,
}

impl RuleSet {
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

    /// The rule's decision at epoch second `now`, counted for the next report; its rate is read from the trace id.
    pub(crate) fn decide(&self, now: u64, trace_id: TraceId) -> bool {
        let decision = self.reservoir.decide(now, |rate| ratio_takes(rate, trace_id));
        self.statistics.count(decision);
        decision.sampled()
    }
}
