//! Outbound calls against real loopback servers: mail through plain SMTP, STARTTLS, implicit
//! TLS and SMTP AUTH (what the server received), failures (down, silent, untrusted, no
//! STARTTLS, bad credentials, bad addresses), the file transport, and captcha siteverify.

use crate::common::siteverify::SiteVerify;
use crate::common::smtp::{decoded_body, decoded_part, SmtpServer};
use flowgate::outbound::captcha::CaptchaVerifier;
use flowgate::outbound::mail::{Mail, MailError, MailTransport, Mailer, SmtpSecurity};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn smtp(addr: SocketAddr, host: &str, security: SmtpSecurity, ca_file: Option<PathBuf>) -> MailTransport {
    MailTransport::Smtp {
        host: host.into(),
        port: addr.port(),
        security,
        username: None,
        password: None,
        timeout: Duration::from_secs(3),
        ca_file,
    }
}

fn with_credentials(t: MailTransport, user: &str, pass: &str) -> MailTransport {
    match t {
        MailTransport::Smtp {
            host,
            port,
            security,
            timeout,
            ca_file,
            ..
        } => MailTransport::Smtp {
            host,
            port,
            security,
            username: Some(user.into()),
            password: Some(pass.into()),
            timeout,
            ca_file,
        },
        other => other,
    }
}

fn mail(text: &str) -> Mail {
    Mail {
        from: "flowgate <noreply@example.test>".into(),
        to: "alice@example.test".into(),
        subject: "Password recovery".into(),
        text: text.into(),
        html: None,
    }
}

// === SMTP ===

#[tokio::test]
async fn plain_smtp_delivers_the_message() {
    let server = SmtpServer::spawn().await;
    let mailer = Mailer::new(&smtp(server.addr(), "127.0.0.1", SmtpSecurity::None, None)).unwrap();
    mailer
        .send(&mail("Hello Alice,\nyour code is 123456.\n"))
        .await
        .unwrap();
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.from, "noreply@example.test");
    assert_eq!(m.to, vec!["alice@example.test".to_string()]);
    assert!(!m.tls);
    assert_eq!(m.user, None);
    assert_eq!(m.header("Subject").as_deref(), Some("Password recovery"));
    assert_eq!(m.header("From").as_deref(), Some("flowgate <noreply@example.test>"));
    assert_eq!(m.header("To").as_deref(), Some("alice@example.test"));
    assert_eq!(
        decoded_body(&m.data).replace("\r\n", "\n"),
        "Hello Alice,\nyour code is 123456."
    );
    let id = m.header("Message-ID").unwrap();
    assert!(id.starts_with('<') && id.ends_with("@example.test>"), "{id}");
}

#[tokio::test]
async fn html_mail_is_multipart_alternative_and_long_links_survive_encoding() {
    let server = SmtpServer::spawn().await;
    let mailer = Mailer::new(&smtp(server.addr(), "127.0.0.1", SmtpSecurity::None, None)).unwrap();
    let link = format!(
        "https://auth.example.test/.flowgate/flow/recovery/?flow_token={}&x=é",
        "a".repeat(150)
    );
    let text = format!("Grüße,\nopen {link}\n..a line starting with dots\n.\nend\n");
    let mut m = mail(&text);
    m.html = Some(format!("<p>Grüße, <a href=\"{link}\">open</a></p>"));
    mailer.send(&m).await.unwrap();
    let got = server.wait_for(1, WAIT).await;
    let data = &got[0].data;
    assert!(got[0]
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("multipart/alternative")));
    assert_eq!(decoded_body(data).replace("\r\n", "\n"), text.trim_end());
    assert!(decoded_body(data).contains(&link));
    let html = decoded_part(data, "text/html").unwrap();
    assert!(html.contains(&format!("<a href=\"{link}\">")), "{html}");
}

#[tokio::test]
async fn starttls_with_a_private_root() {
    let server = SmtpServer::spawn_starttls().await;
    let ca = server.ca_pem_path().to_path_buf();
    let mailer = Mailer::new(&smtp(server.addr(), "localhost", SmtpSecurity::StartTls, Some(ca))).unwrap();
    mailer.send(&mail("over tls")).await.unwrap();
    let got = server.wait_for(1, WAIT).await;
    assert!(got[0].tls);
    assert_eq!(got[0].to, vec!["alice@example.test".to_string()]);
    assert_eq!(decoded_body(&got[0].data), "over tls");
    assert!(server.verbs().contains(&"STARTTLS".to_string()));
}

