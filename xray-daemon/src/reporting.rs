//! The daemon's own telemetry, as the official daemon sends it: from the first segment on, every interval (60 s)
//! one `TelemetryRecord` with the counters of that interval goes to X-Ray with `PutTelemetryRecords`, and the same
//! counters to the log at info. Records X-Ray could not take are kept (the 30 newest, as the official) and sent with
//! the next report, at most 10 per call.

use std::collections::VecDeque;
use std::time::Duration;

use aws_sdk_xray::Client;
use aws_sdk_xray::primitives::DateTime;
use aws_sdk_xray::types::{BackendConnectionErrors, TelemetryRecord};
use tokio::sync::Mutex;

use crate::counters::{Counters, Snapshot};

/// Records kept while X-Ray does not take them; the oldest go first.
const MAX_UNSENT_RECORDS: usize = 30;
/// Records in one `PutTelemetryRecords` call.
const RECORDS_PER_CALL: usize = 10;

pub(crate) struct Reporter {
    pub(crate) client: Client,
    pub(crate) counters: Counters,
    pub(crate) interval: Duration,
    pub(crate) resource_arn: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) state: Mutex<ReportState>,
}

/// What was reported so far.
#[derive(Default)]
pub(crate) struct ReportState {
    /// The counters as of the last record.
    reported: Snapshot,
    /// Records not yet accepted by X-Ray, oldest first.
    unsent: VecDeque<TelemetryRecord>,
}

impl Reporter {
    /// Reports every interval, forever; the caller aborts it at shutdown and calls [`Reporter::report`] once more.
    pub(crate) async fn run(&self) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        loop {
            ticks.tick().await;
            self.report().await;
        }
    }

    /// Records what happened since the last record and sends every record not sent yet.
    pub(crate) async fn report(&self) {
        let mut state = self.state.lock().await;
        let now = self.counters.snapshot();
        // As the official daemon: no telemetry until a segment has arrived.
        if now.received == 0 {
            return;
        }
        let interval = now.since(&state.reported);
        state.reported = now;
        log(&interval, self.interval);
        if state.unsent.len() == MAX_UNSENT_RECORDS {
            state.unsent.pop_front();
        }
        state.unsent.push_back(record(&interval));
        while !state.unsent.is_empty() {
            let batch: Vec<TelemetryRecord> = state.unsent.iter().take(RECORDS_PER_CALL).cloned().collect();
            let sent = self
                .client
                .put_telemetry_records()
                .set_telemetry_records(Some(batch.clone()))
                .set_resource_arn(self.resource_arn.clone())
                .set_hostname(self.hostname.clone())
                .set_ec2_instance_id(self.instance_id.clone())
                .send()
                .await;
            match sent {
                Ok(_) => {
                    state.unsent.drain(..batch.len());
                }
                Err(error) => {
                    tracing::debug!(
                        ?error,
                        kept = state.unsent.len(),
                        "PutTelemetryRecords failed; kept for the next report"
                    );
                    break;
                }
            }
        }
    }
}

fn log(interval: &Snapshot, length: Duration) {
    let backend = interval.backend;
    tracing::info!(
        received = interval.received,
        sent = interval.sent,
        spillover = interval.spillover,
        rejected = interval.rejected,
        timeouts = backend.timeout,
        connection_refused = backend.connection_refused,
        http_4xx = backend.http_4xx,
        http_5xx = backend.http_5xx,
        unknown_host = backend.unknown_host,
        other_errors = backend.other,
        buffered_bytes = interval.buffered_bytes,
        "segments in the last {length:?}"
    );
}

fn record(interval: &Snapshot) -> TelemetryRecord {
    let count = |value: u64| i32::try_from(value).unwrap_or(i32::MAX);
    let backend = interval.backend;
    TelemetryRecord::builder()
        .timestamp(DateTime::from(std::time::SystemTime::now()))
        .segments_received_count(count(interval.received))
        .segments_sent_count(count(interval.sent))
        .segments_spillover_count(count(interval.spillover))
        .segments_rejected_count(count(interval.rejected))
        .backend_connection_errors(
            BackendConnectionErrors::builder()
                .timeout_count(count(backend.timeout))
                .connection_refused_count(count(backend.connection_refused))
                .http_code4_xx_count(count(backend.http_4xx))
                .http_code5_xx_count(count(backend.http_5xx))
                .unknown_host_count(count(backend.unknown_host))
                .other_count(count(backend.other))
                .build(),
        )
        .build()
        .expect("a telemetry record has its timestamp")
}
