//! UDP to PutTraceSegments: batching, signatures, bad input, a full buffer, endpoint failures, telemetry, shutdown.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use test_support::xray_endpoint::{Failure, RecordedRequest, XrayEndpoint};
use xray_daemon::MAX_BATCH;

use crate::helpers::{Daemon, assert_signed_for_xray, name_of};

#[tokio::test]
async fn segments_sent_over_udp_reach_x_ray_in_signed_batches_of_at_most_50() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    let sent: BTreeSet<String> = (0..120).map(|index| daemon.send_segment(&format!("segment-{index}"))).collect();

    let received: BTreeSet<String> = endpoint.wait_for_documents(120).await.into_iter().collect();
    assert_eq!(received, sent, "every document arrives once, unchanged");
    let batches = endpoint.accepted_batches();
    assert!(batches.len() >= 3, "120 documents need at least 3 calls, got {}", batches.len());
    for batch in &batches {
        assert_eq!(batch.method, "POST");
        assert!(
            batch.trace_segment_documents().len() <= MAX_BATCH,
            "a batch of {}",
            batch.trace_segment_documents().len()
        );
        assert_signed_for_xray(batch);
    }
    let counters = daemon.wait_for("120 sent", |counters| counters.sent == 120).await;
    assert_eq!((counters.received, counters.rejected, counters.spillover), (120, 0, 0));
    assert_eq!(counters.buffered_bytes, 0, "nothing left in the buffer");
}

#[tokio::test]
async fn a_steady_trickle_of_segments_is_sent_within_the_idle_time_not_held_until_a_batch_fills() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |config| config.batch_idle = Duration::from_millis(500)).await;
    // One segment every 100 ms: never 500 ms without one, and 50 would take 5 s.
    let mut sent = 0;
    while endpoint.accepted_batches().is_empty() {
        assert!(sent < 20, "nothing sent after {sent} segments at 100 ms intervals");
        daemon.send_segment(&format!("trickle-{sent}"));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn malformed_datagrams_are_counted_and_the_daemon_keeps_going() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    let bad: [&[u8]; 5] = [
        b"{\"name\":\"no header\"}",
        b"{\"format\":\"xml\",\"version\":1}\n{}",
        b"{\"format\":\"json\",\"version\":1}\n   ",
        b"not json at all\n{}",
        &[0xff, 0x00, 0x13],
    ];
    for datagram in bad {
        daemon.send_datagram(datagram);
    }
    let good = daemon.send_segment("after the bad ones");

    assert_eq!(endpoint.wait_for_documents(1).await, [good]);
    let counters = daemon.wait_for("all counted", |counters| counters.sent == 1 && counters.rejected == 5).await;
    assert_eq!(counters.received, 6);
}

#[tokio::test]
async fn segments_x_ray_refuses_are_counted_as_rejected() {
    let endpoint = XrayEndpoint::start();
    endpoint.reject_segments_named("refused", "InvalidSegment");
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    daemon.send_segment("refused");
    daemon.send_segment("accepted");
    daemon.send_segment("refused");

    let counters = daemon.wait_for("3 settled", |counters| counters.sent + counters.rejected == 3).await;
    assert_eq!((counters.sent, counters.rejected), (1, 2));
}

#[tokio::test]
async fn a_flood_beyond_the_buffer_stays_within_it_and_every_dropped_segment_is_counted() {
    let endpoint = XrayEndpoint::start();
    endpoint.fail(Failure::Refuse);
    const LIMIT: usize = 64 * 1024;
    let daemon = Daemon::start(&endpoint, |config| config.buffer_bytes = LIMIT).await;

    // 300 documents of about 1 KB: five times the buffer. Sent in steps so that the socket never overflows and
    // the daemon sees every one.
    let mut names = Vec::new();
    for step in 0..10 {
        for index in 0..30 {
            let name = format!("flood-{step}-{index}");
            daemon.send_segment_with_padding(&name, 900);
            names.push(name);
        }
        daemon.wait_received(names.len() as u64).await;
    }
    let during = daemon.snapshot();
    assert!(during.spillover > 0, "the buffer overflowed: {during:#?}");
    assert!(during.peak_buffered_bytes <= LIMIT as u64, "peak {} over {LIMIT}", during.peak_buffered_bytes);
    assert!(during.backend.connection_refused > 0, "the refused connections are counted: {during:#?}");

    endpoint.recover();
    let settled = daemon
        .wait_for("every segment sent or counted", |counters| {
            counters.sent + counters.spillover + counters.rejected == counters.received && counters.buffered_bytes == 0
        })
        .await;
    assert_eq!(settled.received, 300);
    assert_eq!(settled.rejected, 0);
    let delivered: Vec<String> = endpoint.accepted_documents().iter().map(|document| name_of(document)).collect();
    assert_eq!(delivered.len() as u64, settled.sent, "what the counters call sent is what arrived");
    assert!(delivered.iter().all(|name| names.contains(name)));
    assert_eq!(settled.peak_buffered_bytes, during.peak_buffered_bytes.max(settled.peak_buffered_bytes));
    assert!(settled.peak_buffered_bytes <= LIMIT as u64);
}

