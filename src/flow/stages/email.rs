//! Email stage (docs/design.md §5.8): mails a link that resumes the plan.
//!
//! On its first run the stage parks a copy of the plan (itself first) behind a single-use
//! token that expires after `token_expiry`, and mails `<base>/.flowgate/flow/<slug>/?<query>&
//! flow_token=<token>`. Opening the link restores that plan with a confirmation step in front
//! (the executor injects it), so a mail scanner fetching the link does not use it up; the
//! token is consumed when the user confirms. The stage then sees `is_restored` and continues,
//! activating the user when configured.
//!
//! The address is the context's `email`, else the pending user's, else `prompt_data.email`
//! (enrollment that verifies the address before the user is written). In a recovery flow an
//! unknown (pretend) user gets the same "mail sent" page and no mail. Links are built from
//! `mail.public_url`, else from the request's origin when it is trusted (never from an
//! arbitrary Host header: that would let anyone mail a victim a link to their own server).
//!
//! Every send (and every pretend send for an unknown identifier) first takes one mail from the
//! per-address and per-client limits (`rate_limits.mail_per_address`, `.mail_per_ip`, FLOOD-1):
//! a refusal is the same 429 for known and unknown addresses.

use super::{Stage, StageCx, StageOutcome};
use crate::config::{Designation, EmailTemplate};
use crate::flow::services::FlowToken;
use crate::flow::{Challenge, FlowState};
use crate::identity::UserUpdate;
use crate::outbound::mail::Mail;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Component name.
const COMPONENT: &str = "ak-stage-email";
/// Context key set once the mail went out.
const SENT: &str = "email_sent";
/// Context key counting sends in this plan.
const SENDS: &str = "email_sends";
/// Context key listing the hashes of the tokens this plan mailed.
pub(crate) const ISSUED: &str = "email_token_hashes";
/// Most mails one plan may send (first send plus resends).
const MAX_SENDS: u64 = 5;

/// Mails a link.
pub(super) struct EmailStage {
    pub(super) from: String,
    pub(super) subject: String,
    pub(super) template: EmailTemplate,
    pub(super) expiry: Duration,
    pub(super) activate: bool,
}

enum Sent {
    Yes,
    Skipped,
    Failed(String),
    Limited(Duration),
}

impl EmailStage {
    fn page(&self) -> Challenge {
        Challenge::new(COMPONENT, Map::new(), true)
    }

