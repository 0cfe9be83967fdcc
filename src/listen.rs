//! Listeners: our own accept loop feeding pingora's HTTP proxy (see
//! `docs/decisions/0002-own-accept-loop.md`), and the write-buffered stream each connection is
//! wrapped in.
//!
//! pingora's own listeners give every connection a 1460-byte write buffer, so a response
//! header and a small body leave in one `send`. A stream built with `From<TcpStream>` outside
//! pingora has none (the setter is crate-private), which costs one extra `send` per response;
//! [`WriteBuffered`] restores the buffer. pingora flushes after each response part it writes.

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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
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

/// Accepts connections until shutdown, serving each on its own task. At most `slots`
/// connections are open at once: beyond that, accepting waits (the kernel backlog queues new
/// clients) instead of spawning without bound.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Arc<ProxyApp>,
    tls: Option<Arc<Acceptor>>,
    mut shutdown: ShutdownWatch,
    slots: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
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
                    tokio::spawn(async move {
                        serve_connection(tcp, app, tls, shutdown).await;
                        drop(permit);
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
) {
    use std::os::fd::AsRawFd;
    let fd = tcp.as_raw_fd();
    let mut l4: L4Stream = tcp.into();
    l4.set_socket_digest(SocketDigest::from_raw_fd(fd));
    let buffered = WriteBuffered::new(l4);
    let mut stream: pingora::protocols::Stream = match tls {
        Some(acc) => match acc.tls_handshake(buffered).await {
            Ok(s) => Box::new(s),
            Err(e) => {
                tracing::debug!(error = %e, "tls handshake failed");
                return;
            }
        },
        None => Box::new(buffered),
    };
    while let Some(next) = app.process_new(stream, &shutdown).await {
        stream = next;
    }
}
