//! The command line and `cfg.yaml` of the official daemon, flag for flag, merged into one [`Config`]:
//! flags win over the file, the file over the defaults.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use serde::Deserialize;

use crate::DaemonError;

/// Smallest buffer the official daemon accepts, in MB.
const MIN_BUFFER_MB: u64 = 3;
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_ADDRESS: &str = "127.0.0.1:2000";
/// Where the official daemon looks for its configuration when `-c` is not given, in this order.
const DEFAULT_CONFIG_FILES: [&str; 2] = ["/etc/amazon/xray/cfg.yaml", "cfg.yaml"];

/// The AWS X-Ray daemon: receives segment documents on UDP and sends them to AWS X-Ray in batches; proxies the
/// sampling API on TCP, signing each request.
#[derive(Debug, Clone, Parser)]
// A flag given twice takes its last value, as Go's flag package does: a `command:` can override the image's binds.
#[command(name = "xray", version, disable_version_flag = true, args_override_self = true)]
pub struct Cli {
    /// Amazon Resource Name (ARN) of the AWS resource running the daemon.
    #[arg(short = 'a', long = "resource-arn", env = "AWS_XRAY_RESOURCE_ARN")]
    pub resource_arn: Option<String>,

    /// Don't check for EC2 instance metadata (never calls the instance metadata service).
    #[arg(short = 'o', long = "local-mode")]
    pub local_mode: bool,

    /// Buffer size in MB (minimum 3). Default (or 0): 1% of the host's memory.
    #[arg(short = 'm', long = "buffer-memory")]
    pub buffer_memory: Option<u64>,

    /// Region to send segments to X-Ray in.
    #[arg(short = 'n', long = "region")]
    pub region: Option<String>,

    /// Overrides the UDP address the daemon listens on (default 127.0.0.1:2000).
    #[arg(short = 'b', long = "bind")]
    pub bind: Option<String>,

    /// Overrides the TCP address of the sampling proxy (default 127.0.0.1:2000).
    #[arg(short = 't', long = "bind-tcp")]
    pub bind_tcp: Option<String>,

    /// Assume this IAM role to upload segments to a different account.
    #[arg(short = 'r', long = "role-arn")]
    pub role_arn: Option<String>,

    /// Load a configuration file (cfg.yaml, Version 2). Default: /etc/amazon/xray/cfg.yaml, then ./cfg.yaml, if
    /// present.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,

    /// Output logs to this file path.
    #[arg(short = 'f', long = "log-file")]
    pub log_file: Option<PathBuf>,

    /// Log level, from most verbose to least: dev, debug, info, warn, error, prod (default, logs like info).
    #[arg(short = 'l', long = "log-level", value_enum)]
    pub log_level: Option<LogLevel>,

    /// Proxy address through which to upload segments.
    #[arg(short = 'p', long = "proxy-address")]
    pub proxy_address: Option<String>,

    /// X-Ray endpoint to send to instead of AWS (any X-Ray-compatible endpoint). Not in the official daemon,
    /// where only cfg.yaml can set it.
    #[arg(long = "endpoint", env = "AWS_ENDPOINT_URL_XRAY")]
    pub endpoint: Option<String>,

    /// The generic AWS endpoint override, used when neither --endpoint nor AWS_ENDPOINT_URL_XRAY is set.
    #[arg(long = "aws-endpoint-url", env = "AWS_ENDPOINT_URL", hide = true)]
    pub aws_endpoint_url: Option<String>,

    /// Host name sent with telemetry records (default: /etc/hostname).
    #[arg(long = "hostname", env = "AWS_HOSTNAME", hide = true)]
    pub hostname: Option<String>,

    /// EC2 instance id sent with telemetry records.
    #[arg(long = "instance-id", env = "AWS_INSTANCE_ID", hide = true)]
    pub instance_id: Option<String>,

    /// Keep what arrives in a local console (not in the official daemon): the TCP port then also serves the X-Ray
    /// read API (GetTraceSummaries, BatchGetTraces, GetServiceGraph), OTLP/HTTP spans on /v1/traces and a web page
    /// at /. Without AWS credentials nothing is forwarded and sampling is answered from the rule file.
    #[arg(long = "console")]
    pub console: bool,

    /// Traces the console keeps at most (the oldest go first).
    #[arg(long = "console-traces", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub console_traces: u64,

    /// Memory the console's traces take at most, in MB (the oldest go first).
    #[arg(long = "console-memory", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub console_memory: u64,

    /// Keep the console's traces in this file (JSON lines), so a restart keeps them.
    #[arg(long = "console-file")]
    pub console_file: Option<PathBuf>,

    /// The sampling rule file the console answers GetSamplingRules and SamplingTargets from (default:
    /// infra/aws/json/xray.json in this directory or a parent, else the one built in).
    #[arg(long = "console-rules")]
    pub console_rules: Option<PathBuf>,

