//! The typed configuration, read from the environment ([`TelemetryConfig::from_env`]) or from any lookup
//! ([`TelemetryConfig::from_lookup`], what the tests use), or built field by field.
//!
//! Every variable is optional; a value that cannot be used fails start-up with an error naming the variable (and
//! never echoing a header value, which may be an API key).
//!
//! A leaf: the settings types (the sampling ones in [`sampling`]) live here, and nothing here uses the rest of the
//! crate.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use url::Url;

mod sampling;

pub use sampling::{EVERY_TRACE, OtlpSampling, SamplingRules, XraySampling};

/// A variable whose value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// Where the X-Ray daemon listens when `AWS_XRAY_DAEMON_ADDRESS` is unset, as in the X-Ray SDKs.
pub const DEFAULT_XRAY_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// How many finished spans each exporter may hold before new ones are dropped (and counted).
pub const DEFAULT_EXPORT_QUEUE: usize = 2048;

/// The header Honeycomb reads its API key from.
pub const HONEYCOMB_TEAM_HEADER: &str = "x-honeycomb-team";

/// Everything telemetry needs, once resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `service.name` on every span.
    pub service_name: String,
    /// OTLP/HTTP export; `None` when no endpoint is set.
    pub otlp: Option<OtlpConfig>,
    /// X-Ray export over UDP; `None` when `AWS_XRAY_SDK_ENABLED=false`.
    pub xray: Option<XrayConfig>,
    pub log: LogConfig,
    /// Capacity of each exporter's queue of finished spans.
    pub export_queue: usize,
    /// Errors to Rollbar; `None` without `ROLLBAR_ACCESS_TOKEN`.
    pub rollbar: Option<RollbarConfig>,
    /// Log lines to CloudWatch Logs; `None` without `CLOUDWATCH_LOG_GROUP`.
    pub cloudwatch: Option<CloudWatchConfig>,
    /// Metrics over OTLP; `None` without an OTLP destination or with `OTEL_METRICS_EXPORTER=none`.
    pub metrics: Option<MetricsConfig>,
}

/// Where OTLP goes, with which headers, and which traces it gets.
#[derive(Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full traces URL (`.../v1/traces`).
    pub traces_endpoint: Url,
    /// Sent with every export, and with every relayed browser export.
    pub headers: Vec<(String, String)>,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub sampling: OtlpSampling,
}

impl fmt::Debug for OtlpConfig {
    /// Header values are API keys: only their names are shown.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        formatter
            .debug_struct("OtlpConfig")
            .field("traces_endpoint", &self.traces_endpoint.as_str())
            .field("header_names", &names)
            .field("sampling", &self.sampling)
            .finish()
    }
}

/// Where segment documents go, how segments are named, and which traces X-Ray gets.
#[derive(Debug, Clone, PartialEq)]
pub struct XrayConfig {
    /// `host:port` of the daemon's UDP port, where segments go (its TCP port, for sampling rules, is in
    /// [`XraySampling::Centralized`]).
    pub daemon_udp_address: String,
    /// The segment name, as `AWS_XRAY_TRACING_NAME` or the service name gives it.
    pub segment_name: String,
    /// `AWS_XRAY_URL`: a host pattern (`*` and `?` wildcards); a request whose `Host` matches is named after its host.
    pub dynamic_naming: Option<String>,
    /// `AWS_XRAY_SAMPLING_RULES` (a rules file, or the rules inline), else the daemon's (centralized) rules.
    pub sampling: XraySampling,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive string (`RUST_LOG`).
    pub filter: String,
}

/// How log lines look (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per event, coloured when stdout is a terminal (the default).
    Text,
    /// Several lines per event, for reading on a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
    /// No log output.
    Off,
}

