//! `cargo xtask frontend`: the browser bundle in `frontend/dist` (what the frontend server serves), built offline
//! with tools from crates.io and npm, each installed once at the version it must have:
//!
//! 1. the Leptos app for `wasm32-unknown-unknown` (profile `wasm-release`: size over build time);
//! 2. `wasm-bindgen` (the CLI must equal the `wasm-bindgen` crate in Cargo.lock, so it is installed at that
//!    version) for the JavaScript glue;
//! 3. `wasm-opt -Oz` from npm's `binaryen` (Debian's is too old for the wasm features Rust now emits);
//! 4. `index.html` and `style.css` from `frontend/app/static`.
//!
//! We use these three tools directly rather than trunk: the pipeline is four steps, and trunk's install from
//! crates.io takes ~10 minutes on two cores and then wants to download the same tools itself.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::install;
use crate::process::{cargo, on_path, step, workspace_root};

/// The package of the app and its wasm binary's name.
const APP_PACKAGE: &str = "cruddur-frontend-app";
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";
/// The npm package that carries wasm-opt, pinned.
const BINARYEN: &str = "binaryen@132.0.0";
/// What `index.html` loads (`cruddur.js`, `cruddur_bg.wasm`).
const BUNDLE_NAME: &str = "cruddur";
/// The wasm features rustc enables by default for this target, which wasm-opt must accept.
const WASM_FEATURES: [&str; 5] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-reference-types",
    "--enable-multivalue",
];

#[derive(clap::Args, Default)]
pub(crate) struct Args {
    /// Skip wasm-opt: a faster build and a bigger bundle.
    #[arg(long)]
    no_opt: bool,
}

/// Where the bundle goes.
pub(crate) fn dist() -> PathBuf {
    workspace_root().join("frontend/dist")
}

/// Builds the bundle into [`dist`] and prints its sizes.
pub(crate) fn build(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    wasm_target()?;
    let wasm_bindgen = wasm_bindgen_cli(&root)?;
    let wasm_opt = if args.no_opt { None } else { Some(wasm_opt(&root)?) };

    step(
        "building the frontend (wasm32)",
        cargo().args(["build", "--package", APP_PACKAGE, "--target", TARGET, "--profile", PROFILE]),
    )?;
    let dist = dist();
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("emptying {}", dist.display()))?;
    }
    let wasm = root.join("target").join(TARGET).join(PROFILE).join(format!("{APP_PACKAGE}.wasm"));
    step(
        "generating the JavaScript glue (wasm-bindgen)",
        Command::new(&wasm_bindgen)
            .args(["--target", "web", "--no-typescript", "--out-name", BUNDLE_NAME, "--out-dir"])
            .arg(&dist)
            .arg(&wasm),
    )?;
    let bundle_wasm = dist.join(format!("{BUNDLE_NAME}_bg.wasm"));
    if let Some(wasm_opt) = wasm_opt {
        step(
            "optimising the wasm for size (wasm-opt -Oz)",
            Command::new(wasm_opt).arg("-Oz").args(WASM_FEATURES).arg(&bundle_wasm).arg("-o").arg(&bundle_wasm),
        )?;
    }
    for file in ["index.html", "style.css"] {
        fs::copy(root.join("frontend/app/static").join(file), dist.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    report_sizes(&dist)
}

/// The wasm target of the toolchain in use, added with rustup when missing.
fn wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(output) if String::from_utf8_lossy(&output.stdout).lines().any(|line| line.trim() == TARGET) => Ok(()),
        Ok(_) => step("adding the wasm32 target", Command::new("rustup").args(["target", "add", TARGET])),
        // No rustup (a distribution's Rust): the build says what is missing if the target is.
        Err(_) => Ok(()),
    }
}

/// `wasm-bindgen` at the version of the crate in Cargo.lock, installed from crates.io when missing or different.
fn wasm_bindgen_cli(root: &Path) -> anyhow::Result<PathBuf> {
    let version = locked_version(&fs::read_to_string(root.join("Cargo.lock"))?, "wasm-bindgen")
        .context("Cargo.lock has no wasm-bindgen")?;
    let installed = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).split_whitespace().nth(1) == Some(&version))
    };
    let cargo_bin = cargo_home().join("bin/wasm-bindgen");
    for candidate in [PathBuf::from("wasm-bindgen"), cargo_bin.clone()] {
        if installed(&candidate) {
            return Ok(candidate);
        }
    }
    step(
        &format!("installing wasm-bindgen-cli {version} (once; it must match Cargo.lock)"),
        cargo().args(["install", "wasm-bindgen-cli", "--version", &version]),
    )?;
    if !installed(&cargo_bin) {
        bail!("{} is not wasm-bindgen {version} after installing it", cargo_bin.display());
    }
    Ok(cargo_bin)
}

/// wasm-opt from npm's binaryen, installed under `target/frontend-tools`.
fn wasm_opt(root: &Path) -> anyhow::Result<PathBuf> {
    let prefix = root.join("target/frontend-tools");
    let program = prefix.join("node_modules/.bin/wasm-opt");
    let pinned = BINARYEN.rsplit('@').next().and_then(|version| version.split('.').next()).unwrap_or_default();
    let current = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(&format!("version {pinned}")));
    if current {
        return Ok(program);
    }
    if !on_path("npm") {
        install::debian_packages(&["nodejs", "npm"], "wasm-opt (npm's binaryen)")?;
    }
    fs::create_dir_all(&prefix)?;
    step(
        &format!("installing wasm-opt ({BINARYEN} from npm, once)"),
        Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(BINARYEN),
    )?;
    Ok(program)
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// The version of `package` in a Cargo.lock.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            return lines.next()?.strip_prefix("version = \"")?.strip_suffix('"').map(str::to_owned);
        }
    }
    None
}

/// Prints each file's size and gzipped size, and the totals of what a browser downloads.
fn report_sizes(dist: &Path) -> anyhow::Result<()> {
    let mut total = (0, 0);
    eprintln!("\n==> the bundle in {}", dist.display());
    let mut files: Vec<_> = fs::read_dir(dist)?.collect::<Result<_, _>>()?;
    files.sort_by_key(|entry| entry.file_name());
    for entry in files {
        let bytes = fs::read(entry.path())?;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&bytes)?;
        let gzipped = gzip.finish()?.len();
        total = (total.0 + bytes.len(), total.1 + gzipped);
        eprintln!("{:>10} bytes {:>10} gzipped  {}", bytes.len(), gzipped, entry.file_name().to_string_lossy());
    }
    eprintln!("{:>10} bytes {:>10} gzipped  in all", total.0, total.1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_locked_version() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\nsource = \"registry\"\n";
        assert_eq!(locked_version(lock, "wasm-bindgen").as_deref(), Some("0.2.130"));
        assert_eq!(locked_version(lock, "leptos"), None);
    }
}
