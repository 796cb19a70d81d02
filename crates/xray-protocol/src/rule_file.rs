//! The sampling rule file, in the AWS CLI's `--cli-input-json` format of `create-sampling-rule`
//! (`{"SamplingRule": {...}}`), checked field by field, so that a mistake is reported with the field's name before
//! anything uses the rule. `infra` creates the rule from it and the daemon's console serves it; each reads the file
//! where it is configured and hands the text here.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::SamplingRule;

/// Where the project keeps its rule file, relative to the workspace root.
pub const USUAL_PATH: &str = "infra/aws/json/xray.json";

/// What is wrong with a rule file's text.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// One field is wrong: `{field} {problem}` reads as a sentence.
    #[error("{field} {problem}")]
    Field { field: String, problem: String },
}

/// The members of `SamplingRule` in the CLI format that a rule file may hold.
pub const FIELDS: [&str; 12] = [
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

/// Members of the CLI format a rule file does not set: rather than ignore them silently, it says so.
const UNMANAGED: [(&str, &str); 3] = [
    ("RuleARN", "is assigned by X-Ray: leave it out (RuleName names the rule)"),
    ("SamplingRateBoost", "is not set by a rule file: leave it out (aws xray update-sampling-rule sets it)"),
    ("Tags", "are not set by a rule file: leave them out (aws xray tag-resource sets them)"),
];

/// Checks the text of a rule file, field by field.
pub fn parse(text: &str) -> Result<SamplingRule, RuleFileError> {
    let error = |field: &str, problem: String| RuleFileError::Field { field: field.to_owned(), problem };
    let document: Value = serde_json::from_str(text).map_err(RuleFileError::NotJson)?;
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
    Ok(SamplingRule {
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
    })
}

struct Fields<'a, E> {
    rule: &'a Map<String, Value>,
    error: &'a E,
}

impl<E: Fn(&str, String) -> RuleFileError> Fields<'_, E> {
    fn value(&self, field: &str) -> Result<&Value, RuleFileError> {
        self.rule.get(field).ok_or_else(|| (self.error)(field, "is missing".into()))
    }

    fn text(&self, field: &str, max_chars: usize) -> Result<String, RuleFileError> {
        let text = self.value(field)?.as_str().ok_or_else(|| (self.error)(field, "must be a string".into()))?;
        match text.chars().count() {
            0 => Err((self.error)(field, "must not be empty".into())),
            chars if chars > max_chars => {
                Err((self.error)(field, format!("must be at most {max_chars} characters, not {chars}")))
            }
            _ => Ok(text.to_owned()),
        }
    }

    fn integer(&self, field: &str, min: i32, max: i32) -> Result<i32, RuleFileError> {
        let value = self.value(field)?.as_i64().ok_or_else(|| (self.error)(field, "must be a whole number".into()))?;
        i32::try_from(value)
            .ok()
            .filter(|value| (min..=max).contains(value))
            .ok_or_else(|| (self.error)(field, format!("must be between {min} and {max}, not {value}")))
    }

    fn rate(&self, field: &str) -> Result<f64, RuleFileError> {
        let value = self.value(field)?.as_f64().ok_or_else(|| (self.error)(field, "must be a number".into()))?;
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err((self.error)(field, format!("must be between 0 and 1, not {value}")))
        }
    }

    /// Optional; names and values of 1 to 32 characters, as X-Ray takes them.
    fn attributes(&self) -> Result<BTreeMap<String, String>, RuleFileError> {
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

    /// The original week's rule, as `infra/aws/json/xray.json` holds it.
    const VALID: &str = r#"{"SamplingRule": {"RuleName": "Cruddur", "ResourceARN": "*", "Priority": 9000,
        "FixedRate": 0.1, "ReservoirSize": 5, "ServiceName": "cruddur-backend", "ServiceType": "*", "Host": "*",
        "HTTPMethod": "*", "URLPath": "*", "Version": 1}}"#;

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
        match parse(text) {
            Err(RuleFileError::Field { field, .. }) => field,
            other => panic!("expected a rule field error, got {other:?}"),
        }
    }

    fn message_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_rule_is_read_whole() {
        let rule = parse(VALID).unwrap();
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
    fn fields_a_rule_file_does_not_set_are_refused_not_ignored() {
        let arn = with("RuleARN", "arn:aws:xray:us-east-1:1:sampling-rule/Cruddur".into());
        assert_eq!(message_of(&arn), "RuleARN is assigned by X-Ray: leave it out (RuleName names the rule)");
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
        let rule = parse(&with("Attributes", serde_json::json!({"route": "/api/*"}))).unwrap();
        assert_eq!(rule.attributes, BTreeMap::from([("route".to_owned(), "/api/*".to_owned())]));
    }

    #[test]
    fn errors_say_the_field_and_the_problem() {
        assert_eq!(message_of(&with("FixedRate", 2.into())), "FixedRate must be between 0 and 1, not 2");
        assert_eq!(message_of(&without("URLPath")), "URLPath is missing");
        assert!(message_of("{not json").starts_with("not JSON: key must be a string at line 1"));
    }
}