impl TelemetryConfig {
    /// Reads the process environment. `default_service_name` names the binary when neither `OTEL_SERVICE_NAME` nor
    /// `HONEYCOMB_SERVICE_NAME` is set.
    pub fn from_env(default_service_name: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(default_service_name, |name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (an empty value counts as unset).
    pub fn from_lookup(
        default_service_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let service_name = var("OTEL_SERVICE_NAME")
            .or_else(|| var("HONEYCOMB_SERVICE_NAME"))
            .unwrap_or_else(|| default_service_name.to_owned());
        let otlp = otlp_config(&var)?;
        let xray = xray_config(&var, &service_name)?;
        let log = LogConfig {
            format: match var("LOG_FORMAT") {
                None => LogFormat::Text,
                Some(format) => LogFormat::parse(&format)
                    .ok_or_else(|| invalid("LOG_FORMAT", "expected text, pretty, json or off"))?,
            },
            filter: var("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
        };
        Ok(Self {
            service_name,
            otlp,
            xray,
            log,
            export_queue: DEFAULT_EXPORT_QUEUE,
            rollbar: rollbar_config(&var)?,
            cloudwatch: cloudwatch_config(&var),
            metrics: metrics_config(&var)?,
        })
    }

    /// Nothing exported, nothing logged: a base for tests to fill in.
    pub fn silent(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            otlp: None,
            xray: None,
            log: LogConfig { format: LogFormat::Off, filter: "info".to_owned() },
            export_queue: DEFAULT_EXPORT_QUEUE,
            rollbar: None,
            cloudwatch: None,
            metrics: None,
        }
    }
}

impl LogFormat {
    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "text" => Some(Self::Text),
            "pretty" => Some(Self::Pretty),
            "json" => Some(Self::Json),
            "off" | "none" => Some(Self::Off),
            _ => None,
        }
    }
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { variable, reason: reason.into() }
}

fn otlp_config(var: &impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>, ConfigError> {
    let traces_endpoint = match (var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        // The signal-specific URL is used as is, the base URL gets the signal's path: the OTLP exporter spec.
        (Some(traces), _) => parse_http_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces)?,
        (None, Some(base)) => {
            let url = format!("{}/v1/traces", base.trim_end_matches('/'));
            parse_http_url("OTEL_EXPORTER_OTLP_ENDPOINT", &url)?
        }
        (None, None) => return Ok(None),
    };
    let headers = otlp_headers(var)?;
    let sampler = var("OTEL_TRACES_SAMPLER");
    let sampling = OtlpSampling::from_variables(sampler.as_deref(), var("OTEL_TRACES_SAMPLER_ARG").as_deref())
        .map_err(|reason| invalid("OTEL_TRACES_SAMPLER", reason))?;
    Ok(Some(OtlpConfig { traces_endpoint, headers, sampling }))
}

/// `OTEL_EXPORTER_OTLP_HEADERS`, with `x-honeycomb-team` from `HONEYCOMB_API_KEY` unless they name it.
fn otlp_headers(var: &impl Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut headers = match var("OTEL_EXPORTER_OTLP_HEADERS") {
        Some(list) => parse_headers(&list)?,
        None => Vec::new(),
    };
    if let Some(key) = var("HONEYCOMB_API_KEY")
        && !headers.iter().any(|(name, _)| name == HONEYCOMB_TEAM_HEADER)
    {
        headers.push((HONEYCOMB_TEAM_HEADER.to_owned(), key));
    }
    Ok(headers)
}

fn parse_http_url(variable: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|error| invalid(variable, format!("not a URL: {error}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(invalid(variable, format!("the scheme must be http or https, not {other}"))),
    }
}

/// `name=value,name2=value2`, values percent-decoded: the W3C baggage form the OTLP exporter spec uses.
fn parse_headers(list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid("OTEL_EXPORTER_OTLP_HEADERS", "each entry must be name=value"))?;
            let name = name.trim().to_ascii_lowercase();
            let value = percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| invalid("OTEL_EXPORTER_OTLP_HEADERS", format!("the value of {name} is not UTF-8")))?
                .into_owned();
            http::HeaderName::try_from(name.as_str())
                .map_err(|_| invalid("OTEL_EXPORTER_OTLP_HEADERS", format!("{name} is not a header name")))?;
            http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                invalid("OTEL_EXPORTER_OTLP_HEADERS", format!("the value of {name} is not a header value"))
            })?;
            Ok((name, value))
        })
        .collect()
}

