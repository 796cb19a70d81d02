//! Starting the daemon on 127.0.0.1:0 against a local X-Ray endpoint, sending it datagrams like an SDK does, waiting
//! for its counters, and checking SigV4 signatures by signing the recorded request again.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use test_support::xray_endpoint::{RecordedRequest, WAIT, XrayEndpoint};
use tokio::net::{TcpListener, UdpSocket as TokioUdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xray_daemon::{Config, Counters, DaemonError, Snapshot, Sockets};

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub(crate) const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Static credentials and a region: nothing read from the environment, nothing sent to AWS.
pub(crate) fn test_credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tests")
}

pub(crate) fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(test_credentials()))
        .build()
}

/// The daemon running in this test's runtime.
pub(crate) struct Daemon {
    pub(crate) udp: SocketAddr,
    pub(crate) tcp: SocketAddr,
    pub(crate) counters: Counters,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), DaemonError>>>,
    client: UdpSocket,
}

impl Daemon {
    /// Starts the daemon against `endpoint` with the defaults, changed by `tune`.
    pub(crate) async fn start(endpoint: &XrayEndpoint, tune: impl FnOnce(&mut Config)) -> Self {
        Self::start_with(Some(endpoint), sdk_config(), tune).await
    }

    /// Starts the daemon with `sdk` (region and credentials, or none), against `endpoint` if given.
    pub(crate) async fn start_with(
        endpoint: Option<&XrayEndpoint>,
        sdk: SdkConfig,
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::new("127.0.0.1:0", "127.0.0.1:0");
        config.endpoint = endpoint.map(XrayEndpoint::url);
        config.local_mode = true;
        config.region = Some(REGION.to_owned());
        tune(&mut config);
        let sockets = Sockets {
            udp: TokioUdpSocket::bind("127.0.0.1:0").await.expect("binding UDP"),
            tcp: TcpListener::bind("127.0.0.1:0").await.expect("binding TCP"),
        };
        let (udp, tcp) = (sockets.udp.local_addr().unwrap(), sockets.tcp.local_addr().unwrap());
        let counters = Counters::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let counters = counters.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                xray_daemon::run(sockets, &config, sdk, counters, shutdown).await
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").expect("binding the SDK side");
        Self { udp, tcp, counters, stop: Some(stop), task: Some(task), client }
    }

    /// Sends one raw datagram to the daemon's UDP port.
    pub(crate) fn send_datagram(&self, datagram: &[u8]) {
        self.client.send_to(datagram, self.udp).expect("sending a datagram");
    }

    /// Sends a segment named `name` as an SDK does; returns its document.
    pub(crate) fn send_segment(&self, name: &str) -> String {
        self.send_segment_with_padding(name, 0)
    }

    /// Sends a segment whose document carries `padding` extra bytes of annotation.
    pub(crate) fn send_segment_with_padding(&self, name: &str, padding: usize) -> String {
        let document = segment_document(name, padding);
        self.send_datagram(format!("{{\"format\": \"json\", \"version\": 1}}\n{document}").as_bytes());
        document
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.counters.snapshot()
    }

    /// Waits up to [`WAIT`] for the counters to satisfy `check`; panics naming `what` with the last counters.
    pub(crate) async fn wait_for(&self, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let snapshot = self.snapshot();
            if check(&snapshot) {
                return snapshot;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}; counters: {snapshot:#?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every datagram sent so far was received (UDP on loopback does not lose them unless the reader
    /// falls behind; this keeps the test's arithmetic exact).
    pub(crate) async fn wait_received(&self, count: u64) -> Snapshot {
        self.wait_for(&format!("{count} datagrams received"), |snapshot| snapshot.received >= count).await
    }

    /// Triggers the shutdown and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), DaemonError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(WAIT, task).await.expect("the daemon stops in time").expect("the daemon task")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A segment document as the X-Ray SDKs write it.
pub(crate) fn segment_document(name: &str, padding: usize) -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    let id: u64 = rand::random();
    serde_json::json!({
        "name": name,
        "id": format!("{id:016x}"),
        "trace_id": format!("1-{:08x}-{:024x}", now as u64, rand::random::<u128>() >> 32),
        "start_time": now - 0.05,
        "end_time": now,
        "annotations": { "padding": "p".repeat(padding) },
    })
    .to_string()
}

/// The `name` of a document sent to X-Ray.
pub(crate) fn name_of(document: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(document).expect("documents are JSON");
    value["name"].as_str().expect("a name").to_owned()
}

/// Checks that `request` carries a valid SigV4 signature of our test credentials for service `xray`: the headers it
/// names, the path and the body, signed again at its `X-Amz-Date`, give the same `Authorization`.
pub(crate) fn assert_signed_for_xray(request: &RecordedRequest) {
    let authorization = request.header("authorization").expect("an Authorization header");
    let credential_scope =
        authorization.split(&[' ', ','][..]).find_map(|part| part.strip_prefix("Credential=")).expect("a Credential");
    let date = request.header("x-amz-date").expect("an X-Amz-Date header");
    assert_eq!(credential_scope, format!("{ACCESS_KEY}/{}/{REGION}/xray/aws4_request", &date[..8]), "{authorization}");
    let signed_headers: Vec<&str> = authorization
        .split(&[' ', ','][..])
        .find_map(|part| part.strip_prefix("SignedHeaders="))
        .expect("SignedHeaders")
        .split(';')
        .collect();
    assert!(signed_headers.contains(&"host") && signed_headers.contains(&"x-amz-date"), "{authorization}");
    let time = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ").expect("an X-Amz-Date").and_utc();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap());

    let identity = test_credentials().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("xray")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers: Vec<(&str, &str)> = signed_headers
        .iter()
        .map(|name| (*name, request.header(name).unwrap_or_else(|| panic!("signed header {name} was not received"))))
        .collect();
    let host = request.header("host").expect("a Host header");
    let signable = SignableRequest::new(
        &request.method,
        format!("http://{host}{}", request.path),
        headers.into_iter(),
        SignableBody::Bytes(&request.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_owned())
        .expect("the signer's Authorization");
    assert_eq!(authorization, expected, "the signature does not verify");
}
