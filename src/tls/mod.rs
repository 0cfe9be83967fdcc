//! TLS: rustls server configs from PEM files (with clear errors instead of panics) and the
//! development certificate generator behind `flowgate cert`.

use std::path::Path;
use std::sync::Arc;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// File.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// rustls refused the certificate or key.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("cannot generate certificate: {0}")]
    Generate(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::input_limits::read_capped(path, 1 << 20).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The crypto provider flowgate uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config from a PEM certificate chain and private key; ALPN offers h2 and http/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.display().to_string(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.display().to_string(),
            what: "no certificate found".into(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Pem {
            path: key.display().to_string(),
            what: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: key.display().to_string(),
            what: "no private key found".into(),
        })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Resumption, as nginx's session cache and tickets: stateless tickets under keys rotated every
    // 6 h (rustls' recommended ticketer) and room for 20k sessions resumed by id (TLS 1.2
    // clients without tickets); rustls' default keeps 256.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(20_000);
    Ok(Arc::new(cfg))
}

/// A self-signed development certificate and key (PEM) for the given host names.
pub fn dev_certificate(hosts: &[String]) -> Result<(String, String), TlsError> {
    let ck = rcgen::generate_simple_self_signed(hosts.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
}

/// Writes a development certificate to `dir/dev.crt` and `dir/dev.key` (key mode 0600).
pub fn write_dev_certificate(
    dir: &Path,
    hosts: &[String],
) -> Result<(std::path::PathBuf, std::path::PathBuf), TlsError> {
    use std::io::Write;
    let (cert, key) = dev_certificate(hosts)?;
    let io = |path: &Path, source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let cert_path = dir.join("dev.crt");
    let key_path = dir.join("dev.key");
    std::fs::write(&cert_path, cert).map_err(|e| io(&cert_path, e))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&key_path).map_err(|e| io(&key_path, e))?;
    f.write_all(key.as_bytes()).map_err(|e| io(&key_path, e))?;
    Ok((cert_path, key_path))
}
