//! Headless Chromium for end-to-end tests: Debian's `chromedriver` started on a free loopback port, one WebDriver
//! session through `fantoccini`, and the page's console errors read back through ChromeDriver's log endpoint.
//!
//! The browser runs with the flags this sandbox needs (no sandbox as root, no GPU, no background connections, which
//! the closed network would refuse) and a fresh profile per [`Browser`], so tests never share cookies or storage.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Where Debian's `chromium` and `chromium-driver` packages put them; `CHROME` and `CHROMEDRIVER` override.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver gets to listen.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);

/// One headless Chromium session; chromedriver and every Chromium process it started are killed on drop.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and opens a session; panics with the reason if either is missing or fails.
    pub async fn start() -> Self {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.to_owned());
        let chromium = std::env::var("CHROME").unwrap_or_else(|_| CHROMIUM.to_owned());
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            // A group of its own, so that dropping the browser stops Chromium's processes too.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {driver_path} (Debian package chromium-driver): {error}"));
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "{driver_path} did not listen on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }

        let profile = tempfile::tempdir().expect("a browser profile folder");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": chromium_args(profile.path().to_path_buf()),
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object literal") };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = builder
            .connect(&format!("http://{address}"))
            .await
            .unwrap_or_else(|error| panic!("opening a Chromium session through {driver_path}: {error}"));
        Self { client, driver, _profile: profile }
    }

    /// The console messages logged at error level (`console.error`, uncaught exceptions, failed loads) since the
    /// last call; ChromeDriver empties its log on every read.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(BrowserLog).await.expect("reading the browser's console log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver alone would leave Chromium running; the whole group goes.
        if let Ok(group) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

fn chromium_args(profile: PathBuf) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--window-size=1280,900",
    ]
    .map(str::to_owned)
    .to_vec();
    // Chromium refuses to start its sandbox as root (CI runs as root).
    if local_postgres::running_as_root().unwrap_or(false) {
        args.push("--no-sandbox".to_owned());
    }
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

/// ChromeDriver's `POST /session/{id}/se/log` with `{"type": "browser"}`: the console entries since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}
