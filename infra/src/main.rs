//! `cruddur-infra`: Cruddur's X-Ray group and sampling rule as code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use infra::{DEFAULT_SERVICE_NAME, Desired, InfraError, apply, client, destroy, group_filter, plan, rule_file, show};

/// Cruddur's X-Ray group and sampling rule as code: plan, apply, destroy, show.
#[derive(Debug, Parser)]
#[command(name = "cruddur-infra", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// AWS region (default: the AWS configuration's).
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// AWS profile to take credentials and region from.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    profile: Option<String>,
    /// Send the calls to this X-Ray-compatible endpoint instead of AWS.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL_XRAY")]
    endpoint_url: Option<String>,
    /// The sampling rule, in the `aws xray create-sampling-rule --cli-input-json` format
    /// (default: infra/aws/json/xray.json, or aws/json/xray.json from inside infra/).
    #[arg(long, global = true)]
    rule_file: Option<PathBuf>,
    /// The X-Ray group.
    #[arg(long, global = true, default_value = "Cruddur")]
    group_name: String,
    /// The service whose faults and errors the group gathers (the backend's OTEL_SERVICE_NAME).
    #[arg(long, global = true, env = "OTEL_SERVICE_NAME", default_value = DEFAULT_SERVICE_NAME)]
    service_name: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what apply would change.
    Plan,
    /// Create or update the group and the rule; a second run changes nothing.
    Apply,
    /// Remove the group and the rule (absent ones are fine).
    Destroy,
    /// List the groups and sampling rules X-Ray holds.
    Show,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cruddur-infra: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), InfraError> {
    if let Command::Show = cli.command {
        let client = client(cli.region, cli.profile, cli.endpoint_url).await?;
        print!("{}", show(&client).await?);
        return Ok(());
    }
    // The rule file is checked before any call is made.
    let rule = rule_file::load(&rule_file_path(cli.rule_file.as_deref()))?;
    let client = client(cli.region, cli.profile, cli.endpoint_url).await?;
    if let Command::Destroy = cli.command {
        let destroyed = destroy(&client, &cli.group_name, &rule.rule_name).await?;
        for (kind, name, removed) in
            [("group", &cli.group_name, destroyed.group), ("sampling rule", &rule.rule_name, destroyed.rule)]
        {
            println!("{} {kind} {name}", if removed { "- deleted" } else { "= already absent:" });
        }
        return Ok(());
    }
    let desired = Desired { group_name: cli.group_name, filter_expression: group_filter(&cli.service_name), rule };
    let applying = matches!(cli.command, Command::Apply);
    let changes = if applying { apply(&client, &desired).await? } else { plan(&client, &desired).await? };
    print!("{changes}");
    if changes.is_empty() {
        println!("nothing to change");
    } else if applying {
        println!("applied");
    }
    Ok(())
}

fn rule_file_path(given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        let from_root = PathBuf::from("infra/aws/json/xray.json");
        if from_root.exists() { from_root } else { PathBuf::from("aws/json/xray.json") }
    })
}
