//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure. `.ci/run` calls exactly this.

use crate::install;
use crate::process::{cargo, step};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip the formatting and clippy checks (for a quick local run; CI runs them).
    #[arg(long)]
    skip_lints: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    install::postgres()?;
    if !args.skip_lints {
        step("checking formatting", cargo().args(["fmt", "--all", "--check"]))?;
        step("clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    }
    step("tests", cargo().args(["test", "--workspace"]))?;
    eprintln!("\n==> whole-stack smoke check");
    crate::smoke::run()?;
    eprintln!("\nall checks and tests passed");
    Ok(())
}