#[tokio::test]
async fn implicit_tls_with_a_private_root() {
    let server = SmtpServer::spawn_tls().await;
    let ca = server.ca_pem_path().to_path_buf();
    let mailer = Mailer::new(&smtp(server.addr(), "localhost", SmtpSecurity::Tls, Some(ca))).unwrap();
    mailer.send(&mail("wrapped")).await.unwrap();
    let got = server.wait_for(1, WAIT).await;
    assert!(got[0].tls);
    assert_eq!(decoded_body(&got[0].data), "wrapped");
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let server = SmtpServer::spawn_starttls().await;
    let mailer = Mailer::new(&smtp(server.addr(), "localhost", SmtpSecurity::StartTls, None)).unwrap();
    let err = mailer.send(&mail("x")).await.unwrap_err();
    assert!(matches!(err, MailError::Transport(_)), "{err:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn required_starttls_is_not_downgraded() {
    // The server does not offer STARTTLS: the mail must not go out in clear text.
    let server = SmtpServer::spawn().await;
    let other = SmtpServer::spawn_starttls().await;
    let ca = other.ca_pem_path().to_path_buf();
    let mailer = Mailer::new(&smtp(server.addr(), "localhost", SmtpSecurity::StartTls, Some(ca))).unwrap();
    let err = mailer.send(&mail("x")).await.unwrap_err();
    assert!(matches!(err, MailError::Transport(_)), "{err:?}");
    assert!(server.messages().is_empty());
    assert!(!server.verbs().contains(&"MAIL".to_string()));
}

#[tokio::test]
async fn smtp_auth_over_starttls() {
    let server = SmtpServer::spawn_starttls().await.with_auth("mailer", "s3cret pass");
    let ca = server.ca_pem_path().to_path_buf();
    let base = smtp(server.addr(), "localhost", SmtpSecurity::StartTls, Some(ca));

    let mailer = Mailer::new(&with_credentials(base.clone(), "mailer", "s3cret pass")).unwrap();
    mailer.send(&mail("authenticated")).await.unwrap();
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got[0].user.as_deref(), Some("mailer"));
    assert!(got[0].tls);

    // Wrong password, and no credentials at all: refused, nothing delivered.
    let wrong = Mailer::new(&with_credentials(base.clone(), "mailer", "guess")).unwrap();
    let err = wrong.send(&mail("x")).await.unwrap_err();
    assert!(matches!(err, MailError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains("guess"), "{err}");
    let anonymous = Mailer::new(&base).unwrap();
    assert!(matches!(anonymous.send(&mail("x")).await, Err(MailError::Transport(_))));
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn smtp_auth_over_plain_connection() {
    let server = SmtpServer::spawn().await.with_auth("u", "p");
    let t = with_credentials(smtp(server.addr(), "127.0.0.1", SmtpSecurity::None, None), "u", "p");
    Mailer::new(&t).unwrap().send(&mail("hi")).await.unwrap();
    assert_eq!(server.wait_for(1, WAIT).await[0].user.as_deref(), Some("u"));
}

#[tokio::test]
async fn down_server_fails_within_the_timeout() {
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let mailer = Mailer::new(&smtp(addr, "127.0.0.1", SmtpSecurity::None, None)).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), mailer.send(&mail("x")))
        .await
        .expect("send must give up within its timeout");
    assert!(matches!(res, Err(MailError::Transport(_))), "{res:?}");
}

#[tokio::test]
async fn silent_server_fails_within_the_timeout() {
    // Accepts connections and never greets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let mut t = smtp(addr, "127.0.0.1", SmtpSecurity::None, None);
    if let MailTransport::Smtp { timeout, .. } = &mut t {
        *timeout = Duration::from_millis(300);
    }
    let res = tokio::time::timeout(Duration::from_secs(3), Mailer::new(&t).unwrap().send(&mail("x")))
        .await
        .expect("send must give up within its timeout");
    assert!(matches!(res, Err(MailError::Transport(_))), "{res:?}");
    hold.abort();
}

