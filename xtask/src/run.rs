//! `cargo xtask run`: the whole stack on this machine without Docker.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use local_postgres::Cluster;

use crate::process::{Services, cargo, step, wait_for_port, workspace_root};
use crate::{frontend, install};

/// Database of the local stack, in the private cluster.
const DATABASE: &str = "cruddur";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Build optimised binaries (slower to build, faster to run).
    #[arg(long)]
    release: bool,
    /// Port of the API.
    #[arg(long, env = "PORT", default_value_t = 4567)]
    port: u16,
    /// Port of the frontend (the app in the browser).
    #[arg(long, default_value_t = 3000)]
    frontend_port: u16,
    /// UDP and TCP port of the X-Ray daemon.
    #[arg(long, default_value_t = 2000)]
    daemon_port: u16,
    /// The backend exports OTLP straight to OTEL_EXPORTER_OTLP_* itself, instead of to the daemon, which then
    /// fans it out there and delivers it to X-Ray (the browser's spans included).
    #[arg(long)]
    otlp_direct: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    // Our own cluster, unless the user brings a server.
    let (database_url, _cluster) = match std::env::var("DATABASE_URL").ok().filter(|url| !url.is_empty()) {
        Some(url) => (url, None),
        None => {
            install::postgres()?;
            let data_dir = root.join(".data/postgres/data");
            let cluster = Cluster::start_persistent(&data_dir).context("starting the local Postgres")?;
            cluster.ensure_database(DATABASE)?;
            (cluster.url(DATABASE), Some(cluster))
        }
    };

    let profile = if args.release { "release" } else { "debug" };
    frontend::build(&frontend::Args::default())?;
    let mut build = cargo();
    build.args([
        "build",
        "--package",
        "cruddur-backend",
        "--package",
        "xray-daemon",
        "--package",
        "cruddur-frontend-server",
    ]);
    if args.release {
        build.arg("--release");
    }
    step("building the backend, the X-Ray daemon and the frontend server", &mut build)?;
    let binary = |name: &str| root.join("target").join(profile).join(name);

    let mut services = Services::new()?;
    let daemon = SocketAddr::from(([127, 0, 0, 1], args.daemon_port));
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    // No account: the daemon keeps the traces in its console (kept across restarts in .data/) instead of counting
    // what it cannot deliver.
    let console = !aws_credentials_present();
    let mut xray = std::process::Command::new(binary("xray"));
    xray.args(["--local-mode", "--region", &region, "--bind", &daemon.to_string(), "--bind-tcp", &daemon.to_string()]);
    if console {
        xray.arg("--console").arg("--console-file").arg(root.join(".data/xray-console.jsonl"));
    }
    services.start("xray-daemon", &mut xray)?;
    wait_for_port(daemon, Duration::from_secs(30)).or_else(|error| services.check_running().and(Err(error)))?;

    let mut backend = std::process::Command::new(binary("cruddur-backend"));
    backend
        .env("DATABASE_URL", &database_url)
        .env("AWS_XRAY_DAEMON_ADDRESS", daemon.to_string())
        .env("PORT", args.port.to_string())
        // The app's origin, by either name a user may type.
        .env("FRONTEND_URL", format!("http://localhost:{0},http://127.0.0.1:{0}", args.frontend_port))
        .env("SEED_IF_EMPTY", "true")
        .env("TOKEN_SECRET", token_secret(&root.join(".data"))?);
    if !args.otlp_direct {
        // The backend's spans and the browser's it relays go to the daemon, which delivers them to X-Ray (or its
        // console) and fans them out to the user's OTLP destination (inherited, with its key): the backend needs
        // neither.
        backend.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{daemon}"));
        for variable in ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "HONEYCOMB_API_KEY"] {
            backend.env_remove(variable);
        }
    }
    services.start("backend", &mut backend)?;
    let api = SocketAddr::from(([127, 0, 0, 1], args.port));
    wait_for_port(api, Duration::from_secs(60)).or_else(|error| services.check_running().and(Err(error)))?;

    services.start(
        "frontend",
        std::process::Command::new(binary("cruddur-frontend"))
            .env("PORT", args.frontend_port.to_string())
            .env("BACKEND_URL", format!("http://localhost:{}", args.port))
            .env("FRONTEND_DIST", frontend::dist()),
    )?;
    let app = SocketAddr::from(([127, 0, 0, 1], args.frontend_port));
    wait_for_port(app, Duration::from_secs(30)).or_else(|error| services.check_running().and(Err(error)))?;

    eprintln!(
        "\nCruddur is running (Ctrl-C stops everything):\n\
         \x20 App       http://localhost:{frontend_port}\n\
         \x20 API       http://localhost:{port}/api/activities/home\n\
         {console_line}\
         \x20 X-Ray     daemon on {daemon} (UDP segments, TCP sampling proxy and OTLP), region {region}{xray_note}\n\
         \x20 Postgres  {database_url}{data}\n\
         \x20 Sign in as andrewbrown (andrew@exampro.co), bayko, londo or altbrown with the password cruddur-password\n",
        port = args.port,
        frontend_port = args.frontend_port,
        console_line = if console {
            format!(
                "\x20 Console   http://localhost:{}/  (X-Ray console: every trace, no AWS account)\n",
                daemon.port()
            )
        } else {
            String::new()
        },
        xray_note = if console { ": no AWS credentials, so traces stay in the console" } else { "" },
        data = if std::env::var_os("DATABASE_URL").is_some() { "" } else { "  (data in .data/postgres)" },
    );
    services.wait()
}

/// The session-token secret of the local stack, made once and kept in `.data/`, so sign-ins survive restarts.
/// An explicit `TOKEN_SECRET` wins.
fn token_secret(data: &Path) -> anyhow::Result<String> {
    if let Ok(secret) = std::env::var("TOKEN_SECRET") {
        return Ok(secret);
    }
    let file = data.join("token-secret");
    if let Ok(secret) = fs::read_to_string(&file) {
        return Ok(secret.trim().to_owned());
    }
    let mut random = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let secret: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    fs::create_dir_all(data)?;
    fs::write(&file, &secret).with_context(|| format!("writing {}", file.display()))?;
    Ok(secret)
}

/// Whether the AWS SDK's credential chain can find anything (variables, a profile, a shared credentials file).
fn aws_credentials_present() -> bool {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    ["AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
        || home.join(".aws/credentials").is_file()
}
