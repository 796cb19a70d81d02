//! Installing what the commands need on a fresh Debian machine, idempotently: a warm machine skips all of it.

use std::process::Command;
use std::sync::Once;

use anyhow::bail;

use crate::process::{on_path, step};

/// Installs the Debian packages that are missing when this process may (root with apt-get); otherwise says what to
/// install.
pub(crate) fn debian_packages(packages: &[&str], purpose: &str) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|package| !installed(package)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line = missing.join(" ");
    if !local_postgres::running_as_root().unwrap_or(false) || !on_path("apt-get") {
        bail!("{purpose} needs the Debian packages {line}: install them with `sudo apt-get install -y {line}`");
    }
    static UPDATE: Once = Once::new();
    let mut updated = Ok(());
    UPDATE.call_once(|| updated = step("apt-get update", apt_get().args(["update", "-qq"])));
    updated?;
    step(
        &format!("installing {line} ({purpose})"),
        apt_get()
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// `apt-get` waiting up to 10 minutes for another apt or dpkg (unattended upgrades, a second checkout's install) to
/// finish, instead of failing on its lock at once.
fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    command.args(["-o", "DPkg::Lock::Timeout=600"]);
    command
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("install ok installed"))
}

/// The PostgreSQL server binaries, from Debian when none are installed.
pub(crate) fn postgres() -> anyhow::Result<()> {
    if local_postgres::bin_dir().is_ok() {
        return Ok(());
    }
    debian_packages(&["postgresql"], "the local database")?;
    local_postgres::bin_dir()?;
    Ok(())
}
