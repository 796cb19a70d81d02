//! The embedded trace store: segment documents grouped by trace, bounded by a number of traces and by bytes
//! (whichever is reached first, the oldest traces go first), optionally journaled to a file so a restart keeps them.
//!
//! A segment id is stored once. Our backend's span ids are its segment ids, so a span that reaches the console both
//! as an X-Ray segment (UDP) and as an OpenTelemetry span (OTLP) is the same node: the X-Ray document wins, since it
//! is what an X-Ray SDK made of it. A document sent again (an SDK sends an in-progress segment, then the finished
//! one) replaces the earlier copy.
//!
//! The journal is JSON lines (`{"source":"xray","document":"..."}`), appended as documents arrive and rewritten
//! with only what the store still holds once it has grown to twice that; a line that does not read back is skipped
//! and counted, never fatal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::segment::{self, DocumentError, Node};

/// What one stored document costs beyond its text and nodes: the struct, its slot in the trace, the index entry.
const DOCUMENT_OVERHEAD_BYTES: usize = 128;
/// What one trace costs beyond its documents: its map entries and order slot.
const TRACE_OVERHEAD_BYTES: usize = 256;

/// Where a document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A segment document, by UDP (or the daemon's API).
    Xray,
    /// An OpenTelemetry span, converted.
    Otlp,
}

/// A document as kept.
#[derive(Debug, Clone)]
pub struct Document {
    pub text: String,
    pub nodes: Vec<Node>,
    pub source: Source,
}

impl Document {
    fn top_id(&self) -> &str {
        &self.nodes[0].id
    }

    fn footprint(&self) -> usize {
        self.text.len() + self.nodes.iter().map(Node::footprint).sum::<usize>() + DOCUMENT_OVERHEAD_BYTES
    }
}

/// One trace's documents.
#[derive(Debug, Clone)]
pub struct Trace {
    pub id: String,
    pub documents: Vec<Document>,
    /// Arrival order of the trace's first document: eviction order.
    sequence: u64,
    bytes: usize,
}

impl Trace {
    /// Every node of every document.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.documents.iter().flat_map(|document| document.nodes.iter())
    }
}

/// The store's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_traces: usize,
    pub max_bytes: usize,
}

/// What the store has done, for the page and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub traces: usize,
    pub documents: usize,
    /// Bytes counted against the bound now, and the most ever.
    pub bytes: usize,
    pub peak_bytes: usize,
    pub stored: u64,
    /// Copies of a segment already held (the OTLP copy of an X-Ray segment).
    pub duplicates: u64,
    pub evicted_traces: u64,
    /// Documents that are not segment documents.
    pub invalid: u64,
    /// Journal lines skipped at start-up.
    pub corrupt_lines: u64,
    /// Documents the daemon could not hand over because the console was busy.
    pub dropped: u64,
}

/// What [`Store::insert`] did with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    Duplicate,
}

