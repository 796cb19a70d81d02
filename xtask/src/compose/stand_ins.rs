//! Local stand-ins for the public base images the Dockerfile and the compose file name, built once and kept (only a
//! missing one is built), for machines that reach no container registry:
//!
//! - `debian:bookworm-slim`: Debian 12 from `debootstrap --variant=minbase`, with the official image's apt sources;
//! - `rust:<version>-bookworm`: that image with the C toolchain of the official one and this machine's own Rust
//!   toolchain of the same version (xtask/stand-ins/rust.Dockerfile);
//! - `postgres:15-bookworm`: that image with Debian's PostgreSQL 15 and an entrypoint honouring the official
//!   image's `POSTGRES_*` variables (xtask/stand-ins/postgres.Dockerfile).
//!
//! Every stand-in trusts this machine's own certificate authorities (those in /usr/local/share/ca-certificates), so
//! the build containers reach the package registries through the same proxies as the host does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::engine::Engine;
use crate::install;
use crate::process::{step, workspace_root};

/// The host's extra certificate authorities, trusted by `update-ca-certificates` in every image built on the stand-ins.
const LOCAL_AUTHORITIES: &str = "/usr/local/share/ca-certificates";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Builds the stand-ins of `images` that are missing; an image with no stand-in here is an error naming it.
pub(crate) fn ensure(engine: &Engine, images: &[String]) -> anyhow::Result<()> {
    // The others build on the Debian one.
    let mut ordered: Vec<&String> = images.iter().collect();
    ordered.sort_by_key(|image| !image.starts_with("debian:"));
    for image in ordered {
        if present(engine, image) {
            continue;
        }
        match image.split_once(':') {
            Some(("debian", "bookworm-slim")) => debian(engine, image)?,
            Some(("rust", tag)) if tag.ends_with("-bookworm") => {
                ensure(engine, &["debian:bookworm-slim".to_owned()])?;
                rust(engine, image, tag.trim_end_matches("-bookworm"))?;
            }
            Some(("postgres", "15-bookworm")) => {
                ensure(engine, &["debian:bookworm-slim".to_owned()])?;
                let stand_ins = stand_ins_dir();
                step(
                    &format!("building a local stand-in for {image}"),
                    engine
                        .docker()
                        .args(["build", "--tag", image, "--file"])
                        .arg(stand_ins.join("postgres.Dockerfile"))
                        .arg(&stand_ins),
                )?;
            }
            _ => bail!("no local stand-in for the base image {image}: pull it, or add its stand-in to {}", file!()),
        }
    }
    Ok(())
}

fn present(engine: &Engine, image: &str) -> bool {
    engine
        .docker()
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn stand_ins_dir() -> PathBuf {
    workspace_root().join("xtask/stand-ins")
}

/// Debian 12, minimal, imported from a debootstrap tree.
fn debian(engine: &Engine, image: &str) -> anyhow::Result<()> {
    install::debian_packages(&["debootstrap"], "the debian:bookworm-slim stand-in")?;
    let tree = tempfile::tempdir()?;
    let root = tree.path().join("rootfs");
    step(
        &format!("debootstrap of Debian 12 for a local stand-in for {image}"),
        Command::new("debootstrap").args(["--variant=minbase", "bookworm"]).arg(&root).arg(DEBIAN_MIRROR),
    )?;
    fs::remove_file(root.join("etc/apt/sources.list")).ok();
    fs::write(
        root.join("etc/apt/sources.list.d/debian.sources"),
        format!(
            "Types: deb\nURIs: {DEBIAN_MIRROR}\nSuites: bookworm bookworm-updates\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )?;
    copy_local_authorities(&root.join(LOCAL_AUTHORITIES.trim_start_matches('/')))?;
    // What the official slim image leaves out too: package lists, caches, documentation.
    for dir in ["var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info"] {
        let dir = root.join(dir);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
            fs::create_dir_all(&dir)?;
        }
    }
    eprintln!("\n==> importing the tree as {image}");
    let mut tar = Command::new("tar").arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped()).spawn()?;
    let archive = tar.stdout.take().context("tar's output")?;
    let status = engine
        .docker()
        .args(["import", "--change", "CMD [\"bash\"]"])
        .args(["--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "-", image])
        .stdin(archive)
        .status()?;
    let tar_status = tar.wait()?;
    if !status.success() || !tar_status.success() {
        bail!("importing {image} failed (docker import {status}, tar {tar_status})");
    }
    Ok(())
}

/// This machine's Rust toolchain in an image, which must be the version the tag names.
fn rust(engine: &Engine, image: &str, version: &str) -> anyhow::Result<()> {
    let rustc = Engine::output(Command::new("rustc").arg("--version"))?;
    let host_version = rustc.split_whitespace().nth(1).context("rustc --version")?.to_owned();
    if host_version != version && !host_version.starts_with(&format!("{version}.")) {
        bail!("{image} stands in for Rust {version}, but this machine's rustc is {host_version}: install {version}");
    }
    let sysroot = PathBuf::from(Engine::output(Command::new("rustc").args(["--print", "sysroot"]))?);
    let context = tempfile::tempdir()?;
    let toolchain = context.path().join("toolchain");
    fs::create_dir_all(&toolchain)?;
    for part in ["bin", "lib", "libexec", "etc"].map(|part| sysroot.join(part)).iter().filter(|part| part.exists()) {
        step(&format!("copying {}", part.display()), Command::new("cp").arg("-a").arg(part).arg(&toolchain))?;
    }
    let rustup = which("rustup").context("the rust stand-in needs rustup on this machine")?;
    fs::copy(fs::canonicalize(&rustup)?, context.path().join("rustup"))?;
    step(
        &format!("building a local stand-in for {image} (Rust {host_version} of this machine)"),
        engine
            .docker()
            .args(["build", "--tag", image, "--build-arg", &format!("RUST_VERSION={host_version}"), "--file"])
            .arg(stand_ins_dir().join("rust.Dockerfile"))
            .arg(context.path()),
    )
}

fn copy_local_authorities(to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    let Ok(entries) = fs::read_dir(LOCAL_AUTHORITIES) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "crt") {
            fs::copy(&path, to.join(path.file_name().context("a file name")?))?;
        }
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}
