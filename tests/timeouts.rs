//! Client-side timeouts and draining, over real sockets (PROTO-5): a request header must arrive
//! within `limits.header_timeout`, an idle keep-alive connection is closed after
//! `limits.keepalive_timeout`, neither cuts a request whose header has arrived (slow upstream,
//! slow body), and shutdown lets requests in flight finish, up to `limits.shutdown_timeout`.
//!
//! These are protocol timeouts on a live socket, so the tests wait real time (about a second);
//! they assert what happened to each connection, never how long anything took.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &str = "limits: { header_timeout: 1s, keepalive_timeout: 2s, max_connections: 400 }\n";

/// Reads until the server closes the connection (Ok(bytes)) or `within` passes (Err).
async fn until_closed(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.map_err(|_| ())?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_authenticated_traffic_keeps_flowing() {
    let gw = TestGateway::start_with(DEFAULT_APP, LIMITS).await;
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "alice", "correct horse battery staple").await;
    assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());

    // 200 connections that send a header one byte at a time, every 100 ms, and never finish it.
    let header = b"GET /private HTTP/1.1\r\nHost: app.example\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut slow = Vec::new();
    for _ in 0..200 {
        let addr = gw.addr;
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for b in header.iter() {
                if s.write_all(&[*b]).await.is_err() {
                    return true; // closed by the gateway while trickling
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false // sent the whole (unfinished) header without being cut off
        }));
    }
    // Authenticated requests go through while the slow clients hold their connections.
    let before = gw.upstream.count();
    for i in 0..20 {
        let r = c.get(gw.url(&format!("/private/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.upstream.count(), before + 20);
    for h in slow {
        assert!(h.await.unwrap(), "a slow header was not cut off");
    }
    // None of the slow requests reached the upstream.
    assert_eq!(gw.upstream.count(), before + 20);
    let r = c.get(gw.url("/private/after")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_and_an_idle_keep_alive_are_closed() {
    let gw = TestGateway::start_with(DEFAULT_APP, LIMITS).await;
    // Connects and sends nothing: closed after the header timeout, with nothing sent back.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let got = until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("silent connection kept open");
    assert!(got.is_empty());

    // One full request, then idle: the response arrives, then the connection is closed after
    // the keep-alive timeout (not after the shorter header timeout).
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.example\r\n\r\n")
        .await
        .unwrap();
    let got = until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("idle keep-alive kept open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // A keep-alive connection used again before the idle timeout serves the second request.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /public/1 HTTP/1.1\r\nHost: app.example\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1500)).await; // longer than the header timeout
    s.write_all(b"GET /public/2 HTTP/1.1\r\nHost: app.example\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let paths: Vec<String> = gw.upstream.requests().into_iter().map(|r| r.uri).collect();
    assert!(paths.contains(&"/public/2".to_string()), "{paths:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_and_a_slow_body_are_not_cut_by_the_header_timeout() {
    let upstream = Upstream::spawn_with_delay(Duration::from_millis(2500)).await;
    let gw = TestGateway::start_full(DEFAULT_APP, LIMITS, upstream, &[]).await;
    // The upstream answers after 2.5 s, longer than the 1 s header timeout.
    let r = bare_client().get(gw.url("/public/slow")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A body sent in pieces over 2 s, after a complete header.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /public/upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 20\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(b"12345").await.unwrap();
    }
    let got = until_closed(&mut s, Duration::from_secs(15)).await.expect("no answer");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let last = gw.upstream.last();
    assert_eq!(
        (last.uri.as_str(), last.body.as_slice()),
        ("/public/upload", &b"12345123451234512345"[..])
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish_and_refuses_new_ones() {
    let upstream = Upstream::spawn_with_delay(Duration::from_millis(1500)).await;
    let mut gw = TestGateway::start_full(DEFAULT_APP, LIMITS, upstream, &[]).await;
    let url = gw.url("/public/in-flight");
    let in_flight = tokio::spawn(async move { bare_client().get(url).send().await.map(|r| r.status().as_u16()) });
    // Wait until the request has reached the upstream, then shut down while it is in flight.
    while gw.upstream.count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = gw.running.take().unwrap();
    assert_eq!(running.open_connections(), 1);
    let addr = gw.addr;
    let stop = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "new connections accepted while draining"
    );
    assert_eq!(in_flight.await.unwrap().expect("request in flight was cut"), 200);
    stop.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_waiting_after_the_shutdown_timeout() {
    // The upstream takes 4 s, longer than the 300 ms drain: shutdown returns without it, and the
    // client's request ends (a closed connection) instead of holding the process.
    let upstream = Upstream::spawn_with_delay(Duration::from_secs(4)).await;
    let limits = "limits: { header_timeout: 1s, keepalive_timeout: 2s, shutdown_timeout: 300ms }\n";
    let mut gw = TestGateway::start_full(DEFAULT_APP, limits, upstream, &[]).await;
    let url = gw.url("/public/slow");
    let in_flight = tokio::spawn(async move { bare_client().get(url).send().await.map(|r| r.status().as_u16()) });
    while gw.upstream.count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = gw.running.take().unwrap();
    let stop = tokio::spawn(running.shutdown());
    // Shutdown finishes on its own (well before the upstream's 4 s); the harness only bounds a hang.
    tokio::time::timeout(Duration::from_secs(3), stop)
        .await
        .expect("shutdown waited past its timeout")
        .unwrap();
    // The cut request is not a success.
    let outcome = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("client hung")
        .unwrap();
    assert!(matches!(outcome, Err(_) | Ok(502)), "{outcome:?}");
}
