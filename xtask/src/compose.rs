//! `cargo xtask compose`: `docker-compose.yml` and the `Dockerfile` run for real, unchanged, as a user runs them, and
//! checked through the published ports as a user would see them:
//!
//! 1. Debian's `docker.io` and `docker-compose` installed, `dockerd` started when no engine answers, and local
//!    stand-ins built for the base images the files name when they are missing (no registry is needed);
//! 2. `up --build`, then every service healthy;
//! 3. the seeded feed from the frontend's origin (the backend URL the frontend serves, CORS admitting the origin);
//! 4. a sign-up and a crud in headless Chromium at `http://localhost:3000`;
//! 5. that crud's trace in the daemon's console (`localhost:2000`): the browser's span for the `POST` and the
//!    backend's SQL subsegment, one trace;
//! 6. `down` and `up`: the crud is still there (the time from `up` to every service healthy is printed);
//! 7. `down -v`: the database's volume is gone;
//! 8. the bootcamp's own daemon service (`command: ["xray -o -b xray-daemon:2000"]`) run verbatim on our image;
//! 9. `.gitpod.yml`'s tasks in a shell with Gitpod's variables (see [`gitpod`]).
//!
//! The compose project has a name of its own and the `.env` file is left out, so a developer's own stack and
//! settings stay out of the check. Whatever it started is removed when it ends, passed or failed: containers,
//! network and volume (`down -v`), and `dockerd` if it started it. Images and the build cache stay, so the next run
//! only rebuilds what changed.

mod engine;
mod gitpod;
mod stand_ins;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use test_support::browser::Browser;

use crate::e2e::Journey;
use crate::install;
use crate::process::workspace_root;
use crate::smoke::get;
use engine::Engine;

/// The compose project the check runs as.
const PROJECT: &str = "cruddur-compose-check";
/// The origin a user opens, and the API's, as the compose file publishes them.
const FRONTEND: &str = "http://localhost:3000";
const BACKEND: &str = "localhost:4567";
const CONSOLE: &str = "http://localhost:2000";
/// How long every service may take to become healthy once started (a safety net; the wait ends at the event).
const HEALTHY_WITHIN: Duration = Duration::from_secs(300);
/// How long the crud's trace may take to reach the console (the browser sends its spans every 2 s).
const TRACE_WITHIN: Duration = Duration::from_secs(60);

pub(crate) fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    install::debian_packages(&["chromium", "chromium-driver"], "the browser tests")?;
    let engine = Engine::start()?;
    stand_ins::ensure(&engine, &base_images()?)?;

    let project = Project::new(&engine)?;
    // A volume left by an interrupted run would hold another run's data.
    project.compose(["down", "--volumes", "--remove-orphans"])?;
    let build_started = Instant::now();
    project.compose(["up", "--build", "--detach"])?;
    project.wait_healthy()?;
    eprintln!("compose: built, up and healthy in {:.0?}", build_started.elapsed());
    project.report_image_sizes()?;

    let crud = format!("Posted through docker compose at {}", std::process::id());
    check_feed_from_the_frontend_origin()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(sign_up_and_post(&crud))?;
    let trace = runtime.block_on(crud_trace_in_the_console())?;
    eprintln!("compose: the crud's trace {trace} is in the daemon's console with the browser span and its SQL");

    project.compose(["down"])?;
    let up_started = Instant::now();
    project.compose(["up", "--detach"])?;
    project.wait_healthy()?;
    eprintln!("compose: `up` to every service healthy (images built): {:.1?}", up_started.elapsed());
    let feed = get(BACKEND_ADDRESS, "/api/activities/home", &[])?;
    ensure!(feed.body.contains(&crud), "after down and up, the feed lacks the crud: {}", feed.body);

    let daemon_image = project.image_of("xray-daemon")?;
    let volumes = project.volumes()?;
    ensure!(!volumes.is_empty(), "the project has no volume");
    project.compose(["down", "--volumes"])?;
    let left: Vec<String> = project.volumes()?;
    ensure!(left.is_empty(), "`down -v` left the volumes {left:?}");
    eprintln!("compose: the data survived down + up; down -v removed {volumes:?}");

    the_bootcamp_daemon_service_runs_on_our_image(&engine, &daemon_image)?;
    gitpod::check(&engine)?;
    eprintln!("compose: passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The images the Dockerfile and the compose file take from a registry.
fn base_images() -> anyhow::Result<Vec<String>> {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    let stages: BTreeSet<&str> =
        dockerfile.lines().filter_map(|line| line.strip_prefix("FROM ")?.split_whitespace().nth(2)).collect();
    let mut images: BTreeSet<String> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM ")?.split_whitespace().next())
        .filter(|image| !stages.contains(image))
        .map(str::to_owned)
        .collect();
    let compose = std::fs::read_to_string(root.join("docker-compose.yml"))?;
    images.extend(compose.lines().filter_map(|line| line.trim().strip_prefix("image: ")).map(str::to_owned));
    Ok(images.into_iter().collect())
}

/// The check's compose project: the repository's compose file, run as [`PROJECT`] without the `.env` file; taken
/// down with its volumes when dropped.
struct Project<'a> {
    engine: &'a Engine,
    file: PathBuf,
    name: String,
    empty_env_file: tempfile::NamedTempFile,
}

