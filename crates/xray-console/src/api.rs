//! The HTTP side of the console, on the X-Ray API's own paths and JSON (REST-JSON, as `aws-sdk-xray` and the AWS CLI
//! send and read it), so `aws xray get-trace-summaries --endpoint-url http://localhost:2000` works locally:
//!
//! | path | operation |
//! |---|---|
//! | `POST /TraceSummaries` | `GetTraceSummaries`: time range, `FilterExpression`, pages of 100, newest first |
//! | `POST /Traces` | `BatchGetTraces`: segments with their subsegments (those sent on their own nested back in) |
//! | `POST /ServiceGraph` | `GetServiceGraph` |
//! | `POST /GetSamplingRules`, `POST /SamplingTargets` | sampling, from the rule file (when the console answers it) |
//! | `POST /v1/metrics` | OTLP/HTTP metrics, accepted and not kept: a backend exporting here keeps quiet |
//! | `GET /` | the page |
//!
//! OTLP spans reach the console through the daemon's OTLP receiver (`Console::offer` with `Source::Otlp`), which
//! answers `POST /v1/traces` before these routes.
//!
//! Errors are AWS-shaped: a status, `x-amzn-ErrorType` and `{"__type", "message"}`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use serde_json::{Map, Value, json};
use xray_protocol::SamplingTargetsRequest;

use crate::filter::{Filter, FilterError};
use crate::segment::Annotation;
use crate::store::Trace;
use crate::summary::Summary;
use crate::{Console, graph};

/// Summaries per page, as X-Ray pages them.
const PAGE: usize = 100;
/// Largest OTLP request accepted.
const MAX_OTLP_BODY: usize = 4 * 1024 * 1024;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/console.js");
const STYLE: &str = include_str!("page/console.css");

/// The errors the API answers with, as X-Ray names them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::Filter(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = "InvalidRequestException";
        let body = json!({ "__type": kind, "message": self.to_string() });
        (self.status_code(), [("x-amzn-errortype", kind)], axum::Json(body)).into_response()
    }
}

pub(crate) fn router(console: Console, sampling: bool) -> Router {
    let mut router = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/console/stats", get(stats))
        .route("/TraceSummaries", post(trace_summaries))
        .route("/Traces", post(batch_get_traces))
        .route("/ServiceGraph", post(service_graph))
        .route("/v1/metrics", post(|| async { StatusCode::OK }).layer(DefaultBodyLimit::max(MAX_OTLP_BODY)));
    if sampling {
        router =
            router.route("/GetSamplingRules", post(sampling_rules)).route("/SamplingTargets", post(sampling_targets));
    }
    router.with_state(console)
}

pub(crate) fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The request's JSON object (an empty body is an empty object, as the CLI may send).
fn input(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::InvalidRequest("the body is not a JSON object".into())),
    }
}

/// An epoch-seconds timestamp: a number, or a string as some clients send it (seconds or RFC 3339 not supported).
fn timestamp(input: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => Ok(number.as_f64()),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::InvalidRequest(format!("{key} must be epoch seconds, not {text:?}"))),
        Some(other) => Err(ApiError::InvalidRequest(format!("{key} must be epoch seconds, not {other}"))),
    }
}

async fn stats(State(console): State<Console>) -> Response {
    axum::Json(console.stats()).into_response()
}

