//! TLS session resumption on the HTTPS listener (`src/tls`: rustls' ticketer and a 20k-entry
//! session cache, as nginx's tickets and session cache): a client's second connection resumes,
//! over TLS 1.3 (a ticket) and over TLS 1.2.

use crate::common::*;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(gw: &TestGateway, version: &'static rustls::SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(gw.keep[0].path().join("dev.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// One connection with one request; how its handshake went.
async fn connect(cfg: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> rustls::HandshakeKind {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    // Reading the answer also takes in the tickets TLS 1.3 sends after the handshake.
    s.write_all(b"GET /.flowgate/health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    s.get_ref().1.handshake_kind().unwrap()
}

#[tokio::test]
async fn a_second_connection_resumes_over_tls13_and_tls12() {
    let gw = TestGateway::start_tls(DEFAULT_APP, "").await;
    let addr = gw.https_addr.unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let cfg = client(&gw, version);
        assert_eq!(connect(&cfg, addr).await, rustls::HandshakeKind::Full, "{version:?}");
        assert_eq!(connect(&cfg, addr).await, rustls::HandshakeKind::Resumed, "{version:?}");
        // A client that never connected gets a full handshake.
        assert_eq!(connect(&client(&gw, version), addr).await, rustls::HandshakeKind::Full);
    }
    gw.stop().await;
}
