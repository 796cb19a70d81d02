//! The `xray` binary as a container runs it: its command line, its errors, SIGTERM, and local mode never touching
//! the EC2 instance metadata service.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use test_support::xray_endpoint::{ASSUMED_ROLE_ACCESS_KEY, WAIT, XrayEndpoint};

use crate::helpers::{ACCESS_KEY, REGION, SECRET_KEY, name_of, segment_document};

/// `xray` with an empty environment (plus `env`) and a home without AWS files: nothing from this machine leaks in.
fn xray(args: &[&str], env: &[(&str, &str)], home: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xray"));
    command.args(args).env_clear().env("HOME", home).envs(env.iter().copied());
    command
}

/// A running `xray` whose log lines are collected as they come.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting xray");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for output in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    /// Waits for a log line containing `text`; panics with the log if none comes.
    fn wait_for_line(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|line| line.contains(text)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {text:?}; log: {:#?}", self.lines.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The UDP address from the start-up line (the tests bind port 0).
    fn udp_address(&self) -> SocketAddr {
        let line = self.wait_for_line("X-Ray daemon started");
        let address = line.split_whitespace().find_map(|field| field.strip_prefix("udp=")).expect("udp= in the line");
        address.parse().expect("a socket address")
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(killed.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "xray did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one segment named `name` as an SDK does.
fn send_segment(daemon: SocketAddr, name: &str) {
    let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{}", segment_document(name, 0));
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(datagram.as_bytes(), daemon).unwrap();
}

#[test]
fn without_a_region_it_says_in_one_line_which_flag_or_variable_to_set() {
    let home = tempfile::tempdir().unwrap();
    let output = xray(&["-o"], &[], home.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--region") && stderr.contains("AWS_REGION"), "{stderr}");
}

#[test]
fn version_and_help_answer_like_the_official_daemon() {
    let home = tempfile::tempdir().unwrap();
    let version = xray(&["-v"], &[], home.path()).output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8(version.stdout).unwrap().contains(env!("CARGO_PKG_VERSION")));
    let help = xray(&["-h"], &[], home.path()).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--resource-arn",
        "--local-mode",
        "--buffer-memory",
        "--region",
        "--bind",
        "--bind-tcp",
        "--role-arn",
        "--config",
        "--log-file",
        "--log-level",
        "--proxy-address",
        "--version",
        "--help",
        "--endpoint",
    ] {
        assert!(help.contains(flag), "{flag} missing from the help:\n{help}");
    }
}

#[test]
fn sigterm_flushes_the_buffered_segments_and_exits_0() {
    let endpoint = XrayEndpoint::start();
    let home = tempfile::tempdir().unwrap();
    let credentials = [("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)];
    let url = endpoint.url();
    let args = ["-o", "-n", REGION, "-b", "127.0.0.1:0", "-t", "127.0.0.1:0", "--endpoint", &url, "-l", "info"];
    let mut daemon = Running::spawn(xray(&args, &credentials, home.path()));
    let udp = daemon.udp_address();

    for index in 0..5 {
        send_segment(udp, &format!("before-sigterm-{index}"));
    }
    let status = daemon.terminate();

    assert!(status.success(), "exit status {status}");
    let mut delivered: Vec<String> = endpoint.accepted_documents().iter().map(|document| name_of(document)).collect();
    delivered.sort();
    let expected: Vec<String> = (0..5).map(|index| format!("before-sigterm-{index}")).collect();
    assert_eq!(delivered, expected);
}

#[test]
fn the_log_file_receives_the_log() {
    let endpoint = XrayEndpoint::start();
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("xray.log");
    let url = endpoint.url();
    let args = ["-o", "-n", REGION, "-b", "127.0.0.1:0", "-t", "127.0.0.1:0", "--endpoint", &url];
    let mut daemon = Running::spawn(xray(&[&args[..], &["-f", log.to_str().unwrap()]].concat(), &[], home.path()));
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("X-Ray daemon started") {
        assert!(Instant::now() < deadline, "nothing logged to {}", log.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(daemon.terminate().success());
}

/// A stand-in for the EC2 instance metadata service that only counts who knocks.
fn metadata_service() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn run_without_credentials(local_mode: bool, metadata_url: &str, home: &std::path::Path) -> Running {
    let endpoint_url = "http://127.0.0.1:9";
    let mut args = vec!["-n", REGION, "-b", "127.0.0.1:0", "-t", "127.0.0.1:0", "--endpoint", endpoint_url];
    if local_mode {
        args.push("-o");
    }
    let daemon = Running::spawn(xray(&args, &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata_url)], home));
    let udp = daemon.udp_address();
    send_segment(udp, "needs-credentials");
    daemon
}

#[test]
fn local_mode_never_calls_the_instance_metadata_service() {
    let home = tempfile::tempdir().unwrap();
    let (metadata, url) = metadata_service();
    let daemon = run_without_credentials(true, &url, home.path());
    // The call to X-Ray fails for want of credentials: by then every credential source was tried.
    daemon.wait_for_line("sending to X-Ray failed");
    assert!(metadata.accept().is_err(), "local mode connected to the instance metadata service");
}

/// The converse, so the test above can fail: outside local mode the instance role is looked up.
#[test]
fn outside_local_mode_credentials_come_from_the_instance_metadata_service() {
    let home = tempfile::tempdir().unwrap();
    let (metadata, url) = metadata_service();
    let _daemon = run_without_credentials(false, &url, home.path());
    let deadline = Instant::now() + WAIT;
    while metadata.accept().is_err() {
        assert!(Instant::now() < deadline, "the instance metadata service was never asked");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_log_level_flag_wins_over_rust_log() {
    let endpoint = XrayEndpoint::start();
    let home = tempfile::tempdir().unwrap();
    let url = endpoint.url();
    let args = ["-o", "-n", REGION, "-b", "127.0.0.1:0", "-t", "127.0.0.1:0", "--endpoint", &url, "-l", "debug"];
    let mut daemon = Running::spawn(xray(&args, &[("RUST_LOG", "error")], home.path()));
    // Logged at info: RUST_LOG=error alone would hide it.
    daemon.wait_for_line("X-Ray daemon started");
    assert!(daemon.terminate().success());
}

#[test]
fn with_a_role_arn_segments_are_signed_with_the_assumed_role() {
    let endpoint = XrayEndpoint::start();
    let home = tempfile::tempdir().unwrap();
    let url = endpoint.url();
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        // STS answers from the same local endpoint.
        ("AWS_ENDPOINT_URL_STS", url.as_str()),
    ];
    let role = "arn:aws:iam::123456789012:role/xray";
    let args = ["-o", "-n", REGION, "-b", "127.0.0.1:0", "-t", "127.0.0.1:0", "--endpoint", &url, "-r", role];
    let daemon = Running::spawn(xray(&args, &env, home.path()));
    send_segment(daemon.udp_address(), "as-the-role");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(endpoint.wait_for_documents(1));
    let assume_role = &endpoint.requests_to("/")[0];
    let form = String::from_utf8_lossy(&assume_role.body).into_owned();
    assert!(
        form.contains("Action=AssumeRole") && form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fxray")
    );
    let batch = &endpoint.accepted_batches()[0];
    let authorization = batch.header("authorization").unwrap();
    assert!(authorization.contains(&format!("Credential={ASSUMED_ROLE_ACCESS_KEY}/")), "{authorization}");
    assert_eq!(batch.header("x-amz-security-token"), Some("assumed-session-token"));
}

#[test]
fn without_c_a_cfg_yaml_in_the_working_directory_is_read_as_the_official_daemon_does() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("cfg.yaml"), "Version: 2\nRegion: eu-west-3\nMemoryLimit: 64\n").unwrap();
    let output = xray(&["-o"], &[], home.path()).current_dir(home.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cfg.yaml") && stderr.contains("MemoryLimit"), "{stderr}");
}
