//! `GatewayError`: what can stop the gateway from starting or a command from running. Request
//! errors never reach here: the proxy and the UI name them as
//! [`crate::http::respond::Refusal`]s, log them where they are decided, and
//! [`crate::http::respond::render`] answers them.

use crate::config::ConfigErrors;
use crate::identity::StoreError;
use crate::tls::TlsError;

/// Gateway startup and command errors.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Bad configuration.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The user store failed.
    #[error("user store: {0}")]
    Store(#[from] StoreError),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// A directory source could not be set up (its TLS settings).
    #[error("directory: {0}")]
    Directory(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Seeding users failed.
    #[error("seed file: {0}")]
    Seed(String),
    /// Templates failed to load.
    #[error("templates: {0}")]
    Templates(String),
    /// The mail transport could not be set up.
    #[error("mail: {0}")]
    Mail(String),
    /// The session store (`session.store`) could not be opened.
    #[error("session store: {0}")]
    SessionStore(String),
    /// The audit events file (`events.file`) could not be opened.
    #[error("events file: {0}")]
    Events(String),
    /// The connection worker threads (`listen.workers`) could not be started.
    #[error("connection workers: {0}")]
    Workers(std::io::Error),
}
