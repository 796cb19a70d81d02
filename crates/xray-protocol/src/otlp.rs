//! OpenTelemetry spans (an OTLP export request) as X-Ray segment documents, so that spans that never pass through
//! an X-Ray SDK (the browser's, relayed by the backend) join their trace in X-Ray and in the console.
//!
//! As the X-Ray SDKs and `opentelemetry-aws` translate: a server span, a consumer span or a span without a parent
//! is a segment named after its service (`service.name`); any other span is a subsegment of its parent, named after
//! the span (a database call `database@host`, with an `sql` block; a client call with `namespace: remote`). HTTP
//! attributes become the `http` block; the outcome is classified by [`Outcome`] (4xx `error`, 429 also `throttle`,
//! 5xx or a failure without a status `fault`); the other attributes go to `metadata.default`.
//!
//! A process that sends X-Ray its segments itself and exports OTLP too (Cruddur's telemetry with both on) says so
//! on its resource ([`SENDS_XRAY_SEGMENTS`]): a gateway taking both leaves its spans out of what it converts for
//! X-Ray ([`without_own_segments`]), so X-Ray gets each of them once, sampled as the process's X-Ray rules chose.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::{Map, Value, json};

use crate::segment::{Outcome, sql_subsegment_name, xray_trace_id};

/// The resource attribute (`true`) of a process whose spans reach X-Ray as segments it sends itself.
pub const SENDS_XRAY_SEGMENTS: &str = "cruddur.xray.sends_segments";

/// Whether the process these spans come from sends X-Ray its own segments ([`SENDS_XRAY_SEGMENTS`]).
pub fn sends_own_segments(resource_spans: &ResourceSpans) -> bool {
    resource_spans.resource.as_ref().is_some_and(|resource| {
        resource.attributes.iter().any(|attribute| {
            attribute.key == SENDS_XRAY_SEGMENTS
                && matches!(
                    attribute.value.as_ref().and_then(|value| value.value.as_ref()),
                    Some(any_value::Value::BoolValue(true))
                )
        })
    })
}

/// What X-Ray should get of `request` from a gateway: the spans of the processes that do not send their own
/// segments, with their count; `None` when that is all of it.
pub fn without_own_segments(request: &ExportTraceServiceRequest) -> Option<(ExportTraceServiceRequest, u64)> {
    if !request.resource_spans.iter().any(sends_own_segments) {
        return None;
    }
    let resource_spans: Vec<ResourceSpans> =
        request.resource_spans.iter().filter(|spans| !sends_own_segments(spans)).cloned().collect();
    let spans = resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .map(|scope_spans| scope_spans.spans.len() as u64)
        .sum();
    Some((ExportTraceServiceRequest { resource_spans }, spans))
}

