//! The Docker engine and the compose program the check drives: Debian's `docker.io` and `docker-compose`, installed
//! when missing, and `dockerd` started (at low CPU priority, as the machine is shared) when no engine answers.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::install;
use crate::process::workspace_root;

/// What makes docker-compose 1.29 build through the docker CLI with BuildKit (the Dockerfile's cache mounts need
/// it; Compose v2 always does).
const BUILDKIT: [(&str, &str); 2] = [("COMPOSE_DOCKER_CLI_BUILD", "1"), ("DOCKER_BUILDKIT", "1")];

/// Debian's client: a newer `docker` elsewhere on the PATH may refuse BuildKit builds without the buildx plugin.
const DEBIAN_DOCKER: &str = "/usr/bin/docker";

/// The engine the check runs against; a `dockerd` started here is stopped when this is dropped.
pub(crate) struct Engine {
    docker: PathBuf,
    started: Option<Child>,
}

impl Engine {
    /// Installs what is missing, and starts `dockerd` when no engine answers.
    pub(crate) fn start() -> anyhow::Result<Self> {
        install::debian_packages(&["docker.io", "docker-compose"], "the compose check")?;
        let docker = if std::path::Path::new(DEBIAN_DOCKER).is_file() { DEBIAN_DOCKER.into() } else { "docker".into() };
        let mut engine = Self { docker, started: None };
        if engine.answers() {
            return Ok(engine);
        }
        if !local_postgres::running_as_root().unwrap_or(false) {
            bail!("no Docker engine answers and only root can start one: start it with `sudo dockerd &`");
        }
        let log_path = workspace_root().join("target/dockerd.log");
        let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        eprintln!("\n==> starting dockerd (log in {})", log_path.display());
        let child = Command::new("nice")
            .args(["-n", "10", "dockerd"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting dockerd")?;
        engine.started = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !engine.answers() {
            if let Some(child) = engine.started.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("dockerd exited ({status}); see {}", log_path.display());
            }
            if Instant::now() > deadline {
                bail!("dockerd did not answer within 2 minutes; see {}", log_path.display());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(engine)
    }

    fn answers(&self) -> bool {
        self.docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// `docker`, quiet on stdin.
    pub(crate) fn docker(&self) -> Command {
        let mut command = Command::new(&self.docker);
        command.stdin(Stdio::null());
        command
    }

    /// `docker compose` when the plugin is there (Compose v2), else Debian's `docker-compose` (1.29); either builds
    /// with BuildKit (1.29 through the docker CLI: `COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1`), with this
    /// engine's client first on the PATH.
    pub(crate) fn compose(&self) -> Command {
        let mut command = if self.has_compose_plugin() {
            let mut command = self.docker();
            command.arg("compose");
            command
        } else {
            let mut command = Command::new("docker-compose");
            command.stdin(Stdio::null());
            command
        };
        command.env("PATH", self.path_with(&[])).envs(BUILDKIT);
        command
    }

    fn has_compose_plugin(&self) -> bool {
        self.docker().args(["compose", "version"]).output().is_ok_and(|out| out.status.success())
    }

    /// A PATH on which scripts that call `docker compose` reach this engine's client and a compose that builds with
    /// BuildKit: without the plugin, a `docker` script in `shims` runs `docker-compose` for `docker compose`.
    pub(crate) fn compose_path(&self, shims: &Path) -> anyhow::Result<OsString> {
        if self.has_compose_plugin() {
            return Ok(self.path_with(&[]));
        }
        let shim = shims.join("docker");
        let exports: String = BUILDKIT.iter().map(|(name, value)| format!("export {name}={value}\n")).collect();
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\n# docker compose without the plugin: Debian's docker-compose.\n{exports}\
                 if [ \"$1\" = compose ]; then shift; exec docker-compose \"$@\"; fi\nexec {} \"$@\"\n",
                self.docker.display()
            ),
        )?;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))?;
        Ok(self.path_with(&[shims.to_path_buf()]))
    }

    fn path_with(&self, first: &[PathBuf]) -> OsString {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths: Vec<PathBuf> = first.to_vec();
        paths.extend(self.docker.parent().map(PathBuf::from));
        paths.extend(std::env::split_paths(&path));
        std::env::join_paths(paths).unwrap_or(path)
    }

    /// Runs a docker command to completion and returns its standard output; a failure carries its standard error.
    pub(crate) fn output(command: &mut Command) -> anyhow::Result<String> {
        let output = command.output().with_context(|| format!("running {command:?}"))?;
        if !output.status.success() {
            bail!("{command:?} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let Some(child) = self.started.as_mut() else { return };
        eprintln!("==> stopping the dockerd this check started");
        if let Ok(pid) = i32::try_from(child.id()) {
            // The group: nice, and dockerd under it.
            let group = nix::unistd::Pid::from_raw(-pid);
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
