//! The sampling settings: which traces OTLP takes (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), and where
//! X-Ray's rules come from (the daemon, or `AWS_XRAY_SAMPLING_RULES` in the X-Ray SDKs' local format, version 2):
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
//! How they are applied is [`crate::sampling`]'s business.

use serde::Deserialize;

/// Rules that send every trace to X-Ray, as `AWS_XRAY_SAMPLING_RULES` takes them (development, tests).
pub const EVERY_TRACE: &str = r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1.0}}"#;

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
}

/// Where X-Ray's sampling rules come from.
#[derive(Debug, Clone, PartialEq)]
pub enum XraySampling {
    /// From X-Ray through the daemon's TCP `host:port` (`AWS_XRAY_DAEMON_ADDRESS`), X-Ray's default rule until then.
    Centralized { daemon_tcp_address: String },
    /// These rules only (`AWS_XRAY_SAMPLING_RULES`).
    Local(SamplingRules),
}

/// X-Ray sampling rules in the X-Ray SDKs' local format (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingRules {
    pub(crate) rules: Vec<LocalRule>,
    pub(crate) default: LocalTarget,
}

/// One rule of the local format.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalRule {
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) host: String,
    pub(crate) http_method: String,
    pub(crate) url_path: String,
    pub(crate) fixed_target: u32,
    pub(crate) rate: f64,
}

impl LocalRule {
    pub(crate) fn target(&self) -> LocalTarget {
        LocalTarget { fixed_target: self.fixed_target, rate: self.rate }
    }
}

/// Traces per second taken first, then the fraction of the others.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalTarget {
    pub(crate) fixed_target: u32,
    pub(crate) rate: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    version: u32,
    #[serde(default)]
    rules: Vec<LocalRule>,
    default: LocalTarget,
}

impl Default for SamplingRules {
    /// X-Ray's default rule: 1 trace per second, then 5%.
    fn default() -> Self {
        Self { rules: Vec::new(), default: LocalTarget { fixed_target: 1, rate: 0.05 } }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(sampler: &str, argument: Option<&str>) -> OtlpSampling {
        OtlpSampling::from_variables(Some(sampler), argument).unwrap()
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
    fn bad_rule_files_are_explained() {
        let error = |json: &str| SamplingRules::parse(json).unwrap_err();
        assert!(error(r#"{"version": 1, "default": {"fixed_target": 1, "rate": 0.1}}"#).contains("version 1"));
        assert!(error(r#"{"version": 2, "default": {"fixed_target": 1, "rate": 5}}"#).contains("between 0 and 1"));
        assert!(error(r#"{"version": 2}"#).contains("default"));
        assert!(error(r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.1, "typo": 1}}"#).contains("typo"));
    }
}
