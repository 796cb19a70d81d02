//! The sampling rule file, in the AWS CLI's `--cli-input-json` format of `create-sampling-rule`
//! (`{"SamplingRule": {...}}`), read and checked field by field before any call is made, so that a mistake is
//! reported with the field's name and the file's path instead of an AWS error after half the work. The rule itself
//! is `xray-protocol`'s model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_sdk_xray::types::SamplingRule as AwsSamplingRule;
use serde_json::{Map, Value};
use xray_protocol::SamplingRule;

use crate::InfraError;

/// The fields X-Ray lets us set and change, by their names in the file, as text for plans: what a new rule is
/// created with, and what is compared with the rule X-Ray holds (RuleName identifies it; Version can only be 1).
pub fn fields(rule: &SamplingRule) -> Vec<(&'static str, String)> {
    let attributes: Map<String, Value> =
        rule.attributes.iter().map(|(name, value)| (name.clone(), Value::from(value.as_str()))).collect();
    vec![
        ("ResourceARN", rule.resource_arn.clone()),
        ("Priority", rule.priority.to_string()),
        ("FixedRate", rule.fixed_rate.to_string()),
        ("ReservoirSize", rule.reservoir_size.to_string()),
        ("ServiceName", rule.service_name.clone()),
        ("ServiceType", rule.service_type.clone()),
        ("Host", rule.host.clone()),
        ("HTTPMethod", rule.http_method.clone()),
        ("URLPath", rule.url_path.clone()),
        ("Attributes", Value::Object(attributes).to_string()),
    ]
}

/// The rule X-Ray holds, in the protocol's terms, to compare it with the file (its ARN is left out, as the file
/// has none).
pub fn from_aws(rule: &AwsSamplingRule) -> SamplingRule {
    SamplingRule {
        rule_name: rule.rule_name().unwrap_or_default().to_owned(),
        rule_arn: None,
        resource_arn: rule.resource_arn().to_owned(),
        priority: rule.priority(),
        fixed_rate: rule.fixed_rate(),
        reservoir_size: rule.reservoir_size(),
        service_name: rule.service_name().to_owned(),
        service_type: rule.service_type().to_owned(),
        host: rule.host().to_owned(),
        http_method: rule.http_method().to_owned(),
        url_path: rule.url_path().to_owned(),
        version: rule.version(),
        attributes: rule
            .attributes()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    }
}

/// The members of `SamplingRule` in the CLI format that a rule file may hold.
const FIELDS: [&str; 12] = [
    "RuleName",
    "ResourceARN",
    "Priority",
    "FixedRate",
    "ReservoirSize",
    "ServiceName",
    "ServiceType",
    "Host",
    "HTTPMethod",
    "URLPath",
    "Version",
    "Attributes",
];

/// Members of the CLI format this tool does not manage: rather than ignore them silently, it says so.
const UNMANAGED: [(&str, &str); 3] = [
    ("RuleARN", "is assigned by X-Ray: leave it out (RuleName names the rule)"),
    ("SamplingRateBoost", "is not managed by cruddur-infra: leave it out (aws xray update-sampling-rule sets it)"),
    ("Tags", "are not managed by cruddur-infra: leave them out (aws xray tag-resource sets them)"),
];

/// The rule file in the usual place: `infra/aws/json/xray.json` under `start` or the nearest of its parents that
/// has one (so it is found from the workspace root, from `infra/`, or from any other member).
pub fn locate(start: &Path) -> Result<PathBuf, InfraError> {
    start
        .ancestors()
        .map(|directory| directory.join("infra/aws/json/xray.json"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| InfraError::NoRuleFile { searched: start.to_path_buf() })
}

/// Reads and checks the rule file at `path`.
pub fn load(path: &Path) -> Result<SamplingRule, InfraError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| InfraError::RuleFileUnreadable { file: file.clone(), source })?;
    parse(&text, &file)
}

