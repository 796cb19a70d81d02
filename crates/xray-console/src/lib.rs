//! The X-Ray daemon's local console: every trace visible with no AWS account at all.
//!
//! - [`Store`]: segment documents kept by trace, bounded by a number of traces and by bytes (the oldest traces go
//!   first), optionally journaled to a file so a restart keeps them;
//! - the X-Ray read API on it, on AWS's paths and JSON (`GetTraceSummaries` with a subset of the [`Filter`]
//!   language, `BatchGetTraces`, `GetServiceGraph`), so the AWS CLI and SDKs work against `http://localhost:2000`;
//! - `GetSamplingRules`/`SamplingTargets` answered from the configured rules with X-Ray's reservoir and fixed-rate
//!   arithmetic ([`Sampler`]);
//! - OTLP/HTTP spans (`POST /v1/traces`) stored as segments, so the browser's spans join their trace;
//! - a page at `/` that lists recent traces, shows one as a waterfall, and draws the service map.
//!
//! The daemon hands documents over with [`Console::offer`], which never blocks: a bounded queue feeds a thread of
//! the console's own, and what does not fit is counted as dropped.

pub mod api;
pub mod filter;
pub mod graph;
pub mod sampling;
pub mod segment;
pub mod store;
pub mod summary;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

pub use api::ApiError;
pub use filter::{Filter, FilterError};
pub use sampling::Sampler;
pub use store::{Limits, Source, Store, StoreStats};
pub use xray_protocol::SamplingRule;

/// Documents waiting for the console's thread, at most.
const QUEUE_DOCUMENTS: usize = 8192;
/// Bytes of documents waiting for the console's thread, at most.
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// What stops the console from starting.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the console thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub limits: Limits,
    /// The journal that keeps traces across restarts.
    pub file: Option<PathBuf>,
    /// The sampling rules, as the daemon's configuration reads them from the rule file (X-Ray's `Default` is
    /// added unless one is named so).
    pub rules: Vec<SamplingRule>,
    /// Whether the console answers the sampling API (when the daemon does not forward to X-Ray).
    pub serve_sampling: bool,
}

impl ConsoleConfig {
    /// 1000 traces or 64 MB, no file, X-Ray's `Default` rule only, sampling answered.
    pub fn new() -> Self {
        Self {
            limits: Limits { max_traces: 1000, max_bytes: 64 * 1024 * 1024 },
            file: None,
            rules: Vec::new(),
            serve_sampling: true,
        }
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What the console answers when no rule file is configured or found: X-Ray's `Default` rule, as in a new account.
pub fn default_rules() -> SamplingRule {
    SamplingRule::default_rule()
}

/// The console: cheap to clone; its thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Mutex<Store>>,
    sampler: Mutex<Sampler>,
    queue: SyncSender<(String, Source)>,
    queued_bytes: Arc<AtomicUsize>,
    dropped: AtomicU64,
    serve_sampling: bool,
}

impl Console {
    /// Loads the journal (if any) and starts the thread that stores what [`Console::offer`] hands over.
    pub fn start(config: ConsoleConfig) -> Result<Self, ConsoleError> {
        let store = match &config.file {
            Some(path) => Store::with_journal(config.limits, path)
                .map_err(|source| ConsoleError::File { path: path.clone(), source })?,
            None => Store::new(config.limits),
        };
        let store = Arc::new(Mutex::new(store));
        let (queue, documents) = sync_channel(QUEUE_DOCUMENTS);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("xray-console".into())
            .spawn({
                let (store, queued_bytes) = (store.clone(), queued_bytes.clone());
                move || ingest(&store, &documents, &queued_bytes)
            })
            .map_err(ConsoleError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                sampler: Mutex::new(Sampler::new(config.rules, api::now())),
                queue,
                queued_bytes,
                dropped: AtomicU64::new(0),
                serve_sampling: config.serve_sampling,
            }),
        })
    }

    /// Hands a document over without waiting; `false` (and counted as dropped) when the queue is full.
    pub fn offer(&self, document: String, source: Source) -> bool {
        let size = document.len();
        let queued = self.inner.queued_bytes.fetch_add(size, Ordering::Relaxed);
        let result = if queued + size > QUEUE_BYTES {
            Err(TrySendError::Full((document, source)))
        } else {
            self.inner.queue.try_send((document, source))
        };
        match result {
            Ok(()) => true,
            Err(_) => {
                self.inner.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The store's counters (with what [`Console::offer`] dropped).
    pub fn stats(&self) -> StoreStats {
        StoreStats { dropped: self.inner.dropped.load(Ordering::Relaxed), ..self.lock_store().stats() }
    }

    /// Documents handed over but not stored yet.
    pub fn pending_bytes(&self) -> usize {
        self.inner.queued_bytes.load(Ordering::Relaxed)
    }

    /// The console's routes: the X-Ray read API, sampling (if configured), OTLP and the page.
    pub fn router(&self) -> Router {
        api::router(self.clone(), self.inner.serve_sampling)
    }

    /// Whether the router answers the sampling API itself.
    pub fn serves_sampling(&self) -> bool {
        self.inner.serve_sampling
    }

    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.inner.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_sampler(&self) -> MutexGuard<'_, Sampler> {
        self.inner.sampler.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The console's thread: stores documents in batches (one lock per batch), flushing the journal after each.
fn ingest(store: &Mutex<Store>, documents: &Receiver<(String, Source)>, queued_bytes: &AtomicUsize) {
    while let Ok(first) = documents.recv() {
        let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = Some(first);
        let mut taken = 0;
        while let Some((document, source)) = next.take() {
            queued_bytes.fetch_sub(document.len(), Ordering::Relaxed);
            if let Err(error) = store.insert(&document, source) {
                tracing::debug!(%error, "the console keeps segment documents only");
            }
            taken += 1;
            if taken < 256 {
                next = documents.try_recv().ok();
            }
        }
        store.flush();
    }
}
