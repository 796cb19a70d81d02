//! X-Ray segment documents as OpenTelemetry spans (the daemon's `--forward-segments-as-otlp`): apps still on an
//! X-Ray SDK show up at an OTLP destination with the same trace ids (X-Ray `1-5759e988-bd862e3f...` is OTLP `5759e988bd862e3f...`).
//!
//! The inverse of the span-to-segment rules: a segment is a server span of the service it names (`service.name`),
//! a subsegment a child span (client when its `namespace` is `remote` or `aws`, else internal); nested subsegments
//! keep their parents. `http` becomes the HTTP semantic-convention attributes, `sql` the database ones, annotations
//! are attributes under their own names, a `fault` (or a `cause`) an error status. In-progress documents are left
//! out: the SDK sends the finished one later.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;

/// The service name of a subsegment sent on its own, which does not say its service.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// One segment document (as an SDK sends it) as an export request, with its span count; `None` when it has no
/// finished span with valid ids.
pub fn export(document: &str) -> Option<(ExportTraceServiceRequest, u64)> {
    let root: Value = serde_json::from_str(document).ok()?;
    let trace_id = trace_id(root.get("trace_id")?.as_str()?)?;
    let is_segment = root.get("type").and_then(Value::as_str) != Some("subsegment");
    let service = if is_segment { root.get("name").and_then(Value::as_str) } else { None };
    let parent = root.get("parent_id").and_then(Value::as_str).and_then(span_id);
    let mut spans = Vec::new();
    collect(&root, &trace_id, parent, is_segment, &mut spans);
    if spans.is_empty() {
        return None;
    }
    let count = spans.len() as u64;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service.unwrap_or(UNKNOWN_SERVICE))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "xray-daemon/segments".into(), ..Default::default() }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Some((request, count))
}

fn collect(node: &Value, trace_id: &[u8], parent: Option<Vec<u8>>, is_segment: bool, spans: &mut Vec<Span>) {
    let finished = node.get("in_progress").and_then(Value::as_bool) != Some(true);
    let (Some(id), Some(start), Some(end)) = (
        node.get("id").and_then(Value::as_str).and_then(span_id),
        node.get("start_time").and_then(Value::as_f64),
        node.get("end_time").and_then(Value::as_f64),
    ) else {
        return;
    };
    if !finished {
        return;
    }
    for child in node.get("subsegments").and_then(Value::as_array).into_iter().flatten() {
        collect(child, trace_id, Some(id.clone()), false, spans);
    }
    let namespace = node.get("namespace").and_then(Value::as_str);
    let kind = match (is_segment, namespace) {
        (true, _) => SpanKind::Server,
        (false, Some("remote" | "aws")) => SpanKind::Client,
        (false, _) => SpanKind::Internal,
    };
    let name = node.get("name").and_then(Value::as_str).unwrap_or_default();
    let request = node.pointer("/http/request");
    let method = request.and_then(|request| request.get("method")).and_then(Value::as_str);
    let url = request.and_then(|request| request.get("url")).and_then(Value::as_str);
    let span_name = match (is_segment, method, url) {
        // A server span is named after its request, as OpenTelemetry's HTTP conventions name it.
        (true, Some(method), Some(url)) => format!("{method} {}", path_of(url)),
        _ => name.to_owned(),
    };
    let mut attributes = Vec::new();
    let mut add_text = |key: &str, value: Option<&Value>| {
        if let Some(value) = value.and_then(Value::as_str) {
            attributes.push(text(key, value));
        }
    };
    add_text("http.request.method", request.and_then(|request| request.get("method")));
    add_text("url.full", request.and_then(|request| request.get("url")));
    add_text("user_agent.original", request.and_then(|request| request.get("user_agent")));
    add_text("client.address", request.and_then(|request| request.get("client_ip")));
    add_text("db.system.name", node.pointer("/sql/database_type"));
    add_text("db.query.text", node.pointer("/sql/sanitized_query"));
    add_text("cloud.platform", node.get("origin"));
    if let Some(status) = node.pointer("/http/response/status").and_then(Value::as_i64) {
        attributes.push(attribute("http.response.status_code", any_value::Value::IntValue(status)));
    }
    if !is_segment {
        attributes.push(text("aws.xray.subsegment.name", name));
    }
    for (key, value) in node.get("annotations").and_then(Value::as_object).into_iter().flatten() {
        let value = match value {
            Value::String(text) => any_value::Value::StringValue(text.clone()),
            Value::Bool(flag) => any_value::Value::BoolValue(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => any_value::Value::IntValue(integer),
                None => any_value::Value::DoubleValue(number.as_f64().unwrap_or_default()),
            },
            _ => continue,
        };
        attributes.push(attribute(key, value));
    }
    let flag = |key: &str| node.get(key).and_then(Value::as_bool) == Some(true);
    let cause = node.pointer("/cause/exceptions/0/message").and_then(Value::as_str);
    let status = (flag("fault") || cause.is_some())
        .then(|| Status { code: StatusCode::Error as i32, message: cause.unwrap_or_default().to_owned() });
    spans.push(Span {
        trace_id: trace_id.to_vec(),
        span_id: id,
        parent_span_id: parent.unwrap_or_default(),
        name: span_name,
        kind: kind as i32,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: nanos(end.max(start)),
        attributes,
        status,
        ..Default::default()
    });
}

