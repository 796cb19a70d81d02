//! The OTLP gateway: what [`crate::otlp_in`] takes goes to every consumer at once, none waiting for another:
//!
//! - X-Ray, as the user chose ([`XrayDelivery`]): converted to segment documents into the UDP path's buffer, batches
//!   and retries ([`SegmentQueue`]), or forwarded to X-Ray's OTLP endpoint, SigV4-signed ([`crate::otlp_out`]);
//! - the OTLP destination of `OTEL_EXPORTER_OTLP_*` (Honeycomb, a collector), with the UDP segments too when asked;
//! - the console, when it is on.
//!
//! Both conversions are the protocol crate's: spans to segments (`xray_protocol::otlp`, the console's too) and
//! segments to spans (`xray_protocol::segment_spans`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::counters::{self, Counters, Lane};
use crate::log_limit::RateLimitedLog;
use crate::otlp_in::OtlpError;
use crate::otlp_out::{self, Auth, Destination, Export, SigV4, Target};
use crate::sender::FlushDeadline;
use crate::{Config, DaemonError, XrayDelivery};

/// The UDP path's buffer, for segment documents from anywhere: counted as received, queued if the buffer has room,
/// else counted as spillover.
pub(crate) struct SegmentQueue {
    pub(crate) documents: mpsc::UnboundedSender<String>,
    pub(crate) counters: Counters,
    pub(crate) limit: u64,
    pub(crate) spills: RateLimitedLog,
}

impl SegmentQueue {
    pub(crate) fn offer(&self, document: String) -> bool {
        self.counters.received();
        if self.counters.reserve(counters::document_size(&document), self.limit) {
            // The sender reads until every queue handle is gone, so sending cannot fail.
            let _ = self.documents.send(document);
            true
        } else {
            self.counters.spillover(1);
            self.spills.warn(&format!(
                "buffer full ({} bytes): dropped a segment; raise -m or check the X-Ray endpoint",
                self.limit
            ));
            false
        }
    }
}

/// Every consumer of OTLP spans (and of UDP segments, for the fan-out).
pub(crate) struct Gateway {
    counters: Counters,
    console: Option<xray_console::Console>,
    /// `--xray-delivery segments`, when forwarding to X-Ray.
    segments: Option<Arc<SegmentQueue>>,
    /// `--xray-delivery otlp`, when forwarding to X-Ray.
    xray: Option<Destination>,
    /// The `OTEL_EXPORTER_OTLP_*` destination.
    fan_out: Option<Destination>,
    /// Its metrics endpoint.
    metrics: Option<Destination>,
    unforwarded_metrics_said: AtomicBool,
    forward_segments: bool,
    pub(crate) bad_requests_log: RateLimitedLog,
    console_drops: RateLimitedLog,
}

/// What the gateway runs: the sending tasks end once the gateway is dropped and their queues are sent (or the
/// flush deadline has passed).
pub(crate) struct Started {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

/// Where X-Ray is, when the daemon forwards to it.
pub(crate) struct XrayUpstream<'a> {
    pub(crate) sdk: &'a SdkConfig,
    pub(crate) endpoint: &'a str,
    pub(crate) segments: Option<Arc<SegmentQueue>>,
}