    // ---- OTLP gateway (not in the official daemon): OTLP in on the TCP port, delivery and fan-out ----
    /// How spans received as OTLP reach X-Ray: `segments` (converted, sent with PutTraceSegments; works on every
    /// account) or `otlp` (forwarded to X-Ray's OTLP endpoint `<endpoint>/v1/traces`, SigV4-signed; needs
    /// CloudWatch Transaction Search). Default: segments.
    #[arg(long = "xray-delivery", env = "XRAY_DELIVERY", value_enum)]
    pub xray_delivery: Option<XrayDelivery>,

    /// Also forward every UDP segment to the OTLP destination (OTEL_EXPORTER_OTLP_*), converted to spans with the
    /// same trace ids.
    #[arg(long = "forward-segments-as-otlp", env = "XRAY_FORWARD_SEGMENTS_AS_OTLP")]
    pub forward_segments_as_otlp: bool,

    /// An OTLP/HTTP destination every span is also forwarded to (`/v1/traces` is appended).
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The OTLP destination's full traces URL (wins over --otlp-endpoint).
    #[arg(long = "otlp-traces-endpoint", env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,

    /// Headers sent to the OTLP destination: `name=value,name2=value2` (values percent-decoded).
    #[arg(long = "otlp-headers", env = "OTEL_EXPORTER_OTLP_HEADERS", hide_env_values = true)]
    pub otlp_headers: Option<String>,

    /// Headers sent with the metrics forwarded to the OTLP destination, after --otlp-headers (Honeycomb wants
    /// `x-honeycomb-dataset=<name>` for metrics).
    #[arg(long = "otlp-metrics-headers", env = "OTEL_EXPORTER_OTLP_METRICS_HEADERS", hide_env_values = true)]
    pub otlp_metrics_headers: Option<String>,

    /// How often the daemon exports its own counters (received, sent, spilled, rejected...) as OTLP metrics to the
    /// OTLP destination, in milliseconds (default 60000).
    #[arg(long = "metric-export-interval", env = "OTEL_METRIC_EXPORT_INTERVAL")]
    pub metric_export_interval: Option<String>,

    /// Honeycomb's API key: sent as `x-honeycomb-team` unless --otlp-headers names it.
    #[arg(long = "honeycomb-api-key", env = "HONEYCOMB_API_KEY", hide_env_values = true)]
    pub honeycomb_api_key: Option<String>,

    /// Memory each OTLP destination's queue holds at most, in MB; what does not fit is dropped and counted.
    #[arg(long = "otlp-queue-memory", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub otlp_queue_memory: u64,
    // ---- end of the OTLP gateway flags ----
    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,

    /// Everything from the first argument that is not a flag: the official daemon's parser stops there and ignores
    /// the rest; [`Cli::parse_command_line`] reads a whole `xray ...` command line given as one argument.
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    after_flags: Vec<OsString>,
}

impl Cli {
    /// Parses the command line as the official daemon does, and returns what the user should be warned about:
    ///
    /// - one argument that is a whole command line, `"xray -o -b xray-daemon:2000"` (what the bootcamp's compose
    ///   file gives as `command:`), is split at whitespace and its flags read after the others (so they win), with
    ///   a warning; the official daemon ignores it;
    /// - other arguments after the flags are ignored with a warning, as the official daemon ignores them.
    pub fn parse_command_line<I, T>(args: I) -> Result<(Self, Vec<String>), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cli = Self::parse_flags(&args)?;
        let Some(first) = cli.after_flags.first() else {
            return Ok((cli, Vec::new()));
        };
        let mut warnings = Vec::new();
        let Some(flags) = command_line_in_one(first) else {
            warnings.push(ignored(&cli.after_flags));
            return Ok((cli, warnings));
        };
        let mut before: Vec<OsString> = args[..args.len() - cli.after_flags.len()].to_vec();
        if before.last().is_some_and(|arg| arg == "--") {
            before.pop();
        }
        before.extend(flags.iter().map(OsString::from));
        let spliced = Self::parse_flags(&before)?;
        warnings.push(format!(
            "read the argument {first:?} as the flags `{}`: it is a whole command line in one argument (the \
             official daemon would ignore it and keep its defaults)",
            flags.join(" ")
        ));
        let rest: Vec<OsString> = cli.after_flags[1..].iter().chain(&spliced.after_flags).cloned().collect();
        if !rest.is_empty() {
            warnings.push(ignored(&rest));
        }
        Ok((spliced, warnings))
    }

    /// Parses; what starts with a dash before any plain argument is a flag we do not know: an error, as in Go.
    fn parse_flags(args: &[OsString]) -> Result<Self, clap::Error> {
        let cli = Self::try_parse_from(args)?;
        match cli.after_flags.first().map(|first| first.to_string_lossy()) {
            Some(first) if first.starts_with('-') => {
                let message = format!("unexpected argument '{first}' found");
                Err(<Self as clap::CommandFactory>::command().error(clap::error::ErrorKind::UnknownArgument, message))
            }
            _ => Ok(cli),
        }
    }
}

