//! Second baseline for benches/load.sh: a minimal hyper 1 + tokio proxy (no auth, no pingora)
//! from 127.0.0.1:18191 to the peer kit's upstream on 127.0.0.1:18080. It is shaped like
//! flowgate's connection workers (ADR 0015): one current-thread runtime per CPU, each with its own
//! `SO_REUSEPORT` listener and its own keep-alive pool of upstream connections, so nothing is
//! shared across threads. It shows what a proxy costs per request on this stack without
//! pingora's path (issue 14 item 3, ADR 0022).
//!
//!   cargo run --release --example bare_hyper
//!
//! BARE_HYPER_ADDR sets the listen address, BARE_HYPER_WORKERS the number of threads.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

const UPSTREAM: &str = "127.0.0.1:18080";

type Pool = Rc<RefCell<Vec<SendRequest<Incoming>>>>;

/// A response body that hands its upstream connection back to the worker's pool once the body
/// has been forwarded (or dropped: a closed connection is discarded on the next checkout).
struct Pooled {
    body: Option<Incoming>,
    back: Option<(SendRequest<Incoming>, Pool)>,
}

impl hyper::body::Body for Pooled {
    type Data = bytes::Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.body.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }
    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body
            .as_ref()
            .map_or(hyper::body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            pool.borrow_mut().push(sender);
        }
    }
}

async fn checkout(pool: &Pool) -> std::io::Result<SendRequest<Incoming>> {
    loop {
        let Some(mut sender) = pool.borrow_mut().pop() else {
            break;
        };
        if sender.is_closed() {
            continue;
        }
        if sender.ready().await.is_ok() {
            return Ok(sender);
        }
    }
    let stream = TcpStream::connect(UPSTREAM).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn proxy(pool: Pool, req: Request<Incoming>) -> Result<Response<Pooled>, Infallible> {
    let bad_gateway = || {
        let mut resp = Response::new(Pooled { body: None, back: None });
        *resp.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        resp
    };
    let Ok(mut sender) = checkout(&pool).await else {
        return Ok(bad_gateway());
    };
    match sender.send_request(req).await {
        Ok(resp) => Ok(resp.map(|body| Pooled {
            body: Some(body),
            back: Some((sender, pool)),
        })),
        Err(_) => Ok(bad_gateway()),
    }
}

fn worker(addr: SocketAddr) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let pool: Pool = Rc::default();
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let pool = pool.clone();
            tokio::task::spawn_local(async move {
                let svc = hyper::service::service_fn(move |req| proxy(pool.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn main() {
    let addr: SocketAddr = std::env::var("BARE_HYPER_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:18191".into())
        .parse()
        .expect("BARE_HYPER_ADDR");
    let workers = std::env::var("BARE_HYPER_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads: Vec<_> = (0..workers).map(|_| std::thread::spawn(move || worker(addr))).collect();
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            eprintln!("bare_hyper: {e}");
            std::process::exit(1);
        }
    }
}