#[tokio::test]
async fn bad_addresses_and_header_injection() {
    let server = SmtpServer::spawn().await;
    let mailer = Mailer::new(&smtp(server.addr(), "127.0.0.1", SmtpSecurity::None, None)).unwrap();
    for to in ["not-an-address", "alice@example.test\r\nBcc: eve@example.test", ""] {
        let mut m = mail("x");
        m.to = to.into();
        let err = mailer.send(&m).await.unwrap_err();
        assert!(matches!(err, MailError::Address(_)), "{to:?}: {err:?}");
    }
    let mut m = mail("x");
    m.from = "bad from".into();
    assert!(matches!(mailer.send(&m).await, Err(MailError::Address(_))));

    // A subject with a line break stays one header.
    let mut m = mail("body");
    m.subject = "Hi\r\nBcc: eve@example.test".into();
    mailer.send(&m).await.unwrap();
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["alice@example.test".to_string()]);
    let (head, _) = got[0].data.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{head}"
    );
}

#[tokio::test]
async fn missing_ca_file_is_an_io_error() {
    let t = smtp(
        "127.0.0.1:25".parse().unwrap(),
        "localhost",
        SmtpSecurity::StartTls,
        Some("/nonexistent/ca.pem".into()),
    );
    assert!(matches!(Mailer::new(&t), Err(MailError::Io(_))));
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let t = smtp(
        "127.0.0.1:25".parse().unwrap(),
        "localhost",
        SmtpSecurity::Tls,
        Some(empty),
    );
    assert!(matches!(Mailer::new(&t), Err(MailError::Io(_))));
}

#[tokio::test]
async fn debug_output_never_shows_the_password() {
    let t = with_credentials(
        smtp("127.0.0.1:25".parse().unwrap(), "localhost", SmtpSecurity::None, None),
        "u",
        "very-secret-password",
    );
    let mailer = Mailer::new(&t).unwrap();
    let shown = format!("{t:?} {mailer:?}");
    assert!(!shown.contains("very-secret-password"), "{shown}");
}

// === file transport ===

#[tokio::test]
async fn file_transport_writes_one_eml_per_mail() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    let mailer = Mailer::new(&MailTransport::File { dir: out.clone() }).unwrap();
    mailer.send(&mail("first")).await.unwrap();
    let mut second = mail("second");
    second.to = "Bob <bob@example.test>".into();
    second.html = Some("<b>second</b>".into());
    mailer.send(&second).await.unwrap();

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.ends_with(".eml") && !n.starts_with('.')),
        "{names:?}"
    );
    let mut bodies: Vec<String> = names
        .iter()
        .map(|n| std::fs::read_to_string(out.join(n)).unwrap())
        .collect();
    bodies.sort_by_key(|d| decoded_body(d));
    assert!(bodies[0].contains("To: alice@example.test\r\n"), "{}", bodies[0]);
    assert!(bodies[0].contains("Subject: Password recovery\r\n"));
    assert_eq!(decoded_body(&bodies[0]), "first");
    assert!(bodies[1].contains("To: Bob <bob@example.test>\r\n"), "{}", bodies[1]);
    assert_eq!(decoded_body(&bodies[1]), "second");
    assert_eq!(decoded_part(&bodies[1], "text/html").as_deref(), Some("<b>second</b>"));
}

// === captcha ===

fn verifier(url: String) -> CaptchaVerifier {
    CaptchaVerifier {
        api_url: url,
        private_key: "private-key".into(),
        timeout: Duration::from_secs(2),
        score_min: 0.5,
        score_max: 1.0,
        error_on_invalid_score: true,
    }
}

const RETRY: &str = "Invalid captcha response. Retrying may solve this issue.";
const INVALID: &str = "Invalid captcha response";
const FAILED: &str = "Failed to validate token";

#[tokio::test]
async fn captcha_success_posts_the_form() {
    let answer = json!({"success": true, "score": 0.9, "hostname": "auth.example.test"});
    let sv = SiteVerify::spawn(answer.clone()).await;
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let got = verifier(sv.url()).verify("the-token", Some(ip)).await;
    assert_eq!(got, Ok(answer));
    let posted = sv.requests();
    assert_eq!(posted.len(), 1);
    let p = &posted[0];
    assert_eq!(p.method, "POST");
    assert_eq!(p.path, "/siteverify");
    assert_eq!(p.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert!(p.user_agent.as_deref().is_some_and(|u| u.starts_with("flowgate")));
    assert_eq!(p.host.as_deref(), Some(sv.addr().to_string().as_str()));
    assert_eq!(
        (p.secret.as_str(), p.response.as_str(), p.remoteip.as_deref()),
        ("private-key", "the-token", Some("203.0.113.7"))
    );

    // Without a known address, no remoteip field; a token with form metacharacters round-trips.
    verifier(sv.url()).verify("a&b=c+d e", None).await.unwrap();
    let p = &sv.requests()[1];
    assert_eq!((p.response.as_str(), p.remoteip.as_deref()), ("a&b=c+d e", None));
}

#[tokio::test]
async fn captcha_score_bounds() {
    let sv = SiteVerify::spawn(json!({"success": true, "score": 0.1})).await;
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(INVALID.into()));
    let mut v = verifier(sv.url());
    v.score_min = -1.0;
    assert!(v.verify("t", None).await.is_ok());
    sv.set_answer(json!({"success": true, "score": 1.5}));
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(INVALID.into()));
    v.score_min = 0.5;
    v.score_max = -1.0;
    assert!(v.verify("t", None).await.is_ok());
    // No score at all (checkbox captchas): success decides.
    sv.set_answer(json!({"success": true}));
    assert!(verifier(sv.url()).verify("t", None).await.is_ok());
}

