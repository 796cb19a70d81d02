//! A trace at a glance, as X-Ray's `TraceSummary` has it: the entry point (the root segment), its HTTP request and
//! response time, the whole trace's duration, its fault/error/throttle marks, annotations and services.

use std::collections::BTreeMap;

use crate::segment::{Annotation, Node};
use crate::store::Trace;

/// The summary of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub id: String,
    /// Earliest start, in epoch seconds.
    pub start: f64,
    /// Latest end minus earliest start.
    pub duration: f64,
    /// The root segment's own duration.
    pub response_time: f64,
    pub has_fault: bool,
    pub has_error: bool,
    pub has_throttle: bool,
    /// Some node is still in progress.
    pub is_partial: bool,
    /// The root segment (the entry point).
    pub root: Node,
    /// Annotations of every node, by key.
    pub annotations: BTreeMap<String, Vec<Annotation>>,
    /// Segment names and the names of the remote services they call, with a type for each.
    pub services: Vec<(String, &'static str)>,
    /// Number of documents (grows as more arrive).
    pub revision: usize,
}

impl Summary {
    /// Summarises a trace; `None` for a trace without nodes.
    pub fn of(trace: &Trace) -> Option<Self> {
        let nodes: Vec<&Node> = trace.nodes().collect();
        let ids: std::collections::HashSet<&str> = nodes.iter().map(|node| node.id.as_str()).collect();
        let is_root = |node: &&&Node| node.parent_id.as_deref().is_none_or(|parent| !ids.contains(parent));
        let earliest = |a: &&&Node, b: &&&Node| a.start.total_cmp(&b.start);
        let root = nodes
            .iter()
            .filter(|node| node.is_segment)
            .filter(is_root)
            .min_by(earliest)
            .or_else(|| nodes.iter().filter(is_root).min_by(earliest))
            .or_else(|| nodes.iter().min_by(earliest))?;
        let start = nodes.iter().map(|node| node.start).fold(f64::INFINITY, f64::min);
        let end = nodes.iter().filter_map(|node| node.end).fold(start, f64::max);
        let mut annotations: BTreeMap<String, Vec<Annotation>> = BTreeMap::new();
        for node in &nodes {
            for (key, value) in &node.annotations {
                let values = annotations.entry(key.clone()).or_default();
                if !values.contains(value) {
                    values.push(value.clone());
                }
            }
        }
        let mut services: Vec<(String, &'static str)> = Vec::new();
        for node in &nodes {
            if let Some(service) = service_of(node)
                && !services.contains(&service)
            {
                services.push(service);
            }
        }
        Some(Self {
            id: trace.id.clone(),
            start,
            duration: end - start,
            response_time: root.duration(),
            has_fault: nodes.iter().any(|node| node.fault),
            has_error: nodes.iter().any(|node| node.error),
            has_throttle: nodes.iter().any(|node| node.throttle),
            is_partial: nodes.iter().any(|node| node.end.is_none()),
            root: (*root).clone(),
            annotations,
            services,
            revision: trace.documents.len(),
        })
    }

    /// The HTTP status of the entry point (or of the first node that has one).
    pub fn http_status(&self) -> Option<u16> {
        self.root.http_status
    }
}

/// The service a node stands for in the service graph and `ServiceIds`: every segment is one; a subsegment only
/// when it calls another service (`remote`/`aws` namespace, or SQL).
pub fn service_of(node: &Node) -> Option<(String, &'static str)> {
    if node.is_segment {
        let kind = if node.origin.as_deref() == Some("AWS::EC2::Instance") { "AWS::EC2::Instance" } else { "service" };
        Some((node.name.clone(), kind))
    } else if node.sql {
        Some((node.name.clone(), "Database::SQL"))
    } else if matches!(node.namespace.as_deref(), Some("remote" | "aws")) {
        Some((node.name.clone(), "remote"))
    } else {
        None
    }
}
