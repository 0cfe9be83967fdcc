//! Server-rendered pages from minijinja templates (autoescaped). The templates are embedded in
//! the binary; each stage component has its own file, so an operator can later override them
//! one by one.

use crate::flow::executor::FlowInfo;
use crate::flow::Challenge;
use minijinja::{context, Environment};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("errors.html", include_str!("../../templates/errors.html")),
    ("error.html", include_str!("../../templates/error.html")),
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
];

/// The stylesheet.
pub const STYLESHEET: &str = include_str!("../../static/flowgate.css");

/// The template environment.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Loads the embedded templates.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src)?;
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

    /// Renders a generic error page.
    pub fn error(
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
