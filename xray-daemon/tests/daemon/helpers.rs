//! Starting the daemon on 127.0.0.1:0 against a local X-Ray endpoint, sending it datagrams like an SDK does, waiting
//! for its counters, and checking SigV4 signatures by signing the recorded request again.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
pub(crate) use test_support::sigv4::{ACCESS_KEY, REGION, SECRET_KEY, test_credentials};
use test_support::sigv4::{Signed, verify};
use test_support::xray_endpoint::{RecordedRequest, WAIT, XrayEndpoint};
use tokio::net::{TcpListener, UdpSocket as TokioUdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use xray_daemon::{Config, Counters, DaemonError, Snapshot, Sockets};

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
    let header = |name: &str| request.header(name);
    let signed = Signed { method: &request.method, path: &request.path, header: &header, body: &request.body };
    if let Err(reason) = verify(&signed, "xray") {
        panic!("{} {}: {reason}", request.method, request.path);
    }
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn imports(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A Python that imports `module`: the one `override_variable` names, or a virtual environment `name` under the
/// target directory, made once with `requirements` installed from PyPI. Needs `python3` with its `venv` module.
pub(crate) fn python_with(name: &str, requirements: &[&str], module: &str, override_variable: &str) -> PathBuf {
    if let Some(python) = std::env::var_os(override_variable) {
        let python = PathBuf::from(python);
        assert!(imports(&python, module), "{override_variable}={} cannot import {module}", python.display());
        return python;
    }
    let environment = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = environment.join("bin").join("python");
    if imports(&python, module) {
        return python;
    }
    let found = Command::new("python3").arg("--version").stdout(Stdio::null()).status();
    assert!(
        found.is_ok_and(|status| status.success()),
        "python3 is not installed: this test runs {requirements:?} from PyPI (install python3 and python3-venv, or \
         set {override_variable} to a Python that imports {module})"
    );
    run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&environment), "python3 -m venv (python3-venv)");
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(requirements),
        &format!("pip install {requirements:?}"),
    );
    python
}
