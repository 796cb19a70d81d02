//! The deployment files — docker-compose.yml, the Dockerfiles, .gitpod.yml and .env.sample — checked against the
//! code they deploy: the variables each binary reads come from its own configuration types (clap commands, the
//! telemetry config's lookups), the packages and binaries from `cargo metadata`. No Docker needed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// `path` parsed, with its `<<` merge keys applied (compose shares the telemetry settings through one).
fn yaml(path: &str) -> Value {
    let mut value: serde_norway::Value =
        serde_norway::from_str(&read(path)).unwrap_or_else(|error| panic!("{path}: {error}"));
    value.apply_merge().unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::to_value(value).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The environment variables of a clap command.
fn clap_vars(command: clap::Command) -> BTreeSet<String> {
    command.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect()
}

/// Every variable the telemetry crate looks up, recorded while it reads an empty environment and one with every
/// signal on (some variables are only read when their signal is on).
fn telemetry_vars() -> BTreeSet<String> {
    let looked_up = RefCell::new(BTreeSet::new());
    let signals_on = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("ROLLBAR_ACCESS_TOKEN", "probe-token"),
        ("CLOUDWATCH_LOG_GROUP", "cruddur"),
    ];
    for on in [&[][..], &signals_on[..]] {
        cruddur_telemetry::TelemetryConfig::from_lookup("probe", |name| {
            looked_up.borrow_mut().insert(name.to_owned());
            on.iter().find(|(variable, _)| *variable == name).map(|(_, value)| (*value).to_owned())
        })
        .expect("a valid configuration");
    }
    looked_up.into_inner()
}

/// What the AWS SDK reads for CloudWatch Logs' region and credentials in the backend, besides the telemetry crate's
/// own variables.
const CLOUDWATCH_AWS: [&str; 5] =
    ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"];

/// The OTLP destination of the daemon's fan-out, read through the telemetry crate's parser.
const DAEMON_OTLP: [&str; 4] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "HONEYCOMB_API_KEY",
];

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

/// A binary's own variables (its clap configuration) and those of the telemetry it starts.
fn telemetry_binary_vars(command: clap::Command) -> BTreeSet<String> {
    let mut vars = clap_vars(command);
    vars.extend(telemetry_vars());
    vars.extend(CLOUDWATCH_AWS.map(String::from));
    vars
}

fn backend_vars() -> BTreeSet<String> {
    telemetry_binary_vars(cruddur_backend::Config::command())
}

fn frontend_vars() -> BTreeSet<String> {
    telemetry_binary_vars(cruddur_frontend_server::Config::command())
}

fn daemon_vars() -> BTreeSet<String> {
    let mut vars = clap_vars(xray_daemon::Cli::command());
    vars.extend(AWS_CHAIN.map(String::from));
    vars.extend(DAEMON_OTLP.map(String::from));
    // The daemon's log filter, read by its main.
    vars.insert("RUST_LOG".into());
    vars
}

/// The daemon's configuration from an ENTRYPOINT (program first) and a compose `command:`, with its warnings.
fn daemon_config(entrypoint: &[String], command: &[&str]) -> (xray_daemon::Config, Vec<String>) {
    let args = entrypoint.iter().map(String::as_str).chain(command.iter().copied());
    let (cli, warnings) = xray_daemon::Cli::parse_command_line(args).expect("a valid command line");
    (xray_daemon::Config::from_cli(&cli).expect("a valid configuration"), warnings)
}

