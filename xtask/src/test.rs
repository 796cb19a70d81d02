//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure. `.ci/run` calls exactly this.

use crate::process::{cargo, step};
use crate::{frontend, install};

/// The browser's target, checked and tested apart from the host's.
const WASM: &str = "wasm32-unknown-unknown";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip the formatting and clippy checks (for a quick local run; CI runs them).
    #[arg(long)]
    skip_lints: bool,
    /// Skip `cargo xtask compose` (docker compose and the Gitpod task for real), the last and longest step (for a
    /// quick local run; CI runs it).
    #[arg(long)]
    skip_compose: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    install::postgres()?;
    install::debian_packages(&["chromium", "chromium-driver"], "the browser tests")?;
    // Also installs the wasm target and tools (wasm-bindgen and its test runner, wasm-opt) the steps below use.
    frontend::build(&frontend::Args::default())?;
    if !args.skip_lints {
        step("checking formatting", cargo().args(["fmt", "--all", "--check"]))?;
        step("clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
        step(
            "clippy (the frontend for the browser)",
            cargo()
                .args(["clippy", "--package", "cruddur-frontend-app", "--target", WASM, "--all-targets"])
                .args(["--", "-D", "warnings"]),
        )?;
    }
    step("tests", cargo().args(["test", "--workspace"]))?;
    step(
        "frontend component tests (headless Chromium)",
        cargo().args(["test", "--package", "cruddur-frontend-app", "--target", WASM]),
    )?;
    eprintln!("\n==> whole-stack smoke check");
    crate::smoke::run()?;
    eprintln!("\n==> the app end to end in headless Chromium");
    // The bundle built at the start is the one under test.
    crate::e2e::run(false)?;
    if !args.skip_compose {
        eprintln!("\n==> docker compose and the Gitpod task, run for real");
        crate::compose::run()?;
    }
    eprintln!("\nall checks and tests passed");
    Ok(())
}