    /// Where the mail goes and for which stored user.
    fn destination(cx: &StageCx<'_>) -> (Option<String>, Option<i64>, String) {
        let pending = cx.context.pending_user.as_ref();
        let user = pending.and_then(|p| p.user.as_ref());
        let name = user
            .map(|u| {
                if u.name.is_empty() {
                    u.username.clone()
                } else {
                    u.name.clone()
                }
            })
            .or_else(|| {
                let data = cx.prompt_data();
                data.get("name")
                    .or_else(|| data.get("username"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let address = cx
            .context
            .extra
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| user.map(|u| u.email.clone()))
            .or_else(|| {
                if pending.is_none() {
                    cx.prompt_data()
                        .get("email")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                } else {
                    None
                }
            })
            .filter(|a| !a.is_empty());
        (address, user.map(|u| u.id), name)
    }

    /// The key of the per-address mail limit: the recipient, or for a pretend user (an unknown
    /// identifier) what was typed, so known and unknown addresses are limited alike.
    fn limit_key(cx: &StageCx<'_>) -> String {
        let (address, _, _) = Self::destination(cx);
        address
            .or_else(|| cx.context.pending_user.as_ref().map(|p| p.identifier.clone()))
            .unwrap_or_default()
    }

    async fn send(&self, cx: &mut StageCx<'_>) -> Sent {
        // FLOOD-1: counted before anything depends on whether the account exists.
        if let Err(wait) = cx.services.limits.check_mail(cx.client_ip, &Self::limit_key(cx)) {
            tracing::warn!(wait_s = wait.as_secs(), "mail rate-limited");
            return Sent::Limited(wait);
        }
        let pretend = cx.context.pending_user.as_ref().is_some_and(|p| p.user.is_none());
        if pretend && cx.designation == Designation::Recovery {
            tracing::info!("recovery for an unknown identifier: no mail sent");
            return Sent::Skipped;
        }
        let sends = cx.context.extra.get(SENDS).and_then(Value::as_u64).unwrap_or(0);
        if sends >= MAX_SENDS {
            return Sent::Failed("Too many emails were sent. Please start again later.".into());
        }
        let (Some(address), user_id, name) = Self::destination(cx) else {
            return Sent::Failed("No email address is known for this account.".into());
        };
        let Some(mailer) = cx.services.mailer.as_ref() else {
            tracing::error!("email stage reached without a mail transport");
            return Sent::Failed("Email is not configured.".into());
        };
        let Some(base) = cx.services.public_url.as_deref().or(cx.origin) else {
            tracing::error!("no trusted origin for mail links: set mail.public_url");
            return Sent::Failed("Email links cannot be built for this address. Contact the administrator.".into());
        };
        let expires_ms = cx.now_ms.saturating_add(self.expiry.as_millis() as u64);
        let state = FlowState {
            flow: cx.flow_slug.to_string(),
            plan: cx.plan.to_vec(),
            context: cx.context.clone(),
            query: cx.query.to_string(),
            app: cx.app.map(str::to_string),
        };
        let token = cx.services.tokens.issue(FlowToken {
            flow: cx.flow_slug.to_string(),
            state,
            user_id,
            address: address.clone(),
            browser: Some(crate::flow::services::token_hash(cx.session_id)),
            expires_ms,
        });
        // Cancelling this plan ends its links too (LINK-2).
        let issued = cx.context.extra.entry(ISSUED).or_insert_with(|| json!([]));
        if let Value::Array(a) = issued {
            a.push(json!(crate::flow::services::token_hash(&token)));
        }
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form_urlencoded::parse(cx.query.as_bytes()).filter(|(k, _)| k != "flow_token") {
                q.append_pair(&k, &v);
            }
            q.append_pair("flow_token", &token);
            q.finish()
        };
        let url = format!("{base}{}flow/{}/?{query}", crate::config::RESERVED_PREFIX, cx.flow_slug);
        let ctx = minijinja::context! {
            url => url, name => name, title => cx.services.title,
            expires_minutes => self.expiry.as_secs().div_ceil(60),
        };
        let (text, html) = match cx.services.mail_templates.render(self.template.name(), ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "mail template failed");
                return Sent::Failed("The email could not be prepared. Contact the administrator.".into());
            }
        };
        let mail = Mail {
            from: self.from.clone(),
            to: address,
            subject: self.subject.clone(),
            text,
            html: Some(html),
        };
        cx.context.extra.insert(SENDS.into(), json!(sends + 1));
        match mailer.send(&mail).await {
            Ok(()) => {
                tracing::info!(flow = %cx.flow_slug, "verification mail sent");
                Sent::Yes
            }
            Err(e) => {
                tracing::error!(error = %e, "sending mail failed");
                Sent::Failed("The email could not be sent. Please try again later.".into())
            }
        }
    }

    async fn restored(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        if self.activate {
            let Some(id) = cx
                .context
                .pending_user
                .as_ref()
                .and_then(|p| p.user.as_ref())
                .map(|u| u.id)
            else {
                return StageOutcome::Continue;
            };
            let up = UserUpdate {
                is_active: Some(true),
                ..Default::default()
            };
            match cx.users.update_user(id, up).await {
                Ok(u) => {
                    if let Some(p) = cx.context.pending_user.as_mut() {
                        p.user = Some(u);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "activating user failed");
                    return StageOutcome::Deny("Failed to activate the account. Please try again later.".into());
                }
            }
        }
        StageOutcome::Continue
    }
}

#[async_trait::async_trait]
impl Stage for EmailStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        if cx.context.extra.contains_key("is_restored") {
            return self.restored(cx).await;
        }
        if cx.context.extra.contains_key(SENT) {
            return StageOutcome::Challenge(self.page());
        }
        match self.send(cx).await {
            Sent::Yes | Sent::Skipped => {
                cx.context.extra.insert(SENT.into(), Value::Bool(true));
                StageOutcome::Challenge(self.page())
            }
            Sent::Failed(msg) => {
                StageOutcome::Challenge(self.page().with_error("non_field_errors", &msg, "email-failed"))
            }
            Sent::Limited(wait) => StageOutcome::RateLimited(wait),
        }
    }

    /// Any response asks for the mail again (authentik: always "invalid" with `email-sent`).
    async fn submit(&self, cx: &mut StageCx<'_>, _response: &Map<String, Value>) -> StageOutcome {
        if cx.context.extra.contains_key("is_restored") {
            return self.restored(cx).await;
        }
        match self.send(cx).await {
            Sent::Yes | Sent::Skipped => {
                cx.context.extra.insert(SENT.into(), Value::Bool(true));
                StageOutcome::Challenge(self.page().with_error(
                    "non_field_errors",
                    "Email Successfully sent.",
                    "email-sent",
                ))
            }
            Sent::Failed(msg) => {
                StageOutcome::Challenge(self.page().with_error("non_field_errors", &msg, "email-failed"))
            }
            Sent::Limited(wait) => StageOutcome::RateLimited(wait),
        }
    }
}
