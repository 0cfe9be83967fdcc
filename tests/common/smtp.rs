//! A recording SMTP server for tests, on a real loopback socket (port 0): EHLO/HELO, STARTTLS
//! (tokio-rustls, an rcgen self-signed certificate for `localhost` and 127.0.0.1), implicit TLS,
//! AUTH PLAIN and LOGIN, MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT.
//! Plus [`decoded_body`], which undoes the transfer encoding of a message's text part.
//!
//! Include it with `#[path = "common/smtp.rs"] mod smtp;`.
#![allow(dead_code)]

use base64::Engine as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Longest command line or DATA line accepted.
const MAX_LINE: usize = 64 * 1024;
/// Largest message accepted.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// MAIL FROM address (without the angle brackets).
    pub from: String,
    /// RCPT TO addresses.
    pub to: Vec<String>,
    /// The message (headers and body, CRLF line ends, dot-unstuffed).
    pub data: String,
    /// Whether the session was encrypted (STARTTLS or implicit TLS) when DATA arrived.
    pub tls: bool,
    /// The authenticated user, if the client authenticated.
    pub user: Option<String>,
}

impl Received {
    /// The first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_entity(&self.data);
        headers(head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The text part, transfer encoding undone.
    pub fn text(&self) -> String {
        decoded_body(&self.data)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    StartTls,
    Implicit,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    auth: Option<(String, String)>,
    /// Every command verb received, in order (never arguments: they may hold credentials).
    verbs: Vec<String>,
}

/// A running test SMTP server; it stops when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    count: watch::Receiver<usize>,
    ca_pem: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// A plain server (no TLS).
    pub async fn spawn() -> Self {
        Self::start(Mode::Plain).await
    }

    /// A server that advertises STARTTLS and refuses MAIL before the upgrade.
    pub async fn spawn_starttls() -> Self {
        Self::start(Mode::StartTls).await
    }

    /// A server that speaks TLS from the first byte (like port 465).
    pub async fn spawn_tls() -> Self {
        Self::start(Mode::Implicit).await
    }

    /// Requires AUTH (PLAIN or LOGIN) with these credentials before MAIL.
    pub fn with_auth(self, user: &str, pass: &str) -> Self {
        self.state.lock().unwrap().auth = Some((user.to_string(), pass.to_string()));
        self
    }

    /// Listening address (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM file of the self-signed certificate (TLS servers only).
    pub fn ca_pem_path(&self) -> &Path {
        self.ca_pem.as_deref().expect("only TLS servers have a certificate")
    }

    /// Messages received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Command verbs received so far (EHLO, STARTTLS, AUTH, ...), across connections.
    pub fn verbs(&self) -> Vec<String> {
        self.state.lock().unwrap().verbs.clone()
    }

    /// Waits until at least `n` messages arrived and returns them; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut count = self.count.clone();
        let reached = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        let got = self.messages();
        assert!(
            matches!(reached, Ok(Ok(_))),
            "expected {n} message(s) within {timeout:?}, got {}",
            got.len()
        );
        got
    }

    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tls, ca_pem, dir) = if mode == Mode::Plain {
            (None, None, None)
        } else {
            let (cfg, pem) = tls_config();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, pem).unwrap();
            (Some(tokio_rustls::TlsAcceptor::from(cfg)), Some(path), Some(dir))
        };
        let state = Arc::new(Mutex::new(State::default()));
        let (count_tx, count) = watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (st, tls, count_tx) = (st.clone(), tls.clone(), count_tx.clone());
                tokio::spawn(async move {
                    let stream: Box<dyn Io> = if mode == Mode::Implicit {
                        let Some(acceptor) = &tls else { return };
                        match acceptor.accept(tcp).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        }
                    } else {
                        Box::new(tcp)
                    };
                    let _ = session(stream, mode, tls, st, count_tx).await;
                });
            }
        });
        Self {
            addr,
            state,
            count,
            ca_pem,
            _dir: dir,
            task,
        }
    }
}

