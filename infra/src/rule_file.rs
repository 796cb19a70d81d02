//! The sampling rule file, in the AWS CLI's `--cli-input-json` format of `create-sampling-rule`
//! (`{"SamplingRule": {...}}`), found and read here and checked field by field by `xray-protocol` before any call is
//! made, so that a mistake is reported with the field's name and the file's path instead of an AWS error after half
//! the work; and the rule's fields as plans show them.

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

/// The rule file in the usual place: `infra/aws/json/xray.json` under `start` or the nearest of its parents that
/// has one (so it is found from the workspace root, from `infra/`, or from any other member).
pub fn locate(start: &Path) -> Result<PathBuf, InfraError> {
    start
        .ancestors()
        .map(|directory| directory.join(xray_protocol::rule_file::USUAL_PATH))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| InfraError::NoRuleFile { searched: start.to_path_buf() })
}

/// Reads and checks the rule file at `path`.
pub fn load(path: &Path) -> Result<SamplingRule, InfraError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| InfraError::RuleFileUnreadable { file: file.clone(), source })?;
    xray_protocol::rule_file::parse(&text).map_err(|problem| InfraError::RuleFile { file, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("aws/json/xray.json")
    }

    #[test]
    fn the_committed_file_is_the_original_rule_for_our_service() {
        let rule = load(&committed()).unwrap();
        assert_eq!(rule.rule_name, "Cruddur");
        assert_eq!((rule.priority, rule.fixed_rate, rule.reservoir_size), (9000, 0.1, 5));
        assert_eq!(rule.service_name, "cruddur-backend");
    }

    #[test]
    fn a_bad_file_is_named_with_its_field_and_problem() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("xray.json");
        std::fs::write(&path, r#"{"SamplingRule": {"RuleName": "Cruddur"}}"#).unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert_eq!(message, format!("{}: ResourceARN is missing", path.display()));
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
