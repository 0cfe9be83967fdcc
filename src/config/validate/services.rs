//! Validation of the service blocks of the main file: `mail:` (transport, credentials, public
//! link base), `ui:` (title, template overrides) and `rate_limits:`.

use super::secrets::{secret, url_ok};
use super::Collector;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::values::mail::{
    MailTransport, SmtpSecurity, DEFAULT_MAIL_DIR, DEFAULT_MAIL_TRANSPORT, DEFAULT_SMTP_HOST, DEFAULT_SMTP_PLAIN_PORT,
    DEFAULT_SMTP_STARTTLS_PORT, DEFAULT_SMTP_TIMEOUT, DEFAULT_SMTP_TLS_PORT,
};
use crate::config::values::secret::Secret;
use std::path::Path;

/// `mail:`.
pub(crate) fn mail(c: &mut Collector<'_>, main: &RawFile, base: &Path, data_dir: &Path) -> Option<MailSettings> {
    let m = main.mail.as_ref()?;
    let public_url = m.public_url.clone();
    if let Some(u) = &public_url {
        if !url_ok(u) || u.ends_with('/') {
            c.err(
                0,
                "mail.public_url",
                format!("invalid URL {u:?} (expected http(s)://host[:port], no trailing slash)"),
            );
        }
    }
    let transport = match m.transport.as_deref().unwrap_or(DEFAULT_MAIL_TRANSPORT) {
        "file" => {
            for (key, set) in [
                ("host", m.host.is_some()),
                ("port", m.port.is_some()),
                ("security", m.security.is_some()),
                ("username", m.username.is_some()),
            ] {
                if set {
                    c.err(0, format!("mail.{key}"), "only the smtp transport takes this");
                }
            }
            MailTransport::File {
                dir: m
                    .dir
                    .as_deref()
                    .map(|d| base.join(d))
                    .unwrap_or_else(|| data_dir.join(DEFAULT_MAIL_DIR)),
            }
        }
        "smtp" => {
            if m.dir.is_some() {
                c.err(0, "mail.dir", "only the file transport takes this");
            }
            let security = c.choice(
                0,
                "mail.security".into(),
                &m.security,
                SmtpSecurity::StartTls,
                &[
                    ("starttls", SmtpSecurity::StartTls),
                    ("tls", SmtpSecurity::Tls),
                    ("none", SmtpSecurity::None),
                ],
            );
            let password = secret(
                c,
                0,
                "mail",
                None,
                m.password_env.as_ref(),
                m.password_file.as_ref(),
                "password",
            );
            if password.is_some() && m.username.is_none() {
                c.err(0, "mail.username", "a password is set but no username");
            }
            MailTransport::Smtp {
                host: m.host.clone().unwrap_or_else(|| DEFAULT_SMTP_HOST.into()),
                port: m.port.unwrap_or(match security {
                    SmtpSecurity::Tls => DEFAULT_SMTP_TLS_PORT,
                    SmtpSecurity::StartTls => DEFAULT_SMTP_STARTTLS_PORT,
                    SmtpSecurity::None => DEFAULT_SMTP_PLAIN_PORT,
                }),
                security,
                username: m.username.clone(),
                password: password.map(Secret::from),
                timeout: c.duration(0, "mail.timeout".into(), &m.timeout, DEFAULT_SMTP_TIMEOUT),
                ca_file: m.ca_file.as_deref().map(|f| base.join(f)),
            }
        }
        other => {
            c.err(
                0,
                "mail.transport",
                format!("unknown value {other:?} (expected one of: smtp, file)"),
            );
            return None;
        }
    };
    Some(MailSettings { transport, public_url })
}

/// `ui:`.
pub(crate) fn ui(c: &mut Collector<'_>, main: &RawFile, base: &Path) -> UiSettings {
    let Some(u) = main.ui.as_ref() else {
        return UiSettings {
            title: "flowgate".into(),
            templates: None,
        };
    };
    let templates = u.templates.as_deref().map(|t| base.join(t));
    if let Some(t) = &templates {
        if !t.is_dir() {
            c.err(0, "ui.templates", format!("{} is not a directory", t.display()));
        }
    }
    UiSettings {
        title: u.title.clone().unwrap_or_else(|| DEFAULT_UI_TITLE.into()),
        templates,
    }
}

/// `rate_limits:`; absent keys keep their defaults, `off` disables one.
pub(crate) fn rate_limits(
    c: &mut Collector<'_>,
    main: &RawFile,
) -> crate::config::values::ratelimit::RateLimitSettings {
    use crate::config::values::ratelimit::Limit;
    let mut s = crate::config::values::ratelimit::RateLimitSettings::default();
    let Some(r) = main.rate_limits.as_ref() else {
        return s;
    };
    for (key, raw, slot) in [
        ("password_per_ip", &r.password_per_ip, &mut s.password_per_ip),
        (
            "password_per_username",
            &r.password_per_username,
            &mut s.password_per_username,
        ),
        ("code_per_ip", &r.code_per_ip, &mut s.code_per_ip),
        ("code_per_username", &r.code_per_username, &mut s.code_per_username),
        ("mail_per_address", &r.mail_per_address, &mut s.mail_per_address),
        ("mail_per_ip", &r.mail_per_ip, &mut s.mail_per_ip),
        ("signup_per_ip", &r.signup_per_ip, &mut s.signup_per_ip),
    ] {
        match raw.as_deref() {
            None => {}
            Some("off") => *slot = None,
            Some(v) => match Limit::parse(v) {
                Ok(l) => *slot = Some(l),
                Err(e) => c.err(0, format!("rate_limits.{key}"), format!("{e}, or off")),
            },
        }
    }
    s
}