/// The flags of `"xray -o -b host:port"` (the program's name first, then only flags), if `arg` is such a line.
fn command_line_in_one(arg: &OsString) -> Option<Vec<String>> {
    let mut words = arg.to_str()?.split_whitespace();
    let program = words.next()?;
    let flags: Vec<String> = words.map(str::to_owned).collect();
    let is_xray = Path::new(program).file_name().is_some_and(|name| name == "xray");
    (is_xray && flags.first().is_some_and(|flag| flag.starts_with('-'))).then_some(flags)
}

fn ignored(args: &[OsString]) -> String {
    format!(
        "ignoring the arguments {args:?}: the flags end at the first argument that is not one, and the official \
         daemon ignores the rest as well"
    )
}

/// The official log levels. `dev` is the most verbose (trace); `prod` logs like `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Dev,
    Debug,
    Info,
    Warn,
    Error,
    Prod,
}

impl LogLevel {
    /// The `tracing` level it stands for.
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Dev => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info | LogLevel::Prod => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

/// `cfg.yaml`, Version 2 (Version 1 files with the same keys are read too, as the official daemon does): the
/// official keys, nothing else. Zero numbers and empty strings mean the default, as there.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct FileConfig {
    #[serde(rename = "TotalBufferSizeMB")]
    total_buffer_size_mb: Option<u64>,
    concurrency: Option<usize>,
    region: Option<String>,
    endpoint: Option<String>,
    socket: Option<SocketConfig>,
    logging: Option<LoggingConfig>,
    local_mode: Option<bool>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    #[serde(rename = "NoVerifySSL")]
    no_verify_ssl: Option<bool>,
    proxy_address: Option<String>,
    version: Option<u32>,
    // ---- OTLP gateway keys (not in the official daemon) ----
    #[serde(rename = "XRayDelivery")]
    xray_delivery: Option<XrayDelivery>,
    #[serde(rename = "ForwardSegmentsAsOTLP")]
    forward_segments_as_otlp: Option<bool>,
    // ---- end of the OTLP gateway keys ----
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketConfig {
    #[serde(rename = "UDPAddress")]
    udp_address: Option<String>,
    #[serde(rename = "TCPAddress")]
    tcp_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct LoggingConfig {
    log_rotation: Option<bool>,
    log_level: Option<LogLevel>,
    log_path: Option<PathBuf>,
}

/// Everything the daemon runs with, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub udp_address: String,
    pub tcp_address: String,
    /// Bytes of segment documents held at most while waiting to be sent.
    pub buffer_bytes: usize,
    /// `PutTraceSegments` calls in flight at most.
    pub concurrency: usize,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub local_mode: bool,
    pub resource_arn: Option<String>,
    pub role_arn: Option<String>,
    pub no_verify_ssl: bool,
    pub proxy_address: Option<String>,
    pub log_level: LogLevel,
    pub log_file: Option<PathBuf>,
    /// Whether the log file is rotated at 50 MB, keeping one rotated file (`Logging.LogRotation`).
    pub log_rotation: bool,
    /// Sent with telemetry records.
    pub hostname: Option<String>,
    pub instance_id: Option<String>,
    /// How often counters are reported (`PutTelemetryRecords` and the log).
    pub telemetry_interval: Duration,
    /// How long a batch may wait, from its first document, for more (1 s, as the official daemon).
    pub batch_idle: Duration,
    /// How long shutdown may spend sending what is buffered.
    pub flush_timeout: Duration,
    /// The local console (`--console`), if on.
    pub console: Option<xray_console::ConsoleConfig>,
    /// OTLP in, delivery to X-Ray and fan-out.
    pub gateway: GatewayConfig,
}

impl Config {
    /// Defaults for everything, with the given addresses; what tests start from.
    pub fn new(udp_address: &str, tcp_address: &str) -> Self {
        Self {
            udp_address: udp_address.to_owned(),
            tcp_address: tcp_address.to_owned(),
            buffer_bytes: default_buffer_bytes(),
            concurrency: DEFAULT_CONCURRENCY,
            region: None,
            endpoint: None,
            local_mode: false,
            resource_arn: None,
            role_arn: None,
            no_verify_ssl: false,
            proxy_address: None,
            log_level: LogLevel::Prod,
            log_file: None,
            log_rotation: true,
            hostname: None,
            instance_id: None,
            telemetry_interval: Duration::from_secs(60),
            batch_idle: Duration::from_secs(1),
            flush_timeout: Duration::from_secs(10),
            console: None,
            gateway: GatewayConfig::default(),
        }
    }

