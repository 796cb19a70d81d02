//! An AWS X-Ray daemon: a drop-in for `amazon/aws-xray-daemon` (same flags, same `cfg.yaml`, same UDP and TCP
//! protocols) that fixes what its users complain about:
//!
//! - no silent drops: every rejected or spilled segment is counted and warned about (rate limited), not logged at
//!   debug;
//! - memory bounded by `-m` but allocated as segments arrive, not preallocated;
//! - local mode never touches the EC2 instance metadata service, and a missing region is one clear line;
//! - the TCP proxy strips hop-by-hop and sidecar headers before signing, so the signature survives the next hop;
//! - `--endpoint` (and `AWS_ENDPOINT_URL_XRAY`) point it at any X-Ray-compatible endpoint;
//! - it is a small OTLP gateway too: OTLP/HTTP spans in on the TCP port ([`otlp_in`]), to X-Ray as segments or to
//!   its OTLP endpoint, and to any OTLP destination with the UDP segments as spans, OTLP metrics passed on to it
//!   ([`gateway`]).
//!
//! [`run`] takes bound sockets, the resolved [`Config`], the AWS configuration and a shutdown future, so tests run
//! it on 127.0.0.1:0 against a local endpoint.

pub mod aws;
mod cli;
mod counters;
pub mod datagram;
pub mod gateway;
pub mod log_file;
mod log_limit;
pub mod otlp_in;
mod otlp_out;
mod own_metrics;
mod proxy;
mod reporting;
mod sender;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::timeout::TimeoutConfig;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

pub use cli::{Cli, Config, GatewayConfig, LogLevel, OtlpDestination, XrayDelivery};
pub use counters::{BackendErrors, Counters, DestinationSnapshot, OtlpSnapshot, Snapshot};
pub use sender::MAX_BATCH;

use crate::log_limit::RateLimitedLog;

/// The errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error("no AWS region: pass --region (-n), set AWS_REGION, Region in cfg.yaml, or a region in your AWS profile")]
    NoRegion,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The daemon's two sockets, bound by the caller.
pub struct Sockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Sockets {
    /// Binds the configured addresses (host names such as `xray-daemon:2000` are resolved).
    pub async fn bind(config: &Config) -> Result<Self, DaemonError> {
        let udp_address = Config::resolve(&config.udp_address)?;
        let tcp_address = Config::resolve(&config.tcp_address)?;
        let io = |context: String| move |source| DaemonError::Io { context, source };
        Ok(Self {
            udp: bind_udp(udp_address).map_err(io(format!("binding UDP {udp_address} (-b)")))?,
            tcp: TcpListener::bind(tcp_address).await.map_err(io(format!("binding TCP {tcp_address} (-t)")))?,
        })
    }
}

/// How long the last telemetry report may take at shutdown.
const FINAL_REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The kernel's receive buffer asked for (Linux caps it at `net.core.rmem_max`): a burst of datagrams waits there
/// while the reader is descheduled, instead of being dropped before the daemon can count it.
const UDP_RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

