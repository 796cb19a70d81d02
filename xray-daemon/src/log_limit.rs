//! Warnings that would repeat for every segment are logged at most once per interval, with how many were held back:
//! loud enough that losses are never silent, quiet enough not to flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct RateLimitedLog {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, state: Mutex::new((None, 0)) }
    }

    pub(crate) fn warn(&self, message: &str) {
        let mut state = self.state.lock().expect("the log state is never poisoned");
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => state.1 += 1,
            _ => {
                let held_back = std::mem::take(&mut state.1);
                if held_back > 0 {
                    tracing::warn!(similar_messages_held_back = held_back, "{message}");
                } else {
                    tracing::warn!("{message}");
                }
                state.0 = Some(now);
            }
        }
    }
}