    /// Resolves the command line (and the file it names, or the official default file if one exists).
    pub fn from_cli(cli: &Cli) -> Result<Self, DaemonError> {
        let default_file = || DEFAULT_CONFIG_FILES.iter().map(Path::new).find(|path| path.exists());
        let file = match cli.config.as_deref().or_else(default_file) {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let socket = file.socket.unwrap_or_default();
        let logging = file.logging.unwrap_or_default();
        let mut config = Config::new(
            first_set([cli.bind.clone(), socket.udp_address]).as_deref().unwrap_or(DEFAULT_ADDRESS),
            first_set([cli.bind_tcp.clone(), socket.tcp_address]).as_deref().unwrap_or(DEFAULT_ADDRESS),
        );
        // 0 is the official "default": 1% of the host's memory.
        match cli.buffer_memory.filter(|mb| *mb != 0).or(file.total_buffer_size_mb.filter(|mb| *mb != 0)) {
            Some(mb) if mb < MIN_BUFFER_MB => {
                return Err(DaemonError::Config(format!(
                    "buffer memory must be at least {MIN_BUFFER_MB} MB (-m / TotalBufferSizeMB), got {mb}"
                )));
            }
            Some(mb) => config.buffer_bytes = usize::try_from(mb * 1024 * 1024).unwrap_or(usize::MAX),
            None => {}
        }
        config.concurrency = file.concurrency.filter(|concurrency| *concurrency != 0).unwrap_or(DEFAULT_CONCURRENCY);
        config.region = first_set([cli.region.clone(), file.region]);
        config.endpoint = first_set([cli.endpoint.clone(), file.endpoint, cli.aws_endpoint_url.clone()]);
        config.local_mode = cli.local_mode || file.local_mode.unwrap_or(false);
        config.resource_arn = first_set([cli.resource_arn.clone(), file.resource_arn]);
        config.role_arn = first_set([cli.role_arn.clone(), file.role_arn]);
        config.no_verify_ssl = file.no_verify_ssl.unwrap_or(false);
        config.proxy_address = first_set([cli.proxy_address.clone(), file.proxy_address]);
        config.log_level = cli.log_level.or(logging.log_level).unwrap_or(LogLevel::Prod);
        config.log_file = cli.log_file.clone().or(logging.log_path).filter(|path| !path.as_os_str().is_empty());
        config.log_rotation = logging.log_rotation.unwrap_or(true);
        config.hostname = first_set([cli.hostname.clone()]);
        config.instance_id = first_set([cli.instance_id.clone()]);
        if cli.console {
            config.console = Some(console_config(cli)?);
        }
        config.gateway = gateway_config(cli, file.xray_delivery, file.forward_segments_as_otlp)?;
        Ok(config)
    }

    /// Resolves host names ("xray-daemon:2000" in compose) to a socket address.
    pub fn resolve(address: &str) -> Result<SocketAddr, DaemonError> {
        std::net::ToSocketAddrs::to_socket_addrs(address)
            .map_err(|error| DaemonError::Config(format!("cannot resolve address {address:?}: {error}")))?
            .next()
            .ok_or_else(|| DaemonError::Config(format!("address {address:?} resolves to nothing")))
    }
}

/// The project's rule file, when the daemon runs in the workspace (or a folder of it), as `infra` finds it.
fn usual_rule_file() -> Option<PathBuf> {
    let directory = std::env::current_dir().ok()?;
    directory
        .ancestors()
        .map(|directory| directory.join(xray_protocol::rule_file::USUAL_PATH))
        .find(|candidate| candidate.is_file())
}

/// The rule the console serves, from a rule file in `create-sampling-rule`'s format.
fn read_rule_file(path: &std::path::Path) -> Result<xray_protocol::SamplingRule, DaemonError> {
    let file = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| DaemonError::Config(format!("--console-rules {file}: cannot read it: {error}")))?;
    xray_protocol::rule_file::parse(&text)
        .map_err(|problem| DaemonError::Config(format!("--console-rules {file}: {problem}")))
}

/// The console's settings; the rule file is read (and checked) now, so a bad one stops the start.
fn console_config(cli: &Cli) -> Result<xray_console::ConsoleConfig, DaemonError> {
    let rules = match cli.console_rules.clone().or_else(usual_rule_file) {
        Some(path) => read_rule_file(&path)?,
        None => xray_console::default_rules(),
    };
    let mut console = xray_console::ConsoleConfig::new();
    console.limits = xray_console::Limits {
        max_traces: usize::try_from(cli.console_traces).unwrap_or(usize::MAX),
        max_bytes: usize::try_from(cli.console_memory.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
    };
    console.file = cli.console_file.clone();
    console.rules = vec![rules];
    Ok(console)
}

// ---- OTLP gateway (not in the official daemon) ----

/// How spans received as OTLP reach X-Ray.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XrayDelivery {
    /// Converted to segment documents and sent with `PutTraceSegments`, as UDP segments are.
    #[default]
    Segments,
    /// Forwarded as OTLP to X-Ray's OTLP endpoint, SigV4-signed (needs CloudWatch Transaction Search).
    Otlp,
}

/// An OTLP/HTTP destination: where, and with which headers.
#[derive(Clone, PartialEq)]
pub struct OtlpDestination {
    /// The full traces URL (`.../v1/traces`).
    pub traces_endpoint: String,
    pub headers: Vec<(String, String)>,
    /// Where metrics go (`.../v1/metrics`, with their headers and export interval): the apps' that reach the
    /// daemon, and the daemon's own counters. `None` when only a traces URL is configured.
    pub metrics: Option<cruddur_telemetry::MetricsConfig>,
}

impl std::fmt::Debug for OtlpDestination {
    /// Header values are API keys: only their names are shown.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        formatter
            .debug_struct("OtlpDestination")
            .field("traces_endpoint", &self.traces_endpoint)
            .field("header_names", &names)
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// OTLP in, delivery to X-Ray and fan-out, resolved.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub xray_delivery: XrayDelivery,
    /// The OTLP destination every span (and with `forward_segments_as_otlp`, every UDP segment) also goes to.
    pub otlp_destination: Option<OtlpDestination>,
    pub forward_segments_as_otlp: bool,
    /// Bytes each OTLP destination's queue holds at most.
    pub queue_bytes: u64,
    /// How long an OTLP batch may wait, from its first export, for more.
    pub batch_idle: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            xray_delivery: XrayDelivery::Segments,
            otlp_destination: None,
            forward_segments_as_otlp: false,
            queue_bytes: 16 * 1024 * 1024,
            batch_idle: Duration::from_millis(200),
        }
    }
}