/// The store. Not synchronised: the console wraps it in a mutex.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    traces: HashMap<String, Trace>,
    order: BTreeMap<u64, String>,
    next_sequence: u64,
    stats: StoreStats,
    journal: Option<Journal>,
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            traces: HashMap::new(),
            order: BTreeMap::new(),
            next_sequence: 0,
            stats: StoreStats::default(),
            journal: None,
        }
    }

    /// A store journaled to `path`: what the file holds is loaded first (bad lines skipped and counted), then the
    /// file is rewritten with what fits and appended to from then on.
    pub fn with_journal(limits: Limits, path: &Path) -> std::io::Result<Self> {
        let mut store = Self::new(limits);
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else {
                    store.stats.corrupt_lines += 1;
                    continue;
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<JournalLine>(&line) {
                    Ok(entry) if store.insert(&entry.document, entry.source).is_ok() => {}
                    _ => store.stats.corrupt_lines += 1,
                }
            }
        }
        if store.stats.corrupt_lines > 0 {
            tracing::warn!(
                file = %path.display(),
                skipped = store.stats.corrupt_lines,
                "skipped journal lines that do not read back as segment documents"
            );
        }
        store.journal = Some(Journal::create(path, store.documents_in_order())?);
        Ok(store)
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats { traces: self.traces.len(), ..self.stats }
    }

    /// Counts a document the console could not take.
    pub fn count_dropped(&mut self, count: u64) {
        self.stats.dropped += count;
    }

    pub fn trace(&self, id: &str) -> Option<&Trace> {
        self.traces.get(id)
    }

    /// Every trace, newest first.
    pub fn traces(&self) -> impl Iterator<Item = &Trace> {
        self.order.values().rev().filter_map(|id| self.traces.get(id))
    }

    /// Keeps a segment document, evicting the oldest traces while over a bound.
    pub fn insert(&mut self, text: &str, source: Source) -> Result<Inserted, DocumentError> {
        let parsed = segment::parse(text).inspect_err(|_| self.stats.invalid += 1)?;
        let document = Document { text: text.to_owned(), nodes: parsed.nodes, source };
        let inserted = self.insert_document(parsed.trace_id, document);
        if inserted == Inserted::Stored
            && let Some(journal) = &mut self.journal
        {
            journal.append(text, source);
        }
        self.compact_if_needed();
        Ok(inserted)
    }

    fn insert_document(&mut self, trace_id: String, document: Document) -> Inserted {
        let sequence = self.next_sequence;
        let trace = self.traces.entry(trace_id.clone()).or_insert_with(|| Trace {
            id: trace_id.clone(),
            documents: Vec::new(),
            sequence,
            bytes: TRACE_OVERHEAD_BYTES,
        });
        if trace.sequence == sequence {
            self.next_sequence += 1;
            self.order.insert(sequence, trace_id.clone());
            self.stats.bytes += TRACE_OVERHEAD_BYTES;
        }
        let top = document.top_id().to_owned();
        let covered: HashSet<&str> = document.nodes.iter().map(|node| node.id.as_str()).collect();
        // Already held inside another document, or held as X-Ray while this is the OTLP copy: keep what we have.
        let duplicate = trace.documents.iter().any(|held| {
            held.nodes[1..].iter().any(|node| node.id == top)
                || (held.top_id() == top && held.source == Source::Xray && document.source == Source::Otlp)
        });
        if duplicate {
            self.stats.duplicates += 1;
            return Inserted::Duplicate;
        }
        // Earlier copies of what this document holds go.
        let (mut freed, before) = (0, trace.documents.len());
        trace.documents.retain(|held| {
            let replaced = covered.contains(held.top_id());
            if replaced {
                freed += held.footprint();
            }
            !replaced
        });
        let removed = before - trace.documents.len();
        let added = document.footprint();
        trace.bytes = trace.bytes + added - freed;
        trace.documents.push(document);
        self.stats.bytes = self.stats.bytes + added - freed;
        self.stats.documents = self.stats.documents + 1 - removed;
        self.stats.stored += 1;
        self.evict(&trace_id);
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.stats.bytes);
        Inserted::Stored
    }

    /// Drops the oldest traces while over a bound; `keep` (the trace just written to) goes last.
    fn evict(&mut self, keep: &str) {
        while self.traces.len() > self.limits.max_traces || self.stats.bytes > self.limits.max_bytes {
            let oldest = self.order.iter().map(|(sequence, id)| (*sequence, id.clone())).find(|(_, id)| id != keep);
            let Some((sequence, id)) = oldest else { break };
            self.order.remove(&sequence);
            if let Some(trace) = self.traces.remove(&id) {
                self.stats.bytes -= trace.bytes;
                self.stats.documents -= trace.documents.len();
                self.stats.evicted_traces += 1;
            }
        }
    }

    fn documents_in_order(&self) -> Vec<(&str, Source)> {
        self.order
            .values()
            .filter_map(|id| self.traces.get(id))
            .flat_map(|trace| trace.documents.iter().map(|document| (document.text.as_str(), document.source)))
            .collect()
    }

    /// Rewrites the journal once it holds twice what the store does (evicted and replaced documents).
    fn compact_if_needed(&mut self) {
        let live = self.stats.documents;
        let Some(journal) = &self.journal else { return };
        if journal.lines <= 2 * live + 1000 {
            return;
        }
        let path = journal.path.clone();
        let documents = self.documents_in_order();
        match Journal::create(&path, documents) {
            Ok(journal) => self.journal = Some(journal),
            Err(error) => {
                tracing::warn!(%error, file = %path.display(), "cannot rewrite the console journal; no longer writing it");
                self.journal = None;
            }
        }
    }

    /// Writes buffered journal lines to the file.
    pub fn flush(&mut self) {
        if let Some(journal) = &mut self.journal
            && let Err(error) = journal.writer.flush()
        {
            tracing::warn!(%error, file = %journal.path.display(), "writing the console journal");
        }
    }
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    source: Source,
    document: String,
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    writer: BufWriter<File>,
    lines: usize,
}

impl Journal {
    /// Writes `documents` to a new file that replaces `path` at once (a crash leaves the old or the new one).
    fn create(path: &Path, documents: Vec<(&str, Source)>) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let temporary = path.with_extension("tmp");
        let mut writer = BufWriter::new(File::create(&temporary)?);
        let lines = documents.len();
        for (text, source) in documents {
            write_line(&mut writer, text, source)?;
        }
        writer.flush()?;
        fs::rename(&temporary, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), writer: BufWriter::new(file), lines })
    }

    fn append(&mut self, text: &str, source: Source) {
        match write_line(&mut self.writer, text, source) {
            Ok(()) => self.lines += 1,
            Err(error) => tracing::warn!(%error, file = %self.path.display(), "writing the console journal"),
        }
    }
}

