//! What the store keeps of a segment document besides its text: one [`Node`] per segment or subsegment it holds
//! (nested subsegments included), with the fields that summaries, filters and the service graph read, so that a
//! query never parses JSON again.

use serde_json::{Map, Value};

/// An annotation value, as X-Ray types them.
#[derive(Debug, Clone, PartialEq)]
pub enum Annotation {
    String(String),
    Number(f64),
    Boolean(bool),
}

impl Annotation {
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(text) => Some(Self::String(text.clone())),
            Value::Number(number) => number.as_f64().map(Self::Number),
            Value::Bool(flag) => Some(Self::Boolean(*flag)),
            _ => None,
        }
    }

    /// The value as text, for comparisons with a quoted filter value.
    pub fn text(&self) -> String {
        match self {
            Self::String(text) => text.clone(),
            Self::Number(number) => number.to_string(),
            Self::Boolean(flag) => flag.to_string(),
        }
    }
}

/// One segment or subsegment of a document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub id: String,
    /// The parent's id: given for subsegments sent on their own and for segments called by another service;
    /// for nested subsegments, the enclosing one's.
    pub parent_id: Option<String>,
    pub name: String,
    /// A segment (a service's work) rather than a subsegment.
    pub is_segment: bool,
    pub start: f64,
    /// `None` while in progress.
    pub end: Option<f64>,
    pub fault: bool,
    pub error: bool,
    pub throttle: bool,
    pub http_method: Option<String>,
    pub http_url: Option<String>,
    pub http_status: Option<u16>,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    pub annotations: Vec<(String, Annotation)>,
    /// `remote` or `aws` for calls to other services.
    pub namespace: Option<String>,
    /// Has an `sql` block: a database call.
    pub sql: bool,
    /// `origin` (the resource type, e.g. `AWS::EC2::Instance`).
    pub origin: Option<String>,
}

impl Node {
    /// The node's duration in seconds (0 while in progress).
    pub fn duration(&self) -> f64 {
        self.end.map_or(0.0, |end| (end - self.start).max(0.0))
    }

    /// The bytes this node counts for against the store's bound, beyond the document's text.
    pub(crate) fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.id.len()
            + self.parent_id.as_ref().map_or(0, String::len)
            + self.name.len()
            + [&self.http_method, &self.http_url, &self.user_agent, &self.client_ip, &self.namespace, &self.origin]
                .iter()
                .map(|field| field.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + self.annotations.iter().map(|(key, value)| key.len() + value.text().len() + 48).sum::<usize>()
    }
}

/// A segment document, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// `1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`.
    pub trace_id: String,
    /// The document's own node first, then its nested subsegments, depth first.
    pub nodes: Vec<Node>,
}

/// Why a document cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no {0}")]
    Missing(&'static str),
}

/// Reads a segment document (as sent to the daemon or to `PutTraceSegments`).
pub fn parse(document: &str) -> Result<Parsed, DocumentError> {
    let value: Value = serde_json::from_str(document).map_err(|_| DocumentError::NotAnObject)?;
    parse_value(&value)
}

/// Reads a segment document already parsed.
pub fn parse_value(value: &Value) -> Result<Parsed, DocumentError> {
    let object = value.as_object().ok_or(DocumentError::NotAnObject)?;
    let trace_id = text(object, "trace_id").ok_or(DocumentError::Missing("trace_id"))?;
    let is_segment = text(object, "type").as_deref() != Some("subsegment");
    let mut nodes = Vec::new();
    collect(object, text(object, "parent_id"), is_segment, &mut nodes)?;
    Ok(Parsed { trace_id, nodes })
}

fn collect(
    object: &Map<String, Value>,
    parent_id: Option<String>,
    is_segment: bool,
    nodes: &mut Vec<Node>,
) -> Result<(), DocumentError> {
    let id = text(object, "id").ok_or(DocumentError::Missing("id"))?;
    let start = object.get("start_time").and_then(Value::as_f64).ok_or(DocumentError::Missing("start_time"))?;
    let http = object.get("http");
    let request = http.and_then(|http| http.get("request"));
    let request_text =
        |key: &str| request.and_then(|request| request.get(key)).and_then(Value::as_str).map(str::to_owned);
    let annotations = object
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), Annotation::from_json(value)?)))
        .collect();
    let flag = |key: &str| object.get(key).and_then(Value::as_bool).unwrap_or(false);
    nodes.push(Node {
        id: id.clone(),
        parent_id,
        name: text(object, "name").unwrap_or_default(),
        is_segment,
        start,
        end: object.get("end_time").and_then(Value::as_f64),
        fault: flag("fault"),
        error: flag("error"),
        throttle: flag("throttle"),
        http_method: request_text("method"),
        http_url: request_text("url"),
        http_status: http
            .and_then(|http| http.get("response"))
            .and_then(|response| response.get("status"))
            .and_then(Value::as_u64)
            .and_then(|status| u16::try_from(status).ok()),
        user_agent: request_text("user_agent"),
        client_ip: request_text("client_ip"),
        annotations,
        namespace: text(object, "namespace"),
        sql: object.get("sql").is_some_and(Value::is_object),
        origin: text(object, "origin"),
    });
    for child in object.get("subsegments").and_then(Value::as_array).into_iter().flatten() {
        if let Some(child) = child.as_object() {
            collect(child, Some(id.clone()), false, nodes)?;
        }
    }
    Ok(())
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_with_nested_subsegments_gives_one_node_each() {
        let document = r#"{"name":"cruddur-backend","id":"70de5b6f19ff9a0a","trace_id":"1-5759e988-bd862e3fe1be46a994272793",
            "start_time":1.5,"end_time":2.0,"http":{"request":{"method":"GET","url":"http://x/api"},"response":{"status":500}},
            "fault":true,"annotations":{"user":"andrew","n":3},
            "subsegments":[{"name":"cruddur@db","id":"aaaaaaaaaaaaaaaa","start_time":1.6,"end_time":1.7,"namespace":"remote","sql":{"sanitized_query":"SELECT 1"}}]}"#;
        let parsed = parse(document).unwrap();
        assert_eq!(parsed.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        let [segment, query] = &parsed.nodes[..] else { panic!("{:?}", parsed.nodes) };
        assert!(segment.is_segment && segment.fault && !segment.error);
        assert_eq!((segment.http_method.as_deref(), segment.http_status), (Some("GET"), Some(500)));
        assert_eq!(segment.annotations.len(), 2);
        assert!(!query.is_segment && query.sql);
        assert_eq!(query.parent_id.as_deref(), Some("70de5b6f19ff9a0a"));
        assert!((query.duration() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn documents_without_ids_are_refused() {
        assert_eq!(parse("[]"), Err(DocumentError::NotAnObject));
        assert_eq!(parse(r#"{"id":"a","start_time":1}"#), Err(DocumentError::Missing("trace_id")));
        assert_eq!(parse(r#"{"trace_id":"t","start_time":1}"#), Err(DocumentError::Missing("id")));
    }
}
