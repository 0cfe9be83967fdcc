//! Listeners: our own accept loop feeding pingora's HTTP proxy (see
//! `docs/decisions/0002-own-accept-loop.md`), and the write-buffered stream each connection is
//! wrapped in.
//!
//! pingora's own listeners give every connection a 1460-byte write buffer, so a response
//! header and a small body leave in one `send`. A stream built with `From<TcpStream>` outside
//! pingora has none (the setter is crate-private), which costs one extra `send` per response;
//! [`WriteBuffered`] restores the buffer. pingora flushes after each response part it writes.
//!
//! pingora bounds each read of a request header (60 s) but not the whole header, and waits on
//! an idle keep-alive connection forever: a client sending one byte every few seconds, or
//! none after its first request, holds a connection slot indefinitely (slowloris). Every
//! connection is therefore wrapped in [`Guarded`], which gives the header a deadline from its
//! first byte (from the accept for a new connection) and the idle wait another; the proxy
//! tells it where a request's header ends ([`header_done`]) and where the request ends
//! ([`request_done`]).

use crate::proxy::GatewayProxy;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, TimingDigest, UniqueID,
    UniqueIDType,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::net::TcpListener;

/// Size of the write buffer: one TCP segment, as pingora's listeners use.
pub const WRITE_BUFFER_BYTES: usize = 1460;

/// The proxy application type.
pub(crate) type ProxyApp = pingora::proxy::HttpProxy<GatewayProxy>;

/// A TCP stream with a write buffer, implementing pingora's `IO`.
#[derive(Debug)]
pub struct WriteBuffered {
    inner: BufWriter<L4Stream>,
}

impl WriteBuffered {
    /// Wraps a pingora L4 stream.
    pub fn new(s: L4Stream) -> Self {
        Self {
            inner: BufWriter::with_capacity(WRITE_BUFFER_BYTES, s),
        }
    }
}

impl AsyncRead for WriteBuffered {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteBuffered {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for WriteBuffered {
    async fn shutdown(&mut self) {
        let _ = self.inner.flush().await;
        Shutdown::shutdown(self.inner.get_mut()).await
    }
}

impl UniqueID for WriteBuffered {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().id()
    }
}

impl Ssl for WriteBuffered {}

impl GetTimingDigest for WriteBuffered {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_ref().get_timing_digest()
    }
}

impl GetProxyDigest for WriteBuffered {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_ref().get_proxy_digest()
    }
}

impl GetSocketDigest for WriteBuffered {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_ref().get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.inner.get_mut().set_socket_digest(d)
    }
}

#[async_trait]
impl Peek for WriteBuffered {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.get_mut().try_peek(buf).await
    }
}

/// Read deadlines of a client connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Time to send a whole request header, from its first byte.
    pub header: Duration,
    /// Time an idle keep-alive connection waits for the next request.
    pub idle: Duration,
}

/// Reading a request header: the header deadline runs.
const PHASE_HEADER: u8 = 0;
/// Header parsed: body reads are bounded per read by pingora, the response by the upstream.
const PHASE_REQUEST: u8 = 1;
/// Between requests: the idle deadline runs until the next byte, which starts a header.
const PHASE_IDLE: u8 = 2;
/// HTTP/2: streams are multiplexed, so no per-request phase applies to the connection.
const PHASE_OFF: u8 = 3;

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
    fn new(inner: pingora::protocols::Stream, deadlines: Deadlines, phase: u8) -> Self {
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

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
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

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The bound on open connections: one semaphore permit per connection (an accept loop holds one
/// while it waits, so that it never accepts past the bound), and the count of connections open.
#[derive(Debug)]
pub(crate) struct Slots {
    pub(crate) permits: tokio::sync::Semaphore,
    pub(crate) open: std::sync::atomic::AtomicUsize,
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

/// Accepts connections until shutdown, serving each on its own task. At most `slots`
/// connections are open at once: beyond that, accepting waits (the kernel backlog queues new
/// clients) instead of spawning without bound.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Arc<ProxyApp>,
    tls: Option<Arc<Acceptor>>,
    mut shutdown: ShutdownWatch,
    slots: Arc<Slots>,
    deadlines: Deadlines,
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
                    let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
                    permit.forget();
                    let slot = ConnectionSlot::taken(slots.clone());
                    tokio::spawn(async move {
                        serve_connection(tcp, app, tls, shutdown, deadlines).await;
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

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    app: Arc<ProxyApp>,
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