impl<'a> Project<'a> {
    fn new(engine: &'a Engine) -> anyhow::Result<Self> {
        Self::of(engine, workspace_root().join("docker-compose.yml"), PROJECT)
    }

    fn of(engine: &'a Engine, file: PathBuf, name: &str) -> anyhow::Result<Self> {
        Ok(Self { engine, file, name: name.to_owned(), empty_env_file: tempfile::NamedTempFile::new()? })
    }

    fn command(&self) -> Command {
        let mut command = self.engine.compose();
        command
            .arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(&self.file)
            .arg("--env-file")
            .arg(self.empty_env_file.path())
            .current_dir(self.file.parent().unwrap_or(Path::new(".")));
        // The defaults of the compose file are under test, not this machine's settings.
        for variable in sample_variables() {
            command.env_remove(variable);
        }
        command
    }

    fn compose<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> anyhow::Result<()> {
        let mut command = self.command();
        command.args(args);
        eprintln!("\n==> {command:?}");
        let status = command.status().with_context(|| format!("running {command:?}"))?;
        ensure!(status.success(), "{command:?} failed ({status})");
        Ok(())
    }

    /// Container ids of the project's services.
    fn containers(&self) -> anyhow::Result<Vec<String>> {
        let ids = Engine::output(self.command().args(["ps", "--quiet"]))?;
        Ok(ids.lines().map(str::to_owned).collect())
    }

    fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = Engine::output(self.command().args(["ps", "--quiet", service]))?;
        id.lines().next().map(str::to_owned).with_context(|| format!("no container for {service}"))
    }

    /// The project's volumes (compose labels them with the project's name).
    fn volumes(&self) -> anyhow::Result<Vec<String>> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let names = Engine::output(self.engine.docker().args(["volume", "ls", "--quiet", "--filter", &filter]))?;
        Ok(names.lines().map(str::to_owned).collect())
    }

    /// Waits until every container reports healthy; fails at once when one is unhealthy or stopped.
    fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            let containers = self.containers()?;
            let mut inspect = self.engine.docker();
            inspect.args([
                "inspect",
                "--format",
                "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            ]);
            let states = Engine::output(inspect.args(&containers))?;
            let mut waiting = Vec::new();
            for line in states.lines() {
                let mut words = line.split_whitespace();
                let (name, state, health) = (words.next().unwrap_or("?"), words.next(), words.next());
                match (state, health) {
                    (Some("running"), Some("healthy")) => {}
                    (Some("running"), Some("starting")) | (Some("created"), _) => waiting.push(name.to_owned()),
                    _ => {
                        let _ = self.compose(["logs", "--tail", "40"]);
                        bail!("{name} is {line:?}: see its log above");
                    }
                }
            }
            if waiting.is_empty() && containers.len() >= 4 {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.compose(["logs", "--tail", "40"]);
                bail!("not healthy after {HEALTHY_WITHIN:?}: {waiting:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.compose(["down", "--volumes", "--remove-orphans"]) {
            eprintln!("compose: cleaning up {} failed: {error:#}", self.name);
        }
    }
}

/// The variables of `.env.sample`.
fn sample_variables() -> Vec<String> {
    let sample = std::fs::read_to_string(workspace_root().join(".env.sample")).unwrap_or_default();
    sample
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim().to_owned()))
        .collect()
}

