//! How mail leaves (`mail.transport`): the validated transport settings. The sender that uses
//! them is `outbound::mail`.

use super::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Default `mail.transport`.
pub const DEFAULT_MAIL_TRANSPORT: &str = "smtp";
/// Default `mail.dir` of the file transport, below `data_dir`.
pub const DEFAULT_MAIL_DIR: &str = "mail";
/// Default `mail.host`.
pub const DEFAULT_SMTP_HOST: &str = "localhost";
/// Default `mail.port` with `security: tls` (implicit TLS).
pub const DEFAULT_SMTP_TLS_PORT: u16 = 465;
/// Default `mail.port` with `security: starttls`.
pub const DEFAULT_SMTP_STARTTLS_PORT: u16 = 587;
/// Default `mail.port` with `security: none`.
pub const DEFAULT_SMTP_PLAIN_PORT: u16 = 25;
/// Default `mail.timeout`: 10 seconds per SMTP command and for the whole send.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How mail leaves. `Debug` shows the password as `***`.
#[derive(Debug, Clone, PartialEq)]
pub enum MailTransport {
    /// SMTP through lettre.
    Smtp {
        /// Relay host name (also the name its certificate must carry).
        host: String,
        /// Relay port.
        port: u16,
        /// Transport security.
        security: SmtpSecurity,
        /// AUTH user; no AUTH when `None`.
        username: Option<String>,
        /// AUTH password (empty when `None` and a username is set).
        password: Option<Secret>,
        /// Deadline for each SMTP command and for the whole send.
        timeout: Duration,
        /// Extra PEM root certificate(s) to trust besides the webpki roots, for private relays and tests.
        ca_file: Option<PathBuf>,
    },
    /// One `.eml` file per message in this directory (development).
    File {
        /// Directory, created when missing.
        dir: PathBuf,
    },
}

/// Transport security of an SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS (local relays only).
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}