async fn trace_summaries(State(console): State<Console>, body: Bytes) -> Result<Response, ApiError> {
    let input = input(&body)?;
    let now = now();
    let start = timestamp(&input, "StartTime")?.unwrap_or(now - 6.0 * 3600.0);
    let end = timestamp(&input, "EndTime")?.unwrap_or(now);
    if end < start {
        return Err(ApiError::InvalidRequest("EndTime is before StartTime".into()));
    }
    let filter = match input.get("FilterExpression").and_then(Value::as_str).filter(|text| !text.trim().is_empty()) {
        Some(expression) => Some(Filter::parse(expression)?),
        None => None,
    };
    let offset: usize = match input.get("NextToken").and_then(Value::as_str) {
        Some(token) => token.parse().map_err(|_| ApiError::InvalidRequest("bad NextToken".into()))?,
        None => 0,
    };
    let store = console.lock_store();
    let mut processed = 0u64;
    let mut matched: Vec<Value> = Vec::new();
    for trace in store.traces() {
        let Some(summary) = Summary::of(trace) else { continue };
        if summary.start < start || summary.start > end {
            continue;
        }
        processed += 1;
        if filter.as_ref().is_none_or(|filter| filter.matches(&summary, trace)) {
            matched.push(summary_json(&summary));
        }
    }
    drop(store);
    matched.sort_by(|a, b| b["StartTime"].as_f64().unwrap_or(0.0).total_cmp(&a["StartTime"].as_f64().unwrap_or(0.0)));
    let total = matched.len();
    let page: Vec<Value> = matched.into_iter().skip(offset).take(PAGE).collect();
    let mut output = json!({
        "TraceSummaries": page,
        "ApproximateTime": now,
        "TracesProcessedCount": processed,
    });
    if offset + PAGE < total {
        output["NextToken"] = json!((offset + PAGE).to_string());
    }
    Ok(axum::Json(output).into_response())
}

fn summary_json(summary: &Summary) -> Value {
    let root = &summary.root;
    let mut http = Map::new();
    for (key, value) in [
        ("HttpURL", root.http_url.clone().map(Value::from)),
        ("HttpStatus", root.http_status.map(Value::from)),
        ("HttpMethod", root.http_method.clone().map(Value::from)),
        ("UserAgent", root.user_agent.clone().map(Value::from)),
        ("ClientIp", root.client_ip.clone().map(Value::from)),
    ] {
        if let Some(value) = value {
            http.insert(key.into(), value);
        }
    }
    let annotations: Map<String, Value> = summary
        .annotations
        .iter()
        .map(|(key, values)| {
            let values: Vec<Value> = values
                .iter()
                .map(|value| {
                    let value = match value {
                        Annotation::String(text) => json!({ "StringValue": text }),
                        Annotation::Number(number) => json!({ "NumberValue": number }),
                        Annotation::Boolean(flag) => json!({ "BooleanValue": flag }),
                    };
                    json!({ "AnnotationValue": value, "ServiceIds": [] })
                })
                .collect();
            (key.clone(), Value::Array(values))
        })
        .collect();
    let services: Vec<Value> =
        summary.services.iter().map(|(name, kind)| json!({ "Name": name, "Names": [name], "Type": kind })).collect();
    let entry_kind = crate::summary::service_of(root).map_or("service", |(_, kind)| kind);
    json!({
        "Id": summary.id,
        "StartTime": summary.start,
        "Duration": summary.duration,
        "ResponseTime": summary.response_time,
        "HasFault": summary.has_fault,
        "HasError": summary.has_error,
        "HasThrottle": summary.has_throttle,
        "IsPartial": summary.is_partial,
        "Http": http,
        "Annotations": annotations,
        "Users": [],
        "ServiceIds": services,
        "EntryPoint": { "Name": root.name, "Names": [root.name], "Type": entry_kind },
        "ResourceARNs": [],
        "InstanceIds": [],
        "AvailabilityZones": [],
        "Revision": summary.revision,
    })
}

async fn batch_get_traces(State(console): State<Console>, body: Bytes) -> Result<Response, ApiError> {
    let input = input(&body)?;
    let ids: Vec<String> = input
        .get("TraceIds")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::InvalidRequest("TraceIds is required".into()))?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let store = console.lock_store();
    let mut traces = Vec::new();
    let mut unprocessed = Vec::new();
    for id in ids {
        match store.trace(&id) {
            Some(trace) => traces.push(trace_json(trace)),
            None => unprocessed.push(id),
        }
    }
    Ok(axum::Json(json!({ "Traces": traces, "UnprocessedTraceIds": unprocessed })).into_response())
}