fn write_line(writer: &mut impl Write, text: &str, source: Source) -> std::io::Result<()> {
    let line =
        serde_json::to_string(&JournalLine { source, document: text.to_owned() }).map_err(std::io::Error::other)?;
    writer.write_all(line.as_bytes())?;
    writer.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(trace: u32, id: &str, extra: &str) -> String {
        format!(
            r#"{{"trace_id":"1-00000000-{trace:024x}","id":"{id}","name":"svc","start_time":1.0,"end_time":2.0{extra}}}"#
        )
    }

    const LIMITS: Limits = Limits { max_traces: 100, max_bytes: 10 * 1024 * 1024 };

    #[test]
    fn the_otlp_copy_of_an_xray_segment_is_stored_once_whichever_comes_first() {
        let mut store = Store::new(LIMITS);
        assert_eq!(store.insert(&document(1, "aaaaaaaaaaaaaaaa", ""), Source::Xray), Ok(Inserted::Stored));
        assert_eq!(store.insert(&document(1, "aaaaaaaaaaaaaaaa", ""), Source::Otlp), Ok(Inserted::Duplicate));
        assert_eq!(store.insert(&document(2, "bbbbbbbbbbbbbbbb", ""), Source::Otlp), Ok(Inserted::Stored));
        assert_eq!(store.insert(&document(2, "bbbbbbbbbbbbbbbb", ""), Source::Xray), Ok(Inserted::Stored));
        let nested = r#","subsegments":[{"id":"cccccccccccccccc","name":"q","start_time":1.1,"end_time":1.2}]"#;
        assert_eq!(store.insert(&document(3, "cccccccccccccccc", ""), Source::Otlp), Ok(Inserted::Stored));
        assert_eq!(store.insert(&document(3, "dddddddddddddddd", nested), Source::Xray), Ok(Inserted::Stored));
        assert_eq!(store.insert(&document(3, "cccccccccccccccc", ""), Source::Otlp), Ok(Inserted::Duplicate));
        for (trace, nodes) in [(1, 1), (2, 1), (3, 2)] {
            let trace = store.trace(&format!("1-00000000-{trace:024x}")).unwrap();
            assert_eq!(trace.nodes().count(), nodes, "{:?}", trace.documents);
        }
        assert_eq!(store.trace("1-00000000-000000000000000000000002").unwrap().documents[0].source, Source::Xray);
        assert_eq!(store.stats().documents, 3);
    }

    #[test]
    fn the_oldest_traces_go_first_when_either_bound_is_reached() {
        let mut store = Store::new(Limits { max_traces: 3, max_bytes: usize::MAX });
        for trace in 0..5 {
            store.insert(&document(trace, "aaaaaaaaaaaaaaaa", ""), Source::Xray).unwrap();
        }
        let kept: Vec<&str> = store.traces().map(|trace| trace.id.as_str()).collect();
        assert_eq!(
            kept,
            [
                "1-00000000-000000000000000000000004",
                "1-00000000-000000000000000000000003",
                "1-00000000-000000000000000000000002"
            ]
        );
        let one = Store::new(LIMITS).tap_insert(&document(0, "aaaaaaaaaaaaaaaa", "")).stats().bytes;
        let mut store = Store::new(Limits { max_traces: 1000, max_bytes: one * 2 + one / 2 });
        for trace in 0..10 {
            store.insert(&document(trace, "aaaaaaaaaaaaaaaa", ""), Source::Xray).unwrap();
            assert!(store.stats().bytes <= one * 2 + one / 2);
        }
        assert_eq!(store.stats().traces, 2);
        assert_eq!(store.stats().evicted_traces, 8);
    }

    impl Store {
        fn tap_insert(mut self, text: &str) -> Self {
            self.insert(text, Source::Xray).unwrap();
            self
        }
    }

    #[test]
    fn the_journal_brings_traces_back_and_skips_what_does_not_read() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("console/traces.jsonl");
        {
            let mut store = Store::with_journal(LIMITS, &path).unwrap();
            store.insert(&document(1, "aaaaaaaaaaaaaaaa", ""), Source::Xray).unwrap();
            store.insert(&document(2, "bbbbbbbbbbbbbbbb", ""), Source::Otlp).unwrap();
            store.flush();
        }
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("{\"source\":\"xray\",\"document\":\"{not json\"}\ngarbage\n");
        fs::write(&path, text).unwrap();
        let store = Store::with_journal(LIMITS, &path).unwrap();
        assert_eq!(store.stats().traces, 2);
        assert_eq!(store.stats().corrupt_lines, 2);
        assert_eq!(store.trace("1-00000000-000000000000000000000002").unwrap().documents[0].source, Source::Otlp);
        // Rewritten without the bad lines.
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
    }

    #[test]
    fn the_journal_is_compacted_once_it_holds_twice_the_store() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("traces.jsonl");
        let mut store = Store::with_journal(Limits { max_traces: 10, max_bytes: usize::MAX }, &path).unwrap();
        for trace in 0..3000 {
            store.insert(&document(trace, "aaaaaaaaaaaaaaaa", ""), Source::Xray).unwrap();
        }
        store.flush();
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * 10 + 1001, "{lines} lines for 10 traces");
        drop(store);
        assert_eq!(
            Store::with_journal(Limits { max_traces: 10, max_bytes: usize::MAX }, &path).unwrap().stats().traces,
            10
        );
    }
}
