//! The threads password hashing runs on: at most [`max_concurrent_hashes`] of them (one CPU is
//! always left to the proxy), at a lower CPU priority (nice [`HASH_NICE`]), fed in FIFO order.
//!
//! argon2id is meant to be expensive: 19 MiB and two passes take ~10-15 ms of one core. On the
//! tokio blocking pool it stays off the event loop but not off the CPUs; 20 concurrent logins
//! on two cores raised the proxied p99 latency from 0.6 ms to 215 ms (`benches/login_storm.sh`,
//! PASS-4). Bounding the hashes to cores − 1 with a semaphore brought that to ~4 ms (7× idle);
//! running them on these long-lived threads instead brings it to ~2× idle. In interleaved runs
//! the nice value made no measurable difference (nice 0 and 10 alike, `SCHED_IDLE` worse;
//! docs/performance.md, "Follow-up 2"); nice 10 stays so that the proxy gets the larger share
//! when both are CPU-bound.

use super::hash::HashError;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// Nice value of the hashing threads (0 is normal, 19 the lowest priority).
pub const HASH_NICE: i32 = 10;

/// How many hashes may run at once: one less than the CPUs available, at least one.
pub fn max_concurrent_hashes() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

type Job = Box<dyn FnOnce() + Send>;

/// The job queue; workers start with the first job.
fn queue() -> &'static Mutex<mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..max_concurrent_hashes() {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("flowgate-hash-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Mutex::new(tx)
    })
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking job drops its result sender (the caller gets `HashError::Task`);
            // the worker lives on.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Sets this thread's nice value to [`HASH_NICE`]. Lowering one's own priority needs no
/// privilege; if the platform refuses anyway, hashing runs at normal priority.
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityValue, ThreadSchedulePolicy,
    };
    // thread-priority maps 0..=99 linearly onto nice 19..=-20 (rounding down); 22 is nice 10,
    // which the unit test checks.
    let value = ThreadPriorityValue::try_from(22u8).map(ThreadPriority::Crossplatform);
    let set = value.map_err(|e| e.to_string()).and_then(|p| {
        set_thread_priority_and_policy(
            thread_native_id(),
            p,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
        )
        .map_err(|e| format!("{e:?}"))
    });
    match set {
        Ok(()) => tracing::debug!(nice = HASH_NICE, "password hashing thread started"),
        Err(e) => tracing::warn!(error = %e, "cannot lower the priority of a password hashing thread"),
    }
}

/// Runs `f` on a hashing thread and waits for its result without blocking the event loop.
/// A caller that goes away does not cancel the job (it is already queued or running).
pub(crate) async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    queue()
        .lock()
        .map_err(|_| HashError::Task)?
        .send(job)
        .map_err(|_| HashError::Task)?;
    rx.await.map_err(|_| HashError::Task)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread, from /proc (field 19 of `stat`).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn jobs_run_on_low_priority_threads_and_survive_panics() {
        let (nice, name) = run(|| (own_nice(), std::thread::current().name().map(str::to_string)))
            .await
            .unwrap();
        // Lowering a priority needs no privilege; a process already below it stays where it is.
        assert_eq!(nice, HASH_NICE.max(own_nice()));
        assert!(name.unwrap().starts_with("flowgate-hash-"));
        assert!(matches!(run(|| panic!("boom")).await, Err(HashError::Task)));
        for _ in 0..max_concurrent_hashes() {
            assert_eq!(run(|| 7).await.unwrap(), 7, "a worker died with the panic");
        }
    }
}