/// Starts the destinations the configuration asks for.
pub(crate) fn start(
    config: &Config,
    counters: &Counters,
    console: Option<xray_console::Console>,
    xray: Option<XrayUpstream<'_>>,
    client: reqwest::Client,
    deadline: &FlushDeadline,
) -> Result<Started, DaemonError> {
    let settings = &config.gateway;
    let mut tasks = Vec::new();
    let mut start = |target: Target| {
        let (destination, task) =
            otlp_out::start(target, counters.clone(), settings.queue_bytes, settings.batch_idle, deadline.clone());
        tasks.push(task);
        destination
    };
    let (segments, xray) = match (xray, settings.xray_delivery) {
        (None, _) => (None, None),
        (Some(upstream), XrayDelivery::Segments) => (upstream.segments, None),
        (Some(upstream), XrayDelivery::Otlp) => {
            let url = format!("{}/v1/traces", upstream.endpoint.trim_end_matches('/'));
            tracing::info!(%url, "OTLP spans go to X-Ray's OTLP endpoint (needs CloudWatch Transaction Search)");
            let auth = Auth::SigV4(Box::new(SigV4::new(upstream.sdk.clone())));
            (
                None,
                Some(start(Target {
                    name: "X-Ray OTLP endpoint",
                    url,
                    auth,
                    client: client.clone(),
                    lane: Lane::Xray,
                })),
            )
        }
    };
    let (fan_out, metrics) = match &settings.otlp_destination {
        None => (None, None),
        Some(destination) => {
            let url = destination.traces_endpoint.clone();
            tracing::info!(%url, segments = settings.forward_segments_as_otlp, "OTLP spans are also forwarded");
            let fan_out = start(Target {
                name: "OTLP destination",
                url,
                auth: Auth::Headers(header_map(&destination.headers)?),
                client: client.clone(),
                lane: Lane::FanOut,
            });
            let metrics = match &destination.metrics {
                None => None,
                Some(metrics) => {
                    let url = metrics.endpoint.to_string();
                    tracing::info!(%url, "OTLP metrics received are forwarded");
                    Some(start(Target {
                        name: "OTLP metrics destination",
                        url,
                        auth: Auth::Headers(header_map(&metrics.headers)?),
                        client,
                        lane: Lane::Metrics,
                    }))
                }
            };
            (Some(fan_out), metrics)
        }
    };
    let gateway = Gateway {
        counters: counters.clone(),
        console,
        segments,
        xray,
        forward_segments: settings.forward_segments_as_otlp && fan_out.is_some(),
        fan_out,
        metrics,
        unforwarded_metrics_said: AtomicBool::new(false),
        bad_requests_log: RateLimitedLog::new(Duration::from_secs(10)),
        console_drops: RateLimitedLog::new(Duration::from_secs(10)),
    };
    Ok(Started { gateway: Arc::new(gateway), tasks })
}

impl Gateway {
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Hands a decoded export to every consumer; `encoded` is its protobuf form when the client sent one. Returns the
    /// spans refused for invalid ids, or [`OtlpError::Busy`] when no consumer had room for any of it. X-Ray gets the
    /// spans of processes that do not send it segments themselves (`xray_protocol::otlp::without_own_segments`).
    pub(crate) fn export(
        &self,
        mut request: ExportTraceServiceRequest,
        encoded: Option<Bytes>,
    ) -> Result<u64, OtlpError> {
        let (spans, rejected) = keep_valid(&mut request);
        self.counters.otlp_received(spans + rejected, rejected);
        if spans == 0 {
            return Ok(rejected);
        }
        let encoded = encoded.filter(|_| rejected == 0).unwrap_or_else(|| request.encode_to_vec().into());
        // X-Ray's share leaves out the processes that send it their own segments (the backend's, by UDP).
        let xray_share = match (&self.segments, &self.xray) {
            (None, None) => None,
            _ => xray_protocol::otlp::without_own_segments(&request),
        };
        let documents =
            if self.console.is_some() { xray_protocol::otlp::segment_documents(&request) } else { Vec::new() };
        if let Some(console) = &self.console {
            for document in &documents {
                if !console.offer(document.clone(), xray_console::Source::Otlp) {
                    self.console_drops.warn("the console is busy: a span was not kept in it (counted in its stats)");
                }
            }
        }
        let mut consumers = 0;
        let mut taken = false;
        if let Some(segments) = &self.segments {
            consumers += 1;
            let documents = match &xray_share {
                Some((share, _)) => xray_protocol::otlp::segment_documents(share),
                None if self.console.is_some() => documents,
                None => xray_protocol::otlp::segment_documents(&request),
            };
            // Nothing for X-Ray counts as taken.
            taken |= documents.is_empty();
            for document in documents {
                taken |= segments.offer(document);
            }
        }
        if let Some(xray) = &self.xray {
            consumers += 1;
            taken |= match &xray_share {
                Some((_, 0)) => true,
                Some((share, spans)) => xray.offer(Export { body: share.encode_to_vec().into(), spans: *spans }),
                None => xray.offer(Export { body: encoded.clone(), spans }),
            };
        }
        if let Some(fan_out) = &self.fan_out {
            consumers += 1;
            taken |= fan_out.offer(Export { body: encoded, spans });
        }
        if consumers > 0 && !taken {
            return Err(OtlpError::Busy);
        }
        Ok(rejected)
    }

