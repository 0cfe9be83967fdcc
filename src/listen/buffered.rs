//! [`WriteBuffered`]: a TCP stream with a write buffer. pingora's own listeners give every
//! connection a 1460-byte write buffer, so a response header and a small body leave in one
//! `send`. A stream built with `From<TcpStream>` outside pingora has none (the setter is
//! crate-private), which costs one extra `send` per response; this wrapper restores the buffer.
//! pingora flushes after each response part it writes.

use async_trait::async_trait;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWriteExt, BufWriter, ReadBuf};

/// Size of the write buffer: one TCP segment, as pingora's listeners use.
pub const WRITE_BUFFER_BYTES: usize = 1460;

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

impl WriteBuffered {
    fn stream(&self) -> &L4Stream {
        self.inner.get_ref()
    }
    fn stream_mut(&mut self) -> &mut L4Stream {
        self.inner.get_mut()
    }
}

forward_io!(WriteBuffered);

#[async_trait]
impl Shutdown for WriteBuffered {
    async fn shutdown(&mut self) {
        let _ = self.inner.flush().await;
        Shutdown::shutdown(self.inner.get_mut()).await
    }
}

impl pingora::protocols::Ssl for WriteBuffered {}
