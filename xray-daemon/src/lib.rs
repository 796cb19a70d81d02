//! An AWS X-Ray daemon: a drop-in for `amazon/aws-xray-daemon` (same flags, same `cfg.yaml`, same UDP and TCP
//! protocols) that fixes what its users complain about:
//!
//! - no silent drops: every rejected or spilled segment is counted and warned about (rate limited), not logged at
//!   debug;
//! - memory bounded by `-m` but allocated as segments arrive, not preallocated;
//! - local mode never touches the EC2 instance metadata service, and a missing region is one clear line;
//! - the TCP proxy strips hop-by-hop and sidecar headers before signing, so the signature survives the next hop;
//! - `--endpoint` (and `AWS_ENDPOINT_URL_XRAY`) point it at any X-Ray-compatible endpoint.
//!
//! [`run`] takes bound sockets, the resolved [`Config`], the AWS configuration and a shutdown future, so tests run
//! it on 127.0.0.1:0 against a local endpoint.

pub mod aws;
mod cli;
mod counters;
pub mod datagram;
pub mod log_file;
mod log_limit;
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

pub use cli::{Cli, Config, LogLevel};
pub use counters::{BackendErrors, Counters, Snapshot};
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

/// Receives, batches and sends segments, proxies the TCP port and reports counters, until `shutdown` completes;
/// then stops reading, sends what is buffered (up to `config.flush_timeout`) and returns.
pub async fn run(
    sockets: Sockets,
    config: &Config,
    sdk: SdkConfig,
    counters: Counters,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let endpoint = aws::endpoint(config, &sdk).await?;
    let client = xray_client(&sdk, &endpoint);
    tracing::info!(
        udp = %sockets.udp.local_addr().map_err(|source| DaemonError::Io { context: "UDP address".into(), source })?,
        tcp = %sockets.tcp.local_addr().map_err(|source| DaemonError::Io { context: "TCP address".into(), source })?,
        endpoint,
        region = ?sdk.region(),
        buffer_bytes = config.buffer_bytes,
        "X-Ray daemon started"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let proxy = proxy::Proxy { sdk, endpoint, client: proxy_client(config)? };
    let mut proxy_stop = stop_rx.clone();
    let proxy_task = tokio::spawn(async move {
        let served = axum::serve(sockets.tcp, proxy::router(proxy))
            .with_graceful_shutdown(async move {
                let _ = proxy_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the TCP proxy stopped");
        }
    });

    let reporter = Arc::new(reporting::Reporter {
        client: client.clone(),
        counters: counters.clone(),
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
    });
    let reporting_task = tokio::spawn({
        let reporter = reporter.clone();
        async move { reporter.run().await }
    });

    let (documents, queue) = mpsc::unbounded_channel();
    let sender = sender::Sender {
        client,
        counters: counters.clone(),
        concurrency: config.concurrency,
        batch_idle: config.batch_idle,
        failures_log: Arc::new(RateLimitedLog::new(Duration::from_secs(10))),
    };
    let (set_deadline, deadline) = sender::FlushDeadline::new();
    let sending = tokio::spawn(sender.run(queue, deadline));

    receive(&sockets.udp, documents, &counters, config.buffer_bytes as u64, stop_rx).await;
    // The receiving side is closed: the sender drains the queue and flushes, within the deadline.
    let _ = set_deadline.send(Some(tokio::time::Instant::now() + config.flush_timeout));
    let _ = sending.await;
    let _ = proxy_task.await;
    reporting_task.abort();
    // The last interval's record, unless X-Ray is unreachable: then stopping matters more.
    let _ = tokio::time::timeout(FINAL_REPORT_TIMEOUT, reporter.report()).await;
    let totals = counters.snapshot();
    tracing::info!(
        received = totals.received,
        sent = totals.sent,
        spillover = totals.spillover,
        rejected = totals.rejected,
        "X-Ray daemon stopped"
    );
    Ok(())
}

/// The UDP loop: every datagram is counted, parsed and either queued (if the buffer has room) or counted as
/// rejected or spillover; it never stops on bad input.
async fn receive(
    socket: &UdpSocket,
    documents: mpsc::UnboundedSender<String>,
    counters: &Counters,
    buffer_limit: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut datagram = vec![0u8; 65_536];
    let rejections = RateLimitedLog::new(Duration::from_secs(10));
    let spills = RateLimitedLog::new(Duration::from_secs(10));
    let accept = |datagram: &[u8]| {
        counters.received();
        match datagram::parse(datagram) {
            Err(rejection) => {
                counters.rejected(1);
                rejections.warn(&format!("rejected a datagram of {} bytes: {rejection:?}", datagram.len()));
            }
            Ok(document) if counters.reserve(counters::document_size(document), buffer_limit) => {
                // The receiver lives until this function returns, so sending cannot fail.
                let _ = documents.send(document.to_owned());
            }
            Ok(_) => {
                counters.spillover(1);
                spills.warn(&format!(
                    "buffer full ({buffer_limit} bytes): dropped a segment; raise -m or check the X-Ray endpoint"
                ));
            }
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
