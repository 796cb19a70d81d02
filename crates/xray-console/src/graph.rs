//! The service graph of a set of traces, in `GetServiceGraph`'s shape: a node per service (every segment's name, and
//! each database or remote service a subsegment calls, unless the called service sent its own segment), an edge per
//! caller and callee, and request counts, errors, faults and response times on both.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use crate::segment::Node;
use crate::store::Trace;
use crate::summary::service_of;

#[derive(Debug, Default, Clone, Copy)]
struct Statistics {
    ok: u64,
    error: u64,
    throttle: u64,
    fault: u64,
    total: u64,
    response_time: f64,
}

impl Statistics {
    fn add(&mut self, node: &Node) {
        self.total += 1;
        self.response_time += node.duration();
        if node.fault {
            self.fault += 1;
        } else if node.throttle {
            self.throttle += 1;
            self.error += 1;
        } else if node.error {
            self.error += 1;
        } else {
            self.ok += 1;
        }
    }

    fn json(&self) -> Value {
        json!({
            "OkCount": self.ok,
            "ErrorStatistics": {"ThrottleCount": self.throttle, "OtherCount": self.error - self.throttle, "TotalCount": self.error},
            "FaultStatistics": {"OtherCount": self.fault, "TotalCount": self.fault},
            "TotalCount": self.total,
            "TotalResponseTime": self.response_time,
        })
    }
}

#[derive(Debug, Default)]
struct Service {
    root: bool,
    start: f64,
    end: f64,
    statistics: Statistics,
    edges: BTreeMap<(String, &'static str), Statistics>,
}

/// The `Services` of `GetServiceGraph` for these traces.
pub fn services<'a>(traces: impl Iterator<Item = &'a Trace>) -> Vec<Value> {
    let client = ("client".to_owned(), "client");
    let mut services: BTreeMap<(String, &'static str), Service> = BTreeMap::new();
    for trace in traces {
        let nodes: HashMap<&str, &Node> = trace.nodes().map(|node| (node.id.as_str(), node)).collect();
        // A remote call whose callee sent its own segment is that segment's edge, not a service of its own.
        let parents_of_segments: HashSet<&str> =
            trace.nodes().filter(|node| node.is_segment).filter_map(|node| node.parent_id.as_deref()).collect();
        for node in trace.nodes() {
            let Some(service) = service_of(node) else { continue };
            if !node.is_segment && parents_of_segments.contains(node.id.as_str()) {
                continue;
            }
            // The caller: the nearest enclosing segment.
            let mut parent = node.parent_id.as_deref();
            let caller = loop {
                match parent.and_then(|id| nodes.get(id)) {
                    Some(candidate) if candidate.is_segment => break service_of(candidate),
                    Some(candidate) => parent = candidate.parent_id.as_deref(),
                    None => break None,
                }
            };
            let end = node.end.unwrap_or(node.start);
            let entry = services.entry(service.clone()).or_insert_with(|| Service {
                start: node.start,
                end,
                ..Default::default()
            });
            entry.start = entry.start.min(node.start);
            entry.end = entry.end.max(end);
            entry.statistics.add(node);
            let caller = match caller {
                Some(caller) => caller,
                None => {
                    entry.root = true;
                    client.clone()
                }
            };
            let from =
                services.entry(caller).or_insert_with(|| Service { start: node.start, end, ..Default::default() });
            from.start = from.start.min(node.start);
            from.end = from.end.max(end);
            from.edges.entry(service).or_default().add(node);
        }
    }
    let references: HashMap<(String, &'static str), usize> =
        services.keys().enumerate().map(|(index, key)| (key.clone(), index)).collect();
    services
        .iter()
        .map(|((name, kind), service)| {
            let edges: Vec<Value> = service
                .edges
                .iter()
                .map(|(target, statistics)| {
                    json!({
                        "ReferenceId": references[target],
                        "StartTime": service.start,
                        "EndTime": service.end,
                        "SummaryStatistics": statistics.json(),
                        "Aliases": [],
                    })
                })
                .collect();
            let mut value = json!({
                "ReferenceId": references[&(name.clone(), *kind)],
                "Name": name,
                "Names": [name],
                "Root": service.root,
                "Type": kind,
                "State": "active",
                "StartTime": service.start,
                "EndTime": service.end,
                "Edges": edges,
            });
            if *kind != "client" {
                value["SummaryStatistics"] = service.statistics.json();
            }
            value
        })
        .collect()
}