/// The bootcamp's compose service (week 2) with the official image swapped for ours: its one-string command is
/// read as flags, with a warning; the binds it does not name stay the image's.
#[test]
fn the_bootcamp_daemon_command_runs_on_our_image_with_a_warning() {
    let (config, warnings) = daemon_config(&entrypoint("xray-daemon"), &["xray -o -b xray-daemon:2000"]);
    assert!(config.local_mode);
    assert_eq!((config.udp_address.as_str(), config.tcp_address.as_str()), ("xray-daemon:2000", "0.0.0.0:2000"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // No command at all: the image's CMD.
    let (config, warnings) = daemon_config(&entrypoint("xray-daemon"), &["--local-mode"]);
    assert!(config.local_mode && warnings.is_empty());
    assert_eq!(config.udp_address, "0.0.0.0:2000");
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

    // The daemon's command line (the image's ENTRYPOINT, then compose's command) means what compose intends: both
    // ports on every interface, local mode, the console; and says nothing to warn about.
    let command = strings(&service(&compose, "xray-daemon")["command"]);
    let (config, warnings) = daemon_config(&entrypoint("xray-daemon"), &command);
    assert_eq!((config.udp_address.as_str(), config.tcp_address.as_str()), ("0.0.0.0:2000", "0.0.0.0:2000"));
    assert!(config.local_mode && config.console.is_some());
    assert!(warnings.is_empty(), "{warnings:?}");

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
    let read = frontend_vars();
    for name in passed.keys() {
        assert!(read.contains(name), "frontend is given {name}, which it does not read (misspelled?)");
    }
    for name in &read {
        assert!(passed.contains_key(name), "frontend reads {name}, which compose does not pass");
    }
    assert_eq!(passed["OTEL_SERVICE_NAME"], "cruddur-frontend-server", "its own name, whatever names the backend");
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

/// One stage of the Dockerfile: its name, what it starts from, its instructions.
struct Stage {
    name: String,
    from: String,
    steps: Vec<(String, String)>,
}

fn stages() -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (keyword, arguments) in instructions(&read("Dockerfile")) {
        if keyword == "FROM" {
            let words: Vec<&str> = arguments.split_whitespace().collect();
            assert!(words.len() == 3 && words[1].eq_ignore_ascii_case("AS"), "a named stage: FROM {arguments}");
            stages.push(Stage { name: words[2].to_owned(), from: words[0].to_owned(), steps: Vec::new() });
        } else {
            stages.last_mut().expect("FROM first").steps.push((keyword, arguments));
        }
    }
    stages
}

fn stage(name: &str) -> Stage {
    stages().into_iter().find(|stage| stage.name == name).unwrap_or_else(|| panic!("no stage {name}"))
}

/// A stage and the stages it is built on, itself first.
fn lineage(name: &str) -> Vec<Stage> {
    let mut chain = vec![stage(name)];
    while let Some(parent) = stages().into_iter().find(|stage| stage.name == chain.last().unwrap().from) {
        chain.push(parent);
    }
    chain
}

/// The first of `keyword`'s arguments in a stage or the stages it is built on.
fn inherited(name: &str, keyword: &str) -> Option<String> {
    lineage(name).into_iter().find_map(|stage| {
        stage.steps.into_iter().rev().find(|(found, _)| found == keyword).map(|(_, arguments)| arguments)
    })
}

/// A stage's ENTRYPOINT, program first.
fn entrypoint(name: &str) -> Vec<String> {
    serde_json::from_str(&inherited(name, "ENTRYPOINT").expect("an ENTRYPOINT")).expect("ENTRYPOINT in JSON form")
}

/// The `--bin` targets of a cargo command line, each with the `--package` before it.
fn built_binaries(command: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut package = None;
    let mut built = Vec::new();
    for pair in words.windows(2) {
        match pair[0] {
            "--package" => package = Some(pair[1]),
            "--bin" => built.push((package.expect("--package before --bin").to_owned(), pair[1].to_owned())),
            _ => {}
        }
    }
    built
}

#[test]
fn one_build_stage_builds_every_image_s_binary_and_each_runs_it_as_a_non_root_user() {
    let dockerfile = read("Dockerfile");
    assert!(
        !dockerfile.lines().any(|line| line.trim_start().to_ascii_lowercase().starts_with("# syntax=")),
        "no `# syntax=` line: it pulls a build frontend from a registry on every build"
    );
    let compose = yaml("docker-compose.yml");
    assert!(compose.get("name").is_none(), "no top-level name: docker-compose 1.29 refuses the file with it");
    let binaries = workspace_binaries();
    let built: Vec<(&String, &Value)> =
        compose["services"].as_object().unwrap().iter().filter(|(_, service)| service.get("build").is_some()).collect();
    let names: BTreeSet<&str> = built.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["backend", "frontend", "xray-daemon"]), "the images built from this workspace");

    let builders: Vec<Stage> = stages().into_iter().filter(|stage| stage.from.starts_with("rust:")).collect();
    assert_eq!(builders.len(), 1, "one build stage for every image");
    let builder = &builders[0];
    let cargo_builds: Vec<&String> = builder
        .steps
        .iter()
        .filter(|(keyword, run)| keyword == "RUN" && run.contains("cargo build"))
        .map(|(_, run)| run)
        .collect();
    assert_eq!(cargo_builds.len(), 1, "one cargo build for the three binaries");
    let build = cargo_builds[0];
    assert!(build.contains("--release") && build.contains("--locked"), "the locked versions, optimised");
    assert!(build.contains("--mount=type=cache"), "the build keeps its cache between builds");
    let compiled = built_binaries(build);
    for (package, binary) in &compiled {
        let bins = binaries.get(package).unwrap_or_else(|| panic!("no package {package} in the workspace"));
        assert!(bins.contains(binary), "package {package} has no binary {binary}");
    }

    for (name, service) in built {
        assert_eq!(service["build"]["context"], ".", "{name} builds from the workspace root");
        assert!(service["build"].get("dockerfile").is_none(), "{name} builds from the one Dockerfile");
        let target = service["build"]["target"].as_str().unwrap_or_else(|| panic!("{name}: a build target"));
        let chain = lineage(target);
        assert!(chain.last().unwrap().from.ends_with("-slim"), "{target}: runs on a slim image");
        let binary = &entrypoint(target)[0];
        assert!(compiled.iter().any(|(_, built)| built == binary), "{target} runs {binary}, which the build builds");
        assert!(
            chain[0].steps.iter().any(|(keyword, copy)| keyword == "COPY"
                && copy.contains(&format!("--from={}", builder.name))
                && copy.contains(&format!("/{binary} "))),
            "{target}: copies {binary} from the build stage"
        );
        let user = inherited(target, "USER").expect("USER");
        assert!(user != "root" && user != "0", "{target}: runs as {user}");

        // The compose healthcheck's program is in the run image: installed there, or part of Debian's base image.
        let program = strings(&service["healthcheck"]["test"])[1];
        let installed = chain
            .iter()
            .flat_map(|stage| &stage.steps)
            .any(|(keyword, run)| keyword == "RUN" && run.contains("apt-get install") && run.contains(program));
        assert!(installed || program == "bash", "{target}: healthcheck program {program} is not in the run image");
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
    // The URLs go to ~/.bashrc.d in `before`, for every terminal; `cargo xtask compose` runs the task for real.
    let before = gitpod["tasks"][0]["before"].as_str().unwrap();
    for (variable, port) in [("FRONTEND_URL", 3000), ("BACKEND_URL", 4567)] {
        let expected =
            format!("{variable}=\"https://{port}-${{GITPOD_WORKSPACE_ID}}.${{GITPOD_WORKSPACE_CLUSTER_HOST}}\"");
        assert!(before.contains(&expected), "{expected} in {before}");
    }
    assert!(before.contains("~/.bashrc.d/"), "the variables reach every terminal: {before}");
    assert!(gitpod["tasks"][0]["command"].as_str().unwrap().contains("docker compose up"));
}

/// `.env.sample`'s variables and their values (the binaries' own defaults, or examples).
fn sample() -> BTreeMap<String, String> {
    read(".env.sample")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// What compose sets whatever the environment says, per service, and why: the inside of the stack.
const FIXED_IN_COMPOSE: [(&str, &str, &str); 10] = [
    ("backend", "PORT", "the port the container publishes"),
    ("backend", "BIND_ADDRESS", "every interface of the container"),
    ("backend", "DATABASE_URL", "the db service (.env.sample's is the host's)"),
    ("backend", "AWS_XRAY_DAEMON_ADDRESS", "the xray-daemon service (.env.sample's is the host's)"),
    ("frontend", "PORT", "the port the container publishes"),
    ("frontend", "BIND_ADDRESS", "every interface of the container"),
    ("frontend", "FRONTEND_DIST", "the bundle's place in the image"),
    ("frontend", "AWS_XRAY_DAEMON_ADDRESS", "the xray-daemon service (.env.sample's is the host's)"),
    ("frontend", "OTEL_SERVICE_NAME", "the frontend server's own name (.env.sample's names the backend)"),
    ("frontend", "AWS_XRAY_TRACING_NAME", "the frontend server's segments keep its own name"),
];

/// Defaults compose gives that differ from the binaries' own, and why.
const COMPOSE_DEFAULTS: [(&str, &str); 2] = [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "spans go to the daemon's console, to be seen with no account"),
    ("SEED_IF_EMPTY", "a new stack shows the seeded feed"),
];

/// Each compose service and the variables its binary reads.
fn readers() -> [(&'static str, BTreeSet<String>); 3] {
    [("backend", backend_vars()), ("xray-daemon", daemon_vars()), ("frontend", frontend_vars())]
}

/// Every variable of .env.sample reaches, under compose, every binary that reads it: from the user's environment or
/// .env, with the binary's own default (or a named reason), or fixed by compose for a named reason. A variable
/// added to .env.sample fails here until the binary that reads it is given it.
#[test]
fn every_variable_of_env_sample_reaches_every_binary_that_reads_it_under_compose() {
    let compose = yaml("docker-compose.yml");
    let readers = readers();
    for (name, documented) in sample() {
        let reading: Vec<&str> =
            readers.iter().filter(|(_, read)| read.contains(&name)).map(|(service, _)| *service).collect();
        assert!(!reading.is_empty(), ".env.sample documents {name}, which no binary of the compose stack reads");
        for service_name in reading {
            let passed = environment(service(&compose, service_name));
            let value = passed
                .get(&name)
                .unwrap_or_else(|| panic!("{service_name} reads {name} (.env.sample), which compose does not pass"));
            if FIXED_IN_COMPOSE.iter().any(|(service, fixed, _)| *service == service_name && *fixed == name) {
                assert!(!value.contains("${"), "{service_name}'s {name} is fixed on purpose: {value}");
                continue;
            }
            let default =
                value.strip_prefix(&format!("${{{name}:-")).and_then(|rest| rest.strip_suffix('}')).unwrap_or_else(
                    || panic!("{service_name}'s {name} is {value}, not ${{{name}:-<default>}} from the user"),
                );
            if !COMPOSE_DEFAULTS.iter().any(|(changed, _)| *changed == name) {
                assert_eq!(default, documented, "{service_name}'s default {name} is the binary's own (.env.sample)");
            }
        }
    }
}

/// The bootcamp's `gp env HONEYCOMB_SERVICE_NAME="Cruddur"`: compose leaves OTEL_SERVICE_NAME, which wins over it,
/// unset unless the user sets it.
#[test]
fn honeycomb_service_name_names_the_backend_under_compose() {
    let compose = yaml("docker-compose.yml");
    let passed = environment(service(&compose, "backend"));
    assert_eq!(passed["OTEL_SERVICE_NAME"], "${OTEL_SERVICE_NAME:-}");
    assert_eq!(passed["HONEYCOMB_SERVICE_NAME"], "${HONEYCOMB_SERVICE_NAME:-}");
    let config = cruddur_telemetry::TelemetryConfig::from_lookup("cruddur-backend", |name| match name {
        "HONEYCOMB_SERVICE_NAME" => Some("Cruddur".into()),
        "OTEL_SERVICE_NAME" => Some(String::new()),
        _ => None,
    })
    .expect("a valid configuration");
    assert_eq!(config.service_name, "Cruddur");
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

/// A `const NAME: ... = <value>;` of xtask's frontend module, as written there.
fn frontend_constant(name: &str) -> String {
    let source = read("xtask/src/frontend.rs");
    let start = source.find(&format!("const {name}: ")).unwrap_or_else(|| panic!("frontend.rs has no {name}"));
    let value = &source[start + source[start..].find(" = ").unwrap() + 3..];
    value[..value.find(";\n").unwrap()].trim().to_owned()
}

/// The image's bundle is the one `cargo xtask frontend` makes: its steps are written out in the build stage (so
/// that the image need not compile xtask), with the same profile, tools, versions, flags and files.
#[test]
fn the_frontend_image_builds_the_bundle_as_cargo_xtask_frontend_does_and_serves_it_from_frontend_dist() {
    let build = stages().into_iter().find(|stage| stage.from.starts_with("rust:")).expect("a build stage");
    let runs: Vec<&str> =
        build.steps.iter().filter(|(keyword, _)| keyword == "RUN").map(|(_, run)| run.as_str()).collect();
    assert!(runs.iter().any(|run| run.contains("rustup target add wasm32-unknown-unknown")), "the wasm target");
    let bundle = runs.iter().find(|run| run.contains("wasm-bindgen --target web")).expect("the bundle's steps");
    let unquote = |value: String| value.trim_matches('"').to_owned();
    let profile = unquote(frontend_constant("PROFILE"));
    let package = unquote(frontend_constant("APP_PACKAGE"));
    let name = unquote(frontend_constant("BUNDLE_NAME"));
    let binaryen = unquote(frontend_constant("BINARYEN"));
    let major = binaryen.rsplit('@').next().unwrap().split('.').next().unwrap().to_owned();
    for expected in [
        format!("--package {package} --target wasm32-unknown-unknown --profile {profile}"),
        format!("target/wasm32-unknown-unknown/{profile}/{package}.wasm"),
        format!("--no-typescript --out-name {name}"),
        format!("npm install --no-save --no-audit --no-fund --prefix target/frontend-tools {binaryen}"),
        format!("grep -q \"version {major}\""),
        format!("/out/dist/{name}_bg.wasm -o /out/dist/{name}_bg.wasm"),
        "cargo install --force wasm-bindgen-cli --version".to_owned(),
        "frontend/app/static/index.html frontend/app/static/style.css /out/dist/".to_owned(),
    ] {
        assert!(bundle.contains(&expected), "the build stage lacks `{expected}`");
    }
    let features = frontend_constant("WASM_FEATURES");
    for feature in features.split('"').filter(|part| part.starts_with("--")) {
        assert!(bundle.contains("-Oz ") && bundle.contains(feature), "wasm-opt without {feature}");
    }

    let frontend = stage("frontend");
    let env: Vec<&str> = frontend
        .steps
        .iter()
        .filter(|(keyword, _)| keyword == "ENV")
        .flat_map(|(_, env)| env.split_whitespace())
        .collect();
    let dist = env.iter().find_map(|pair| pair.strip_prefix("FRONTEND_DIST=")).expect("FRONTEND_DIST is set");
    assert!(
        frontend
            .steps
            .iter()
            .any(|(keyword, copy)| keyword == "COPY" && copy.contains("--from=build") && copy.ends_with(dist)),
        "the bundle is copied to {dist}"
    );
    let compose = yaml("docker-compose.yml");
    assert_eq!(environment(service(&compose, "frontend"))["FRONTEND_DIST"], dist, "compose names the image's bundle");
}