/// While X-Ray fails with `failure`, segments wait in the buffer; once it recovers they arrive.
async fn segments_survive(failure: Failure) -> xray_daemon::Snapshot {
    let endpoint = XrayEndpoint::start();
    endpoint.fail(failure);
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    let sent: BTreeSet<String> = (0..10).map(|index| daemon.send_segment(&format!("patient-{index}"))).collect();
    let failing = daemon
        .wait_for("failed calls", |counters| {
            let backend = counters.backend;
            backend.connection_refused + backend.http_4xx + backend.http_5xx >= 2
        })
        .await;
    assert_eq!(failing.sent, 0);

    endpoint.recover();
    let received: BTreeSet<String> = endpoint.wait_for_documents(10).await.into_iter().collect();
    assert_eq!(received, sent);
    daemon.wait_for("10 sent", |counters| counters.sent == 10).await
}

#[tokio::test]
async fn while_the_endpoint_refuses_connections_segments_wait_and_then_arrive() {
    let counters = segments_survive(Failure::Refuse).await;
    assert!(counters.backend.connection_refused >= 2, "{counters:#?}");
}

#[tokio::test]
async fn server_errors_are_retried_until_the_endpoint_recovers() {
    let counters = segments_survive(Failure::ServerError).await;
    assert!(counters.backend.http_5xx >= 2, "{counters:#?}");
}

#[tokio::test]
async fn throttling_is_retried_until_the_endpoint_recovers() {
    let counters = segments_survive(Failure::Throttle).await;
    assert!(counters.backend.http_4xx >= 2, "{counters:#?}");
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let endpoint = XrayEndpoint::start();
    endpoint.fail(Failure::BadRequest);
    let daemon = Daemon::start(&endpoint, |_| {}).await;
    for index in 0..3 {
        daemon.send_segment(&format!("invalid-{index}"));
    }
    let counters = daemon.wait_for("3 rejected", |counters| counters.rejected == 3).await;
    assert_eq!(counters.backend.http_4xx, 1);
    assert_eq!(endpoint.requests_to("/TraceSegments").len(), 1, "one call, no retry");
}

#[tokio::test]
async fn counters_are_reported_with_put_telemetry_records() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |config| {
        config.telemetry_interval = Duration::from_millis(300);
        config.resource_arn = Some("arn:aws:ecs:us-east-1:123456789012:task/cruddur".to_owned());
        config.hostname = Some("daemon-host".to_owned());
        config.instance_id = Some("i-0123456789abcdef0".to_owned());
    })
    .await;
    for index in 0..4 {
        daemon.send_segment(&format!("counted-{index}"));
    }
    daemon.send_datagram(b"garbage");
    daemon.wait_for("4 sent", |counters| counters.sent == 4).await;

    let sum =
        |records: &[Value], key: &str| records.iter().map(|record| record[key].as_i64().unwrap_or(0)).sum::<i64>();
    let records = endpoint
        .wait_for("telemetry with every segment", |requests| {
            let records: Vec<Value> = requests
                .iter()
                .filter(|request| request.path == "/TelemetryRecords")
                .flat_map(|request| request.json()["TelemetryRecords"].as_array().cloned().unwrap_or_default())
                .collect();
            (sum(&records, "SegmentsSentCount") == 4).then_some(records)
        })
        .await;
    assert_eq!(sum(&records, "SegmentsReceivedCount"), 5);
    assert_eq!(sum(&records, "SegmentsRejectedCount"), 1);
    assert_eq!(sum(&records, "SegmentsSpilloverCount"), 0);
    assert!(
        records.iter().all(|record| record["Timestamp"].is_number() && record["BackendConnectionErrors"].is_object())
    );
    let request = &endpoint.requests_to("/TelemetryRecords")[0];
    assert_eq!(request.json()["ResourceARN"], "arn:aws:ecs:us-east-1:123456789012:task/cruddur");
    assert_eq!(request.json()["Hostname"], "daemon-host");
    assert_eq!(request.json()["EC2InstanceId"], "i-0123456789abcdef0");
    crate::helpers::assert_signed_for_xray(request);
}

