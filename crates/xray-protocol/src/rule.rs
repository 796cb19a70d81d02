//! The sampling rule model and its matching, as X-Ray defines them: a rule has patterns (`*` and `?` wildcards,
//! case-insensitive) for the service name and type, host, HTTP method and URL path; rules are tried by priority
//! (then name), and the first whose patterns all match decides, with X-Ray's `Default` rule (matching everything)
//! last.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

/// The name of the rule X-Ray always has.
pub const DEFAULT_RULE_NAME: &str = "Default";

/// A sampling rule, with the members and names of X-Ray's `SamplingRule` (and of the AWS CLI's
/// `create-sampling-rule --cli-input-json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRule {
    pub rule_name: String,
    /// Assigned by X-Ray: present in what it sends, absent from what is written to it.
    #[serde(rename = "RuleARN", default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    pub priority: i32,
    pub fixed_rate: f64,
    pub reservoir_size: i32,
    pub service_name: String,
    pub service_type: String,
    pub host: String,
    #[serde(rename = "HTTPMethod")]
    pub http_method: String,
    #[serde(rename = "URLPath")]
    pub url_path: String,
    pub version: i32,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl SamplingRule {
    /// X-Ray's `Default` rule as it comes in a new account: 1 trace per second, then 5%, for everything.
    pub fn default_rule() -> Self {
        Self {
            rule_name: DEFAULT_RULE_NAME.into(),
            rule_arn: None,
            resource_arn: "*".into(),
            priority: 10000,
            fixed_rate: 0.05,
            reservoir_size: 1,
            service_name: "*".into(),
            service_type: "*".into(),
            host: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            version: 1,
            attributes: BTreeMap::new(),
        }
    }

    /// The order X-Ray tries rules in: by priority, then by name.
    pub fn evaluation_order(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| self.rule_name.cmp(&other.rule_name))
    }

    /// Whether an SDK tracing HTTP requests can apply it: rules for a service type (such an SDK reports none), a
    /// specific resource, or span attributes are other SDKs' business, as the X-Ray SDKs leave them out.
    pub fn applies_to_http_services(&self) -> bool {
        self.version == 1 && self.resource_arn == "*" && self.service_type == "*" && self.attributes.is_empty()
    }

    /// Whether its patterns match every request (a rule after it is never reached).
    pub fn matches_everything(&self) -> bool {
        [&self.service_name, &self.service_type, &self.host, &self.http_method, &self.url_path]
            .iter()
            .all(|pattern| *pattern == "*")
    }

    /// Its patterns.
    pub fn patterns(&self) -> Patterns<'_> {
        Patterns {
            service_name: &self.service_name,
            service_type: &self.service_type,
            host: &self.host,
            http_method: &self.http_method,
            url_path: &self.url_path,
        }
    }
}

/// The patterns of a rule (`*` and `?`), borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patterns<'a> {
    pub service_name: &'a str,
    pub service_type: &'a str,
    pub host: &'a str,
    pub http_method: &'a str,
    pub url_path: &'a str,
}

impl Patterns<'static> {
    /// Patterns matching everything.
    pub const ANY: Self = Self { service_name: "*", service_type: "*", host: "*", http_method: "*", url_path: "*" };
}

/// A request as rules see it; a field the caller does not know is empty (and only `*` matches it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub service_name: &'a str,
    pub service_type: &'a str,
    pub host: &'a str,
    pub http_method: &'a str,
    pub url_path: &'a str,
}

/// A rule's patterns, compiled once and matched case-insensitively, as X-Ray matches them.
#[derive(Debug, Clone)]
pub struct RuleMatcher {
    service_name: WildMatch,
    service_type: WildMatch,
    host: WildMatch,
    http_method: WildMatch,
    url_path: WildMatch,
}

impl RuleMatcher {
    pub fn new(patterns: Patterns<'_>) -> Self {
        let pattern = WildMatch::new_case_insensitive;
        Self {
            service_name: pattern(patterns.service_name),
            service_type: pattern(patterns.service_type),
            host: pattern(patterns.host),
            http_method: pattern(patterns.http_method),
            url_path: pattern(patterns.url_path),
        }
    }

    /// Whether every pattern matches its part of `request`.
    pub fn matches(&self, request: &Request<'_>) -> bool {
        self.service_name.matches(request.service_name)
            && self.service_type.matches(request.service_type)
            && self.host.matches(request.host)
            && self.http_method.matches(request.http_method)
            && self.url_path.matches(request.url_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_reads_and_writes_xrays_member_names() {
        let json = r#"{"RuleName": "Cruddur", "RuleARN": "arn:aws:xray:us-east-1:1:sampling-rule/Cruddur",
            "ResourceARN": "*", "Priority": 9000, "FixedRate": 0.1, "ReservoirSize": 5,
            "ServiceName": "cruddur-backend", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*",
            "Version": 1, "Attributes": {}}"#;
        let rule: SamplingRule = serde_json::from_str(json).unwrap();
        assert_eq!((rule.priority, rule.fixed_rate, rule.reservoir_size), (9000, 0.1, 5));
        assert_eq!(rule.rule_arn.as_deref(), Some("arn:aws:xray:us-east-1:1:sampling-rule/Cruddur"));
        let written = serde_json::to_value(SamplingRule { rule_arn: None, ..rule }).unwrap();
        assert_eq!(written["HTTPMethod"], "*");
        assert_eq!(written["ResourceARN"], "*");
        assert!(written.get("RuleARN").is_none(), "X-Ray assigns it");
    }

    #[test]
    fn rules_match_case_insensitively_on_every_pattern() {
        let rule =
            SamplingRule { url_path: "/api/health*".into(), http_method: "GET".into(), ..SamplingRule::default_rule() };
        let matcher = RuleMatcher::new(rule.patterns());
        let request = Request {
            service_name: "cruddur-backend",
            http_method: "get",
            url_path: "/API/health-check",
            ..Request::default()
        };
        assert!(matcher.matches(&request));
        assert!(!matcher.matches(&Request { url_path: "/api/home", ..request }));
        assert!(!matcher.matches(&Request { http_method: "POST", ..request }));
        assert!(RuleMatcher::new(Patterns::ANY).matches(&Request::default()), "* matches what is not known");
    }

    #[test]
    fn rules_are_tried_by_priority_then_name_and_only_http_rules_apply_to_http_services() {
        let rule =
            |name: &str, priority| SamplingRule { rule_name: name.into(), priority, ..SamplingRule::default_rule() };
        let mut rules = [rule("b", 5), rule("Default", 10000), rule("a", 5), rule("first", 1)];
        rules.sort_by(SamplingRule::evaluation_order);
        let names: Vec<&str> = rules.iter().map(|rule| rule.rule_name.as_str()).collect();
        assert_eq!(names, ["first", "a", "b", "Default"]);
        assert!(SamplingRule::default_rule().applies_to_http_services());
        assert!(SamplingRule::default_rule().matches_everything());
        let ec2 = SamplingRule { service_type: "AWS::EC2::Instance".into(), ..SamplingRule::default_rule() };
        assert!(!ec2.applies_to_http_services() && !ec2.matches_everything());
        let tagged = SamplingRule { attributes: [("team".into(), "a".into())].into(), ..SamplingRule::default_rule() };
        assert!(!tagged.applies_to_http_services());
    }
}