/// The segment documents of an export request, one per span (spans without valid ids are left out).
pub fn segment_documents(request: &ExportTraceServiceRequest) -> Vec<String> {
    let mut documents = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.as_ref().map(|resource| resource.attributes.as_slice()).unwrap_or(&[]);
        let service = string(resource, &["service.name"]).unwrap_or_else(|| "unknown_service".to_owned());
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                if let Some(document) = document(span, &service) {
                    documents.push(document.to_string());
                }
            }
        }
    }
    documents
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn document(span: &Span, service: &str) -> Option<Value> {
    if span.trace_id.len() != 16 || span.span_id.len() != 8 {
        return None;
    }
    let attributes = span.attributes.as_slice();
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let has_parent = span.parent_span_id.len() == 8 && span.parent_span_id.iter().any(|byte| *byte != 0);
    let is_segment = matches!(kind, SpanKind::Server | SpanKind::Consumer) || !has_parent;
    let database = string(attributes, &["db.system.name", "db.system"]);
    let name = if is_segment {
        service.to_owned()
    } else if let (Some(_), Some(namespace), Some(host)) =
        (&database, string(attributes, &["db.namespace", "db.name"]), string(attributes, &["server.address"]))
    {
        sql_subsegment_name(&namespace, &host)
    } else {
        span.name.clone()
    };
    let mut document = Map::new();
    document.insert("name".into(), json!(name));
    document.insert("id".into(), json!(hex(&span.span_id)));
    document.insert("trace_id".into(), json!(xray_trace_id(&hex(&span.trace_id))));
    document.insert("start_time".into(), json!(span.start_time_unix_nano as f64 / 1e9));
    if span.end_time_unix_nano >= span.start_time_unix_nano && span.end_time_unix_nano > 0 {
        document.insert("end_time".into(), json!(span.end_time_unix_nano as f64 / 1e9));
    } else {
        document.insert("in_progress".into(), json!(true));
    }
    if has_parent {
        document.insert("parent_id".into(), json!(hex(&span.parent_span_id)));
    }
    if !is_segment {
        document.insert("type".into(), json!("subsegment"));
    }

    let status = integer(attributes, &["http.response.status_code", "http.status_code"]);
    let method = string(attributes, &["http.request.method", "http.method"]);
    let url = string(attributes, &["url.full", "http.url"]).or_else(|| {
        let path = string(attributes, &["url.path", "http.target"])?;
        match string(attributes, &["server.address"]) {
            Some(host) => {
                Some(format!("{}://{host}{path}", string(attributes, &["url.scheme"]).unwrap_or("http".into())))
            }
            None => Some(path),
        }
    });
    if method.is_some() || url.is_some() || status.is_some() {
        let mut request = Map::new();
        if let Some(method) = method {
            request.insert("method".into(), json!(method));
        }
        if let Some(url) = url {
            request.insert("url".into(), json!(url));
        }
        if let Some(agent) = string(attributes, &["user_agent.original", "http.user_agent"]) {
            request.insert("user_agent".into(), json!(agent));
        }
        if let Some(client) = string(attributes, &["client.address", "http.client_ip"]) {
            request.insert("client_ip".into(), json!(client));
        }
        let mut http = json!({ "request": request });
        if let Some(status) = status {
            http["response"] = json!({ "status": status });
        }
        document.insert("http".into(), http);
    }
    if let Some(system) = &database {
        let mut sql = json!({ "database_type": system });
        if let Some(query) = string(attributes, &["db.query.text", "db.statement"]) {
            sql["sanitized_query"] = json!(query);
        }
        document.insert("sql".into(), sql);
    }
    if !is_segment && (database.is_some() || kind == SpanKind::Client) {
        document.insert("namespace".into(), json!("remote"));
    }

    let failed = span.status.as_ref().is_some_and(|status| status.code == StatusCode::Error as i32);
    let outcome = Outcome::of(status, failed);
    for (flag, set) in [("error", outcome.error), ("throttle", outcome.throttle), ("fault", outcome.fault)] {
        if set {
            document.insert(flag.into(), json!(true));
        }
    }
    let metadata: Map<String, Value> = attributes
        .iter()
        .filter_map(|attribute| Some((attribute.key.clone(), json_value(attribute.value.as_ref()?)?)))
        .collect();
    let mut otel = json!({ "span_name": span.name, "span_kind": kind.as_str_name() });
    if let Some(message) = span.status.as_ref().map(|status| &status.message).filter(|message| !message.is_empty()) {
        otel["status_message"] = json!(message);
    }
    document.insert("metadata".into(), json!({ "default": metadata, "otel": otel }));
    Some(Value::Object(document))
}

fn find<'a>(attributes: &'a [KeyValue], keys: &[&str]) -> Option<&'a any_value::Value> {
    keys.iter()
        .find_map(|key| attributes.iter().find(|attribute| attribute.key == *key)?.value.as_ref()?.value.as_ref())
}

fn string(attributes: &[KeyValue], keys: &[&str]) -> Option<String> {
    match find(attributes, keys)? {
        any_value::Value::StringValue(text) if !text.is_empty() => Some(text.clone()),
        any_value::Value::IntValue(number) => Some(number.to_string()),
        _ => None,
    }
}

fn integer(attributes: &[KeyValue], keys: &[&str]) -> Option<i64> {
    match find(attributes, keys)? {
        any_value::Value::IntValue(number) => Some(*number),
        any_value::Value::DoubleValue(number) => Some(*number as i64),
        any_value::Value::StringValue(text) => text.parse().ok(),
        _ => None,
    }
}

