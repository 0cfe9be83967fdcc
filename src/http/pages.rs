//! Server-rendered pages from minijinja templates (autoescaped). The templates are embedded in
//! the binary; each stage component has its own file, so an operator can later override them
//! one by one.

use crate::flow::executor::FlowInfo;
use crate::flow::Challenge;
use minijinja::{context, Environment};
use std::path::Path;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("errors.html", include_str!("../../templates/errors.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("user.html", include_str!("../../templates/user.html")),
    ("signed_out.html", include_str!("../../templates/signed_out.html")),
    (
        "ak-stage-identification.html",
        include_str!("../../templates/ak-stage-identification.html"),
    ),
    (
        "ak-stage-password.html",
        include_str!("../../templates/ak-stage-password.html"),
    ),
    (
        "ak-stage-access-denied.html",
        include_str!("../../templates/ak-stage-access-denied.html"),
    ),
    (
        "ak-stage-prompt.html",
        include_str!("../../templates/ak-stage-prompt.html"),
    ),
    (
        "ak-stage-email.html",
        include_str!("../../templates/ak-stage-email.html"),
    ),
    (
        "ak-stage-captcha.html",
        include_str!("../../templates/ak-stage-captcha.html"),
    ),
    (
        "ak-stage-consent.html",
        include_str!("../../templates/ak-stage-consent.html"),
    ),
    (
        "ak-stage-dummy.html",
        include_str!("../../templates/ak-stage-dummy.html"),
    ),
    (
        "ak-stage-user-login.html",
        include_str!("../../templates/ak-stage-user-login.html"),
    ),
    (
        "ak-stage-authenticator-totp.html",
        include_str!("../../templates/ak-stage-authenticator-totp.html"),
    ),
    (
        "ak-stage-authenticator-static.html",
        include_str!("../../templates/ak-stage-authenticator-static.html"),
    ),
    (
        "ak-stage-authenticator-validate.html",
        include_str!("../../templates/ak-stage-authenticator-validate.html"),
    ),
    (
        "ak-stage-authenticator-webauthn.html",
        include_str!("../../templates/ak-stage-authenticator-webauthn.html"),
    ),
];

/// The stylesheet.
pub const STYLESHEET: &str = include_str!("../../static/flowgate.css");
/// The one script of the UI: hands WebAuthn options to `navigator.credentials`.
pub const WEBAUTHN_SCRIPT: &str = include_str!("../../static/webauthn.js");
/// Where [`WEBAUTHN_SCRIPT`] is served; the pages' CSP allows this path and no other script.
pub const WEBAUTHN_SCRIPT_PATH: &str = "/.flowgate/static/webauthn.js";

/// serde_json's arbitrary-precision numbers (a feature another crate turns on) pass through
/// minijinja as `{"$serde_json::private::Number": "12"}`: turn them back into numbers.
fn unwrap_numbers(v: &mut serde_json::Value) {
    const KEY: &str = "$serde_json::private::Number";
    match v {
        serde_json::Value::Object(m) => {
            if m.len() == 1 {
                if let Some(n) = m
                    .get(KEY)
                    .and_then(|n| n.as_str())
                    .and_then(|n| n.parse::<serde_json::Number>().ok())
                {
                    *v = serde_json::Value::Number(n);
                    return;
                }
            }
            m.values_mut().for_each(unwrap_numbers);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(unwrap_numbers),
        _ => {}
    }
}

/// The template environment.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Loads the embedded templates, each replaced by `<dir>/<name>` when that file exists, so
    /// an operator can override pages one by one. A template that does not compile is an error
    /// naming the file.
    pub fn new(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        // JSON of a value (the WebAuthn options handed to the page's script), autoescaped like
        // any other text where it is used.
        env.add_filter("tojson", |v: minijinja::Value| {
            let mut json = serde_json::to_value(&v)
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))?;
            unwrap_numbers(&mut json);
            Ok(json.to_string())
        });
        for (name, builtin) in TEMPLATES {
            let src = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(p) => {
                    tracing::info!(template = %p.display(), "using an overridden template");
                    crate::input_limits::read_capped_string(&p, crate::input_limits::MAX_TEMPLATE_BYTES)
                        .map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => (*builtin).to_string(),
            };
            env.add_template_owned(name.to_string(), src)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, template = name, "template failed to render");
                "<!doctype html><title>Error</title><h1>Something went wrong</h1>".to_string()
            }
        }
    }

    /// Renders a stage challenge as a form.
    pub fn challenge(&self, info: &FlowInfo, c: &Challenge, pending_user: Option<&str>, csrf: &str) -> String {
        let name = format!("{}.html", c.component);
        let name = if self.env.get_template(&name).is_ok() {
            name
        } else {
            "error.html".to_string()
        };
        self.render(
            &name,
            context! {
                flow_info => info,
                challenge => minijinja::Value::from_serialize(&c.fields),
                errors => minijinja::Value::from_serialize(&c.errors),
                pending_user => pending_user,
                csrf_token => csrf,
                status => 500, heading => "Unsupported stage", message => "This stage cannot be shown.",
            },
        )
    }

    /// Renders the access-denied page.
    pub fn access_denied(&self, info: &FlowInfo, message: &str) -> String {
        let lines: Vec<&str> = message.split('\n').collect();
        self.render(
            "ak-stage-access-denied.html",
            context! { flow_info => info, error_message => message, error_lines => lines },
        )
    }

    /// Renders the page shown after a logout: what ended.
    pub fn signed_out(&self, message: &str, ended: &[String]) -> String {
        self.render("signed_out.html", context! { message => message, ended => ended })
    }

    /// Renders the error page; only [`super::respond::render`] calls it.
    pub(super) fn error(
        &self,
        status: u16,
        heading: &str,
        message: &str,
        messages: &[String],
        link: Option<(&str, &str)>,
    ) -> String {
        self.render(
            "error.html",
            context! {
                status => status, heading => heading, message => message, messages => messages,
                link => link.map(|l| l.0), link_text => link.map(|l| l.1),
            },
        )
    }
}
