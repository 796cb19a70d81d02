//! `xray`: reads the command line (and cfg.yaml), sets up logging, loads AWS region and credentials, binds the
//! sockets and runs the daemon until SIGINT or SIGTERM, then flushes and exits 0.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use xray_daemon::{Cli, Config, Counters, DaemonError, Sockets, aws, log_file, run};

fn main() -> ExitCode {
    let (cli, warnings) = Cli::parse_command_line(std::env::args_os()).unwrap_or_else(|error| error.exit());
    let config = match Config::from_cli(&cli) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    if let Err(error) = init_logging(&config, cli.log_level.is_some()) {
        return fail(&error);
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the Tokio runtime");
    let result = runtime.block_on(async {
        let sdk = match aws::load(&config).await {
            Ok(sdk) => sdk,
            // The console works with no account at all: it says so once the sockets are bound, and forwards nothing.
            Err(DaemonError::NoRegion) if config.console.is_some() => {
                aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build()
            }
            Err(error) => return Err(error),
        };
        let sockets = Sockets::bind(&config).await?;
        run(sockets, &config, sdk, Counters::default(), shutdown::signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("xray: {error}");
    ExitCode::FAILURE
}

/// The level from `-l`, else `RUST_LOG`, else cfg.yaml's `LogLevel`; to stdout or to the (rotated) `-f` file.
fn init_logging(config: &Config, level_flag: bool) -> Result<(), DaemonError> {
    let from_env = if level_flag { None } else { EnvFilter::try_from_default_env().ok() };
    let filter = from_env.unwrap_or_else(|| {
        EnvFilter::default().add_directive(LevelFilter::from_level(config.log_level.tracing_level()).into())
    });
    // Colour codes only on a terminal: in a container log they are noise.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stdout().is_terminal());
    match &config.log_file {
        Some(path) => {
            let file = log_file::open(path, config.log_rotation)?;
            builder.with_ansi(false).with_writer(Mutex::new(file)).init();
        }
        None => builder.init(),
    }
    Ok(())
}