/// A trace as `BatchGetTraces` gives it: one entry per segment, its subsegments nested in it, those sent on their
/// own included; a subsegment whose parent never arrived is an entry of its own.
fn trace_json(trace: &Trace) -> Value {
    let mut segments: Vec<Value> = Vec::new();
    let mut children: HashMap<String, Vec<Value>> = HashMap::new();
    for document in &trace.documents {
        let Ok(mut value) = serde_json::from_str::<Value>(&document.text) else { continue };
        if value.get("type").and_then(Value::as_str) == Some("subsegment") {
            let parent = value.get("parent_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(object) = value.as_object_mut() {
                // Nested, the SDKs leave these out: the enclosing document has them.
                for key in ["type", "trace_id", "parent_id"] {
                    object.remove(key);
                }
            }
            children.entry(parent).or_default().push(value);
        } else {
            segments.push(value);
        }
    }
    for segment in &mut segments {
        attach(segment, &mut children);
    }
    // Orphans: their parent is not in the store (yet, or evicted).
    for (parent, orphans) in children {
        for mut orphan in orphans {
            attach(&mut orphan, &mut HashMap::new());
            orphan["trace_id"] = json!(trace.id);
            orphan["parent_id"] = json!(parent);
            orphan["type"] = json!("subsegment");
            segments.push(orphan);
        }
    }
    let start = segments.iter().filter_map(|segment| segment["start_time"].as_f64()).fold(f64::INFINITY, f64::min);
    let end = segments.iter().filter_map(|segment| segment["end_time"].as_f64()).fold(start, f64::max);
    let segments: Vec<Value> = segments
        .into_iter()
        .map(|segment| json!({ "Id": segment["id"].as_str().unwrap_or_default(), "Document": segment.to_string() }))
        .collect();
    json!({
        "Id": trace.id,
        "Duration": if start.is_finite() { end - start } else { 0.0 },
        "LimitExceeded": false,
        "Segments": segments,
    })
}

/// Nests the independent subsegments whose parent is `value` or one of its subsegments.
fn attach(value: &mut Value, children: &mut HashMap<String, Vec<Value>>) {
    let Some(id) = value.get("id").and_then(Value::as_str).map(str::to_owned) else { return };
    if let Some(mine) = children.remove(&id) {
        let list = value.as_object_mut().map(|object| object.entry("subsegments").or_insert_with(|| json!([])));
        if let Some(Value::Array(list)) = list {
            list.extend(mine);
        }
    }
    if let Some(Value::Array(list)) = value.get_mut("subsegments") {
        for child in list {
            attach(child, children);
        }
    }
}

async fn service_graph(State(console): State<Console>, body: Bytes) -> Result<Response, ApiError> {
    let input = input(&body)?;
    let start =
        timestamp(&input, "StartTime")?.ok_or_else(|| ApiError::InvalidRequest("StartTime is required".into()))?;
    let end = timestamp(&input, "EndTime")?.ok_or_else(|| ApiError::InvalidRequest("EndTime is required".into()))?;
    let store = console.lock_store();
    let traces = store
        .traces()
        .filter(|trace| Summary::of(trace).is_some_and(|summary| summary.start >= start && summary.start <= end));
    let services = graph::services(traces);
    drop(store);
    Ok(axum::Json(json!({
        "StartTime": start,
        "EndTime": end,
        "Services": services,
        "ContainsOldGroupVersions": false,
    }))
    .into_response())
}

async fn sampling_rules(State(console): State<Console>) -> Response {
    axum::Json(console.lock_sampler().rules_answer()).into_response()
}

async fn sampling_targets(State(console): State<Console>, body: Bytes) -> Result<Response, ApiError> {
    let input: SamplingTargetsRequest = serde_json::from_value(Value::Object(input(&body)?))
        .map_err(|error| ApiError::InvalidRequest(format!("SamplingTargets: {error}")))?;
    Ok(axum::Json(console.lock_sampler().targets_answer(&input, now())).into_response())
}
