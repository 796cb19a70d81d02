//! The sampling rule file, in the AWS CLI's `--cli-input-json` format of `create-sampling-rule`
//! (`{"SamplingRule": {...}}`), read and checked field by field before any call is made, so that a mistake is
//! reported with the field's name and the file's path instead of an AWS error after half the work.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::InfraError;

/// A sampling rule as we want it in X-Ray.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRuleSpec {
    pub rule_name: String,
    pub resource_arn: String,
    pub priority: i32,
    pub fixed_rate: f64,
    pub reservoir_size: i32,
    pub service_name: String,
    pub service_type: String,
    pub host: String,
    pub http_method: String,
    pub url_path: String,
    pub version: i32,
    pub attributes: BTreeMap<String, String>,
}

/// The keys the CLI format allows in `SamplingRule`.
const KNOWN: [&str; 14] = [
    "RuleName",
    "RuleARN",
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
    "SamplingRateBoost",
];

/// Reads and checks the rule file at `path`.
pub fn load(path: &Path) -> Result<SamplingRuleSpec, InfraError> {
    let text = std::fs::read_to_string(path).map_err(|error| InfraError::RuleFile {
        file: path.display().to_string(),
        field: "-".into(),
        problem: error.to_string(),
    })?;
    parse(&text, &path.display().to_string())
}

/// Checks the text of a rule file; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<SamplingRuleSpec, InfraError> {
    let error =
        |field: &str, problem: String| InfraError::RuleFile { file: file.to_owned(), field: field.to_owned(), problem };
    let document: Value = serde_json::from_str(text).map_err(|source| error("-", format!("not JSON: {source}")))?;
    let rule = document
        .get("SamplingRule")
        .and_then(Value::as_object)
        .ok_or_else(|| error("SamplingRule", "missing, or not an object".into()))?;
    if let Some(unknown) = rule.keys().find(|key| !KNOWN.contains(&key.as_str())) {
        return Err(error(unknown, "is not a field of a sampling rule".into()));
    }
    let fields = Fields { rule, error: &error };
    let spec = SamplingRuleSpec {
        rule_name: fields.text("RuleName", 32)?,
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
    Ok(spec)
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

    fn attributes(&self) -> Result<BTreeMap<String, String>, InfraError> {
        let Some(attributes) = self.rule.get("Attributes") else { return Ok(BTreeMap::new()) };
        let not_strings = || (self.error)("Attributes", "must map names to strings".into());
        attributes
            .as_object()
            .ok_or_else(not_strings)?
            .iter()
            .map(|(name, value)| Ok((name.clone(), value.as_str().ok_or_else(not_strings)?.to_owned())))
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
            Err(InfraError::RuleFile { field, .. }) => field,
            other => panic!("expected a rule file error, got {other:?}"),
        }
    }

    #[test]
    fn the_committed_file_is_the_original_rule_for_our_service() {
        let rule = parse(VALID, "xray.json").unwrap();
        assert_eq!(rule.rule_name, "Cruddur");
        assert_eq!((rule.priority, rule.fixed_rate, rule.reservoir_size), (9000, 0.1, 5));
        assert_eq!(rule.service_name, "cruddur-backend");
        assert_eq!(rule.version, 1);
    }

    #[test]
    fn each_mistake_names_its_field() {
        assert_eq!(field_of("{not json"), "-");
        assert_eq!(field_of("{}"), "SamplingRule");
        assert_eq!(field_of(&without("FixedRate")), "FixedRate");
        assert_eq!(field_of(&with("FixedRate", 1.5.into())), "FixedRate");
        assert_eq!(field_of(&with("FixedRate", (-0.1).into())), "FixedRate");
        assert_eq!(field_of(&with("FixedRate", "0.1".into())), "FixedRate");
        assert_eq!(field_of(&with("Priority", 0.into())), "Priority");
        assert_eq!(field_of(&with("Priority", 10000.into())), "Priority");
        assert_eq!(field_of(&with("RuleName", "x".repeat(33).into())), "RuleName");
        assert_eq!(field_of(&with("RuleName", "".into())), "RuleName");
        assert_eq!(field_of(&with("ReservoirSize", (-1).into())), "ReservoirSize");
        assert_eq!(field_of(&with("Version", 2.into())), "Version");
        assert_eq!(field_of(&with("Sampling", 1.into())), "Sampling");
        assert_eq!(field_of(&with("Attributes", serde_json::json!({"a": 1}))), "Attributes");
    }

    #[test]
    fn errors_say_the_file_the_field_and_the_problem() {
        let message = parse(&with("FixedRate", 2.into()), "infra/aws/json/xray.json").unwrap_err().to_string();
        assert_eq!(message, "infra/aws/json/xray.json: FixedRate must be between 0 and 1, not 2");
    }
}
