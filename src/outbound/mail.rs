//! Outbound mail: builds a message with lettre (plain text, or multipart/alternative text and
//! HTML) and hands it to SMTP (plain, STARTTLS or implicit TLS, optional AUTH, an extra trusted
//! root for private relays) or writes it as an `.eml` file (development).
//!
//! A [`Mailer`] is built once at startup from a [`MailTransport`] and is cheap to clone. One
//! connection per message (no pool); every send has one hard deadline. What to send and to whom
//! is the caller's business. Passwords never reach a log line or a `Debug` output; addresses
//! are not logged either.

pub use crate::config::values::mail::{MailTransport, SmtpSecurity};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Sender, `addr@example.com` or `Name <addr@example.com>`.
    pub from: String,
    /// Recipient, same forms as `from`.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain text body.
    pub text: String,
    /// HTML body; when given the message is multipart/alternative (text, then HTML).
    pub html: Option<String>,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A sender or recipient address does not parse.
    #[error("invalid address {0:?}")]
    Address(String),
    /// The SMTP server refused, was unreachable, failed TLS or did not answer in time.
    #[error("mail server: {0}")]
    Transport(String),
    /// Local I/O (the CA file, the mail directory).
    #[error("{0}")]
    Io(String),
}

/// A ready transport (built once at startup; cheap to clone).
#[derive(Clone)]
pub struct Mailer {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        host: String,
        timeout: Duration,
    },
    File {
        dir: PathBuf,
    },
}

// === impl Mailer ===

impl Mailer {
    /// Prepares the transport: reads `ca_file`, sets up TLS and credentials, creates the mail
    /// directory. Nothing is sent and no connection is opened.
    pub fn new(t: &MailTransport) -> Result<Self, MailError> {
        let inner = match t {
            MailTransport::Smtp {
                host,
                port,
                security,
                username,
                password,
                timeout,
                ca_file,
            } => {
                let tls = match security {
                    SmtpSecurity::None => Tls::None,
                    SmtpSecurity::StartTls => Tls::Required(tls_parameters(host, ca_file.as_deref())?),
                    SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(host, ca_file.as_deref())?),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .tls(tls)
                    .timeout(Some(*timeout));
                if let Some(user) = username {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default(),
                    ));
                }
                Inner::Smtp {
                    transport: builder.build(),
                    host: host.clone(),
                    timeout: *timeout,
                }
            }
            MailTransport::File { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| MailError::Io(format!("{}: {e}", dir.display())))?;
                Inner::File { dir: dir.clone() }
            }
        };
        Ok(Self { inner })
    }

    /// Sends one message: over SMTP within the transport's timeout, or as a new `.eml` file that
    /// appears complete (written under a temporary name, then renamed).
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build(mail)?;
        match &self.inner {
            Inner::Smtp {
                transport,
                host,
                timeout,
            } => {
                let sent = tokio::time::timeout(*timeout, transport.send(message))
                    .await
                    .map_err(|_| MailError::Transport("timed out".into()))
                    .and_then(|r| r.map_err(|e| MailError::Transport(e.to_string())));
                match &sent {
                    Ok(_) => tracing::debug!(transport = "smtp", %host, "mail sent"),
                    Err(error) => tracing::warn!(transport = "smtp", %host, %error, "mail not sent"),
                }
                sent.map(|_| ())
            }
            Inner::File { dir } => {
                let path = write_eml(dir, &message.formatted()).await?;
                tracing::debug!(transport = "file", path = %path.display(), "mail written");
                Ok(())
            }
        }
    }
}

impl Mailer {
    /// Builds and formats `mail` as [`Mailer::send`] would and sends nothing: the same work for
    /// an answer that must not tell whether a mail went out (ENUM-4).
    pub fn rehearse(&self, mail: &Mail) -> Result<(), MailError> {
        std::hint::black_box(build(mail)?.formatted());
        Ok(())
    }
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Smtp { host, timeout, .. } => f
                .debug_struct("Mailer::Smtp")
                .field("host", host)
                .field("timeout", timeout)
                .finish_non_exhaustive(),
            Inner::File { dir } => f.debug_struct("Mailer::File").field("dir", dir).finish(),
        }
    }
}

fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, MailError> {
    let mut params = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = crate::input_limits::read_capped(path, 1 << 20)
            .map_err(|e| MailError::Io(format!("{}: {e}", path.display())))?;
        let found = rustls_pemfile::certs(&mut pem.as_slice()).filter(|c| c.is_ok()).count();
        if found == 0 {
            return Err(MailError::Io(format!("{}: no PEM certificate found", path.display())));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| MailError::Io(format!("{}: {e}", path.display())))?;
        params = params.add_root_certificate(cert);
    }
    params
        .build_rustls()
        .map_err(|e| MailError::Transport(format!("tls setup: {e}")))
}

fn mailbox(addr: &str) -> Result<Mailbox, MailError> {
    addr.trim().parse().map_err(|_| MailError::Address(addr.to_string()))
}

fn random_hex() -> Result<String, MailError> {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id).map_err(|e| MailError::Io(format!("random id: {e}")))?;
    Ok(hex::encode(id))
}

fn build(mail: &Mail) -> Result<Message, MailError> {
    let from = mailbox(&mail.from)?;
    // Message-ID on the sender's domain (spam filters frown on a missing or `localhost` one).
    let message_id = format!("<{}@{}>", random_hex()?, from.email.domain());
    let builder = Message::builder()
        .from(from)
        .to(mailbox(&mail.to)?)
        .subject(mail.subject.as_str())
        .message_id(Some(message_id));
    let built = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone())),
        None => builder.singlepart(SinglePart::plain(mail.text.clone())),
    };
    // The builder only fails on the envelope (addresses it cannot carry).
    built.map_err(|e| MailError::Address(format!("{} -> {}: {e}", mail.from, mail.to)))
}

/// Writes `bytes` to `<dir>/<random>.eml` through a hidden temporary file and a rename, so
/// readers never see half a message.
async fn write_eml(dir: &Path, bytes: &[u8]) -> Result<PathBuf, MailError> {
    let name = random_hex()?;
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    let path = dir.join(format!("{name}.eml"));
    let io = |p: &Path, e: std::io::Error| MailError::Io(format!("{}: {e}", p.display()));
    tokio::fs::write(&tmp, bytes).await.map_err(|e| io(&tmp, e))?;
    if let Err(e) = tokio::fs::rename(&tmp, &path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io(&path, e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(from: &str, to: &str) -> Mail {
        Mail {
            from: from.into(),
            to: to.into(),
            subject: "s".into(),
            text: "t".into(),
            html: None,
        }
    }

    #[test]
    fn bad_addresses_are_address_errors() {
        for (from, to) in [
            ("not an address", "a@example.test"),
            ("a@example.test", "b@example.test, c@example.test"),
            ("a@example.test", "b@example.test\r\nBcc: c@example.test"),
            ("a@example.test", ""),
        ] {
            assert!(
                matches!(build(&mail(from, to)), Err(MailError::Address(_))),
                "{from:?} {to:?}"
            );
        }
        assert!(build(&mail("Flowgate <noreply@example.test>", "bob@example.test")).is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let t = MailTransport::Smtp {
            host: "mail.example.test".into(),
            port: 587,
            security: SmtpSecurity::StartTls,
            username: Some("u".into()),
            password: Some("hunter2-secret".into()),
            timeout: Duration::from_secs(5),
            ca_file: None,
        };
        let shown = format!("{t:?} {:?}", Mailer::new(&t).map_err(|e| e.to_string()));
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }
}
