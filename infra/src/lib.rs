//! Cruddur's X-Ray group and sampling rule as code, on `aws-sdk-xray`: [`plan`] says what would change,
//! [`apply`] makes it so (a second run changes nothing), [`destroy`] removes both (absent is fine), [`show`] lists
//! what X-Ray holds. The original week ran two one-off `aws xray` commands that fail when run twice and show no
//! drift; this is their idempotent replacement.

mod changes;
pub mod rule_file;

use aws_config::BehaviorVersion;
use aws_sdk_xray::Client;
use aws_sdk_xray::config::Region;

pub use changes::{Change, Desired, Destroyed, FieldChange, Listing, Plan, apply, destroy, plan, show};
pub use rule_file::SamplingRuleSpec;

/// The service our backend reports (its `OTEL_SERVICE_NAME` default), which the group filters on.
pub const DEFAULT_SERVICE_NAME: &str = "cruddur-backend";

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The rule file is wrong; nothing was called.
    #[error("{file}: {field} {problem}")]
    RuleFile { file: String, field: String, problem: String },
    #[error("no AWS region: pass --region, set AWS_REGION, or give your AWS profile a region")]
    NoRegion,
    /// X-Ray answered with an error.
    #[error("{operation}: {message}")]
    Aws { operation: &'static str, message: String },
}

impl InfraError {
    pub(crate) fn aws<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |error| {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Self::Aws { operation, message }
        }
    }
}

/// The group's filter: faults and errors of the service.
pub fn group_filter(service_name: &str) -> String {
    format!("service(\"{service_name}\") {{fault OR error}}")
}

/// An X-Ray client from the usual AWS configuration (variables, profiles, roles), with optional overrides.
pub async fn client(
    region: Option<String>,
    profile: Option<String>,
    endpoint_url: Option<String>,
) -> Result<Client, InfraError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(endpoint_url) = endpoint_url {
        loader = loader.endpoint_url(endpoint_url);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(InfraError::NoRegion);
    }
    Ok(Client::new(&config))
}
