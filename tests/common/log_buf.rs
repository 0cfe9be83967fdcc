//! A log capture: a `tracing_subscriber` writer that keeps every line in memory.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Bytes written by the subscriber; clones share them.
#[derive(Clone, Default)]
pub struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    /// Captures this thread's log lines at `filter` (an `EnvFilter` directive) until the guard
    /// is dropped. With a current-thread test runtime that is the gateway's tasks and its
    /// connection workers (they take the starting thread's subscriber), and no other test's.
    pub fn capture(filter: &str) -> (Self, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::prelude::*;
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::EnvFilter::new(filter)),
        );
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// How often `needle` occurs in it.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}
