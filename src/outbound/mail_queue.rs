//! Mail off the request path (ENUM-4 of docs/security.md): the email stage hands a finished
//! message to this queue and answers at once, so neither the time an answer takes nor what it
//! says depends on whether a mail went out, how long the relay took, or whether it refused.
//!
//! One dedicated thread ("flowgate-mail") runs its own small tokio runtime and sends up to
//! [`MAX_CONCURRENT_SENDS`] messages at a time, each with the transport's own deadline. The
//! queue holds at most [`MAX_QUEUED_MAILS`] messages; beyond that a message is dropped and
//! logged (flooding is for the rate limits to stop, not for the request to wait on). Failures
//! are logged, never shown: the user asks for the mail again. The thread ends when the last
//! handle is dropped, after finishing what was queued.

use super::mail::{Mail, Mailer};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Messages waiting at most (sent or being sent not counted).
pub const MAX_QUEUED_MAILS: usize = 10_000;
/// Messages being sent at once.
pub const MAX_CONCURRENT_SENDS: usize = 8;

/// One message and the transport it leaves by (the one configured when it was queued, so a
/// reload does not redirect mail already accepted).
struct Job {
    mailer: Mailer,
    mail: Mail,
    /// Built and formatted, never sent (see [`MailQueue::enqueue_decoy`]).
    decoy: bool,
}

/// Messages queued or being sent, for [`MailQueue::wait_idle`].
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Pending {
    fn add(&self, n: isize) {
        let mut c = match self.count.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *c = c.saturating_add_signed(n);
        if *c == 0 {
            self.idle.notify_all();
        }
    }
}

/// A handle on the mail thread; cheap to clone.
#[derive(Clone)]
pub struct MailQueue {
    tx: tokio::sync::mpsc::Sender<Job>,
    pending: Arc<Pending>,
}

impl std::fmt::Debug for MailQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailQueue").finish_non_exhaustive()
    }
}

impl MailQueue {
    /// Starts the mail thread.
    pub fn start() -> std::io::Result<Self> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(MAX_QUEUED_MAILS);
        let pending = Arc::new(Pending::default());
        let done = pending.clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("flowgate-mail".into())
            .spawn(move || {
                rt.block_on(async move {
                    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SENDS));
                    let mut running = tokio::task::JoinSet::new();
                    while let Some(job) = rx.recv().await {
                        // Reap finished sends so the set does not grow.
                        while running.try_join_next().is_some() {}
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let done = done.clone();
                        running.spawn(async move {
                            if job.decoy {
                                let _ = job.mailer.rehearse(&job.mail);
                            } else if let Err(error) = job.mailer.send(&job.mail).await {
                                tracing::error!(%error, "mail not sent");
                            }
                            drop(permit);
                            done.add(-1);
                        });
                    }
                    while running.join_next().await.is_some() {}
                });
            })?;
        Ok(Self { tx, pending })
    }

    /// Queues `mail` for `mailer`; false (and logged) when the queue is full or closed.
    pub fn enqueue(&self, mailer: &Mailer, mail: Mail) -> bool {
        self.push(mailer, mail, false)
    }

    /// Queues `mail` to be built and formatted on the mail thread and then dropped: an answer
    /// that sends nothing (an identifier without an account) costs the machine what one that
    /// sends does, so the mail thread's work does not show in response times.
    pub fn enqueue_decoy(&self, mailer: &Mailer, mail: Mail) -> bool {
        self.push(mailer, mail, true)
    }

    fn push(&self, mailer: &Mailer, mail: Mail, decoy: bool) -> bool {
        self.pending.add(1);
        match self.tx.try_send(Job {
            mailer: mailer.clone(),
            mail,
            decoy,
        }) {
            Ok(()) => true,
            Err(e) => {
                self.pending.add(-1);
                tracing::error!(reason = %e, "mail queue refused a message; it was dropped");
                false
            }
        }
    }

    /// Blocks the calling thread until nothing is queued or being sent, or `timeout` passes;
    /// true when idle. For tests and benches (never call it on the request path).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let c = match self.pending.count.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let c = match self.pending.idle.wait_timeout_while(c, timeout, |n| *n > 0) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        *c == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::mail::MailTransport;

    #[test]
    fn queued_mail_is_written_off_the_calling_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(&MailTransport::File {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let q = MailQueue::start().unwrap();
        for i in 0..3 {
            assert!(q.enqueue(
                &mailer,
                Mail {
                    from: "a@example.test".into(),
                    to: "b@example.test".into(),
                    subject: format!("m{i}"),
                    text: "t".into(),
                    html: None,
                }
            ));
        }
        assert!(q.wait_idle(Duration::from_secs(10)));
        let written = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
            .count();
        assert_eq!(written, 3);
    }
}
