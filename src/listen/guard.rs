//! [`Guarded`]: read deadlines on a client connection. pingora bounds each read of a request
//! header (60 s) but not the whole header, and waits on an idle keep-alive connection forever:
//! a client sending one byte every few seconds, or none after its first request, holds a
//! connection slot indefinitely (slowloris). Every connection is therefore wrapped in
//! [`Guarded`], which gives the header a deadline from its first byte (from the accept for a new
//! connection) and the idle wait another; the proxy tells it where a request's header ends
//! ([`header_done`]) and where the request ends ([`request_done`]).

use async_trait::async_trait;
use pingora::protocols::{Shutdown, Ssl, IO};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

/// Read deadlines of a client connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Time to send a whole request header, from its first byte.
    pub header: Duration,
    /// Time an idle keep-alive connection waits for the next request.
    pub idle: Duration,
}

/// Reading a request header: the header deadline runs.
pub(super) const PHASE_HEADER: u8 = 0;
/// Header parsed: body reads are bounded per read by pingora, the response by the upstream.
const PHASE_REQUEST: u8 = 1;
/// Between requests: the idle deadline runs until the next byte, which starts a header.
const PHASE_IDLE: u8 = 2;
/// HTTP/2: streams are multiplexed, so no per-request phase applies to the connection.
pub(super) const PHASE_OFF: u8 = 3;

/// A client stream with read deadlines (see the module documentation).
#[derive(Debug)]
pub struct Guarded {
    inner: pingora::protocols::Stream,
    /// Set by the proxy through [`header_done`] and [`request_done`].
    phase: AtomicU8,
    /// The phase `sleep` was set for.
    applied: u8,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    deadlines: Deadlines,
}

impl Guarded {
    pub(super) fn new(inner: pingora::protocols::Stream, deadlines: Deadlines, phase: u8) -> Self {
        let sleep = (phase == PHASE_HEADER).then(|| Box::pin(tokio::time::sleep(deadlines.header)));
        Self {
            inner,
            phase: AtomicU8::new(phase),
            applied: phase,
            sleep,
            deadlines,
        }
    }
}

/// The guard of a pingora session's client stream, if it has one (HTTP/1).
fn guard_of(session: &pingora::proxy::Session) -> Option<&Guarded> {
    session.downstream_session.stream()?.as_any().downcast_ref::<Guarded>()
}

/// Tells the connection that a request header has been read: its deadline stops.
pub fn header_done(session: &pingora::proxy::Session) {
    if let Some(g) = guard_of(session) {
        let _ = g
            .phase
            .compare_exchange(PHASE_HEADER, PHASE_REQUEST, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Tells the connection that a request is finished: the idle deadline starts.
pub fn request_done(session: &pingora::proxy::Session) {
    if let Some(g) = guard_of(session) {
        let _ = g
            .phase
            .compare_exchange(PHASE_REQUEST, PHASE_IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let phase = this.phase.load(Ordering::Relaxed);
        if phase != this.applied {
            this.applied = phase;
            this.sleep = match phase {
                PHASE_IDLE => Some(Box::pin(tokio::time::sleep(this.deadlines.idle))),
                PHASE_HEADER => Some(Box::pin(tokio::time::sleep(this.deadlines.header))),
                _ => None,
            };
        }
        if let Some(s) = this.sleep.as_mut() {
            if s.as_mut().poll(cx).is_ready() {
                let what = if phase == PHASE_IDLE {
                    "keep-alive idle timeout"
                } else {
                    "request header timeout"
                };
                tracing::debug!(reason = what, "closing a client connection");
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, what)));
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if phase == PHASE_IDLE && buf.filled().len() > before {
            // The next request has begun.
            this.phase.store(PHASE_HEADER, Ordering::Relaxed);
            this.applied = PHASE_HEADER;
            this.sleep = Some(Box::pin(tokio::time::sleep(this.deadlines.header)));
        }
        r
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl Guarded {
    fn stream(&self) -> &dyn IO {
        &*self.inner
    }
    fn stream_mut(&mut self) -> &mut dyn IO {
        &mut *self.inner
    }
}

forward_io!(Guarded);
