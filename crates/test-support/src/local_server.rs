//! An axum router served on 127.0.0.1 (a port chosen by the OS) by a thread with its own small runtime, so a test
//! may block (on a flush, say) without starving the stand-in; stopped when dropped. The stand-ins of
//! [`crate::rollbar`], [`crate::cloudwatch_logs`] and [`crate::otlp_metrics`] run on it, each with a change counter
//! their `wait_for` helpers wake on.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Router;
use tokio::sync::{oneshot, watch};

use crate::otlp::{WAIT, wait_until};

/// The running server; stops when dropped.
pub(crate) struct LocalServer {
    pub(crate) address: SocketAddr,
    changes: watch::Receiver<usize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Tells the waiting tests that something arrived.
pub(crate) type Changed = std::sync::Arc<watch::Sender<usize>>;

impl LocalServer {
    /// Serves the router `make_router` builds (handed the change notifier) on a thread named `name`.
    pub(crate) fn start(name: &str, make_router: impl FnOnce(Changed) -> Router + Send + 'static) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| panic!("binding {name}: {error}"));
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let address = listener.local_addr().expect("the server's address");
        let (changed, changes) = watch::channel(0);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("the server's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let app = make_router(std::sync::Arc::new(changed));
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                        .expect("serving");
                });
            })
            .expect("spawning the server thread");
        Self { address, changes, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// Waits up to [`WAIT`] until `check` finds something, re-checking each time the server records a change.
    pub(crate) async fn wait_for<T>(&self, check: impl Fn() -> Option<T>) -> Option<T> {
        wait_until(self.changes.clone(), check).await
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The message of a stand-in's failed wait.
pub(crate) fn not_within(what: &str, server: &str) -> String {
    format!("no {what} at the {server} within {WAIT:?}")
}
