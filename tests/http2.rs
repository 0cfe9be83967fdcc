//! HTTP/2 (HOST-2 of `docs/security.md`): over h2 a request carries `:authority` and
//! no `Host`. The HTML login (with the `Origin` a browser sends on every form POST), mailed
//! links and the forwarding headers the app receives must work exactly as over HTTP/1.1. The
//! same walk runs in Chromium in `browser::html_login_over_http2_in_chromium`.

use crate::common::*;

const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";

#[tokio::test]
async fn html_login_mail_links_and_forwarding_work_over_http2() {
    let gw = TestGateway::start_tls(DEFAULT_APP, NO_LIMITS).await;
    let base = gw.https_url("");
    // What a browser sends: `Origin` on form POSTs, HTTP/2 negotiated by ALPN.
    let c = https_client(&gw, true, Some(&base));
    let r = c.get(gw.https_url("/private")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "h2 was not negotiated");
    let done = html_login(&c, &base, "/private", "alice", ALICE_PASSWORD).await;
    assert_eq!(
        done.status(),
        302,
        "login over h2: {}",
        done.text().await.unwrap_or_default()
    );
    assert_eq!(location(&done), "/private");
    let r = c.get(gw.https_url("/private")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let seen = gw.upstream.last();
    let authority = format!("localhost:{}", gw.https_addr.unwrap().port());
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("host"), Some(authority.as_str()));
    assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));

    // A cross-origin POST over h2 is still refused.
    let evil = https_client(&gw, true, Some("https://evil.example"));
    let r = evil
        .post(gw.https_url(RECOVERY))
        .form(&[("csrf_token", "x"), ("uid_field", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Recovery over h2: the mailed link is built from `:authority`.
    let c = https_client(&gw, true, Some(&base));
    let r = walk(&c, &gw.https_url(RECOVERY), &[("uid_field", "bob")]).await;
    assert_eq!(r.status(), 200);
    let want = format!("https://{authority}{RECOVERY}?");
    let mut links = Vec::new();
    for _ in 0..100 {
        links = mailed_links(&gw, "bob@example.test");
        if !links.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        links.iter().any(|l| l.starts_with(&want)),
        "no link to {want} in {links:?}"
    );
    gw.stop().await;
}
