//! Listeners: our own accept loop feeding pingora's HTTP proxy (see
//! `docs/decisions/0002-own-accept-loop.md`), the bound on open connections, and the two
//! wrappers every connection gets: a write buffer ([`buffered`]) and read deadlines
//! ([`guard`]).

use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::server::ShutdownWatch;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Implements, for a stream wrapper, the pingora `IO` traits that only forward: `AsyncWrite`
/// through its `inner` field, and the id, digests and peek through its `stream()` and
/// `stream_mut()` accessors (the stream underneath).
macro_rules! forward_io {
    ($t:ty) => {
        impl tokio::io::AsyncWrite for $t {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }

        impl pingora::protocols::UniqueID for $t {
            fn id(&self) -> pingora::protocols::UniqueIDType {
                self.stream().id()
            }
        }

        impl pingora::protocols::GetTimingDigest for $t {
            fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
                self.stream().get_timing_digest()
            }
        }

        impl pingora::protocols::GetProxyDigest for $t {
            fn get_proxy_digest(&self) -> Option<std::sync::Arc<pingora::protocols::raw_connect::ProxyDigest>> {
                self.stream().get_proxy_digest()
            }
        }

        impl pingora::protocols::GetSocketDigest for $t {
            fn get_socket_digest(&self) -> Option<std::sync::Arc<pingora::protocols::SocketDigest>> {
                self.stream().get_socket_digest()
            }
            fn set_socket_digest(&mut self, d: pingora::protocols::SocketDigest) {
                self.stream_mut().set_socket_digest(d)
            }
        }

        #[async_trait::async_trait]
        impl pingora::protocols::Peek for $t {
            async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
                self.stream_mut().try_peek(buf).await
            }
        }
    };
}

pub mod buffered;
pub mod guard;
pub(crate) mod workers;

pub use buffered::WriteBuffered;
pub use guard::{header_done, request_done, Deadlines, Guarded};
use guard::{PHASE_HEADER, PHASE_OFF};

/// The bound on open connections: one semaphore permit per connection (an accept loop holds one
/// while it waits, so that it never accepts past the bound), and the count of connections open.
#[derive(Debug)]
pub(crate) struct Slots {
    pub(crate) permits: tokio::sync::Semaphore,
    pub(crate) open: std::sync::atomic::AtomicUsize,
    /// Set when the shutdown timeout has passed: every connection still open is dropped.
    pub(crate) abort: tokio::sync::watch::Sender<bool>,
}

/// One open connection's share of [`Slots`], given back when dropped (also on a panic).
struct ConnectionSlot(Arc<Slots>);

impl ConnectionSlot {
    /// Counts a connection whose permit has been taken (and forgotten).
    fn taken(slots: Arc<Slots>) -> Self {
        slots.open.fetch_add(1, Ordering::Relaxed);
        Self(slots)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.permits.add_permits(1);
    }
}

/// Accepts connections until shutdown, serving each on its own task on one of the `workers`
/// (in turn), with that worker's app (`apps[i]`, one per worker: each has its own upstream
/// connection pool, so a pooled connection is reused on the thread whose reactor it is registered
/// with and the pool's lock is never contended; ADR 0022). At most `slots` connections are open at once: beyond that, accepting waits (the
/// kernel backlog queues new clients) instead of spawning without bound.
pub(crate) async fn accept_loop<A: ServerApp + Send + Sync + 'static>(
    listener: TcpListener,
    apps: Arc<[Arc<A>]>,
    tls: Option<Arc<Acceptor>>,
    mut shutdown: ShutdownWatch,
    slots: Arc<Slots>,
    deadlines: Deadlines,
    workers: Arc<workers::Workers>,
) {
    loop {
        let permit = tokio::select! {
            p = slots.permits.acquire() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _peer)) => {
                    let _ = tcp.set_nodelay(true);
                    // Taken off this runtime's reactor, registered with the worker's below.
                    let tcp = match tcp.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "accepted connection not handed over");
                            continue;
                        }
                    };
                    let (tls, shutdown) = (tls.clone(), shutdown.clone());
                    permit.forget();
                    let slot = ConnectionSlot::taken(slots.clone());
                    let apps = apps.clone();
                    workers.spawn_on_next(move |i| async move {
                        let app = apps[i % apps.len()].clone();
                        let tcp = match tokio::net::TcpStream::from_std(tcp) {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!(error = %e, "connection not registered on its worker");
                                return;
                            }
                        };
                        let mut abort = slot.0.abort.subscribe();
                        tokio::select! {
                            () = serve_connection(tcp, app, tls, shutdown, deadlines) => {}
                            _ = abort.wait_for(|a| *a) => {
                                tracing::debug!("connection closed at the shutdown timeout");
                            }
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection<A: ServerApp + Send + Sync + 'static>(
    tcp: tokio::net::TcpStream,
    app: Arc<A>,
    tls: Option<Arc<Acceptor>>,
    shutdown: ShutdownWatch,
    deadlines: Deadlines,
) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let mut l4: L4Stream = tcp.into();
    l4.set_socket_digest(SocketDigest::from_raw_fd(fd));
    let buffered = WriteBuffered::new(l4);
    let inner: pingora::protocols::Stream = match tls {
        // The handshake is part of the first request's header time.
        Some(acc) => match tokio::time::timeout(deadlines.header, acc.tls_handshake(buffered)).await {
            Ok(Ok(s)) => Box::new(s),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "tls handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("tls handshake timed out");
                return;
            }
        },
        None => Box::new(buffered),
    };
    let phase = match inner.selected_alpn_proto() {
        Some(pingora::protocols::ALPN::H2) => PHASE_OFF,
        _ => PHASE_HEADER,
    };
    let mut stream: pingora::protocols::Stream = Box::new(Guarded::new(inner, deadlines, phase));
    while let Some(next) = app.process_new(stream, &shutdown).await {
        stream = next;
    }
}
