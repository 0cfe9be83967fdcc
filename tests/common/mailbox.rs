//! The mails the gateway's file transport wrote under `<dir>/mail`: waiting until the mail
//! queue is idle, the `flow_token` links mailed to an address, and every mail as text.

use super::TestGateway;
use std::time::Duration;

/// Waits until every mail the gateway accepted so far was sent: mail leaves off the request
/// path (ENUM-4), so an answer can come before its mail is written.
pub fn wait_for_mail(gw: &TestGateway) {
    if let Some(r) = &gw.running {
        assert!(
            r.wait_mail_idle(Duration::from_secs(20)),
            "mail still queued after 20 s"
        );
    }
}

/// Every `flow_token` link in the mails written to `to` by the file transport.
pub fn mailed_links(gw: &TestGateway, to: &str) -> Vec<String> {
    wait_for_mail(gw);
    let dir = gw.dir.path().join("mail");
    let link = regex::Regex::new(r"https?://[^\s<>]+flow_token=[A-Za-z0-9_-]+").unwrap();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let eml = std::fs::read_to_string(e.unwrap().path())
            .unwrap()
            .replace("=\r\n", "")
            .replace("=3D", "=");
        if !eml.lines().any(|l| l.starts_with("To:") && l.contains(to)) {
            continue;
        }
        out.push(link.find(&eml).expect("a link in the mail").as_str().to_string());
    }
    out
}

/// The `flow_token` link in the (first) mail written to `to` by the file transport.
pub fn mailed_link(gw: &TestGateway, to: &str) -> String {
    mailed_links(gw, to)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no mail to {to} in {}", gw.dir.path().join("mail").display()))
}

/// Every mail file the file transport wrote, as text (empty when none).
pub fn all_mail(gw: &TestGateway) -> Vec<String> {
    wait_for_mail(gw);
    std::fs::read_dir(gw.dir.path().join("mail"))
        .map(|d| d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
        .unwrap_or_default()
}