fn bind_udp(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(address), socket2::Type::DGRAM, None)?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER_BYTES) {
        tracing::debug!(%error, "keeping the default UDP receive buffer");
    }
    socket.bind(&address.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Receives, batches and sends segments, proxies the TCP port, takes OTLP on it and fans it out, and reports
/// counters, until `shutdown` completes; then stops reading, sends what is buffered (up to `config.flush_timeout`)
/// and returns.
///
/// With `config.console`, what arrives is also kept in the local console, whose routes the TCP port serves; when
/// `sdk` has no region or no credentials, nothing is forwarded to X-Ray at all (no `PutTraceSegments`, no proxy, no
/// telemetry) and the console answers the sampling API itself.
pub async fn run(
    sockets: Sockets,
    config: &Config,
    sdk: SdkConfig,
    counters: Counters,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let udp_address = sockets.udp.local_addr().map_err(io_error("UDP address"))?;
    let tcp_address = sockets.tcp.local_addr().map_err(io_error("TCP address"))?;
    let forward = forwards(config, &sdk, tcp_address).await;
    let console = start_console(config, forward, tcp_address)?;
    let stop = stop_signal(shutdown);
    let upstream = if forward { Some(upstream(config, sdk, udp_address, tcp_address).await?) } else { None };
    if upstream.is_none() {
        tracing::info!(udp = %udp_address, tcp = %tcp_address, "X-Ray daemon started");
    }
    let (set_deadline, deadline) = sender::FlushDeadline::new();
    let (documents, queue) = mpsc::unbounded_channel();
    let segments = upstream.as_ref().map(|_| segment_queue(config, documents, &counters));
    let xray = upstream.as_ref().map(|upstream| gateway::XrayUpstream {
        sdk: &upstream.proxy.sdk,
        endpoint: &upstream.proxy.endpoint,
        segments: segments.clone(),
    });
    let gateway::Started { gateway, tasks: gateway_tasks } =
        gateway::start(config, &counters, console.clone(), xray, proxy_client(config)?, &deadline)?;
    let own_metrics = own_metrics(config, &counters)?;
    // OTLP is taken by the gateway, which hands it to the console too; every other path is served as before.
    let router = otlp_in::router(gateway.clone()).fallback_service(tcp_router(console.as_ref(), upstream.as_ref()));
    let tcp_server = serve_tcp(sockets.tcp, router, stop.clone());

    let Some(Upstream { client, .. }) = upstream else {
        receive(&sockets.udp, None, &gateway, console.as_ref(), stop).await;
        let _ = set_deadline.send(Some(tokio::time::Instant::now() + config.flush_timeout));
        let _ = tcp_server.await;
        drop(gateway);
        for task in gateway_tasks {
            let _ = task.await;
        }
        log_totals(&counters, console.as_ref());
        stop_own_metrics(own_metrics).await;
        return Ok(());
    };
    let reporter = Arc::new(reporter(config, client.clone(), counters.clone()));
    let reporting = tokio::spawn({
        let reporter = reporter.clone();
        async move { reporter.run().await }
    });
    let sending = tokio::spawn(segment_sender(config, client, counters.clone()).run(queue, deadline));

    receive(&sockets.udp, segments.as_deref(), &gateway, console.as_ref(), stop).await;
    // The receiving side is closing: once the TCP server has stopped too, every queue is drained and flushed,
    // within the deadline.
    let _ = set_deadline.send(Some(tokio::time::Instant::now() + config.flush_timeout));
    let _ = tcp_server.await;
    drop((gateway, segments));
    let _ = sending.await;
    for task in gateway_tasks {
        let _ = task.await;
    }
    reporting.abort();
    // The last interval's record, unless X-Ray is unreachable: then stopping matters more.
    let _ = tokio::time::timeout(FINAL_REPORT_TIMEOUT, reporter.report()).await;
    log_totals(&counters, console.as_ref());
    stop_own_metrics(own_metrics).await;
    Ok(())
}

/// The daemon's counters as OTLP metrics, when it has an OTLP destination for metrics.
fn own_metrics(config: &Config, counters: &Counters) -> Result<Option<own_metrics::OwnMetrics>, DaemonError> {
    let destination = config.gateway.otlp_destination.as_ref();
    destination
        .and_then(|destination| destination.metrics.as_ref())
        .map(|metrics| own_metrics::OwnMetrics::start(metrics, counters))
        .transpose()
}

/// Exports the last interval of the daemon's metrics; the SDK's shutdown blocks, so off the runtime's threads.
async fn stop_own_metrics(own_metrics: Option<own_metrics::OwnMetrics>) {
    if let Some(own_metrics) = own_metrics {
        let _ = tokio::task::spawn_blocking(move || drop(own_metrics)).await;
    }
}

fn io_error(context: &str) -> impl FnOnce(std::io::Error) -> DaemonError {
    let context = context.to_owned();
    move |source| DaemonError::Io { context, source }
}

/// Whether segments are forwarded to X-Ray: always without a console; with one, when `sdk` has a region and
/// credentials (else the console alone keeps them).
async fn forwards(config: &Config, sdk: &SdkConfig, tcp_address: SocketAddr) -> bool {
    if config.console.is_none() {
        return true;
    }
    match can_forward(sdk).await {
        Ok(()) => true,
        Err(reason) => {
            tracing::info!(
                "{reason}: console only, nothing is forwarded to X-Ray; traces are kept at http://{tcp_address}/"
            );
            false
        }
    }
}

/// The console, when configured; it answers the sampling API itself when nothing is forwarded.
fn start_console(
    config: &Config,
    forward: bool,
    tcp_address: SocketAddr,
) -> Result<Option<xray_console::Console>, DaemonError> {
    let Some(console_config) = &config.console else { return Ok(None) };
    let mut console_config = console_config.clone();
    console_config.serve_sampling = !forward;
    let console = xray_console::Console::start(console_config)
        .map_err(|error| DaemonError::Config(format!("console: {error}")))?;
    tracing::info!(
        console = %format!("http://{tcp_address}/"),
        traces = config.console.as_ref().map(|c| c.limits.max_traces),
        bytes = config.console.as_ref().map(|c| c.limits.max_bytes),
        "X-Ray console: recent traces, the X-Ray read API and OTLP/HTTP (/v1/traces) on the TCP port"
    );
    Ok(Some(console))
}

/// A watch that turns true once `shutdown` completes.
fn stop_signal(shutdown: impl Future<Output = ()> + Send + 'static) -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Where segments and proxied calls go: X-Ray's endpoint, with the proxy and the `PutTraceSegments` client.
struct Upstream {
    proxy: proxy::Proxy,
    client: aws_sdk_xray::Client,
}

async fn upstream(
    config: &Config,
    sdk: SdkConfig,
    udp_address: SocketAddr,
    tcp_address: SocketAddr,
) -> Result<Upstream, DaemonError> {
    let endpoint = aws::endpoint(config, &sdk).await?;
    let client = xray_client(&sdk, &endpoint);
    tracing::info!(
        udp = %udp_address,
        tcp = %tcp_address,
        endpoint,
        region = ?sdk.region(),
        buffer_bytes = config.buffer_bytes,
        "X-Ray daemon started"
    );
    Ok(Upstream { proxy: proxy::Proxy { sdk, endpoint, client: proxy_client(config)? }, client })
}

/// The TCP port's routes: the console's, the signing proxy's, or both (the console's first).
fn tcp_router(console: Option<&xray_console::Console>, upstream: Option<&Upstream>) -> axum::Router {
    match (console, upstream) {
        (Some(console), Some(upstream)) => console.router().merge(proxy::router(upstream.proxy.clone())),
        (Some(console), None) => console.router().fallback(unknown_operation),
        (None, Some(upstream)) => proxy::router(upstream.proxy.clone()),
        (None, None) => unreachable!("without a console the daemon always forwards"),
    }
}

/// Serves the TCP port until `stop`.
fn serve_tcp(
    listener: TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the TCP server stopped");
        }
    })
}

