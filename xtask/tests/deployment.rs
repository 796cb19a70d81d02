//! The deployment files — docker-compose.yml, the Dockerfiles, .gitpod.yml and .env.sample — checked against the
//! code they deploy: the variables each binary reads come from its own configuration types (clap commands, the
//! telemetry config's lookups), the packages and binaries from `cargo metadata`. No Docker needed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, Parser};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The environment variables of a clap command.
fn clap_vars(command: clap::Command) -> BTreeSet<String> {
    command.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect()
}

/// Every variable the telemetry crate looks up, recorded while it reads an empty environment and one with OTLP on
/// (some variables are only read when OTLP is on).
fn telemetry_vars() -> BTreeSet<String> {
    let looked_up = RefCell::new(BTreeSet::new());
    for otlp_endpoint in [None, Some("http://127.0.0.1:4318")] {
        cruddur_telemetry::TelemetryConfig::from_lookup("probe", |name| {
            looked_up.borrow_mut().insert(name.to_owned());
            otlp_endpoint.filter(|_| name == "OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned)
        })
        .expect("a valid configuration");
    }
    looked_up.into_inner()
}

/// What the AWS SDK's default chains read for region and credentials (besides the daemon's own flags).
const AWS_CHAIN: [&str; 9] = [
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

fn backend_vars() -> BTreeSet<String> {
    let mut vars = clap_vars(cruddur_backend::Config::command());
    vars.extend(telemetry_vars());
    vars
}

fn daemon_vars() -> BTreeSet<String> {
    let mut vars = clap_vars(xray_daemon::Cli::command());
    vars.extend(AWS_CHAIN.map(String::from));
    // The daemon's log filter, read by its main.
    vars.insert("RUST_LOG".into());
    vars
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"].get(name).unwrap_or_else(|| panic!("compose has no service {name}"))
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .expect("environment as a map")
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
        .collect()
}

fn strings(list: &Value) -> Vec<&str> {
    list.as_array().expect("a list").iter().map(|item| item.as_str().expect("a string")).collect()
}

#[test]
fn compose_has_every_service_and_port_of_the_contract() {
    let compose = yaml("docker-compose.yml");
    assert_eq!(strings(&service(&compose, "backend")["ports"]), ["4567:4567"]);
    assert_eq!(strings(&service(&compose, "xray-daemon")["ports"]), ["2000:2000/udp", "2000:2000/tcp"]);
    assert_eq!(strings(&service(&compose, "db")["ports"]), ["5432:5432"]);
    assert_eq!(strings(&service(&compose, "frontend")["ports"]), ["3000:3000"]);

    // The daemon's command line means what compose intends: both ports on every interface, local mode.
    let command = strings(&service(&compose, "xray-daemon")["command"]);
    let cli = xray_daemon::Cli::try_parse_from(std::iter::once("xray").chain(command)).unwrap();
    let config = xray_daemon::Config::from_cli(&cli).unwrap();
    assert_eq!((config.udp_address.as_str(), config.tcp_address.as_str()), ("0.0.0.0:2000", "0.0.0.0:2000"));
    assert!(config.local_mode);

    for name in ["db", "backend", "xray-daemon", "frontend"] {
        let service = service(&compose, name);
        assert_eq!(strings(&service["networks"]), ["cruddur"], "{name} is on the network");
        assert!(service["healthcheck"]["test"].is_array(), "{name} has a healthcheck");
    }
    let depends = &service(&compose, "backend")["depends_on"];
    for dependency in ["db", "xray-daemon"] {
        assert_eq!(depends[dependency]["condition"], "service_healthy", "backend waits for {dependency}");
    }
    assert_eq!(service(&compose, "frontend")["depends_on"]["backend"]["condition"], "service_healthy");
    assert!(compose["volumes"].get("db").is_some(), "Postgres keeps its data in a volume");
}

#[test]
fn compose_passes_the_frontend_its_settings_and_nothing_misspelled() {
    let compose = yaml("docker-compose.yml");
    let passed = environment(service(&compose, "frontend"));
    let read = clap_vars(cruddur_frontend_server::Config::command());
    for name in passed.keys() {
        assert!(read.contains(name), "frontend is given {name}, which it does not read (misspelled?)");
    }
    // The browser runs on the host: the API's URL is the host's, passed through with a working default.
    assert_eq!(passed["BACKEND_URL"], "${BACKEND_URL:-http://localhost:4567}");
    assert_eq!(passed["PORT"], "3000");
}

#[test]
fn compose_passes_every_variable_the_backend_reads_and_nothing_misspelled() {
    let compose = yaml("docker-compose.yml");
    let passed = environment(service(&compose, "backend"));
    let read = backend_vars();
    for name in passed.keys() {
        assert!(read.contains(name), "backend is given {name}, which it does not read (misspelled?)");
    }
    // CONNECTION_URL is only the original's alias of DATABASE_URL.
    for name in read.iter().filter(|name| *name != "CONNECTION_URL") {
        assert!(passed.contains_key(name), "backend reads {name}, which compose does not pass");
    }
    assert_eq!(passed["AWS_XRAY_DAEMON_ADDRESS"], "xray-daemon:2000");
    assert!(passed["DATABASE_URL"].contains("@db:5432/"));
    // Host variables pass through, each with a default that works without any account.
    for name in ["HONEYCOMB_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "FRONTEND_URL"] {
        assert!(passed[name].starts_with(&format!("${{{name}:-")), "{name} = {}", passed[name]);
    }
}

#[test]
fn compose_passes_the_daemon_its_aws_settings_and_nothing_misspelled() {
    let compose = yaml("docker-compose.yml");
    let passed = environment(service(&compose, "xray-daemon"));
    let read = daemon_vars();
    for name in passed.keys() {
        assert!(read.contains(name), "xray-daemon is given {name}, which it does not read (misspelled?)");
    }
    for name in
        ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_XRAY"]
    {
        assert!(passed.contains_key(name), "xray-daemon needs {name}");
    }
}

/// A Dockerfile's instructions as (keyword, arguments), line continuations joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines().map(str::trim).filter(|line| !line.starts_with('#') && !line.is_empty()) {
        match line.strip_suffix('\\') {
            Some(partial) => {
                current.push_str(partial);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .map(|line| {
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            (keyword.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

/// Package name -> its binary targets, from `cargo metadata`.
fn workspace_binaries() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .unwrap();
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let bins = package["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|target| target["kind"].as_array().unwrap().iter().any(|kind| kind == "bin"))
                .map(|target| target["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), bins)
        })
        .collect()
}

fn flag_value<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = command.split_whitespace();
    words.by_ref().find(|word| *word == flag)?;
    words.next()
}

#[test]
fn each_image_builds_a_workspace_binary_and_runs_it_as_a_non_root_user() {
    let compose = yaml("docker-compose.yml");
    let binaries = workspace_binaries();
    let built: Vec<(&String, &Value)> =
        compose["services"].as_object().unwrap().iter().filter(|(_, service)| service.get("build").is_some()).collect();
    let names: BTreeSet<&str> = built.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["backend", "frontend", "xray-daemon"]), "the images built from this workspace");
    for (name, service) in built {
        assert_eq!(service["build"]["context"], ".", "{name} builds from the workspace root");
        let path = service["build"]["dockerfile"].as_str().unwrap();
        let steps = instructions(&read(path));
        let stages: Vec<&String> =
            steps.iter().filter(|(keyword, _)| keyword == "FROM").map(|(_, from)| from).collect();
        assert!(stages.len() >= 2 && stages[0].starts_with("rust:"), "{path}: a Rust build stage, then a run stage");
        assert!(stages.last().unwrap().contains("-slim"), "{path}: runs on a slim image");

        let build = steps
            .iter()
            .find(|(keyword, run)| keyword == "RUN" && run.contains("cargo build"))
            .unwrap_or_else(|| panic!("{path}: no cargo build"));
        assert!(build.1.contains("--locked"), "{path}: builds the locked versions");
        let package = flag_value(&build.1, "--package").expect("--package");
        let binary = flag_value(&build.1, "--bin").expect("--bin");
        let bins = binaries.get(package).unwrap_or_else(|| panic!("{path}: no package {package} in the workspace"));
        assert!(bins.contains(binary), "{path}: package {package} has no binary {binary}");

        let run_stage = &steps[steps.iter().rposition(|(keyword, _)| keyword == "FROM").unwrap()..];
        let entrypoint = &run_stage.iter().find(|(keyword, _)| keyword == "ENTRYPOINT").expect("ENTRYPOINT").1;
        assert_eq!(*entrypoint, format!("[\"{binary}\"]"), "{path}: runs the binary it built");
        assert!(
            run_stage
                .iter()
                .any(|(keyword, arg)| keyword == "COPY" && arg.contains("--from=build") && arg.contains(binary)),
            "{path}: copies {binary} from the build stage"
        );
        let user = &run_stage.iter().find(|(keyword, _)| keyword == "USER").expect("USER").1;
        assert!(user != "root" && user != "0", "{path}: runs as {user}");

        // The compose healthcheck's program is in the run image: installed there, or part of Debian's base image.
        let program = strings(&service["healthcheck"]["test"])[1];
        let installed = run_stage
            .iter()
            .any(|(keyword, run)| keyword == "RUN" && run.contains("apt-get install") && run.contains(program));
        assert!(installed || program == "bash", "{path}: healthcheck program {program} is not in the run image");
    }
}

#[test]
fn the_docker_context_leaves_out_build_outputs_and_local_data() {
    let ignored = read(".dockerignore");
    for entry in ["target", ".data", ".git"] {
        assert!(ignored.lines().any(|line| line.trim() == entry), ".dockerignore lacks {entry}");
    }
}

#[test]
fn gitpod_opens_the_frontend_and_builds_the_urls_of_the_workspace() {
    let gitpod = yaml(".gitpod.yml");
    let ports: BTreeMap<u64, &Value> =
        gitpod["ports"].as_array().unwrap().iter().map(|port| (port["port"].as_u64().unwrap(), port)).collect();
    assert_eq!(ports[&3000]["onOpen"], "open-browser");
    assert_eq!(ports[&3000]["visibility"], "public");
    assert_eq!(ports[&4567]["visibility"], "public", "the browser calls the API directly");
    assert!(ports.contains_key(&2000));
    let command = gitpod["tasks"][0]["command"].as_str().unwrap();
    for (variable, port) in [("FRONTEND_URL", 3000), ("BACKEND_URL", 4567)] {
        let expected =
            format!("{variable}=\"https://{port}-${{GITPOD_WORKSPACE_ID}}.${{GITPOD_WORKSPACE_CLUSTER_HOST}}\"");
        assert!(command.contains(&expected), "{expected} in {command}");
    }
    assert!(command.contains("docker compose up"));
}

#[test]
fn env_sample_lists_every_variable_the_binaries_read() {
    let sample: BTreeSet<String> = read(".env.sample")
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains('='))
        .map(|line| line.split('=').next().unwrap().trim().to_owned())
        .collect();
    let mut read_somewhere = backend_vars();
    read_somewhere.extend(daemon_vars());
    read_somewhere.extend(clap_vars(cruddur_frontend_server::Config::command()));
    for name in &read_somewhere {
        // The SDK's own credential variables are documented by AWS; the region is ours to show.
        let sdk_only = AWS_CHAIN.contains(&name.as_str()) && name != "AWS_REGION";
        assert!(sample.contains(name) || sdk_only || name == "CONNECTION_URL", ".env.sample lacks {name}");
    }
}

#[test]
fn the_frontend_image_builds_the_wasm_bundle_and_serves_it_from_frontend_dist() {
    let steps = instructions(&read("frontend/Dockerfile"));
    let runs: Vec<&str> = steps.iter().filter(|(keyword, _)| keyword == "RUN").map(|(_, run)| run.as_str()).collect();
    assert!(runs.iter().any(|run| run.contains("rustup target add wasm32-unknown-unknown")), "the wasm target");
    assert!(runs.iter().any(|run| run.contains("cargo xtask frontend")), "the bundle is built in the build stage");
    let env: Vec<&str> =
        steps.iter().filter(|(keyword, _)| keyword == "ENV").flat_map(|(_, env)| env.split_whitespace()).collect();
    let dist = env.iter().find_map(|pair| pair.strip_prefix("FRONTEND_DIST=")).expect("FRONTEND_DIST is set");
    assert!(
        steps.iter().any(|(keyword, copy)| keyword == "COPY" && copy.contains("--from=build") && copy.ends_with(dist)),
        "the bundle is copied to {dist}"
    );
}