/// `1-5759e988-bd862e3fe1be46a994272793` as 16 bytes.
fn trace_id(xray: &str) -> Option<Vec<u8>> {
    let mut parts = xray.split('-');
    let (Some("1"), Some(time), Some(random), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let bytes = hex(&format!("{time}{random}"))?;
    (bytes.len() == 16).then_some(bytes)
}

fn span_id(id: &str) -> Option<Vec<u8>> {
    hex(id).filter(|bytes| bytes.len() == 8)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

/// The path of a URL (with its query), or the URL itself when it has no scheme.
fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => url,
    }
}

fn nanos(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn text(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_with_nested_subsegments_becomes_a_server_span_and_its_children() {
        let document = serde_json::json!({
            "name": "backend", "id": "70de5b6f19ff9a0a", "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "parent_id": "53995c3f42cd8ad8", "start_time": 1.5, "end_time": 2.0, "fault": true,
            "http": { "request": { "method": "GET", "url": "http://backend:4567/api/activities/home?x=1" },
                      "response": { "status": 500 } },
            "annotations": { "app.result_length": 3, "app.ratio": 0.5, "user": "andrew" },
            "subsegments": [{ "name": "home", "id": "0000000000000001", "start_time": 1.6, "end_time": 1.9,
                "subsegments": [{ "name": "cruddur@db", "id": "0000000000000002", "namespace": "remote",
                    "start_time": 1.7, "end_time": 1.8,
                    "sql": { "database_type": "PostgreSQL", "sanitized_query": "SELECT 1" } }] },
                { "name": "pending", "id": "0000000000000003", "start_time": 1.6, "in_progress": true }]
        })
        .to_string();
        let (request, count) = export(&document).unwrap();
        assert_eq!(count, 3);
        let resource = &request.resource_spans[0];
        assert_eq!(resource.resource.as_ref().unwrap().attributes[0], text("service.name", "backend"));
        let spans = &resource.scope_spans[0].spans;
        let server = spans.iter().find(|span| span.kind == SpanKind::Server as i32).unwrap();
        assert_eq!(server.name, "GET /api/activities/home?x=1");
        assert_eq!(server.trace_id, hex("5759e988bd862e3fe1be46a994272793").unwrap());
        assert_eq!(server.parent_span_id, hex("53995c3f42cd8ad8").unwrap());
        assert_eq!(server.start_time_unix_nano, 1_500_000_000);
        assert_eq!(server.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert!(server.attributes.contains(&attribute("app.result_length", any_value::Value::IntValue(3))));
        assert!(server.attributes.contains(&attribute("app.ratio", any_value::Value::DoubleValue(0.5))));
        assert!(server.attributes.contains(&attribute("http.response.status_code", any_value::Value::IntValue(500))));
        let query = spans.iter().find(|span| span.name == "cruddur@db").unwrap();
        assert_eq!(query.kind, SpanKind::Client as i32);
        assert_eq!(query.parent_span_id, hex("0000000000000001").unwrap());
        assert!(query.attributes.contains(&text("db.query.text", "SELECT 1")));
        let home = spans.iter().find(|span| span.name == "home").unwrap();
        assert_eq!((home.kind, home.parent_span_id.clone()), (SpanKind::Internal as i32, server.span_id.clone()));
    }

    #[test]
    fn in_progress_and_malformed_documents_give_nothing() {
        let in_progress = r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-5759e988-bd862e3fe1be46a994272793","start_time":1,"in_progress":true}"#;
        assert!(export(in_progress).is_none());
        assert!(
            export(r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"abc","start_time":1,"end_time":2}"#).is_none()
        );
        assert!(export("not json").is_none());
    }

    #[test]
    fn a_subsegment_sent_on_its_own_keeps_its_parent() {
        let document = r#"{"type":"subsegment","name":"s3","namespace":"aws","id":"0000000000000009","parent_id":"70de5b6f19ff9a0a","trace_id":"1-5759e988-bd862e3fe1be46a994272793","start_time":1,"end_time":2}"#;
        let (request, count) = export(document).unwrap();
        assert_eq!(count, 1);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            (span.kind, span.parent_span_id.clone()),
            (SpanKind::Client as i32, hex("70de5b6f19ff9a0a").unwrap())
        );
    }
}