    /// Forwards a metrics export (protobuf) holding `points` data points to the OTLP destination's metrics endpoint;
    /// without one it is taken and not kept. [`OtlpError::Busy`] when the queue has no room.
    pub(crate) fn export_metrics(&self, body: Bytes, points: u64) -> Result<(), OtlpError> {
        match &self.metrics {
            Some(metrics) if !metrics.offer(Export { body, spans: points }) => Err(OtlpError::Busy),
            Some(_) => Ok(()),
            None => {
                if !self.unforwarded_metrics_said.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "metrics received are not kept: forwarding them needs an OTLP destination \
                         (OTEL_EXPORTER_OTLP_ENDPOINT)"
                    );
                }
                Ok(())
            }
        }
    }

    /// With `--forward-segments-as-otlp`, a UDP segment goes to the OTLP destination as spans.
    pub(crate) fn forward_segment(&self, document: &str) {
        let (true, Some(fan_out)) = (self.forward_segments, &self.fan_out) else { return };
        if let Some((request, spans)) = xray_protocol::segment_spans::export(document) {
            fan_out.offer(Export { body: request.encode_to_vec().into(), spans });
        }
    }
}

/// Headers as `OTEL_EXPORTER_OTLP_*HEADERS` gave them, checked.
fn header_map(headers: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, DaemonError> {
    headers
        .iter()
        .map(|(name, value)| {
            let invalid = || DaemonError::Config(format!("OTEL_EXPORTER_OTLP_HEADERS: {name} is not valid"));
            Ok((
                HeaderName::try_from(name).map_err(|_| invalid())?,
                HeaderValue::try_from(value).map_err(|_| invalid())?,
            ))
        })
        .collect()
}

/// Removes the spans no consumer can use (a trace id that is not 16 bytes, a span id that is not 8, or all zero);
/// returns the spans kept and removed.
fn keep_valid(request: &mut ExportTraceServiceRequest) -> (u64, u64) {
    let valid = |id: &[u8], length: usize| id.len() == length && id.iter().any(|byte| *byte != 0);
    let (mut kept, mut removed) = (0, 0);
    for resource_spans in &mut request.resource_spans {
        for scope_spans in &mut resource_spans.scope_spans {
            let before = scope_spans.spans.len() as u64;
            scope_spans.spans.retain(|span| valid(&span.trace_id, 16) && valid(&span.span_id, 8));
            kept += scope_spans.spans.len() as u64;
            removed += before - scope_spans.spans.len() as u64;
        }
    }
    (kept, removed)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    #[test]
    fn spans_without_valid_ids_are_removed_and_counted() {
        let span = |trace_id: Vec<u8>, span_id: Vec<u8>| Span { trace_id, span_id, ..Default::default() };
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(vec![1; 16], vec![2; 8]),
                        span(vec![0; 16], vec![2; 8]),
                        span(vec![1; 15], vec![2; 8]),
                        span(vec![1; 16], vec![]),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(keep_valid(&mut request), (1, 3));
        assert_eq!(request.resource_spans[0].scope_spans[0].spans.len(), 1);
    }
}