fn xray_config(var: &impl Fn(&str) -> Option<String>, service_name: &str) -> Result<Option<XrayConfig>, ConfigError> {
    if var("AWS_XRAY_SDK_ENABLED").is_some_and(|enabled| enabled.eq_ignore_ascii_case("false")) {
        return Ok(None);
    }
    let (daemon_tcp_address, daemon_udp_address) = match var("AWS_XRAY_DAEMON_ADDRESS") {
        Some(value) => daemon_addresses(&value)?,
        None => (DEFAULT_XRAY_DAEMON_ADDRESS.to_owned(), DEFAULT_XRAY_DAEMON_ADDRESS.to_owned()),
    };
    Ok(Some(XrayConfig {
        daemon_udp_address,
        segment_name: var("AWS_XRAY_TRACING_NAME").unwrap_or_else(|| service_name.to_owned()),
        dynamic_naming: var("AWS_XRAY_URL"),
        sampling: match var("AWS_XRAY_SAMPLING_RULES") {
            Some(rules) => XraySampling::Local(sampling_rules(&rules)?),
            None => XraySampling::Centralized { daemon_tcp_address },
        },
    }))
}

/// The rules inline (a JSON object) or in the file the value names.
fn sampling_rules(value: &str) -> Result<SamplingRules, ConfigError> {
    const VARIABLE: &str = "AWS_XRAY_SAMPLING_RULES";
    let json = if value.starts_with('{') {
        value.to_owned()
    } else {
        std::fs::read_to_string(value).map_err(|error| invalid(VARIABLE, format!("reading {value}: {error}")))?
    };
    SamplingRules::parse(&json).map_err(|reason| invalid(VARIABLE, reason))
}

/// The daemon's (TCP, UDP) addresses from `host:port` (both), or from the SDKs' two-address form
/// `tcp:host:port udp:host:port`.
fn daemon_addresses(value: &str) -> Result<(String, String), ConfigError> {
    if !value.contains(' ') {
        let address = host_port(value)?;
        return Ok((address.clone(), address));
    }
    let part = |prefix: &str| {
        value.split_whitespace().find_map(|part| part.strip_prefix(prefix)).ok_or_else(|| {
            invalid("AWS_XRAY_DAEMON_ADDRESS", format!("the two-address form needs a {prefix}host:port part"))
        })
    };
    Ok((host_port(part("tcp:")?)?, host_port(part("udp:")?)?))
}

fn host_port(address: &str) -> Result<String, ConfigError> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(address.to_owned()),
        _ => Err(invalid("AWS_XRAY_DAEMON_ADDRESS", format!("expected host:port, got {address}"))),
    }
}

/// Rollbar's item API base URL, the default of `ROLLBAR_ENDPOINT`.
pub const DEFAULT_ROLLBAR_ENDPOINT: &str = "https://api.rollbar.com/api/1/";

/// How often metrics are exported when `OTEL_METRIC_EXPORT_INTERVAL` is unset (the OpenTelemetry default).
pub const DEFAULT_METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Where Rollbar items go, and what they say about the deployment.
#[derive(Clone, PartialEq)]
pub struct RollbarConfig {
    /// `ROLLBAR_ACCESS_TOKEN`: a project's `post_server_item` token.
    pub access_token: String,
    /// `ROLLBAR_ENVIRONMENT`, default `production`.
    pub environment: String,
    /// `ROLLBAR_ENDPOINT`: the API base URL, ending in `/` (`item/` is joined to it).
    pub endpoint: Url,
    /// `ROLLBAR_CODE_VERSION`, default the telemetry crate's version (the workspace's).
    pub code_version: String,
}

impl fmt::Debug for RollbarConfig {
    /// The token is a secret: never shown.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RollbarConfig")
            .field("environment", &self.environment)
            .field("endpoint", &self.endpoint.as_str())
            .field("code_version", &self.code_version)
            .finish_non_exhaustive()
    }
}

