//! The official AWS X-Ray SDK for Python against our daemon, unchanged: its segments arrive at X-Ray through UDP, and
//! its centralized sampling (`GetSamplingRules`, then `SamplingTargets` about 10 s later) goes through the TCP port,
//! signed.
//!
//! The SDK (`aws-xray-sdk`, pinned) is installed by the test itself into a virtual environment under Cargo's
//! target directory, once; `XRAY_SDK_PYTHON` names a Python that already has it instead. Needs `python3` with its
//! `venv` module.

use std::process::{Command, Stdio};

use test_support::xray_endpoint::XrayEndpoint;

use crate::helpers::{Daemon, assert_signed_for_xray, name_of, python_with};

/// The SDK release the test runs.
const SDK_REQUIREMENT: &str = "aws-xray-sdk==2.15.0";

/// Records one sampled segment with a subsegment, then keeps asking the centralized sampler, so that the Default rule
/// is matched once the rules are in and the target poller has statistics to report.
const SCRIPT: &str = r#"
import time
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(service="sdk-compat", context_missing="LOG_ERROR")
xray_recorder.begin_segment("sdk-compat", sampling=1)
with xray_recorder.in_subsegment("sdk-work"):
    pass
xray_recorder.end_segment()
for _ in range(120):
    xray_recorder.begin_segment("sdk-decision")
    xray_recorder.end_segment()
    time.sleep(0.5)
"#;

#[tokio::test]
async fn the_python_sdk_sends_segments_and_samples_through_the_daemon() {
    let python = python_with("aws-xray-sdk-python", &[SDK_REQUIREMENT], "aws_xray_sdk", "XRAY_SDK_PYTHON");
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
    // The target poller reports the Default rule's statistics 10 s after it starts.
    let targets = endpoint
        .wait_for("SamplingTargets from the SDK", |requests| {
            requests.iter().find(|request| request.path == "/SamplingTargets").cloned()
        })
        .await;
    let _ = sdk.kill();
    let _ = sdk.wait();

    for request in [&rules, &targets] {
        assert_eq!(request.status, 200, "{}", request.path);
        assert_signed_for_xray(request);
    }
    assert_eq!(targets.json()["SamplingStatisticsDocuments"][0]["RuleName"], "Default");
    let segment: serde_json::Value =
        serde_json::from_str(documents.iter().find(|document| name_of(document) == "sdk-compat").unwrap()).unwrap();
    assert_eq!(segment["subsegments"][0]["name"], "sdk-work");
    assert!(segment["trace_id"].as_str().unwrap().starts_with("1-"));
    assert_eq!(daemon.snapshot().rejected, 0, "every datagram of the SDK parses");
}