/// The OTLP variables are read as the telemetry crate reads them for every Cruddur binary (one parser, one
/// behaviour): the traces URL wins over the base URL, `HONEYCOMB_API_KEY` adds `x-honeycomb-team`.
fn gateway_config(
    cli: &Cli,
    file_delivery: Option<XrayDelivery>,
    file_forward: Option<bool>,
) -> Result<GatewayConfig, DaemonError> {
    let lookup = |name: &str| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => cli.otlp_endpoint.clone(),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => cli.otlp_traces_endpoint.clone(),
        "OTEL_EXPORTER_OTLP_HEADERS" => cli.otlp_headers.clone(),
        "HONEYCOMB_API_KEY" => cli.honeycomb_api_key.clone(),
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS" => cli.otlp_metrics_headers.clone(),
        "OTEL_METRIC_EXPORT_INTERVAL" => cli.metric_export_interval.clone(),
        _ => None,
    };
    let telemetry = cruddur_telemetry::TelemetryConfig::from_lookup("xray-daemon", lookup)
        .map_err(|error| DaemonError::Config(error.to_string()))?;
    let (otlp, metrics) = (telemetry.otlp, telemetry.metrics);
    let forward_segments_as_otlp = cli.forward_segments_as_otlp || file_forward.unwrap_or(false);
    if forward_segments_as_otlp && otlp.is_none() {
        return Err(DaemonError::Config(
            "--forward-segments-as-otlp (ForwardSegmentsAsOTLP) needs an OTLP destination: set \
             OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
                .into(),
        ));
    }
    Ok(GatewayConfig {
        xray_delivery: cli.xray_delivery.or(file_delivery).unwrap_or_default(),
        otlp_destination: otlp.map(|otlp| OtlpDestination {
            traces_endpoint: otlp.traces_endpoint.to_string(),
            headers: otlp.headers,
            metrics,
        }),
        forward_segments_as_otlp,
        queue_bytes: cli.otlp_queue_memory.saturating_mul(1024 * 1024),
        ..GatewayConfig::default()
    })
}

// ---- end of the OTLP gateway ----

fn read_file(path: &Path) -> Result<FileConfig, DaemonError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| DaemonError::Config(format!("reading {}: {error}", path.display())))?;
    let file: FileConfig =
        serde_norway::from_str(&text).map_err(|error| DaemonError::Config(format!("{}: {error}", path.display())))?;
    match file.version {
        Some(1 | 2) => Ok(file),
        Some(other) => {
            Err(DaemonError::Config(format!("{}: Version {other} is not supported, use Version: 2", path.display())))
        }
        None => Err(DaemonError::Config(format!("{}: missing Version: 2", path.display()))),
    }
}

/// The first value given and not empty: an empty string means "the default" in cfg.yaml, as in the official daemon.
fn first_set<const N: usize>(candidates: [Option<String>; N]) -> Option<String> {
    candidates.into_iter().flatten().find(|value| !value.is_empty())
}

