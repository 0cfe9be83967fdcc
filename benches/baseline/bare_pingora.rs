//! Baseline for benches/load.sh: a bare pingora proxy (pingora's own `Server`, default
//! settings, no auth) from 127.0.0.1:18190 to the peer kit's upstream on 127.0.0.1:18080, so
//! flowgate's overhead over plain pingora is measured in the same run.
//!
//!   cargo run --release --example bare_pingora

use async_trait::async_trait;
use pingora::prelude::*;

struct Bare;

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new("127.0.0.1:18080", false, String::new())))
    }
}

fn main() {
    let mut server = Server::new(None).expect("server");
    server.bootstrap();
    let mut svc = http_proxy_service(&server.configuration, Bare);
    let addr = std::env::var("BARE_PINGORA_ADDR").unwrap_or_else(|_| "127.0.0.1:18190".into());
    svc.add_tcp(&addr);
    server.add_service(svc);
    server.run_forever();
}