/// The telemetry reporter (`PutTelemetryRecords` and the log line).
fn reporter(config: &Config, client: aws_sdk_xray::Client, counters: Counters) -> reporting::Reporter {
    reporting::Reporter {
        client,
        counters,
        interval: config.telemetry_interval,
        resource_arn: config.resource_arn.clone(),
        hostname: config.hostname.clone().or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
        }),
        instance_id: config.instance_id.clone(),
        state: Default::default(),
    }
}

/// What batches segments into `PutTraceSegments` calls.
fn segment_sender(config: &Config, client: aws_sdk_xray::Client, counters: Counters) -> sender::Sender {
    sender::Sender {
        client,
        counters,
        concurrency: config.concurrency,
        batch_idle: config.batch_idle,
        failures_log: Arc::new(RateLimitedLog::new(Duration::from_secs(10))),
    }
}

/// The queue of segment documents for `PutTraceSegments`, bounded by `-m` (what does not fit is spillover).
fn segment_queue(
    config: &Config,
    documents: mpsc::UnboundedSender<String>,
    counters: &Counters,
) -> Arc<gateway::SegmentQueue> {
    Arc::new(gateway::SegmentQueue {
        documents,
        counters: counters.clone(),
        limit: config.buffer_bytes as u64,
        spills: RateLimitedLog::new(Duration::from_secs(10)),
    })
}

