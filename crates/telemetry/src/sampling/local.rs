//! Local rules (`AWS_XRAY_SAMPLING_RULES`, the X-Ray SDKs' local format) as a rule set: the rules in their order,
//! then their default, each with a fixed reservoir. Without local rules, X-Ray's default rule in this form is what
//! applies until the daemon's rules arrive.

use xray_protocol::{Patterns, Reservoir};

use super::rules::{AppliedRule, RuleSet};
use crate::config::SamplingRules;

/// The rules of `rules`, then their default (named `default`); a rule without a description is named by its place.
pub(crate) fn rule_set(rules: &SamplingRules) -> RuleSet {
    let named = rules.rules.iter().enumerate().map(|(index, rule)| {
        let name = if rule.description.is_empty() { format!("rule {}", index + 1) } else { rule.description.clone() };
        let patterns =
            Patterns { host: &rule.host, http_method: &rule.http_method, url_path: &rule.url_path, ..Patterns::ANY };
        AppliedRule::new(name, patterns, Reservoir::fixed(rule.fixed_target, rule.rate))
    });
    let default = AppliedRule::new(
        "default".into(),
        Patterns::ANY,
        Reservoir::fixed(rules.default.fixed_target, rules.default.rate),
    );
    RuleSet { rules: named.chain([default]).collect() }
}

/// X-Ray's default rule: 1 trace per second, then 5%.
pub(crate) fn xrays_default() -> RuleSet {
    rule_set(&SamplingRules::default())
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::TraceId;
    use opentelemetry_semantic_conventions::attribute::{HTTP_REQUEST_METHOD, URL_PATH};
    use xray_protocol::Decision;

    use super::*;
    use crate::naming::SegmentNaming;
    use crate::sampling::rules::XraySampler;

    /// Trace ids spread over the id space, the same on every run.
    fn trace_ids(count: u64) -> impl Iterator<Item = TraceId> {
        (1..=count).map(|n| TraceId::from(u128::from(n) << 64 | u128::from(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
    }

    fn request(method: &'static str, path: &'static str) -> Vec<KeyValue> {
        vec![KeyValue::new(HTTP_REQUEST_METHOD, method), KeyValue::new(URL_PATH, path)]
    }

    #[test]
    fn the_default_rule_takes_one_trace_a_second_then_five_percent() {
        let rules = xrays_default();
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
        let sampler = XraySampler::new(SegmentNaming::new("cruddur-backend", None), rule_set(&rules));
        let id = trace_ids(1).next().unwrap();
        assert!(!sampler.sample(id, &request("GET", "/api/health-check")));
        assert!(sampler.sample(id, &request("get", "/API/activities/home")), "case-insensitive, as X-Ray matches");
        assert!(!sampler.sample(id, &request("GET", "/index.html")), "no rule: the default");
        assert!(!sampler.sample(id, &[]), "not a request: only rules matching anything apply");
        assert_eq!(sampler.rule_for(&request("POST", "/api/x")), "rule 2", "named by its place");
    }
}
