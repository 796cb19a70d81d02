//! The official AWS X-Ray SDK for Python against our daemon, unchanged: its segments arrive at X-Ray through UDP, and
//! its centralized sampling (`GetSamplingRules` through the TCP port) is answered and signed.
//!
//! Needs a Python with `aws-xray-sdk` installed, named by `XRAY_SDK_PYTHON` (see the README); run with
//! `cargo test -p xray-daemon --test daemon sdk -- --ignored`.

use std::process::{Command, Stdio};

use test_support::xray_endpoint::XrayEndpoint;

use crate::helpers::{Daemon, assert_signed_for_xray, name_of};

/// Records one sampled segment with a subsegment, then stays up so the SDK's rule poller can run.
const SCRIPT: &str = r#"
import time
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(service="sdk-compat", context_missing="LOG_ERROR")
segment = xray_recorder.begin_segment("sdk-compat", sampling=1)
with xray_recorder.in_subsegment("sdk-work"):
    pass
xray_recorder.end_segment()
# The first sampling decision starts the centralized sampler's pollers.
xray_recorder.begin_segment("sdk-decision")
xray_recorder.end_segment()
time.sleep(60)
"#;

#[tokio::test]
#[ignore = "needs XRAY_SDK_PYTHON, a Python with aws-xray-sdk"]
async fn the_python_sdk_sends_segments_and_gets_sampling_rules_through_the_daemon() {
    let python = std::env::var("XRAY_SDK_PYTHON").expect("XRAY_SDK_PYTHON: a Python with aws-xray-sdk installed");
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    let address = format!("tcp:{} udp:{}", daemon.tcp, daemon.udp);
    let mut sdk = Command::new(python)
        .args(["-c", SCRIPT])
        .env("AWS_XRAY_DAEMON_ADDRESS", address)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting Python");

    let rules = endpoint
        .wait_for("GetSamplingRules from the SDK", |requests| {
            requests.iter().find(|request| request.path == "/GetSamplingRules").cloned()
        })
        .await;
    let documents = endpoint
        .wait_for("the SDK's segment", |_| {
            let documents = endpoint.accepted_documents();
            documents.iter().any(|document| name_of(document) == "sdk-compat").then_some(documents)
        })
        .await;
    let _ = sdk.kill();
    let _ = sdk.wait();

    assert_eq!(rules.status, 200);
    assert_signed_for_xray(&rules);
    let segment: serde_json::Value =
        serde_json::from_str(documents.iter().find(|document| name_of(document) == "sdk-compat").unwrap()).unwrap();
    assert_eq!(segment["subsegments"][0]["name"], "sdk-work");
    assert!(segment["trace_id"].as_str().unwrap().starts_with("1-"));
    assert_eq!(daemon.snapshot().rejected, 0, "every datagram of the SDK parses");
}
