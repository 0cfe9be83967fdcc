//! Request framing and size: requests the gateway and the upstream could frame differently
//! (`Content-Length` with `Transfer-Encoding`, two lengths, odd codings) are refused and never
//! reach the upstream; request lines, headers and bodies over their limits get 414/431/413;
//! malformed forms get a clear 4xx; open connections are bounded. Sent as raw bytes where an HTTP
//! library would refuse to write them. Slow clients are in `timeouts.rs`.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends raw bytes and reads what comes back until the server closes or 2 s pass.
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 12 {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

// Attack ids: PROTO-1..4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_and_oversized_requests_never_reach_the_upstream() {
    let gw = TestGateway::start().await;
    let addr = gw.addr;
    // Content-Length with Transfer-Encoding (PROTO-1): pingora's parser lets chunked win and
    // drops the length (RFC 9112 §6.3) before our filter runs; the gateway looks at the raw
    // header and answers 400, forwarding nothing, in any spelling of the field name.
    for cl in ["Content-Length", "content-length", "CONTENT-LENGTH"] {
        let req =
            format!("POST /public/a HTTP/1.1\r\nHost: x\r\n{cl}: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG")
                .into_bytes();
        let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
        assert_eq!(status_of(&resp), 400, "{resp}");
        assert_eq!(gw.upstream.count(), 0, "ambiguous framing forwarded");
    }
    let before = gw.upstream.count();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two different content-lengths",
            b"POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde".to_vec(),
        ),
        (
            "an oversized header",
            format!(
                "GET /public/a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(200_000)
            )
            .into_bytes(),
        ),
        (
            "an oversized request line",
            format!("GET /public/{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        ),
    ];
    for (what, req) in cases {
        let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
        let status = status_of(&resp);
        assert!(status == 0 || (400..500).contains(&status), "{what}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{what} reached the upstream");
    }
    // A normal request on the same gateway still works.
    assert_eq!(
        bare_client().get(gw.url("/public/ok")).send().await.unwrap().status(),
        200
    );
}

// Attack ids: PROTO-4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_bodies_over_max_body_bytes_get_413() {
    let apps = "  - name: app\n    hosts: [small.test]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n    max_body_bytes: 1000\n  - name: big\n    hosts: [big.test]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n";
    let gw = TestGateway::start_with(apps, "limits: { max_body_bytes: 3000 }\n").await;
    let addr = gw.addr;
    let post = |host: &str, body: &str, chunked: bool| {
        let head = if chunked {
            format!(
                "POST /public/up HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
        } else {
            format!(
                "POST /public/up HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
        };
        let mut req = head.into_bytes();
        if chunked {
            for part in body.as_bytes().chunks(500) {
                req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                req.extend_from_slice(part);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
        } else {
            req.extend_from_slice(body.as_bytes());
        }
        req
    };
    // Announced too large: 413 and nothing reaches the app.
    let req = post("small.test", &"a".repeat(2000), false);
    let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
    assert_eq!(status_of(&resp), 413, "{resp}");
    assert_eq!(gw.upstream.count(), 0);
    // Streamed too large: refused (413, or the connection closed if the app answered first); the
    // app never sees the whole body.
    let req = post("small.test", &"b".repeat(2000), true);
    let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
    assert_ne!(status_of(&resp), 200, "{resp}");
    assert!(gw.upstream.requests().iter().all(|r| r.body.len() < 2000));
    // Within the limit, with a length or chunked: forwarded intact.
    for chunked in [false, true] {
        let req = post("small.test", &"c".repeat(1000), chunked);
        let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
        assert_eq!(status_of(&resp), 200, "{resp}");
        assert_eq!(gw.upstream.last().body, "c".repeat(1000).into_bytes());
    }
    // The app without its own limit uses limits.max_body_bytes.
    let req = post("big.test", &"d".repeat(2500), false);
    let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert_eq!(gw.upstream.last().body.len(), 2500);
    let req = post("big.test", &"e".repeat(3500), false);
    let resp = tokio::task::spawn_blocking(move || raw(addr, &req)).await.unwrap();
    assert_eq!(status_of(&resp), 413, "{resp}");
    gw.stop().await;
}

// Attack ids: PROTO-7.
#[tokio::test]
async fn bad_input_gets_clear_4xx() {
    let gw = TestGateway::start().await;
    let c = client();
    let flow = gw.url("/.flowgate/flow/default-authentication-flow/");
    let csrf = csrf_of(&c.get(&flow).send().await.unwrap().text().await.unwrap());
    let r = c.get(gw.url("/.flowgate/flow/no-such-flow/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(gw.url("/.flowgate/api/v3/flows/executor/no-such-flow/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let big = "a".repeat(70 * 1024);
    let r = c
        .post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = c
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'u', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}&uid_field=%FF"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let api = gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/");
    let r = c
        .post(&api)
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&api)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.delete(&flow).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = c.get(gw.url("/.flowgate/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = bare_client().get(gw.url("/a%00b")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    gw.stop().await;
}

// Attack ids: PROTO-5 (the connection bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_are_bounded() {
    let gw = TestGateway::start_with(DEFAULT_APP, "limits: { max_connections: 2 }\n").await;
    let addr = gw.addr;
    // Two idle connections take both slots.
    let a = TcpStream::connect(addr).unwrap();
    let b = TcpStream::connect(addr).unwrap();
    let third = tokio::task::spawn_blocking(move || {
        raw(addr, b"GET /public/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    });
    // While both slots are held, the third request is not served.
    let waited = tokio::time::timeout(Duration::from_millis(800), async {
        while gw.upstream.count() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_err(), "a third connection was served beyond the bound");
    drop(a);
    let resp = third.await.unwrap();
    assert_eq!(status_of(&resp), 200, "served once a slot is free: {resp}");
    drop(b);
}