#[tokio::test]
async fn captcha_refusals() {
    let sv = SiteVerify::spawn(json!({"success": false, "error-codes": ["timeout-or-duplicate"]})).await;
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(RETRY.into()));
    sv.set_answer(json!({"success": false, "error-codes": ["expired-input-response", "already-seen-response"]}));
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(RETRY.into()));
    sv.set_answer(json!({"success": false, "error-codes": ["invalid-input-response", "invalid-input-secret"]}));
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(INVALID.into()));
    sv.set_answer(json!({"success": false}));
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(INVALID.into()));
    // With error_on_invalid_score off, the answer goes back to the caller as it is.
    let mut v = verifier(sv.url());
    v.error_on_invalid_score = false;
    assert_eq!(v.verify("t", None).await, Ok(json!({"success": false})));
}

#[tokio::test]
async fn captcha_endpoint_failures() {
    let sv = SiteVerify::spawn(json!({"success": true})).await;
    sv.set_status(500);
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(FAILED.into()));
    sv.set_status(200);
    sv.set_raw_answer("<html>not json</html>");
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(FAILED.into()));
    sv.set_raw_answer("[true]");
    assert_eq!(verifier(sv.url()).verify("t", None).await, Err(FAILED.into()));

    let down = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    assert_eq!(
        verifier(format!("http://{down}/siteverify")).verify("t", None).await,
        Err(FAILED.into())
    );
    assert_eq!(
        verifier("ftp://nowhere/".into()).verify("t", None).await,
        Err(FAILED.into())
    );
}

#[tokio::test]
async fn captcha_timeout() {
    let sv = SiteVerify::spawn_slow(Duration::from_secs(10)).await;
    let mut v = verifier(sv.url());
    v.timeout = Duration::from_millis(200);
    let got = tokio::time::timeout(Duration::from_secs(3), v.verify("t", None))
        .await
        .expect("verify must give up within its timeout");
    assert_eq!(got, Err(FAILED.into()));
    assert_eq!(sv.requests().len(), 1);
}

#[tokio::test]
async fn captcha_empty_token_makes_no_request() {
    let sv = SiteVerify::spawn(json!({"success": true})).await;
    assert_eq!(verifier(sv.url()).verify("", None).await, Err(RETRY.into()));
    assert!(sv.requests().is_empty());
}

// === test server helpers ===

#[tokio::test]
async fn test_server_speaks_auth_login_and_decodes_base64() {
    use base64::Engine as _;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let server = SmtpServer::spawn().await.with_auth("u", "p w");
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut conn = BufReader::new(tcp);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let body = b64("Grüße base64 https://example.test/?t=1");
    let script = [
        "EHLO client".to_string(),
        "AUTH LOGIN".into(),
        b64("u"),
        b64("p w"),
        "MAIL FROM:<a@example.test>".into(),
        "RCPT TO:<b@example.test>".into(),
        "DATA".into(),
        format!("Subject: b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n."),
        "QUIT".into(),
    ];
    let mut answers = Vec::new();
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    for cmd in script {
        conn.get_mut().write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        // Read up to the last line of the reply ("250 " rather than "250-").
        loop {
            line.clear();
            conn.read_line(&mut line).await.unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        answers.push(line[..3].to_string());
    }
    assert_eq!(answers, ["250", "334", "334", "235", "250", "250", "354", "250", "221"]);
    let got = server.wait_for(1, WAIT).await;
    assert_eq!(got[0].user.as_deref(), Some("u"));
    assert_eq!(got[0].text(), "Grüße base64 https://example.test/?t=1");
}