/// Where log lines go in CloudWatch Logs. Region, credentials and endpoint are the AWS SDK's, from the usual
/// variables (`AWS_REGION`, the credential chain, `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` or `AWS_ENDPOINT_URL`); those
/// read here are passed to the SDK explicitly, so a configuration read through a lookup (tests) means the same.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudWatchConfig {
    /// `CLOUDWATCH_LOG_GROUP` (`cruddur` in compose, as the original).
    pub log_group: String,
    /// `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, else `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, when the first two are set.
    pub static_credentials: Option<(String, String, Option<String>)>,
}

impl CloudWatchConfig {
    /// The group alone, the SDK's defaults for the rest.
    pub fn new(log_group: impl Into<String>) -> Self {
        Self { log_group: log_group.into(), endpoint_url: None, region: None, static_credentials: None }
    }
}

impl fmt::Debug for CloudWatchConfig {
    /// The secret key and session token are never shown.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CloudWatchConfig")
            .field("log_group", &self.log_group)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.static_credentials.as_ref().map(|(id, _, _)| id))
            .finish()
    }
}

fn cloudwatch_config(var: &impl Fn(&str) -> Option<String>) -> Option<CloudWatchConfig> {
    Some(CloudWatchConfig {
        log_group: var("CLOUDWATCH_LOG_GROUP")?,
        endpoint_url: var("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS").or_else(|| var("AWS_ENDPOINT_URL")),
        region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        static_credentials: var("AWS_ACCESS_KEY_ID")
            .zip(var("AWS_SECRET_ACCESS_KEY"))
            .map(|(id, secret)| (id, secret, var("AWS_SESSION_TOKEN"))),
    })
}

