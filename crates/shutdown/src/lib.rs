//! The stop signal every Cruddur server waits for: SIGINT (Ctrl-C in a terminal) or SIGTERM (`docker stop`,
//! Kubernetes, our `cargo xtask run`). Servers take a shutdown future, so `main` passes [`signal()`] and tests pass
//! their own.

/// Completes on the first SIGINT or SIGTERM.
pub async fn signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
