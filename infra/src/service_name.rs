//! The service name the group filters on: the name the backend gives its X-Ray segments, found the way the
//! backend's telemetry finds it (crates/telemetry, `XrayConfig`), so that the group gathers the backend's faults
//! and errors without anyone having to keep two settings in step.
//!
//! In order:
//! 1. `--service-name`, when given;
//! 2. dynamic naming: when `AWS_XRAY_URL` (`--xray-url`, a host pattern with `*` and `?`) matches the host of
//!    `BACKEND_URL` (`--backend-url`), the backend names the segments of those requests after that host, so that
//!    host is the name (in Gitpod: `AWS_XRAY_URL=*<workspace>.<cluster>*`, `BACKEND_URL=https://4567-<workspace>.
//!    <cluster>` gives `4567-<workspace>.<cluster>`, what the original week's `service("$FLASK_ADDRESS")` meant);
//! 3. the backend's fixed segment name: `AWS_XRAY_TRACING_NAME`, else `OTEL_SERVICE_NAME`, else
//!    `HONEYCOMB_SERVICE_NAME`, else `cruddur-backend`.
//!
//! The sampling rule follows the same name ([`rule_for`]), so that it applies to the segments the group gathers.

use url::Url;
use wildmatch::WildMatch;
use xray_protocol::SamplingRule;

use crate::{DEFAULT_SERVICE_NAME, InfraError};

/// The inputs of the command line (blank ones already left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub service_name: Option<String>,
    pub xray_url: Option<String>,
    pub backend_url: String,
}

/// The service name; `env` reads the backend's naming variables (an empty value counts as unset, as there).
pub fn resolve(naming: &Naming, env: impl Fn(&str) -> Option<String>) -> Result<String, InfraError> {
    let non_empty = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
    if let Some(name) = &naming.service_name {
        return Ok(name.clone());
    }
    if let Some(pattern) = &naming.xray_url {
        let host = Url::parse(&naming.backend_url).ok().and_then(|url| url.host_str().map(str::to_owned)).ok_or_else(
            || InfraError::Setting {
                setting: "BACKEND_URL",
                problem: format!("{:?} is not a URL with a host, like http://localhost:4567", naming.backend_url),
            },
        )?;
        if WildMatch::new_case_insensitive(pattern).matches(&host) {
            return Ok(host);
        }
    }
    Ok(["AWS_XRAY_TRACING_NAME", "OTEL_SERVICE_NAME", "HONEYCOMB_SERVICE_NAME"]
        .into_iter()
        .find_map(|variable| env(variable).as_deref().and_then(non_empty))
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()))
}

/// `rule` as X-Ray should hold it for the backend named `service_name`: a `ServiceName` pattern of the file that does
/// not match that name (the file's fixed `cruddur-backend` while dynamic naming names the segments after the Gitpod
/// host) would leave the rule applying to no request, so the name takes its place; a pattern that matches (`*`, or
/// the name itself) stays as written.
pub fn rule_for(mut rule: SamplingRule, service_name: &str) -> SamplingRule {
    if !WildMatch::new_case_insensitive(&rule.service_name).matches(service_name) {
        rule.service_name = service_name.to_owned();
    }
    rule
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolved(naming: Naming, variables: &[(&str, &str)]) -> String {
        let variables: HashMap<&str, &str> = variables.iter().copied().collect();
        resolve(&naming, |name| variables.get(name).map(|value| value.to_string())).unwrap()
    }

    fn naming(service_name: Option<&str>, xray_url: Option<&str>, backend_url: &str) -> Naming {
        Naming {
            service_name: service_name.map(str::to_owned),
            xray_url: xray_url.map(str::to_owned),
            backend_url: backend_url.to_owned(),
        }
    }

    const LOCAL: &str = "http://localhost:4567";
    const GITPOD: &str = "https://4567-abc123.ws-eu.gitpod.io";

    #[test]
    fn nothing_set_is_the_backend_s_default_name() {
        assert_eq!(resolved(naming(None, None, LOCAL), &[]), "cruddur-backend");
        assert_eq!(resolved(naming(None, None, LOCAL), &[("OTEL_SERVICE_NAME", " ")]), "cruddur-backend");
    }

    #[test]
    fn the_backend_s_variables_in_its_order() {
        let all = [
            ("AWS_XRAY_TRACING_NAME", "tracing"),
            ("OTEL_SERVICE_NAME", "otel"),
            ("HONEYCOMB_SERVICE_NAME", "honeycomb"),
        ];
        assert_eq!(resolved(naming(None, None, LOCAL), &all), "tracing");
        assert_eq!(resolved(naming(None, None, LOCAL), &all[1..]), "otel");
        assert_eq!(resolved(naming(None, None, LOCAL), &all[2..]), "honeycomb");
    }

    #[test]
    fn a_matching_backend_host_is_the_name_as_in_gitpod() {
        let gitpod = naming(None, Some("*abc123.ws-eu.gitpod.io*"), GITPOD);
        assert_eq!(resolved(gitpod, &[("OTEL_SERVICE_NAME", "otel")]), "4567-abc123.ws-eu.gitpod.io");
    }

    #[test]
    fn a_pattern_the_backend_host_does_not_match_leaves_the_fixed_name() {
        let local = naming(None, Some("*gitpod.io*"), LOCAL);
        assert_eq!(resolved(local, &[("OTEL_SERVICE_NAME", "otel")]), "otel");
    }

    #[test]
    fn the_flag_wins() {
        let everything = naming(Some("chosen"), Some("*"), GITPOD);
        assert_eq!(resolved(everything, &[("AWS_XRAY_TRACING_NAME", "tracing")]), "chosen");
    }

    #[test]
    fn a_backend_url_that_is_no_url_is_named() {
        for not_a_url in ["localhost:4567", "4567", "/api"] {
            let error = resolve(&naming(None, Some("*"), not_a_url), |_| None).unwrap_err();
            let expected = format!("BACKEND_URL: {not_a_url:?} is not a URL with a host, like http://localhost:4567");
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn the_rule_follows_the_name_unless_its_pattern_already_matches_it() {
        let rule = SamplingRule { service_name: "cruddur-backend".into(), ..SamplingRule::default_rule() };
        let gitpod = "4567-abc.ws-us1.gitpod.io";
        assert_eq!(rule_for(rule.clone(), gitpod).service_name, gitpod, "a dynamically named backend");
        assert_eq!(rule_for(rule.clone(), "CRUDDUR-backend").service_name, "cruddur-backend", "X-Ray ignores case");
        let any = SamplingRule { service_name: "*gitpod.io".into(), ..rule };
        assert_eq!(rule_for(any, gitpod).service_name, "*gitpod.io");
    }
}
