//! The console page in headless Chromium: after one request through the real backend (traced to the daemon by UDP
//! and by OTLP, as `cargo xtask run` sets it up without an account), the page lists that trace, and opening it shows
//! the backend's segment and its SQL subsegment.
//!
//! The backend's telemetry is the thread's default subscriber on this single-threaded runtime, so the server task it
//! spawns is traced by it (as in `backend/tests/tracing.rs`).

use std::collections::HashMap;
use std::time::Duration;

use clap::Parser;
use cruddur_backend::{Config, serve, start};
use cruddur_telemetry::{Telemetry, TelemetryConfig};
use fantoccini::Locator;
use test_support::browser::Browser;
use tokio::sync::oneshot;
use tracing_subscriber::layer::SubscriberExt;

use crate::console::{no_account, wait_for_console};
use crate::helpers::Daemon;

#[tokio::test]
async fn the_console_page_shows_a_request_s_trace_with_its_backend_segment_and_sql_subsegment() {
    let daemon = Daemon::start_with(None, no_account(), crate::console::console).await;

    // The backend as `cargo xtask run` starts it without an account: segments by UDP, spans by OTLP, both to the
    // daemon.
    let env: HashMap<&str, String> = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", daemon.tcp)),
        ("OTEL_SERVICE_NAME", "cruddur-backend".to_owned()),
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.udp.to_string()),
    ]);
    let tracing_config =
        TelemetryConfig::from_lookup("cruddur-backend", |name| env.get(name).cloned()).expect("config");
    let telemetry = Telemetry::new(&tracing_config).expect("telemetry");
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()));
    let url = test_support::postgres::fresh_database().await;
    let config = Config::parse_from(["cruddur-backend", "--database-url", &url, "--seed-if-empty"]);
    let router = start(&config, &telemetry).await.expect("the API starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = listener.local_addr().unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, async {
        let _ = stopped.await;
    }));

    let answer = reqwest::get(format!("http://{api}/api/activities/home")).await.expect("the home feed");
    assert_eq!(answer.status(), 200);
    let header = answer.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    let trace = header.split(';').find_map(|part| part.strip_prefix("Root=")).expect("a Root").to_owned();
    telemetry.force_flush();
    // The trace reaches the console (the X-Ray segment holds its subsegments; the OTLP copies of its spans are
    // duplicates of it).
    wait_for_console(daemon.tcp, |stats| stats["traces"] == 1).await;

    let browser = Browser::start().await;
    let page = &browser.client;
    page.goto(&format!("http://{}/", daemon.tcp)).await.expect("opening the console");
    let row_selector = format!("tr.trace[data-id=\"{trace}\"]");
    let row = page
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&row_selector))
        .await
        .unwrap_or_else(|error| panic!("the trace {trace} is listed: {error}"));
    let listed = row.text().await.unwrap();
    assert!(listed.contains("cruddur-backend") && listed.contains("/api/activities/home"), "{listed}");
    assert!(listed.contains("GET") && listed.contains("200"), "{listed}");
    row.click().await.unwrap();

    let segment = page
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".span[data-kind=\"segment\"][data-name=\"cruddur-backend\"]"))
        .await
        .expect("the backend's segment in the waterfall");
    assert!(segment.text().await.unwrap().contains("GET /api/activities/home"));
    let query = page
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".span[data-kind=\"subsegment\"] .sql-query"))
        .await
        .expect("a SQL subsegment with its query");
    let sql = query.text().await.unwrap();
    assert!(sql.to_uppercase().contains("SELECT"), "{sql}");
    // Its details open on a click, with the sql block.
    let subsegment = page
        .find(Locator::XPath("//div[@data-kind='subsegment'][.//code[contains(@class,'sql-query')]]"))
        .await
        .unwrap();
    subsegment.find(Locator::Css(".span-head")).await.unwrap().click().await.unwrap();
    let details = subsegment.find(Locator::Css(".span-details .block-sql pre")).await.unwrap();
    assert!(details.text().await.unwrap().contains("sanitized_query"));
    // The service map has the backend and its database.
    page.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#map g.node[data-name=\"cruddur-backend\"]"))
        .await
        .expect("the backend on the service map");
    if let Ok(path) = std::env::var("CONSOLE_SCREENSHOT") {
        std::fs::write(path, page.screenshot().await.unwrap()).unwrap();
    }
    assert_eq!(browser.console_errors().await, Vec::<String>::new(), "the page logs no errors");
    drop(telemetry);
}
