//! `.gitpod.yml`'s `stack` task, as far as it runs outside Gitpod: its `before`, `init` and `command` in one bash
//! shell (as Gitpod runs a task's terminal) with `GITPOD_WORKSPACE_ID` and `GITPOD_WORKSPACE_CLUSTER_HOST` set, a
//! home of its own, and the real Docker (`docker compose` mapped to `docker-compose` where the plugin is missing).
//! `gp env`'s `HONEYCOMB_SERVICE_NAME="Cruddur"` of the bootcamp is in the environment, as Gitpod gives it.
//! Checked through the published ports, with the Host headers Gitpod's proxy sends:
//!
//! - the frontend serves `BACKEND_URL` = `https://4567-<workspace>.<cluster>`;
//! - CORS admits the frontend's origin `https://3000-<workspace>.<cluster>`;
//! - the backend's X-Ray segments are named after the Gitpod host of the API (dynamic naming) and its OTLP spans
//!   after `HONEYCOMB_SERVICE_NAME`;
//! - a new terminal (a shell reading `~/.bashrc.d` as Gitpod's `~/.bashrc` does) has the same `BACKEND_URL` and
//!   `AWS_XRAY_URL`, from which `cruddur-infra` resolves that same host as the service name.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::engine::Engine;
use super::{BACKEND_ADDRESS, PROJECT, Project, sample_variables, traces_in_the_console};
use crate::process::workspace_root;

const WORKSPACE_ID: &str = "cruddur-check1";
const CLUSTER_HOST: &str = "ws-eu.gitpod.example";
const SERVICE_NAME: &str = "Cruddur";

pub(crate) fn check(engine: &Engine) -> anyhow::Result<()> {
    let gitpod: Value = serde_norway::from_str(&std::fs::read_to_string(workspace_root().join(".gitpod.yml"))?)?;
    let task = &gitpod["tasks"][0];
    let script =
        ["before", "init", "command"].iter().filter_map(|part| task[part].as_str()).collect::<Vec<_>>().join("\n");
    let home = tempfile::tempdir()?;
    let shims = tempfile::tempdir()?;
    let name = format!("{PROJECT}-gitpod");
    let project = Project::of(engine, workspace_root().join("docker-compose.yml"), &name)?;

    let mut shell = Command::new("bash");
    shell.args(["-e", "-c", &script]).current_dir(workspace_root());
    for variable in sample_variables() {
        shell.env_remove(variable);
    }
    let path = engine.compose_path(shims.path())?;
    // The toolchain stays this machine's (init's rustup), with the home of the workspace's own.
    let real_home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let rustup_home = std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| real_home.join(".rustup").into());
    let cargo_home = std::env::var_os("CARGO_HOME").unwrap_or_else(|| real_home.join(".cargo").into());
    shell
        .env("PATH", path)
        .env("RUSTUP_HOME", rustup_home)
        .env("CARGO_HOME", cargo_home)
        .env("HOME", home.path())
        .env("GITPOD_WORKSPACE_ID", WORKSPACE_ID)
        .env("GITPOD_WORKSPACE_CLUSTER_HOST", CLUSTER_HOST)
        .env("HONEYCOMB_SERVICE_NAME", SERVICE_NAME)
        .env("COMPOSE_PROJECT_NAME", &name)
        .stdin(Stdio::null())
        .process_group(0);
    eprintln!("\n==> .gitpod.yml's stack task (before, init, command) as workspace {WORKSPACE_ID}.{CLUSTER_HOST}");
    let mut task = Task(shell.spawn().context("starting bash")?);
    let outcome = task.wait_for_the_stack(&project).and_then(|()| check_the_workspace(&project, home.path()));
    drop(task);
    outcome
}

/// The task's shell, stopped (with the `up` it runs) when dropped; the project's `down -v` follows.
struct Task(Child);