/// 1% of the host's memory, at least 3 MB, as the official daemon; only a bound, nothing is allocated up front.
fn default_buffer_bytes() -> usize {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        })
        .unwrap_or(0u64);
    let one_percent = total_kb * 1024 / 100;
    usize::try_from(one_percent.max(MIN_BUFFER_MB * 1024 * 1024)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xray").chain(args.iter().copied()))
    }

    #[test]
    fn the_original_compose_command_line_parses() {
        let config = Config::from_cli(&cli(&["-o", "-b", "xray-daemon:2000"]).unwrap()).unwrap();
        assert!(config.local_mode);
        assert_eq!(config.udp_address, "xray-daemon:2000");
        assert_eq!(config.tcp_address, "127.0.0.1:2000");
        assert_eq!(config.concurrency, 8);
        assert!(config.buffer_bytes >= 3 * 1024 * 1024);
    }

    fn command_line(args: &[&str]) -> (Config, Vec<String>) {
        let (cli, warnings) = Cli::parse_command_line(std::iter::once("xray").chain(args.iter().copied())).unwrap();
        (Config::from_cli(&cli).unwrap(), warnings)
    }

    /// The official image's ENTRYPOINT, then the bootcamp compose file's `command: ["xray -o -b xray-daemon:2000"]`.
    #[test]
    fn a_whole_command_line_in_one_argument_is_split_and_wins_with_a_warning() {
        let (config, warnings) =
            command_line(&["-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000", "xray -o -b xray-daemon:2000"]);
        assert!(config.local_mode);
        assert_eq!(config.udp_address, "xray-daemon:2000");
        assert_eq!(config.tcp_address, "0.0.0.0:2000");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("\"xray -o -b xray-daemon:2000\" as the flags `-o -b xray-daemon:2000`"));

        let (config, _) = command_line(&["/usr/bin/xray -n eu-west-1 --local-mode"]);
        assert_eq!(config.region.as_deref(), Some("eu-west-1"));
        assert!(config.local_mode);
    }

    #[test]
    fn arguments_after_the_flags_are_ignored_with_a_warning_as_the_official_daemon_does() {
        let (config, warnings) = command_line(&["-o", "start", "-n", "eu-west-1"]);
        assert!(config.local_mode);
        assert_eq!(config.region, None, "nothing after the first plain argument is read");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("ignoring the arguments [\"start\", \"-n\", \"eu-west-1\"]"), "{warnings:?}");

        let (_, warnings) = command_line(&["xray -o", "extra"]);
        assert_eq!(warnings.len(), 2, "the split line, then the ignored rest: {warnings:?}");
        assert!(warnings[1].starts_with("ignoring the arguments [\"extra\"]"), "{warnings:?}");

        let (_, warnings) = command_line(&["-o", "-b", "0.0.0.0:2000"]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_flag_given_twice_takes_the_last_value_and_unknown_flags_stay_errors() {
        let (config, _) = command_line(&["-b", "0.0.0.0:2000", "-b", "127.0.0.1:3000"]);
        assert_eq!(config.udp_address, "127.0.0.1:3000");
        let error = Cli::parse_command_line(["xray", "--no-such-flag"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        let error = Cli::parse_command_line(["xray", "xray --no-such-flag"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn every_official_flag_has_its_short_and_long_form() {
        let short = cli(&[
            "-a",
            "arn:x",
            "-o",
            "-m",
            "16",
            "-n",
            "eu-west-1",
            "-b",
            "0.0.0.0:2000",
            "-t",
            "0.0.0.0:2001",
            "-r",
            "arn:role",
            "-f",
            "/tmp/x.log",
            "-l",
            "debug",
            "-p",
            "http://proxy:3128",
        ])
        .unwrap();
        let long = cli(&[
            "--resource-arn",
            "arn:x",
            "--local-mode",
            "--buffer-memory",
            "16",
            "--region",
            "eu-west-1",
            "--bind",
            "0.0.0.0:2000",
            "--bind-tcp",
            "0.0.0.0:2001",
            "--role-arn",
            "arn:role",
            "--log-file",
            "/tmp/x.log",
            "--log-level",
            "debug",
            "--proxy-address",
            "http://proxy:3128",
        ])
        .unwrap();
        for parsed in [short, long] {
            let config = Config::from_cli(&parsed).unwrap();
            assert_eq!(config.resource_arn.as_deref(), Some("arn:x"));
            assert!(config.local_mode);
            assert_eq!(config.buffer_bytes, 16 * 1024 * 1024);
            assert_eq!(config.region.as_deref(), Some("eu-west-1"));
            assert_eq!((config.udp_address.as_str(), config.tcp_address.as_str()), ("0.0.0.0:2000", "0.0.0.0:2001"));
            assert_eq!(config.role_arn.as_deref(), Some("arn:role"));
            assert_eq!(config.log_file.as_deref(), Some(Path::new("/tmp/x.log")));
            assert_eq!(config.log_level, LogLevel::Debug);
            assert_eq!(config.proxy_address.as_deref(), Some("http://proxy:3128"));
        }
    }

    #[test]
    fn version_and_help_exit_early() {
        assert_eq!(cli(&["-v"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(cli(&["--version"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(cli(&["-h"]).unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(cli(&["-l", "verbose"]).is_err(), "only the official levels");
    }

    #[test]
    fn the_console_is_off_unless_asked_and_takes_its_bounds_file_and_rules() {
        assert!(Config::from_cli(&cli(&[]).unwrap()).unwrap().console.is_none());
        let rules = tempfile::NamedTempFile::new().unwrap();
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/aws/json/xray.json"))
            .unwrap()
            .replace("\"FixedRate\": 0.1", "\"FixedRate\": 0.5");
        std::fs::write(rules.path(), text).unwrap();
        let rules_path = rules.path().to_str().unwrap();
        let args = ["--console", "--console-traces", "50", "--console-memory", "8", "--console-file", "/tmp/t.jsonl"];
        let config = Config::from_cli(&cli(&[&args[..], &["--console-rules", rules_path]].concat()).unwrap()).unwrap();
        let console = config.console.unwrap();
        assert_eq!((console.limits.max_traces, console.limits.max_bytes), (50, 8 * 1024 * 1024));
        assert_eq!(console.file.as_deref(), Some(Path::new("/tmp/t.jsonl")));
        assert_eq!(console.rules[0].fixed_rate, 0.5);
        let defaults = Config::from_cli(&cli(&["--console"]).unwrap()).unwrap().console.unwrap();
        assert_eq!((defaults.limits.max_traces, defaults.limits.max_bytes), (1000, 64 * 1024 * 1024));
        assert_eq!(defaults.rules[0].rule_name, "Cruddur");
        assert!(cli(&["--console", "--console-traces", "0"]).is_err());
        let error =
            Config::from_cli(&cli(&["--console", "--console-rules", "/nonexistent.json"]).unwrap()).unwrap_err();
        assert!(error.to_string().contains("/nonexistent.json"), "{error}");
    }

    #[test]
    fn a_buffer_under_3_mb_is_refused() {
        let error = Config::from_cli(&cli(&["-m", "2"]).unwrap()).unwrap_err().to_string();
        assert!(error.contains("at least 3 MB"), "{error}");
    }

    fn with_file(yaml: &str, args: &[&str]) -> Result<Config, DaemonError> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), yaml).unwrap();
        let path = file.path().to_str().unwrap().to_owned();
        let mut all = vec!["-c", path.as_str()];
        all.extend_from_slice(args);
        Config::from_cli(&cli(&all).unwrap())
    }

    #[test]
    fn the_file_sets_every_official_key_and_flags_win() {
        let yaml = "
TotalBufferSizeMB: 24
Concurrency: 4
Region: us-west-2
Endpoint: http://127.0.0.1:9999
Socket:
  UDPAddress: 0.0.0.0:3000
  TCPAddress: 0.0.0.0:3001
Logging:
  LogRotation: true
  LogLevel: warn
  LogPath: /var/log/xray.log
LocalMode: true
ResourceARN: arn:aws:ec2:x
RoleARN: arn:aws:iam::1:role/x
NoVerifySSL: false
ProxyAddress: http://proxy:3128
Version: 2
";
        let config = with_file(yaml, &[]).unwrap();
        assert_eq!(config.buffer_bytes, 24 * 1024 * 1024);
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.region.as_deref(), Some("us-west-2"));
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9999"));
        assert_eq!((config.udp_address.as_str(), config.tcp_address.as_str()), ("0.0.0.0:3000", "0.0.0.0:3001"));
        assert_eq!(config.log_level, LogLevel::Warn);
        assert_eq!(config.log_file.as_deref(), Some(Path::new("/var/log/xray.log")));
        assert!(config.log_rotation);
        assert!(config.local_mode);
        assert_eq!(config.role_arn.as_deref(), Some("arn:aws:iam::1:role/x"));

        let config = with_file(yaml, &["-n", "eu-central-1", "-b", "127.0.0.1:4000", "-m", "5"]).unwrap();
        assert_eq!(config.region.as_deref(), Some("eu-central-1"));
        assert_eq!(config.udp_address, "127.0.0.1:4000");
        assert_eq!(config.buffer_bytes, 5 * 1024 * 1024);
    }

    #[test]
    fn unknown_keys_and_versions_are_errors_that_name_them() {
        let error = with_file("Version: 2\nBufferSize: 3\n", &[]).unwrap_err().to_string();
        assert!(error.contains("BufferSize"), "{error}");
        let error = with_file("Version: 2\nSocket:\n  UdpAddress: x\n", &[]).unwrap_err().to_string();
        assert!(error.contains("UdpAddress"), "{error}");
        let error = with_file("Version: 3\n", &[]).unwrap_err().to_string();
        assert!(error.contains("Version 3"), "{error}");
        let error = with_file("Region: x\n", &[]).unwrap_err().to_string();
        assert!(error.contains("Version"), "{error}");
        let error = with_file("Version: 2\nLogging:\n  LogLevel: verbose\n", &[]).unwrap_err().to_string();
        assert!(error.contains("verbose"), "{error}");
    }

    #[test]
    fn zero_and_empty_values_mean_the_default_as_in_the_official_daemon() {
        let yaml = "
Version: 1
TotalBufferSizeMB: 0
Concurrency: 0
Region: ''
Socket:
  UDPAddress: ''
Logging:
  LogRotation: false
  LogPath: ''
";
        let config = with_file(yaml, &["-m", "0"]).unwrap();
        assert_eq!(config.buffer_bytes, default_buffer_bytes());
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.region, None);
        assert_eq!(config.udp_address, "127.0.0.1:2000");
        assert_eq!(config.log_file, None);
        assert!(!config.log_rotation);
        assert_eq!(config.log_level, LogLevel::Prod);
    }

    #[test]
    fn the_default_buffer_is_1_percent_of_the_host_memory_but_at_least_3_mb() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kb: usize = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap();
        assert_eq!(default_buffer_bytes(), (total_kb * 1024 / 100).max(3 * 1024 * 1024));
    }

    // ---- OTLP gateway ----

    #[test]
    fn the_gateway_flags_and_keys_are_read_and_the_otlp_variables_as_the_telemetry_crate_reads_them() {
        let config = Config::from_cli(&cli(&[]).unwrap()).unwrap();
        assert_eq!(config.gateway.xray_delivery, XrayDelivery::Segments);
        assert_eq!(config.gateway.otlp_destination, None);

        let yaml = "Version: 2\nXRayDelivery: otlp\nForwardSegmentsAsOTLP: true\n";
        let error = with_file(yaml, &[]).unwrap_err().to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "forwarding segments needs a destination: {error}");
        let config =
            with_file(yaml, &["--otlp-endpoint", "https://api.honeycomb.io/", "--honeycomb-api-key", "k"]).unwrap();
        assert_eq!(config.gateway.xray_delivery, XrayDelivery::Otlp);
        assert!(config.gateway.forward_segments_as_otlp);
        let destination = config.gateway.otlp_destination.unwrap();
        assert_eq!(destination.traces_endpoint, "https://api.honeycomb.io/v1/traces");
        assert_eq!(destination.headers, [("x-honeycomb-team".to_owned(), "k".to_owned())]);
        assert!(!format!("{destination:?}").contains("\"k\""), "the key is never printed");
        let team = ("x-honeycomb-team".to_owned(), "k".to_owned());
        let metrics = destination.metrics.unwrap();
        assert_eq!(metrics.endpoint.as_str(), "https://api.honeycomb.io/v1/metrics");
        assert_eq!((metrics.headers, metrics.interval), (vec![team.clone()], Duration::from_secs(60)));
        let config = Config::from_cli(
            &cli(&[
                "--otlp-endpoint",
                "https://api.honeycomb.io",
                "--honeycomb-api-key",
                "k",
                "--otlp-metrics-headers",
                "x-honeycomb-dataset=cruddur-metrics",
                "--metric-export-interval",
                "5000",
            ])
            .unwrap(),
        )
        .unwrap();
        let metrics = config.gateway.otlp_destination.unwrap().metrics.unwrap();
        assert_eq!(metrics.interval, Duration::from_secs(5));
        let headers = metrics.headers;
        let dataset = ("x-honeycomb-dataset".to_owned(), "cruddur-metrics".to_owned());
        assert_eq!(headers, [team, dataset], "metrics get their own headers after the common ones");

        let config = with_file(yaml, &["--xray-delivery", "segments", "--otlp-traces-endpoint", "http://c:4318/t"]);
        let config = config.unwrap();
        assert_eq!(config.gateway.xray_delivery, XrayDelivery::Segments, "the flag wins over the file");
        let destination = config.gateway.otlp_destination.unwrap();
        assert_eq!(destination.traces_endpoint, "http://c:4318/t");
        assert_eq!(destination.metrics, None, "a traces URL says nothing of where metrics go");
        let error = with_file("Version: 2\n", &["--otlp-endpoint", "ftp://x"]).unwrap_err().to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{error}");
        assert!(cli(&["--xray-delivery", "udp"]).is_err());
    }
}