/// Checks the text of a rule file; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<SamplingRule, InfraError> {
    let error = |field: &str, problem: String| InfraError::RuleField {
        file: file.to_owned(),
        field: field.to_owned(),
        problem,
    };
    let document: Value =
        serde_json::from_str(text).map_err(|source| InfraError::RuleFileNotJson { file: file.to_owned(), source })?;
    let document =
        document.as_object().ok_or_else(|| error("SamplingRule", "missing: the file is not an object".into()))?;
    let rule = document
        .get("SamplingRule")
        .ok_or_else(|| error("SamplingRule", "is missing".into()))?
        .as_object()
        .ok_or_else(|| error("SamplingRule", "must be an object".into()))?;
    for key in document.keys().chain(rule.keys()) {
        if let Some((field, problem)) = UNMANAGED.iter().find(|(field, _)| field == key) {
            return Err(error(field, (*problem).to_owned()));
        }
    }
    if let Some(unknown) = document.keys().find(|key| *key != "SamplingRule") {
        return Err(error(unknown, "is not a member of the create-sampling-rule input".into()));
    }
    if let Some(unknown) = rule.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(error(unknown, "is not a field of a sampling rule".into()));
    }
    let fields = Fields { rule, error: &error };
    let rule = SamplingRule {
        rule_name: fields.text("RuleName", 32)?,
        rule_arn: None,
        resource_arn: fields.text("ResourceARN", 500)?,
        priority: fields.integer("Priority", 1, 9999)?,
        fixed_rate: fields.rate("FixedRate")?,
        reservoir_size: fields.integer("ReservoirSize", 0, i32::MAX)?,
        service_name: fields.text("ServiceName", 64)?,
        service_type: fields.text("ServiceType", 64)?,
        host: fields.text("Host", 64)?,
        http_method: fields.text("HTTPMethod", 10)?,
        url_path: fields.text("URLPath", 128)?,
        version: fields.integer("Version", 1, 1)?,
        attributes: fields.attributes()?,
    };
    Ok(rule)
}

struct Fields<'a, E> {
    rule: &'a Map<String, Value>,
    error: &'a E,
}