impl Task {
    /// Waits until the task's `up` started the four containers; fails when the task ends before.
    fn wait_for_the_stack(&mut self, project: &Project<'_>) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(1800);
        while project.containers()?.len() < 4 {
            if let Some(status) = self.0.try_wait()? {
                bail!("the Gitpod task ended ({status}) before the stack was up");
            }
            if Instant::now() > deadline {
                bail!("the Gitpod task did not start the stack within 30 minutes");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-pid), nix::sys::signal::Signal::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check_the_workspace(project: &Project<'_>, home: &std::path::Path) -> anyhow::Result<()> {
    let frontend_origin = format!("https://3000-{WORKSPACE_ID}.{CLUSTER_HOST}");
    let backend_host = format!("4567-{WORKSPACE_ID}.{CLUSTER_HOST}");
    project.wait_healthy()?;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let config: Value = http
            .get("http://127.0.0.1:3000/config.json")
            .header("host", format!("3000-{WORKSPACE_ID}.{CLUSTER_HOST}"))
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            config.to_string().contains(&format!("https://{backend_host}")),
            "the frontend serves the Gitpod URL of the API: {config}"
        );
        let feed = http
            .get(format!("http://{}/api/activities/home", BACKEND_ADDRESS))
            .header("host", &backend_host)
            .header("origin", &frontend_origin)
            .send()
            .await?;
        let allowed = feed.headers().get("access-control-allow-origin").and_then(|value| value.to_str().ok());
        ensure!(allowed == Some(frontend_origin.as_str()), "CORS admits {frontend_origin}: {:?}", feed.headers());
        ensure!(feed.status() == 200, "the feed through the Gitpod host answered {}", feed.status());
        eprintln!("compose (gitpod): the frontend serves https://{backend_host}; CORS admits {frontend_origin}");
        // X-Ray samples by its default rule (1 a second, then 5%): requests go on until one is sampled. Requests
        // that do not match AWS_XRAY_URL (the healthchecks') carry the fixed name, HONEYCOMB_SERVICE_NAME's.
        let feed_url = format!("http://{}/api/activities/home", BACKEND_ADDRESS);
        let request = || http.get(&feed_url).header("host", &backend_host).send();
        wait_for_service(&http, &backend_host, request).await?;
        wait_for_service(&http, SERVICE_NAME, || async { Ok::<(), std::io::Error>(()) }).await?;
        eprintln!(
            "compose (gitpod): the backend's X-Ray segments are named {backend_host}, its OTLP spans {SERVICE_NAME}"
        );
        anyhow::Ok(())
    })?;

    // Another terminal: Gitpod's ~/.bashrc reads ~/.bashrc.d.
    let terminal = Command::new("bash")
        .args(["-c", "for file in \"$HOME\"/.bashrc.d/*; do . \"$file\"; done; env"])
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()?;
    let env: BTreeMap<String, String> = String::from_utf8_lossy(&terminal.stdout)
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, value)| (name.to_owned(), value.to_owned())))
        .collect();
    let backend_url = env.get("BACKEND_URL").context("BACKEND_URL in a new terminal")?;
    let pattern = env.get("AWS_XRAY_URL").context("AWS_XRAY_URL in a new terminal")?;
    ensure!(*backend_url == format!("https://{backend_host}"), "BACKEND_URL in a new terminal is {backend_url}");
    ensure!(
        *pattern == format!("*{WORKSPACE_ID}.{CLUSTER_HOST}*"),
        "AWS_XRAY_URL in a new terminal is {pattern}: infra would name another service than the segments"
    );
    eprintln!(
        "compose (gitpod): a new terminal has BACKEND_URL={backend_url} and AWS_XRAY_URL={pattern}: cruddur-infra \
         names the group's service {backend_host}, as the backend names its segments"
    );
    Ok(())
}

/// Waits until the console has a trace with a segment of `service`, calling `request` before each look.
async fn wait_for_service<Request, Sent, Answer, Failure>(
    http: &reqwest::Client,
    service: &str,
    request: Request,
) -> anyhow::Result<()>
where
    Request: Fn() -> Sent,
    Sent: std::future::Future<Output = Result<Answer, Failure>>,
    Failure: std::error::Error + Send + Sync + 'static,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        request().await?;
        if !traces_in_the_console(http, &format!("service(\"{service}\")")).await?.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no trace of the service {service} in the console");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