/// The records of the `/TelemetryRecords` calls answered `status`, each named by its timestamp.
fn telemetry_records(requests: &[RecordedRequest], status: u16) -> Vec<(String, Value)> {
    requests
        .iter()
        .filter(|request| request.path == "/TelemetryRecords" && request.status == status)
        .flat_map(|request| request.json()["TelemetryRecords"].as_array().cloned().unwrap_or_default())
        .map(|record| (record["Timestamp"].to_string(), record))
        .collect()
}

#[tokio::test]
async fn telemetry_records_x_ray_could_not_take_are_sent_with_the_next_report() {
    let endpoint = XrayEndpoint::start();
    let daemon = Daemon::start(&endpoint, |config| config.telemetry_interval = Duration::from_millis(200)).await;
    daemon.send_segment("before-the-outage");
    daemon.wait_for("1 sent", |counters| counters.sent == 1).await;
    endpoint.fail(Failure::ServerError);
    endpoint
        .wait_for("2 refused telemetry calls", |requests| (telemetry_records(requests, 500).len() >= 2).then_some(()))
        .await;
    endpoint.recover();

    let accepted = endpoint
        .wait_for("every refused record accepted later", |requests| {
            let accepted = telemetry_records(requests, 200);
            let taken = |timestamp: &String| accepted.iter().any(|(accepted, _)| accepted == timestamp);
            telemetry_records(requests, 500).iter().all(|(timestamp, _)| taken(timestamp)).then_some(accepted)
        })
        .await;
    let timestamps: BTreeSet<&String> = accepted.iter().map(|(timestamp, _)| timestamp).collect();
    assert_eq!(timestamps.len(), accepted.len(), "each record is accepted once");
    let sum = |key: &str| accepted.iter().map(|(_, record)| record[key].as_i64().unwrap_or(0)).sum::<i64>();
    assert_eq!((sum("SegmentsReceivedCount"), sum("SegmentsSentCount")), (1, 1), "no record lost or counted twice");
}

#[tokio::test]
async fn shutdown_sends_what_is_buffered() {
    let endpoint = XrayEndpoint::start();
    // A batch would otherwise wait a minute for company.
    let daemon = Daemon::start(&endpoint, |config| config.batch_idle = Duration::from_secs(60)).await;
    let sent: BTreeSet<String> = (0..7).map(|index| daemon.send_segment(&format!("last-{index}"))).collect();
    daemon.wait_received(7).await;
    assert!(endpoint.accepted_documents().is_empty());

    let counters = daemon.counters.clone();
    daemon.stop().await.expect("a clean stop");
    let received: BTreeSet<String> = endpoint.accepted_documents().into_iter().collect();
    assert_eq!(received, sent);
    assert_eq!(counters.snapshot().sent, 7);
}

#[tokio::test]
async fn shutdown_gives_up_at_its_deadline_even_with_every_call_busy_and_counts_what_it_could_not_send() {
    let endpoint = XrayEndpoint::start();
    endpoint.fail(Failure::Refuse);
    // One call at a time: one batch retries while the others wait for it.
    let daemon = Daemon::start(&endpoint, |config| {
        config.concurrency = 1;
        config.flush_timeout = Duration::from_millis(500);
    })
    .await;
    for index in 0..120 {
        daemon.send_segment(&format!("stranded-{index}"));
    }
    daemon.wait_received(120).await;
    daemon.wait_for("a failed call", |counters| counters.backend.connection_refused > 0).await;

    let counters = daemon.counters.clone();
    let started = std::time::Instant::now();
    daemon.stop().await.expect("a clean stop");
    assert!(started.elapsed() < Duration::from_secs(5), "stopping took {:?}", started.elapsed());
    let counters = counters.snapshot();
    assert_eq!(
        (counters.received, counters.sent, counters.spillover, counters.buffered_bytes),
        (120, 0, 120, 0),
        "{counters:#?}"
    );
}