/// A server config with a fresh self-signed certificate for `localhost` and 127.0.0.1, and its PEM.
fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(flowgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    (Arc::new(cfg), ck.cert.pem())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Conn = BufReader<Box<dyn Io>>;

async fn reply(conn: &mut Conn, text: &str) -> std::io::Result<()> {
    conn.get_mut().write_all(format!("{text}\r\n").as_bytes()).await?;
    conn.get_mut().flush().await
}

/// One line without its line end; `None` at end of stream.
async fn line(conn: &mut Conn) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *conn).take(MAX_LINE as u64).read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Ok(None);
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn b64(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// The address in `FROM:<a@b> BODY=8BITMIME` / `TO:<a@b>`.
fn path_arg(arg: &str, keyword: &str) -> Option<String> {
    let rest = arg.get(..keyword.len()).filter(|k| k.eq_ignore_ascii_case(keyword))?;
    let rest = arg[rest.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

async fn session(
    stream: Box<dyn Io>,
    mode: Mode,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<Mutex<State>>,
    count: Arc<watch::Sender<usize>>,
) -> std::io::Result<()> {
    let mut conn: Conn = BufReader::new(stream);
    let mut encrypted = mode == Mode::Implicit;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut user: Option<String> = None;
    reply(&mut conn, "220 localhost ESMTP flowgate-test").await?;
    while let Some(cmd) = line(&mut conn).await? {
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd.as_str(), ""));
        let verb = verb.to_ascii_uppercase();
        let auth = state.lock().unwrap().auth.clone();
        state.lock().unwrap().verbs.push(verb.clone());
        match verb.as_str() {
            "EHLO" => {
                from = None;
                to.clear();
                let mut lines = vec!["localhost greets you".to_string(), "8BITMIME".into(), "SMTPUTF8".into()];
                if mode == Mode::StartTls && !encrypted {
                    lines.push("STARTTLS".into());
                }
                if auth.is_some() {
                    lines.push("AUTH PLAIN LOGIN".into());
                }
                let last = lines.len() - 1;
                for (i, l) in lines.iter().enumerate() {
                    reply(&mut conn, &format!("250{}{l}", if i == last { ' ' } else { '-' })).await?;
                }
            }
            "HELO" => {
                from = None;
                to.clear();
                reply(&mut conn, "250 localhost").await?;
            }
            "STARTTLS" => {
                let Some(acceptor) = tls.as_ref().filter(|_| mode == Mode::StartTls && !encrypted) else {
                    reply(&mut conn, "502 5.5.1 STARTTLS not available").await?;
                    continue;
                };
                reply(&mut conn, "220 2.0.0 Ready to start TLS").await?;
                let plain = conn.into_inner();
                let upgraded = acceptor.accept(plain).await?;
                conn = BufReader::new(Box::new(upgraded));
                encrypted = true;
                (from, user) = (None, None);
                to.clear();
            }
            "AUTH" => {
                let Some((want_user, want_pass)) = &auth else {
                    reply(&mut conn, "502 5.5.1 AUTH not available").await?;
                    continue;
                };
                let (mech, initial) = arg.split_once(' ').unwrap_or((arg, ""));
                let creds = match mech.to_ascii_uppercase().as_str() {
                    "PLAIN" => {
                        let data = if initial.is_empty() {
                            reply(&mut conn, "334 ").await?;
                            line(&mut conn).await?.unwrap_or_default()
                        } else {
                            initial.to_string()
                        };
                        b64(&data).and_then(|d| {
                            let mut parts = d.splitn(3, '\0');
                            let (_authz, u, p) = (parts.next()?, parts.next()?, parts.next()?);
                            Some((u.to_string(), p.to_string()))
                        })
                    }
                    "LOGIN" => {
                        let u = if initial.is_empty() {
                            reply(&mut conn, "334 VXNlcm5hbWU6").await?;
                            line(&mut conn).await?.unwrap_or_default()
                        } else {
                            initial.to_string()
                        };
                        reply(&mut conn, "334 UGFzc3dvcmQ6").await?;
                        let p = line(&mut conn).await?.unwrap_or_default();
                        b64(&u).zip(b64(&p))
                    }
                    _ => {
                        reply(&mut conn, "504 5.5.4 Unrecognized authentication type").await?;
                        continue;
                    }
                };
                match creds {
                    Some((u, p)) if &u == want_user && &p == want_pass => {
                        user = Some(u);
                        reply(&mut conn, "235 2.7.0 Authentication successful").await?;
                    }
                    _ => reply(&mut conn, "535 5.7.8 Authentication credentials invalid").await?,
                }
            }
            "MAIL" => {
                if mode == Mode::StartTls && !encrypted {
                    reply(&mut conn, "530 5.7.0 Must issue a STARTTLS command first").await?;
                } else if auth.is_some() && user.is_none() {
                    reply(&mut conn, "530 5.7.0 Authentication required").await?;
                } else if let Some(addr) = path_arg(arg, "FROM:") {
                    from = Some(addr);
                    to.clear();
                    reply(&mut conn, "250 2.1.0 OK").await?;
                } else {
                    reply(&mut conn, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                }
            }
            "RCPT" => match (&from, path_arg(arg, "TO:")) {
                (None, _) => reply(&mut conn, "503 5.5.1 MAIL first").await?,
                (Some(_), Some(addr)) => {
                    to.push(addr);
                    reply(&mut conn, "250 2.1.5 OK").await?;
                }
                (Some(_), None) => reply(&mut conn, "501 5.5.4 Syntax: RCPT TO:<address>").await?,
            },
            "DATA" => {
                let Some(sender) = from.clone().filter(|_| !to.is_empty()) else {
                    reply(&mut conn, "503 5.5.1 RCPT first").await?;
                    continue;
                };
                reply(&mut conn, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut data = String::new();
                loop {
                    let Some(l) = line(&mut conn).await? else {
                        return Ok(());
                    };
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                    if data.len() > MAX_MESSAGE {
                        return reply(&mut conn, "552 5.3.4 Message too big").await;
                    }
                }
                let n = {
                    let mut st = state.lock().unwrap();
                    st.messages.push(Received {
                        from: sender,
                        to: std::mem::take(&mut to),
                        data,
                        tls: encrypted,
                        user: user.clone(),
                    });
                    st.messages.len()
                };
                from = None;
                reply(&mut conn, "250 2.0.0 OK queued").await?;
                count.send_replace(n);
            }
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut conn, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut conn, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut conn, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut conn, "502 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

// === MIME decoding ===

/// Splits a message or part into its header block and body (at the first empty line).
fn split_entity(data: &str) -> (&str, &str) {
    if let Some(i) = data.find("\r\n\r\n") {
        (&data[..i], &data[i + 4..])
    } else if let Some(i) = data.find("\n\n") {
        (&data[..i], &data[i + 2..])
    } else {
        (data, "")
    }
}

/// Header fields, unfolded, in order.
fn headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in head.lines() {
        if l.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(l.trim());
            }
        } else if let Some((n, v)) = l.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// A parameter of a structured header value (`boundary="x"`).
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn decode_qp(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if b[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn decode(body: &str, encoding: &str) -> String {
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => decode_qp(body),
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_default()
        }
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The first part whose content type is `mime` (e.g. `text/html`), decoded; walks multiparts.
pub fn decoded_part(data: &str, mime: &str) -> Option<String> {
    let (head, body) = split_entity(data);
    let hs = headers(head);
    let get = |n: &str| {
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let ctype = get("content-type").unwrap_or_else(|| "text/plain".into());
    let base = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if base.starts_with("multipart/") {
        let boundary = param(&ctype, "boundary")?;
        let body = format!("\r\n{}", body.replace("\r\n", "\n").replace('\n', "\r\n"));
        let delim = format!("\r\n--{boundary}");
        for part in body.split(delim.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.split_once("\r\n").map_or("", |(_, rest)| rest);
            if let Some(found) = decoded_part(part, mime) {
                return Some(found);
            }
        }
        return None;
    }
    (base == mime.to_ascii_lowercase()).then(|| decode(body, &get("content-transfer-encoding").unwrap_or_default()))
}

/// The text part of a message (the `text/plain` part of a multipart), with its
/// quoted-printable or base64 transfer encoding undone and trailing line breaks removed (the
/// writer and the SMTP terminator add some); the whole body when no part is text.
pub fn decoded_body(data: &str) -> String {
    decoded_part(data, "text/plain")
        .unwrap_or_else(|| split_entity(data).1.to_string())
        .trim_end_matches(['\r', '\n'])
        .to_string()
}
