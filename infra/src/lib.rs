//! Cruddur's X-Ray group and sampling rule as code, on `aws-sdk-xray`: [`plan`] says what would change,
//! [`apply`] makes it so (a second run changes nothing), [`destroy`] removes both (absent is fine), [`show`] lists
//! what X-Ray holds. The original week ran two one-off `aws xray` commands that fail when run twice and show no
//! drift; this is their idempotent replacement.
//!
//! The binary is a thin shell over [`run`]: [`Cli`] is its command line, [`Job::prepare`] checks everything that
//! can be checked locally (the rule file, the service name) before [`client`] is even built, and [`Job::execute`]
//! talks to X-Ray and returns what to print.

mod changes;
mod cli;
pub mod rule_file;
pub mod service_name;

use std::path::PathBuf;

use aws_config::BehaviorVersion;
use aws_sdk_xray::Client;
use aws_sdk_xray::config::Region;
use aws_sdk_xray::error::DisplayErrorContext;

pub use changes::{Change, Desired, Destroyed, FieldChange, Listing, Plan, apply, destroy, plan, show};
pub use cli::{AwsOptions, Cli, Command, Job, Target};
pub use xray_protocol::SamplingRule;

/// The service our backend reports when nothing renames it (its `OTEL_SERVICE_NAME` default), which the group
/// filters on.
pub const DEFAULT_SERVICE_NAME: &str = "cruddur-backend";

/// The group the original week created.
pub const DEFAULT_GROUP_NAME: &str = "Cruddur";

/// Everything that can go wrong, each saying what to fix.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// No `--rule-file` and none found where it usually is.
    #[error("no rule file: pass --rule-file (looked for infra/aws/json/xray.json in {searched} and its parents)")]
    NoRuleFile { searched: PathBuf },
    #[error("{file}: cannot read it: {source}")]
    RuleFileUnreadable { file: String, source: std::io::Error },
    /// The rule file is not JSON, or one of its fields is wrong; nothing was called.
    #[error("{file}: {problem}")]
    RuleFile { file: String, problem: xray_protocol::rule_file::RuleFileError },
    /// A setting (flag or variable) cannot be used.
    #[error("{setting}: {problem}")]
    Setting { setting: &'static str, problem: String },
    #[error("no AWS region: pass --region, set AWS_REGION, or give your AWS profile a region")]
    NoRegion,
    /// X-Ray answered with an error, or could not be reached.
    #[error("{operation}: {message}")]
    Aws { operation: &'static str, message: String },
}

impl InfraError {
    /// Wraps an SDK error of `operation`, keeping its whole chain of causes (the AWS error code and message are in
    /// the causes, not in the top-level message).
    pub(crate) fn aws<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |error| Self::Aws { operation, message: DisplayErrorContext(&error).to_string() }
    }
}

/// The group's filter: faults and errors of the service.
pub fn group_filter(service_name: &str) -> String {
    format!("service(\"{service_name}\") {{fault OR error}}")
}

/// An X-Ray client from the usual AWS configuration (variables, profiles, roles), with the command line's
/// overrides. The endpoint is `--endpoint-url` or `AWS_ENDPOINT_URL_XRAY`, else the shared configuration's
/// (`AWS_ENDPOINT_URL`, the profile's `endpoint_url`), else AWS.
pub async fn client(options: &AwsOptions) -> Result<Client, InfraError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = cli::given(&options.profile) {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = cli::given(&options.region) {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(InfraError::NoRegion);
    }
    // Chosen here and set explicitly: left to itself, the SDK takes a blank AWS_ENDPOINT_URL_XRAY (a .env copied
    // from .env.sample) for the endpoint "" and panics.
    let endpoint_url = cli::given(&options.endpoint_url).or(shared.endpoint_url()).map(str::to_owned);
    let mut config = aws_sdk_xray::config::Builder::from(&shared);
    config.set_endpoint_url(endpoint_url);
    Ok(Client::from_conf(config.build()))
}

/// What the binary does: checks the rule file and the service name, then (only then) builds the client and does
/// the command; returns what to print. `env` reads the variables the backend names its segments from.
pub async fn run(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<String, InfraError> {
    let job = Job::prepare(cli, env)?;
    let client = client(&cli.aws).await?;
    job.execute(&client).await
}
