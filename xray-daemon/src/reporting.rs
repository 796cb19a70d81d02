//! Every interval (60 s, as the official daemon), once segments have flowed: the counters of the interval go to
//! X-Ray with `PutTelemetryRecords`, and to the log at info.

use std::time::Duration;

use aws_sdk_xray::Client;
use aws_sdk_xray::primitives::DateTime;
use aws_sdk_xray::types::{BackendConnectionErrors, TelemetryRecord};

use crate::counters::{Counters, Snapshot};

pub(crate) struct Reporter {
    pub(crate) client: Client,
    pub(crate) counters: Counters,
    pub(crate) interval: Duration,
    pub(crate) resource_arn: Option<String>,
    pub(crate) hostname: Option<String>,
    /// The counters as of the last report.
    pub(crate) reported: std::sync::Mutex<Snapshot>,
}

impl Reporter {
    /// Reports every interval, forever; the caller aborts it at shutdown and calls [`Reporter::report_final`].
    pub(crate) async fn run_shared(this: std::sync::Arc<Self>) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + this.interval, this.interval);
        loop {
            ticks.tick().await;
            this.report().await;
        }
    }

    /// Reports what has not been reported yet, at shutdown.
    pub(crate) async fn report_final(&self) {
        self.report().await;
    }

    /// Reports what happened since the last report, if anything did.
    async fn report(&self) {
        let now = self.counters.snapshot();
        let last = std::mem::replace(&mut *self.reported.lock().expect("never poisoned"), now);
        let delta = now.since(&last);
        if delta.received == 0 && delta.sent == 0 && delta.spillover == 0 && delta.rejected == 0 {
            return;
        }
        let backend = delta.backend;
        tracing::info!(
            received = delta.received,
            sent = delta.sent,
            spillover = delta.spillover,
            rejected = delta.rejected,
            timeouts = backend.timeout,
            connection_refused = backend.connection_refused,
            http_4xx = backend.http_4xx,
            http_5xx = backend.http_5xx,
            unknown_host = backend.unknown_host,
            other_errors = backend.other,
            buffered_bytes = now.buffered_bytes,
            "segments in the last {:?}",
            self.interval
        );
        let count = |value: u64| i32::try_from(value).unwrap_or(i32::MAX);
        let record = TelemetryRecord::builder()
            .timestamp(DateTime::from(std::time::SystemTime::now()))
            .segments_received_count(count(delta.received))
            .segments_sent_count(count(delta.sent))
            .segments_spillover_count(count(delta.spillover))
            .segments_rejected_count(count(delta.rejected))
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
            .expect("a telemetry record has its timestamp");
        let sent = self
            .client
            .put_telemetry_records()
            .telemetry_records(record)
            .set_resource_arn(self.resource_arn.clone())
            .set_hostname(self.hostname.clone())
            .send()
            .await;
        if let Err(error) = sent {
            tracing::debug!(?error, "PutTelemetryRecords failed");
        }
    }
}