fn log_totals(counters: &Counters, console: Option<&xray_console::Console>) {
    let totals = counters.snapshot();
    let kept = console.map(xray_console::Console::stats);
    let otlp = totals.otlp;
    tracing::info!(
        received = totals.received,
        sent = totals.sent,
        spillover = totals.spillover,
        rejected = totals.rejected,
        console_traces = kept.map(|stats| stats.traces),
        console_dropped = kept.map(|stats| stats.dropped),
        otlp_received_spans = otlp.received_spans,
        otlp_rejected_spans = otlp.rejected_spans,
        otlp_bad_requests = otlp.bad_requests,
        xray_otlp_sent = otlp.xray.sent,
        xray_otlp_dropped = otlp.xray.dropped,
        xray_otlp_refused = otlp.xray.refused,
        fan_out_sent = otlp.fan_out.sent,
        fan_out_dropped = otlp.fan_out.dropped,
        fan_out_refused = otlp.fan_out.refused,
        metrics_sent_points = otlp.metrics.sent,
        metrics_dropped_points = otlp.metrics.dropped,
        metrics_refused_points = otlp.metrics.refused,
        "X-Ray daemon stopped"
    );
}

/// How long finding credentials may take before the console gives up on forwarding.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether there is somewhere to forward to: a region and credentials that resolve.
async fn can_forward(sdk: &SdkConfig) -> Result<(), String> {
    use aws_credential_types::provider::ProvideCredentials;
    if sdk.region().is_none() {
        return Err("no AWS region".into());
    }
    let provider = sdk.credentials_provider().ok_or("no AWS credentials")?;
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) | Err(_) => Err("no AWS credentials".into()),
    }
}

/// What the console-only TCP port answers on paths it does not serve, as X-Ray answers an unknown operation.
async fn unknown_operation(uri: http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({
        "__type": "UnknownOperationException",
        "message": format!("{} is not served by the local console (no AWS credentials, nothing is forwarded)", uri.path()),
    });
    (http::StatusCode::NOT_FOUND, [("x-amzn-errortype", "UnknownOperationException")], axum::Json(body)).into_response()
}

/// The UDP loop: every datagram is counted, parsed and either queued (if the buffer has room) or counted as
/// rejected or spillover; it never stops on bad input. With a console, each valid document is also offered to it,
/// which never waits (a busy console drops and counts); with `--forward-segments-as-otlp`, to the OTLP destination's
/// queue, which never waits either.
async fn receive(
    socket: &UdpSocket,
    segments: Option<&gateway::SegmentQueue>,
    gateway: &gateway::Gateway,
    console: Option<&xray_console::Console>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut datagram = vec![0u8; 65_536];
    let rejections = RateLimitedLog::new(Duration::from_secs(10));
    let console_drops = RateLimitedLog::new(Duration::from_secs(10));
    let counters = gateway.counters();
    let accept = |datagram: &[u8]| {
        let document = match datagram::parse(datagram) {
            Err(rejection) => {
                counters.received();
                counters.rejected(1);
                rejections.warn(&format!("rejected a datagram of {} bytes: {rejection:?}", datagram.len()));
                return;
            }
            Ok(document) => document,
        };
        if let Some(console) = console
            && !console.offer(document.to_owned(), xray_console::Source::Xray)
        {
            console_drops.warn("the console is busy: a segment was not kept in it (counted in its stats)");
        }
        gateway.forward_segment(document);
        match segments {
            Some(segments) => {
                segments.offer(document.to_owned());
            }
            None => counters.received(),
        }
    };
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut datagram) => received,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        match received {
            Ok((length, _from)) => accept(&datagram[..length]),
            Err(error) => tracing::warn!(%error, "reading UDP"),
        }
    }
    // Stop reading, but keep what the kernel already holds: an SDK sent those before the shutdown began.
    while let Ok((length, _from)) = socket.try_recv_from(&mut datagram) {
        accept(&datagram[..length]);
    }
}

/// The X-Ray client; retries are ours (backoff while the buffer holds), so the SDK's are off.
fn xray_client(sdk: &SdkConfig, endpoint: &str) -> aws_sdk_xray::Client {
    let config = aws_sdk_xray::config::Builder::from(sdk)
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    aws_sdk_xray::Client::from_conf(config)
}

/// The TCP proxy's client to X-Ray: through `-p` when set; certificates unchecked only with `NoVerifySSL`.
fn proxy_client(config: &Config) -> Result<reqwest::Client, DaemonError> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(proxy) = &config.proxy_address {
        let proxy = reqwest::Proxy::all(proxy.as_str())
            .map_err(|error| DaemonError::Config(format!("--proxy-address {proxy:?}: {error}")))?;
        builder = builder.proxy(proxy);
    }
    if config.no_verify_ssl {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|error| DaemonError::Config(format!("HTTP client: {error}")))
}