/// Where metrics go over OTLP/HTTP, and how often.
#[derive(Clone, PartialEq)]
pub struct MetricsConfig {
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`.
    pub endpoint: Url,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (and the Honeycomb shortcut), then `OTEL_EXPORTER_OTLP_METRICS_HEADERS`.
    pub headers: Vec<(String, String)>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, in milliseconds.
    pub interval: Duration,
}

impl fmt::Debug for MetricsConfig {
    /// Header values are API keys: only their names are shown.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        formatter
            .debug_struct("MetricsConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("header_names", &names)
            .field("interval", &self.interval)
            .finish()
    }
}

fn rollbar_config(var: &impl Fn(&str) -> Option<String>) -> Result<Option<RollbarConfig>, ConfigError> {
    let Some(access_token) = var("ROLLBAR_ACCESS_TOKEN") else { return Ok(None) };
    let endpoint = var("ROLLBAR_ENDPOINT").unwrap_or_else(|| DEFAULT_ROLLBAR_ENDPOINT.to_owned());
    // A base URL without its final slash would lose its last segment when `item/` is joined.
    let endpoint = parse_http_url("ROLLBAR_ENDPOINT", &format!("{}/", endpoint.trim_end_matches('/')))?;
    Ok(Some(RollbarConfig {
        access_token,
        environment: var("ROLLBAR_ENVIRONMENT").unwrap_or_else(|| "production".to_owned()),
        endpoint,
        code_version: var("ROLLBAR_CODE_VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
    }))
}

fn metrics_config(var: &impl Fn(&str) -> Option<String>) -> Result<Option<MetricsConfig>, ConfigError> {
    match var("OTEL_METRICS_EXPORTER").map(|exporter| exporter.to_ascii_lowercase()).as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => return Err(invalid("OTEL_METRICS_EXPORTER", format!("expected otlp or none, not {other}"))),
    }
    let endpoint = match (var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"), var("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        (Some(metrics), _) => parse_http_url("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &metrics)?,
        (None, Some(base)) => {
            parse_http_url("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("{}/v1/metrics", base.trim_end_matches('/')))?
        }
        (None, None) => return Ok(None),
    };
    let mut headers = otlp_headers(var)?;
    if let Some(list) = var("OTEL_EXPORTER_OTLP_METRICS_HEADERS") {
        for (name, value) in parse_headers(&list)? {
            headers.retain(|(kept, _)| *kept != name);
            headers.push((name, value));
        }
    }
    let interval = match var("OTEL_METRIC_EXPORT_INTERVAL") {
        Some(millis) => match millis.parse::<u64>() {
            Ok(millis) if millis > 0 => Duration::from_millis(millis),
            _ => return Err(invalid("OTEL_METRIC_EXPORT_INTERVAL", "expected a positive number of milliseconds")),
        },
        None => DEFAULT_METRIC_EXPORT_INTERVAL,
    };
    Ok(Some(MetricsConfig { endpoint, headers, interval }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TelemetryConfig::from_lookup("cruddur-backend", |name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_no_otlp_xray_to_the_local_daemon_and_info_text_logs() {
        let config = read(&[]).unwrap();
        assert_eq!(config.service_name, "cruddur-backend");
        assert_eq!(config.otlp, None);
        let xray = config.xray.unwrap();
        assert_eq!(xray.daemon_udp_address, "127.0.0.1:2000");
        assert_eq!(xray.sampling, XraySampling::Centralized { daemon_tcp_address: "127.0.0.1:2000".into() });
        assert_eq!(xray.segment_name, "cruddur-backend");
        assert_eq!(config.log, LogConfig { format: LogFormat::Text, filter: "info".into() });
    }

    #[test]
    fn the_seed_variables_work_unchanged() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.honeycomb.io"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=abc123"),
            ("OTEL_SERVICE_NAME", "backend-flask"),
        ])
        .unwrap();
        assert_eq!(config.service_name, "backend-flask");
        let otlp = config.otlp.unwrap();
        assert_eq!(otlp.traces_endpoint.as_str(), "https://api.honeycomb.io/v1/traces");
        assert_eq!(otlp.headers, vec![("x-honeycomb-team".to_owned(), "abc123".to_owned())]);
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is_and_wins() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/custom"),
        ])
        .unwrap();
        assert_eq!(config.otlp.unwrap().traces_endpoint.as_str(), "http://other:4318/custom");
        let config = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
        assert_eq!(config.otlp.unwrap().traces_endpoint.as_str(), "http://collector:4318/v1/traces");
    }

    #[test]
    fn the_honeycomb_shortcut_fills_the_header_and_service_name() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.honeycomb.io"),
            ("HONEYCOMB_API_KEY", "key%2Bwith-plus"),
            ("HONEYCOMB_SERVICE_NAME", "Cruddur"),
        ])
        .unwrap();
        assert_eq!(config.service_name, "Cruddur");
        assert_eq!(config.otlp.unwrap().headers, vec![("x-honeycomb-team".into(), "key%2Bwith-plus".into())]);
    }

    #[test]
    fn explicit_headers_win_over_the_shortcut_and_values_are_percent_decoded() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.honeycomb.io"),
            ("OTEL_EXPORTER_OTLP_HEADERS", " X-Honeycomb-Team = a%2Bb , x-honeycomb-dataset=cruddur"),
            ("HONEYCOMB_API_KEY", "ignored"),
        ])
        .unwrap();
        assert_eq!(
            config.otlp.unwrap().headers,
            vec![("x-honeycomb-team".into(), "a+b".into()), ("x-honeycomb-dataset".into(), "cruddur".into())]
        );
    }

    #[test]
    fn the_honeycomb_key_alone_does_not_turn_otlp_on() {
        assert_eq!(read(&[("HONEYCOMB_API_KEY", "abc")]).unwrap().otlp, None);
    }

    #[test]
    fn bad_values_name_their_variable_and_never_echo_a_key() {
        let error = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "api.honeycomb.io")]).unwrap_err();
        assert!(error.to_string().starts_with("OTEL_EXPORTER_OTLP_ENDPOINT"), "{error}");
        let error = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x"), ("x", "y")]).unwrap_err();
        assert!(error.to_string().contains("http or https"), "{error}");
        let error = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=secret\u{7f}key"),
        ])
        .unwrap_err();
        assert!(error.to_string().starts_with("OTEL_EXPORTER_OTLP_HEADERS"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
        let error = read(&[("LOG_FORMAT", "xml")]).unwrap_err();
        assert!(error.to_string().starts_with("LOG_FORMAT"), "{error}");
        let error = read(&[("AWS_XRAY_DAEMON_ADDRESS", "xray-daemon")]).unwrap_err();
        assert!(error.to_string().starts_with("AWS_XRAY_DAEMON_ADDRESS"), "{error}");
        let error = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_TRACES_SAMPLER", "jaeger_remote")]);
        assert!(error.unwrap_err().to_string().starts_with("OTEL_TRACES_SAMPLER: jaeger_remote is not supported"));
    }

    #[test]
    fn the_standard_sampler_variables_choose_what_otlp_gets() {
        let quarter = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(quarter.otlp.unwrap().sampling, OtlpSampling { ratio: 0.25, parent_based: true });
        let default = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x")]).unwrap();
        assert_eq!(default.otlp.unwrap().sampling, OtlpSampling::default());
    }

    #[test]
    fn the_debug_form_hides_header_values() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=secret"),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("x-honeycomb-team") && !shown.contains("secret"), "{shown}");
    }

    #[test]
    fn xray_naming_and_switches_follow_the_sdk_variables() {
        let config = read(&[
            ("OTEL_SERVICE_NAME", "cruddur"),
            ("AWS_XRAY_TRACING_NAME", "backend-flask"),
            ("AWS_XRAY_URL", "*4567-*.gitpod.io*"),
            ("AWS_XRAY_DAEMON_ADDRESS", "xray-daemon:2000"),
        ])
        .unwrap();
        assert_eq!(
            config.xray.unwrap(),
            XrayConfig {
                daemon_udp_address: "xray-daemon:2000".into(),
                segment_name: "backend-flask".into(),
                dynamic_naming: Some("*4567-*.gitpod.io*".into()),
                sampling: XraySampling::Centralized { daemon_tcp_address: "xray-daemon:2000".into() },
            }
        );
        let two_addresses = read(&[("AWS_XRAY_DAEMON_ADDRESS", "tcp:127.0.0.1:2000 udp:127.0.0.2:2001")]).unwrap();
        let two_addresses = two_addresses.xray.unwrap();
        assert_eq!(two_addresses.daemon_udp_address, "127.0.0.2:2001");
        assert_eq!(two_addresses.sampling, XraySampling::Centralized { daemon_tcp_address: "127.0.0.1:2000".into() });
        let error = read(&[("AWS_XRAY_DAEMON_ADDRESS", "udp:127.0.0.2:2001 x")]).unwrap_err().to_string();
        assert!(error.contains("tcp:host:port"), "{error}");
        assert_eq!(read(&[("AWS_XRAY_SDK_ENABLED", "FALSE")]).unwrap().xray, None);
        assert!(read(&[("AWS_XRAY_SDK_ENABLED", "true")]).unwrap().xray.is_some());
    }

    #[test]
    fn sampling_rules_are_read_inline_or_from_their_file() {
        let all = EVERY_TRACE;
        let inline = read(&[("AWS_XRAY_SAMPLING_RULES", all)]).unwrap();
        assert_eq!(inline.xray.unwrap().sampling, XraySampling::Local(SamplingRules::parse(all).unwrap()));
        let file = std::env::temp_dir().join(format!("sampling-rules-{}.json", std::process::id()));
        std::fs::write(&file, all).unwrap();
        let from_file = read(&[("AWS_XRAY_SAMPLING_RULES", file.to_str().unwrap())]).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(from_file.xray.unwrap().sampling, XraySampling::Local(SamplingRules::parse(all).unwrap()));
        let missing = read(&[("AWS_XRAY_SAMPLING_RULES", "/nonexistent/rules.json")]).unwrap_err().to_string();
        assert!(missing.starts_with("AWS_XRAY_SAMPLING_RULES: reading /nonexistent/rules.json"), "{missing}");
        let bad = read(&[("AWS_XRAY_SAMPLING_RULES", r#"{"version": 2}"#)]).unwrap_err().to_string();
        assert!(bad.starts_with("AWS_XRAY_SAMPLING_RULES") && bad.contains("default"), "{bad}");
    }

    #[test]
    fn rollbar_is_on_with_a_token_and_never_shows_it() {
        assert_eq!(read(&[("ROLLBAR_ENVIRONMENT", "dev")]).unwrap().rollbar, None);
        let rollbar = read(&[("ROLLBAR_ACCESS_TOKEN", "secret-token")]).unwrap().rollbar.unwrap();
        assert_eq!(rollbar.environment, "production");
        assert_eq!(rollbar.endpoint.as_str(), DEFAULT_ROLLBAR_ENDPOINT);
        assert!(!format!("{rollbar:?}").contains("secret-token"));
        let local = read(&[
            ("ROLLBAR_ACCESS_TOKEN", "t"),
            ("ROLLBAR_ENDPOINT", "http://127.0.0.1:9/api/1"),
            ("ROLLBAR_ENVIRONMENT", "development"),
        ])
        .unwrap()
        .rollbar
        .unwrap();
        assert_eq!((local.endpoint.as_str(), local.environment.as_str()), ("http://127.0.0.1:9/api/1/", "development"));
        let error = read(&[("ROLLBAR_ACCESS_TOKEN", "t"), ("ROLLBAR_ENDPOINT", "rollbar")]).unwrap_err();
        assert!(error.to_string().starts_with("ROLLBAR_ENDPOINT"), "{error}");
    }

    #[test]
    fn cloudwatch_logs_are_on_with_a_group() {
        assert_eq!(read(&[]).unwrap().cloudwatch, None);
        let config = read(&[("CLOUDWATCH_LOG_GROUP", "cruddur")]).unwrap();
        assert_eq!(config.cloudwatch, Some(CloudWatchConfig::new("cruddur")));
        let local = read(&[
            ("CLOUDWATCH_LOG_GROUP", "cruddur"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "http://127.0.0.1:2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ])
        .unwrap()
        .cloudwatch
        .unwrap();
        assert_eq!(local.endpoint_url.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(local.region.as_deref(), Some("eu-west-1"));
        assert!(!format!("{local:?}").contains("very-secret"));
    }

    #[test]
    fn metrics_follow_the_otlp_destination_and_the_standard_variables() {
        assert_eq!(read(&[]).unwrap().metrics, None);
        let base = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"), ("HONEYCOMB_API_KEY", "k")]);
        let metrics = base.unwrap().metrics.unwrap();
        assert_eq!(metrics.endpoint.as_str(), "http://collector:4318/v1/metrics");
        assert_eq!(metrics.headers, vec![("x-honeycomb-team".to_owned(), "k".to_owned())]);
        assert_eq!(metrics.interval, DEFAULT_METRIC_EXPORT_INTERVAL);
        let own = read(&[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/custom"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-honeycomb-dataset=cruddur-metrics"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        ])
        .unwrap()
        .metrics
        .unwrap();
        assert_eq!(own.endpoint.as_str(), "http://m:4318/custom");
        assert_eq!(own.headers, vec![("x-honeycomb-dataset".to_owned(), "cruddur-metrics".to_owned())]);
        assert_eq!(own.interval, Duration::from_millis(1500));
        let off = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_METRICS_EXPORTER", "none")]);
        assert_eq!(off.unwrap().metrics, None);
        let error = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_METRICS_EXPORTER", "prometheus")]);
        assert!(error.unwrap_err().to_string().starts_with("OTEL_METRICS_EXPORTER"));
        let error = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"), ("OTEL_METRIC_EXPORT_INTERVAL", "soon")]);
        assert!(error.unwrap_err().to_string().starts_with("OTEL_METRIC_EXPORT_INTERVAL"));
    }

    #[test]
    fn log_format_and_filter_come_from_their_variables() {
        let config = read(&[("LOG_FORMAT", "JSON"), ("RUST_LOG", "debug,hyper=warn")]).unwrap();
        assert_eq!(config.log, LogConfig { format: LogFormat::Json, filter: "debug,hyper=warn".into() });
    }
}
