//! The project's commands, run from anywhere in the workspace:
//!
//! - `cargo xtask run`: the whole stack on this machine, no Docker: a private Postgres in `.data/` (or the server
//!   of `DATABASE_URL`), migrated and seeded, and the API; Ctrl-C stops everything.
//! - `cargo xtask test`: every check and test CI runs, installing what they need first.
//! - `cargo xtask bench-api`: requests/s and p99 latency of `/api/activities/home` on the seeded database, with
//!   tracing off, to OTLP, to X-Ray, and to both.
//! - `cargo xtask frontend`: the browser bundle in `frontend/dist` (wasm, its JavaScript glue, HTML, CSS).
//! - `cargo xtask e2e`: the app in headless Chromium against the whole stack, traces checked end to end.
//! - `cargo xtask compose`: `docker compose up --build` and the Gitpod tasks run for real, checked as a user would.
//! - `cargo xtask smoke`: the stack as real processes, one request followed from the frontend's origin to X-Ray.
//! - `cargo xtask sqlx-prepare`: regenerates `backend/.sqlx` after a query or a migration changed.

mod bench;
mod compose;
mod e2e;
mod frontend;
mod install;
mod process;
mod run;
mod sinks;
mod smoke;
mod sqlx_prepare;
mod stack;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Cruddur's run, test and maintenance commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole stack locally (Postgres, API); Ctrl-C stops it.
    Run(run::Args),
    /// Run every check and test, installing what they need first.
    Test(test::Args),
    /// Measure requests/s and p99 latency of the home feed.
    BenchApi(bench::Args),
    /// Build the browser bundle into frontend/dist, installing the wasm tools it needs.
    Frontend(frontend::Args),
    /// Use the app in headless Chromium against the whole stack and check its traces end to end.
    E2e,
    /// Run docker-compose.yml (and .gitpod.yml's tasks) for real and check the stack as a user would.
    Compose,
    /// Start the whole stack as real processes and follow one request from the frontend's origin to X-Ray.
    Smoke,
    /// Regenerate the committed sqlx query data (backend/.sqlx) against a throwaway database.
    SqlxPrepare,
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Test(args) => test::run(args),
        Command::BenchApi(args) => bench::run(args),
        Command::Frontend(args) => frontend::build(&args),
        Command::E2e => e2e::run(true),
        Command::Compose => compose::run(),
        Command::Smoke => smoke::run(),
        Command::SqlxPrepare => sqlx_prepare::run(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes, without a backtrace: these are the user's errors to act on.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