fn json_value(value: &AnyValue) -> Option<Value> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(text) => json!(text),
        any_value::Value::BoolValue(flag) => json!(flag),
        any_value::Value::IntValue(number) => json!(number),
        any_value::Value::DoubleValue(number) => json!(number),
        any_value::Value::ArrayValue(array) => Value::Array(array.values.iter().filter_map(json_value).collect()),
        any_value::Value::KvlistValue(list) => Value::Object(
            list.values.iter().filter_map(|pair| Some((pair.key.clone(), json_value(pair.value.as_ref()?)?))).collect(),
        ),
        any_value::Value::BytesValue(bytes) => json!(hex(bytes)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    use super::*;

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn text(key: &str, value: &str) -> KeyValue {
        attribute(key, any_value::Value::StringValue(value.into()))
    }

    #[test]
    fn a_browser_fetch_and_a_database_call_become_a_segment_and_a_sql_subsegment() {
        let trace_id =
            vec![0x57, 0x59, 0xe9, 0x88, 0xbd, 0x86, 0x2e, 0x3f, 0xe1, 0xbe, 0x46, 0xa9, 0x94, 0x27, 0x27, 0x93];
        let fetch = Span {
            trace_id: trace_id.clone(),
            span_id: vec![1; 8],
            name: "GET /api/activities/home".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 1_500_000_000_000_000_000,
            end_time_unix_nano: 1_500_000_000_250_000_000,
            attributes: vec![
                text("http.request.method", "GET"),
                text("url.full", "http://localhost:4567/api/activities/home"),
                attribute("http.response.status_code", any_value::Value::IntValue(503)),
            ],
            status: Some(Status { code: StatusCode::Error as i32, message: "unavailable".into() }),
            ..Default::default()
        };
        let query = Span {
            trace_id,
            span_id: vec![2; 8],
            parent_span_id: vec![1; 8],
            name: "SELECT cruddur".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 1_500_000_000_100_000_000,
            end_time_unix_nano: 1_500_000_000_200_000_000,
            attributes: vec![
                text("db.system.name", "postgresql"),
                text("db.namespace", "cruddur"),
                text("server.address", "localhost"),
                text("db.query.text", "SELECT * FROM activities"),
            ],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "cruddur-frontend")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans: vec![fetch, query], ..Default::default() }],
                ..Default::default()
            }],
        };
        let documents = segment_documents(&request);
        let fetch: Value = serde_json::from_str(&documents[0]).unwrap();
        assert_eq!(fetch["name"], "cruddur-frontend");
        assert_eq!(fetch["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(fetch["id"], "0101010101010101");
        assert_eq!(fetch["http"]["response"]["status"], 503);
        assert_eq!(fetch["fault"], true);
        assert!(fetch.get("type").is_none());
        assert_eq!(fetch["metadata"]["otel"]["status_message"], "unavailable");
        let query: Value = serde_json::from_str(&documents[1]).unwrap();
        assert_eq!(query["type"], "subsegment");
        assert_eq!(query["parent_id"], "0101010101010101");
        assert_eq!(query["name"], "cruddur@localhost");
        assert_eq!(query["sql"]["sanitized_query"], "SELECT * FROM activities");
        assert_eq!(query["namespace"], "remote");
        assert_eq!(
            (query["start_time"].as_f64(), query["end_time"].as_f64()),
            (Some(1_500_000_000.1), Some(1_500_000_000.2))
        );
    }

    #[test]
    fn a_gateway_leaves_out_for_xray_only_the_processes_that_send_their_own_segments() {
        let process = |attributes: Vec<KeyValue>, spans: usize| ResourceSpans {
            resource: Some(Resource { attributes, ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span { trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() }; spans],
                ..Default::default()
            }],
            ..Default::default()
        };
        let backend = process(vec![attribute(SENDS_XRAY_SEGMENTS, any_value::Value::BoolValue(true))], 3);
        let browser = process(vec![text("service.name", "cruddur-frontend")], 2);
        let says_no = process(vec![attribute(SENDS_XRAY_SEGMENTS, any_value::Value::BoolValue(false))], 1);
        assert!(sends_own_segments(&backend) && !sends_own_segments(&browser) && !sends_own_segments(&says_no));

        let browser_only = ExportTraceServiceRequest { resource_spans: vec![browser.clone(), says_no.clone()] };
        assert_eq!(without_own_segments(&browser_only), None, "all of it goes to X-Ray");
        let mixed =
            ExportTraceServiceRequest { resource_spans: vec![backend.clone(), browser.clone(), says_no.clone()] };
        let (share, spans) = without_own_segments(&mixed).unwrap();
        assert_eq!((share.resource_spans, spans), (vec![browser, says_no], 3));
        let (share, spans) =
            without_own_segments(&ExportTraceServiceRequest { resource_spans: vec![backend] }).unwrap();
        assert_eq!((share.resource_spans.len(), spans), (0, 0));
    }
}
