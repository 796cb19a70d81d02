//! `cruddur-infra`: Cruddur's X-Ray group and sampling rule as code (`cruddur-infra --help`).

use std::process::ExitCode;

use clap::Parser;
use infra::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match infra::run(&cli, |name| std::env::var(name).ok()).await {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cruddur-infra: {error}");
            ExitCode::FAILURE
        }
    }
}
