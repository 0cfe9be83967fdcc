//! Connection workers (docs/decisions/0015): `listen.workers` threads, each running a
//! single-threaded tokio runtime. The accept loop hands every connection to one of them in turn;
//! the connection lives there until it closes (its socket is registered with that thread's
//! reactor), so a request's wakeups stay on one thread. tokio's work-stealing runtime moved
//! them between threads and woke idle workers: a third of flowgate's CPU per request went to
//! that on the 2-core bench machine (docs/performance.md, issue 14).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The worker threads of one gateway. Dropping it (or [`Workers::stop`]) ends the threads;
/// connections still open on them are closed.
#[derive(Debug)]
pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stops: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one).
    pub(crate) fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        // Log lines from connections go where the starting thread's go (the global subscriber
        // in the binary; a test's capture in tests).
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (tx, rx) = oneshot::channel::<()>();
            let dispatch = dispatch.clone();
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("flowgate-worker-{i}"))
                .spawn(move || {
                    // Runs the connections spawned onto this runtime until told to stop (or
                    // the `Workers` is gone); dropping the runtime then drops what is left.
                    tracing::dispatcher::with_default(&dispatch, || {
                        rt.block_on(async {
                            let _ = rx.await;
                        })
                    });
                })?;
            stops.push(tx);
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            stops: Mutex::new(stops),
        })
    }

    /// Runs `task` on the next worker in turn.
    #[cfg(test)]
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_on_next(|_| task);
    }

    /// Runs the task `make(i)` builds on worker `i`, the next in turn: the task can use what
    /// belongs to that worker (its proxy and upstream pool, ADR 0022).
    pub(crate) fn spawn_on_next<F>(&self, make: impl FnOnce(usize) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[i].spawn(make(i)));
    }

    /// How many worker threads there are.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Ends the worker threads; what still runs on them is dropped.
    pub(crate) fn stop(&self) {
        let stops = std::mem::take(&mut *self.stops.lock().unwrap_or_else(|e| e.into_inner()));
        for tx in stops {
            let _ = tx.send(());
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_workers_in_turn_and_stop_ends_them() {
        let w = Workers::start(2).unwrap();
        let mut names = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            w.spawn(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_string));
            });
            names.push(rx.await.unwrap().unwrap());
        }
        assert_eq!(
            names,
            [
                "flowgate-worker-0",
                "flowgate-worker-1",
                "flowgate-worker-0",
                "flowgate-worker-1"
            ]
        );
        // A task still running when the workers stop is dropped (its sender with it).
        let (tx, rx) = oneshot::channel::<()>();
        w.spawn(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
        w.stop();
        assert!(rx.await.is_err());
    }
}
