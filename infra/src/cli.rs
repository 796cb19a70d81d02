//! The command line of `cruddur-infra`, and the job it describes: what is checked before any call, and what each
//! command prints.

use std::path::PathBuf;

use aws_sdk_xray::Client;
use clap::{Args, Parser, Subcommand};

use crate::service_name::{self, Naming};
use crate::{DEFAULT_GROUP_NAME, Desired, InfraError, apply, destroy, group_filter, plan, rule_file, show};

/// Cruddur's X-Ray group and sampling rule as code: plan, apply, destroy, show.
#[derive(Debug, Parser)]
#[command(name = "cruddur-infra", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub aws: AwsOptions,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show what apply would change.
    Plan,
    /// Create or update the group and the rule; a second run changes nothing.
    Apply,
    /// Remove the group and the rule (absent ones are fine).
    Destroy,
    /// List the groups and sampling rules X-Ray holds.
    Show,
}

/// Where the calls go and as whom.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsOptions {
    /// AWS region (default: the AWS configuration's).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// AWS profile to take credentials and region from.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Send the calls to this X-Ray-compatible endpoint instead of AWS (AWS_ENDPOINT_URL is used when neither this
    /// nor AWS_ENDPOINT_URL_XRAY is set).
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL_XRAY")]
    pub endpoint_url: Option<String>,
}

/// What to manage.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The sampling rule, in the `aws xray create-sampling-rule --cli-input-json` format
    /// (default: infra/aws/json/xray.json, looked for in the current directory and its parents).
    #[arg(long, global = true)]
    pub rule_file: Option<PathBuf>,
    /// The X-Ray group.
    #[arg(long, global = true, default_value = DEFAULT_GROUP_NAME)]
    pub group_name: String,
    /// The service whose faults and errors the group gathers (default: the name the backend gives its segments:
    /// the host of --backend-url if --xray-url matches it, else AWS_XRAY_TRACING_NAME, OTEL_SERVICE_NAME,
    /// HONEYCOMB_SERVICE_NAME, or cruddur-backend).
    #[arg(long, global = true)]
    pub service_name: Option<String>,
    /// The backend's dynamic-naming pattern (`*` and `?`): when the host of --backend-url matches it, the backend
    /// names segments after that host, and so does the group's filter.
    #[arg(long, global = true, env = "AWS_XRAY_URL")]
    pub xray_url: Option<String>,
    /// Where the browser reaches the backend [default: http://localhost:4567].
    #[arg(long, global = true, env = "BACKEND_URL")]
    pub backend_url: Option<String>,
}

/// The backend's address when `BACKEND_URL` is unset (the shared contract's).
const DEFAULT_BACKEND_URL: &str = "http://localhost:4567";

/// A flag or variable's value, unless it is blank: `.env` files copied from `.env.sample` set variables to nothing,
/// which means unset (as the backend's telemetry reads them).
pub(crate) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

/// A command, checked and ready to run.
#[derive(Debug, Clone)]
pub enum Job {
    Plan(Desired),
    Apply(Desired),
    Destroy { group_name: String, rule_name: String },
    Show,
}

impl Job {
    /// Reads and checks the rule file and resolves the service name: every mistake that can be found without
    /// X-Ray is found here, before any call. `env` reads the variables the backend names its segments from.
    pub fn prepare(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, InfraError> {
        if cli.command == Command::Show {
            return Ok(Self::Show);
        }
        let target = &cli.target;
        let rule_file = match &target.rule_file {
            Some(given) => given.clone(),
            None => rule_file::locate(&std::env::current_dir().unwrap_or_default())?,
        };
        let rule = rule_file::load(&rule_file)?;
        if cli.command == Command::Destroy {
            return Ok(Self::Destroy { group_name: target.group_name.clone(), rule_name: rule.rule_name });
        }
        let naming = Naming {
            service_name: given(&target.service_name).map(str::to_owned),
            xray_url: given(&target.xray_url).map(str::to_owned),
            backend_url: given(&target.backend_url).unwrap_or(DEFAULT_BACKEND_URL).to_owned(),
        };
        let service_name = service_name::resolve(&naming, env)?;
        let desired = Desired {
            group_name: target.group_name.clone(),
            filter_expression: group_filter(&service_name),
            rule: service_name::rule_for(rule, &service_name),
        };
        Ok(if cli.command == Command::Apply { Self::Apply(desired) } else { Self::Plan(desired) })
    }

    /// Does the job against X-Ray; returns what to print.
    pub async fn execute(self, client: &Client) -> Result<String, InfraError> {
        Ok(match self {
            Self::Show => show(client).await?.to_string(),
            Self::Destroy { group_name, rule_name } => destroy(client, &group_name, &rule_name).await?.to_string(),
            Self::Plan(desired) => {
                let plan = plan(client, &desired).await?;
                if plan.is_empty() { format!("{plan}nothing to change\n") } else { plan.to_string() }
            }
            Self::Apply(desired) => {
                let done = apply(client, &desired).await?;
                format!("{done}{}\n", if done.is_empty() { "nothing to change" } else { "applied" })
            }
        })
    }
}