impl<E: Fn(&str, String) -> InfraError> Fields<'_, E> {
    fn value(&self, field: &str) -> Result<&Value, InfraError> {
        self.rule.get(field).ok_or_else(|| (self.error)(field, "is missing".into()))
    }

    fn text(&self, field: &str, max_chars: usize) -> Result<String, InfraError> {
        let text = self.value(field)?.as_str().ok_or_else(|| (self.error)(field, "must be a string".into()))?;
        match text.chars().count() {
            0 => Err((self.error)(field, "must not be empty".into())),
            chars if chars > max_chars => {
                Err((self.error)(field, format!("must be at most {max_chars} characters, not {chars}")))
            }
            _ => Ok(text.to_owned()),
        }
    }

    fn integer(&self, field: &str, min: i32, max: i32) -> Result<i32, InfraError> {
        let value = self.value(field)?.as_i64().ok_or_else(|| (self.error)(field, "must be a whole number".into()))?;
        i32::try_from(value)
            .ok()
            .filter(|value| (min..=max).contains(value))
            .ok_or_else(|| (self.error)(field, format!("must be between {min} and {max}, not {value}")))
    }

    fn rate(&self, field: &str) -> Result<f64, InfraError> {
        let value = self.value(field)?.as_f64().ok_or_else(|| (self.error)(field, "must be a number".into()))?;
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err((self.error)(field, format!("must be between 0 and 1, not {value}")))
        }
    }

    /// Optional; names and values of 1 to 32 characters, as X-Ray takes them.
    fn attributes(&self) -> Result<BTreeMap<String, String>, InfraError> {
        let Some(attributes) = self.rule.get("Attributes") else { return Ok(BTreeMap::new()) };
        let problem = |problem: String| (self.error)("Attributes", problem);
        let attributes = attributes.as_object().ok_or_else(|| problem("must be an object".into()))?;
        attributes
            .iter()
            .map(|(name, value)| {
                let value = value.as_str().ok_or_else(|| problem(format!("{name} must be a string")))?;
                for (what, text) in [("name", name.as_str()), ("value", value)] {
                    if !(1..=32).contains(&text.chars().count()) {
                        return Err(problem(format!("{what} {text:?} must be 1 to 32 characters")));
                    }
                }
                Ok((name.clone(), value.to_owned()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = include_str!("../aws/json/xray.json");

    fn with(field: &str, value: Value) -> String {
        let mut document: Value = serde_json::from_str(VALID).unwrap();
        document["SamplingRule"][field] = value;
        document.to_string()
    }

    fn without(field: &str) -> String {
        let mut document: Value = serde_json::from_str(VALID).unwrap();
        document["SamplingRule"].as_object_mut().unwrap().remove(field);
        document.to_string()
    }

    fn field_of(text: &str) -> String {
        match parse(text, "xray.json") {
            Err(InfraError::RuleField { field, .. }) => field,
            other => panic!("expected a rule field error, got {other:?}"),
        }
    }

    fn message_of(text: &str) -> String {
        parse(text, "infra/aws/json/xray.json").unwrap_err().to_string()
    }

    #[test]
    fn the_committed_file_is_the_original_rule_for_our_service() {
        let rule = parse(VALID, "xray.json").unwrap();
        assert_eq!(rule.rule_name, "Cruddur");
        assert_eq!((rule.priority, rule.fixed_rate, rule.reservoir_size), (9000, 0.1, 5));
        assert_eq!(rule.service_name, "cruddur-backend");
        assert_eq!((rule.resource_arn.as_str(), rule.url_path.as_str()), ("*", "*"));
        assert_eq!(rule.version, 1);
        assert!(rule.attributes.is_empty());
    }

    #[test]
    fn each_mistake_names_its_field() {
        assert_eq!(field_of("[]"), "SamplingRule");
        assert_eq!(field_of("{}"), "SamplingRule");
        assert_eq!(field_of(r#"{"SamplingRule": 1}"#), "SamplingRule");
        for field in FIELDS.iter().filter(|field| **field != "Attributes") {
            assert_eq!(field_of(&without(field)), *field, "{field} is required");
        }
        assert_eq!(field_of(&with("FixedRate", 1.5.into())), "FixedRate");
        assert_eq!(field_of(&with("FixedRate", (-0.1).into())), "FixedRate");
        assert_eq!(field_of(&with("FixedRate", "0.1".into())), "FixedRate");
        assert_eq!(field_of(&with("Priority", 0.into())), "Priority");
        assert_eq!(field_of(&with("Priority", 10000.into())), "Priority");
        assert_eq!(field_of(&with("Priority", 9000.5.into())), "Priority");
        assert_eq!(field_of(&with("RuleName", "x".repeat(33).into())), "RuleName");
        assert_eq!(field_of(&with("RuleName", "".into())), "RuleName");
        assert_eq!(field_of(&with("RuleName", 7.into())), "RuleName");
        assert_eq!(field_of(&with("ReservoirSize", (-1).into())), "ReservoirSize");
        assert_eq!(field_of(&with("Version", 2.into())), "Version");
        assert_eq!(field_of(&with("ServiceName", "s".repeat(65).into())), "ServiceName");
        assert_eq!(field_of(&with("HTTPMethod", "PROPPATCHING".into())), "HTTPMethod");
        assert_eq!(field_of(&with("Sampling", 1.into())), "Sampling");
        assert_eq!(field_of(&with("Attributes", serde_json::json!({"a": 1}))), "Attributes");
        assert_eq!(field_of(&with("Attributes", serde_json::json!({"a": ""}))), "Attributes");
        assert_eq!(field_of(&with("Attributes", serde_json::json!({"a".repeat(33): "b"}))), "Attributes");
    }

    #[test]
    fn fields_this_tool_does_not_manage_are_refused_not_ignored() {
        let arn = with("RuleARN", "arn:aws:xray:us-east-1:1:sampling-rule/Cruddur".into());
        assert_eq!(
            message_of(&arn),
            "infra/aws/json/xray.json: RuleARN is assigned by X-Ray: leave it out (RuleName names the rule)"
        );
        assert_eq!(field_of(&with("SamplingRateBoost", serde_json::json!({"MaxRate": 0.5}))), "SamplingRateBoost");
        let mut tagged: Value = serde_json::from_str(VALID).unwrap();
        tagged["Tags"] = serde_json::json!([{"Key": "app", "Value": "cruddur"}]);
        assert_eq!(field_of(&tagged.to_string()), "Tags");
        tagged.as_object_mut().unwrap().remove("Tags");
        tagged["DryRun"] = true.into();
        assert_eq!(field_of(&tagged.to_string()), "DryRun");
    }

    #[test]
    fn attributes_are_optional_and_kept() {
        let rule = parse(&with("Attributes", serde_json::json!({"route": "/api/*"})), "xray.json").unwrap();
        assert_eq!(rule.attributes, BTreeMap::from([("route".to_owned(), "/api/*".to_owned())]));
    }

    #[test]
    fn errors_say_the_file_the_field_and_the_problem() {
        assert_eq!(
            message_of(&with("FixedRate", 2.into())),
            "infra/aws/json/xray.json: FixedRate must be between 0 and 1, not 2"
        );
        assert_eq!(message_of(&without("URLPath")), "infra/aws/json/xray.json: URLPath is missing");
        assert!(
            message_of("{not json").starts_with("infra/aws/json/xray.json: not JSON: key must be a string at line 1")
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let missing = Path::new("/nonexistent/xray.json");
        let message = load(missing).unwrap_err().to_string();
        assert!(message.starts_with("/nonexistent/xray.json: cannot read it: "), "{message}");
    }

    #[test]
    fn the_usual_file_is_found_from_the_root_infra_or_another_member() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let expected = root.join("infra/aws/json/xray.json");
        assert_eq!(locate(root).unwrap(), expected);
        assert_eq!(locate(&root.join("infra")).unwrap(), expected);
        assert_eq!(locate(&root.join("infra/src")).unwrap(), expected);
        assert_eq!(locate(&root.join("backend")).unwrap(), expected);
        let elsewhere = tempfile::tempdir().unwrap();
        let message = locate(elsewhere.path()).unwrap_err().to_string();
        assert!(message.starts_with("no rule file: pass --rule-file"), "{message}");
    }
}