/// Where the published API and frontend answer on this machine.
const BACKEND_ADDRESS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4567));
const FRONTEND_ADDRESS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));

/// The frontend serves the backend's URL; the backend answers the seeded feed to a request from the frontend's
/// origin, CORS admitting it.
fn check_feed_from_the_frontend_origin() -> anyhow::Result<()> {
    let config = get(FRONTEND_ADDRESS, "/config.json", &[])?;
    let served: Value = serde_json::from_str(&config.body).with_context(|| format!("/config.json: {}", config.body))?;
    ensure!(
        served.to_string().contains(&format!("http://{BACKEND}")),
        "the frontend serves the backend URL http://{BACKEND}: {served}"
    );
    let feed = get(BACKEND_ADDRESS, "/api/activities/home", &[("Origin", FRONTEND)])?;
    ensure!(feed.status == 200, "the home feed answered {}: {}", feed.status, feed.body);
    ensure!(feed.header("access-control-allow-origin") == Some(FRONTEND), "CORS admits {FRONTEND}: {:?}", feed.headers);
    ensure!(feed.body.contains("This was imported as seed data!"), "the seeded feed: {}", feed.body);
    eprintln!("compose: the seeded feed answers {FRONTEND}'s requests, CORS admitting it");
    Ok(())
}

async fn sign_up_and_post(crud: &str) -> anyhow::Result<()> {
    let browser = Browser::start().await;
    let journey = Journey { client: &browser.client, browser: &browser, origin: FRONTEND.to_owned() };
    let outcome = async {
        journey.open("/").await?;
        journey.sign_up().await?;
        journey.post_crud(crud).await
    }
    .await;
    if outcome.is_err() {
        eprintln!("compose: the browser's console errors: {:#?}", browser.console_errors().await);
    }
    outcome?;
    // The page sends its spans every 2 s and when hidden: leaving it sends them now.
    journey.open("/signin").await?;
    eprintln!("compose: signed up and posted a crud in Chromium at {FRONTEND}");
    Ok(())
}

/// The console's trace with the browser's span for the crud's `POST /api/activities` and the backend's SQL
/// subsegment for it; returns its id.
async fn crud_trace_in_the_console() -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + TRACE_WITHIN;
    loop {
        let ids =
            traces_in_the_console(&http, "service(\"cruddur-frontend\") AND service(\"cruddur-backend\")").await?;
        for chunk in ids.chunks(5) {
            let traces: Value = http
                .post(format!("{CONSOLE}/Traces"))
                .json(&json!({ "TraceIds": chunk }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for trace in traces["Traces"].as_array().into_iter().flatten() {
                let documents: Vec<Value> = trace["Segments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|segment| serde_json::from_str(segment["Document"].as_str()?).ok())
                    .collect();
                if is_the_crud_trace(&documents) {
                    return Ok(trace["Id"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no trace in the console at {CONSOLE} has the browser's POST /api/activities and its SQL");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The ids of the console's traces of the last hour that match an X-Ray filter expression (`GetTraceSummaries`).
async fn traces_in_the_console(http: &reqwest::Client, filter: &str) -> anyhow::Result<Vec<Value>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let summaries: Value = http
        .post(format!("{CONSOLE}/TraceSummaries"))
        .json(&json!({ "StartTime": now - 3600.0, "EndTime": now + 60.0, "FilterExpression": filter }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(summaries["TraceSummaries"].as_array().into_iter().flatten().map(|summary| summary["Id"].clone()).collect())
}

/// A trace with the browser's client span for `POST /api/activities`, and the backend's segment with an `INSERT`
/// SQL subsegment.
fn is_the_crud_trace(documents: &[Value]) -> bool {
    let mut nodes = Vec::new();
    let mut pending: Vec<&Value> = documents.iter().collect();
    while let Some(node) = pending.pop() {
        nodes.push(node);
        pending.extend(node["subsegments"].as_array().into_iter().flatten());
    }
    let browser_post = nodes.iter().any(|node| {
        node["metadata"]["otel"]["span_name"] == "POST /api/activities"
            && node["metadata"]["otel"]["span_kind"] == "SPAN_KIND_CLIENT"
    });
    let insert = nodes.iter().any(|node| {
        node["sql"]["sanitized_query"].as_str().is_some_and(|query| query.to_ascii_uppercase().contains("INSERT"))
    });
    let backend = documents.iter().any(|document| document["name"] == "cruddur-backend");
    browser_post && insert && backend
}

/// The bootcamp's compose service for the daemon, verbatim but for the image (ours instead of
/// `amazon/aws-xray-daemon`): its one-string `command:` is read as flags, with a warning, and the daemon runs
/// with local mode on and the UDP socket bound where that line says.
fn the_bootcamp_daemon_service_runs_on_our_image(engine: &Engine, image: &str) -> anyhow::Result<()> {
    // A name for the image, as a compose file names one; removed (the name only) at the end.
    let tag = Tag::new(engine, image, "cruddur-compose-check/xray-daemon:bootcamp")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("docker-compose.yml");
    // The bootcamp's service (week 2), as it is written there but for the image.
    let service = [
        "services:",
        "  xray-daemon:",
        &format!("    image: \"{}\"", tag.name),
        "    environment:",
        "      AWS_ACCESS_KEY_ID: \"${AWS_ACCESS_KEY_ID}\"",
        "      AWS_SECRET_ACCESS_KEY: \"${AWS_SECRET_ACCESS_KEY}\"",
        "      AWS_REGION: \"us-east-1\"",
        "    command:",
        "      - \"xray -o -b xray-daemon:2000\"",
        "    ports:",
        "      - 2000:2000/udp",
    ];
    std::fs::write(&file, service.join("\n") + "\n")?;
    let bootcamp = Project::of(engine, file, &format!("{PROJECT}-bootcamp-daemon"))?;
    bootcamp.compose(["up", "--detach"])?;
    let container = bootcamp.container("xray-daemon")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = engine.docker().args(["logs", &container]).output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
        let state = Engine::output(engine.docker().args(["inspect", "--format", "{{.State.Status}}", &container]))?;
        if text.contains("X-Ray daemon started") {
            ensure!(state == "running", "the bootcamp's daemon service is {state}: {text}");
            ensure!(
                text.contains("as the flags `-o -b xray-daemon:2000`"),
                "the warning about the one-string command: {text}"
            );
            ensure!(text.contains(":2000"), "bound to port 2000: {text}");
            eprintln!("compose: the bootcamp's daemon service runs on our image:\n{}", text.trim());
            return Ok(());
        }
        if state != "running" || Instant::now() > deadline {
            bail!("the bootcamp's daemon service did not start ({state}): {text}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A name given to an image for the check; the name (not the image) is removed when dropped.
struct Tag<'a> {
    engine: &'a Engine,
    name: &'static str,
}

impl<'a> Tag<'a> {
    fn new(engine: &'a Engine, image: &str, name: &'static str) -> anyhow::Result<Self> {
        Engine::output(engine.docker().args(["tag", image, name]))?;
        Ok(Self { engine, name })
    }
}

impl Drop for Tag<'_> {
    fn drop(&mut self) {
        let _ = self.engine.docker().args(["rmi", self.name]).output();
    }
}

impl Project<'_> {
    /// Prints the size of each service's image (for README's numbers).
    fn report_image_sizes(&self) -> anyhow::Result<()> {
        for service in ["db", "xray-daemon", "backend", "frontend"] {
            let size = Engine::output(
                self.engine.docker().args(["image", "inspect", "--format", "{{.Size}}"]).arg(self.image_of(service)?),
            )?;
            let megabytes = size.parse::<f64>().unwrap_or_default() / 1e6;
            eprintln!("compose: the {service} image is {megabytes:.0} MB");
        }
        Ok(())
    }

    /// The image a service's container runs.
    fn image_of(&self, service: &str) -> anyhow::Result<String> {
        let container = self.container(service)?;
        Engine::output(self.engine.docker().args(["inspect", "--format", "{{.Image}}", &container]))
    }
}
