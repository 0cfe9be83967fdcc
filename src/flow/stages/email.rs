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
//! (enrollment that verifies the address before the user is written). When identification
//! chose the user, an unknown (pretend) identifier and an account without an address get the
//! same "mail sent" page as everyone else and no mail; the mail itself is queued and sent off
//! the request path (`outbound::mail_queue`), so no answer depends on the transport (ENUM-4).
//! Following the link proves the address: user_write stores it as verified, and an existing
//! user's address is marked verified here. Links are built from
//! `mail.public_url`, else from the request's origin when it is trusted (never from an
//! arbitrary Host header: that would let anyone mail a victim a link to their own server).
//!
//! Every send (and every pretend send for an unknown identifier) first takes one mail from the
//! per-address and per-client limits (`rate_limits.mail_per_address`, `.mail_per_ip`, FLOOD-1):
//! a refusal is the same 429 for known and unknown addresses.

use super::{Stage, StageCx, StageOutcome};
use crate::config::EmailDef;
use crate::config::EmailTemplate;
use crate::flow::ratelimit::Limited;
use crate::flow::services::FlowToken;
use crate::flow::{Challenge, FlowState};
use crate::identity::{names, UserUpdate};
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

/// The shortest time a send step takes to answer, whatever happened (ENUM-4): a known account
/// costs a token, a database write and a queued mail, an unknown identifier less, and the
/// difference (under a millisecond, more when the mail thread competes for the CPU) must not
/// show. Every answer of the step waits until this much time has passed since it started. It
/// is wall time on purpose (what an attacker measures), not the flow clock.
pub const SEND_ANSWER_FLOOR: Duration = Duration::from_millis(25);
/// Context key, only in the plan parked behind a link: the address the link was mailed to.
pub(super) const VERIFIED_ADDRESS: &str = "email_verified_address";

/// Mails a link.
pub(super) struct EmailStage {
    from_address: String,
    subject: String,
    template: EmailTemplate,
    token_expiry: Duration,
    activate_user_on_success: bool,
}

impl EmailStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &EmailDef) -> Self {
        Self {
            from_address: c.from_address.clone(),
            subject: c.subject.clone(),
            template: c.template,
            token_expiry: c.token_expiry,
            activate_user_on_success: c.activate_user_on_success,
        }
    }
}

enum Sent {
    /// Queued, or (for an identifier without an account or address) as good as.
    Yes,
    Failed(String),
    Limited(Duration),
    Unavailable,
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

    /// Sends (queues) the mail. Every step answers the same whether or not the identifier
    /// belongs to an account (ENUM-4): the mail limits (FLOOD-1) and the resend limit count
    /// every attempt, a link base or transport missing fails for everyone, an unknown
    /// identifier or an account without an address goes through the same motions (a decoy
    /// token, the template) and queues nothing, and the transport's own result is only logged,
    /// since the mail leaves off the request path.
    async fn send(&self, cx: &mut StageCx<'_>) -> Sent {
        let started = tokio::time::Instant::now();
        let sent = self.send_now(cx).await;
        tokio::time::sleep_until(started + SEND_ANSWER_FLOOR).await;
        sent
    }

    /// [`Self::send`] without the answer floor.
    async fn send_now(&self, cx: &mut StageCx<'_>) -> Sent {
        // FLOOD-1: counted before anything depends on whether the account exists.
        match cx.services.limits.check_mail(cx.client_ip, &Self::limit_key(cx)).await {
            Ok(()) => {}
            Err(Limited::Wait(wait)) => {
                tracing::warn!(wait_s = wait.as_secs(), "mail rate-limited");
                cx.services.telemetry.metrics.rate_limited("mail");
                return Sent::Limited(wait);
            }
            Err(Limited::Unavailable) => return Sent::Unavailable,
        }
        let sends = cx.context.extra.get(SENDS).and_then(Value::as_u64).unwrap_or(0);
        if sends >= MAX_SENDS {
            return Sent::Failed("Too many emails were sent. Please start again later.".into());
        }
        let Some(mailer) = cx.services.mailer.clone() else {
            tracing::error!("email stage reached without a mail transport");
            return Sent::Failed("Email is not configured.".into());
        };
        let Some(base) = cx.services.public_url.clone().or_else(|| cx.origin.map(str::to_string)) else {
            tracing::error!("no trusted origin for mail links: set mail.public_url");
            return Sent::Failed("Email links cannot be built for this address. Contact the administrator.".into());
        };
        cx.context.extra.insert(SENDS.into(), json!(sends + 1));
        // Identification picked the pending user: whether it is an account, and whether the
        // account has an address, must not show. Without one (enrollment) the address is what
        // the user typed, and a missing one is theirs to fix.
        let identified = cx.context.pending_user.is_some();
        let pretend = cx.context.pending_user.as_ref().is_some_and(|p| p.user.is_none());
        let (address, user_id, name) = Self::destination(cx);
        let address = match address {
            Some(a) if !pretend => Some(a),
            _ if identified => None,
            _ => return Sent::Failed("No email address is known for this account.".into()),
        };
        let expires_ms = cx.now_ms.saturating_add(self.token_expiry.as_millis() as u64);
        let mut parked = cx.context.clone();
        // Only the copy behind the link carries the address: a plan that comes back through
        // the link proves it (user_write marks the address verified).
        let proved = address.clone().unwrap_or_else(|| self.from_address.clone());
        parked.extra.insert(VERIFIED_ADDRESS.into(), Value::String(proved));
        let state = FlowState {
            flow: cx.flow_slug.to_string(),
            plan: cx.plan.to_vec(),
            context: parked,
            query: cx.query.to_string(),
            app: cx.app.map(str::to_string),
        };
        let token = match &address {
            Some(a) => {
                let issued = cx.services.tokens.issue(FlowToken {
                    flow: cx.flow_slug.to_string(),
                    state,
                    user_id,
                    address: a.clone(),
                    browser: Some(crate::flow::services::token_hash(cx.session_id)),
                    expires_ms,
                });
                let Ok(token) = issued.await else {
                    return Sent::Failed("The link could not be stored. Try again later.".into());
                };
                // Cancelling this plan ends its links too (LINK-2).
                let issued = cx.context.extra.entry(ISSUED).or_insert_with(|| json!([]));
                if let Value::Array(a) = issued {
                    a.push(json!(crate::flow::services::token_hash(&token)));
                }
                token
            }
            // The same work as a real token, kept nowhere (a flood of unknown identifiers
            // must not crowd real links out of the token store).
            None => {
                std::hint::black_box(state);
                crate::session::new_id()
            }
        };
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
            expires_minutes => self.token_expiry.as_secs().div_ceil(60),
        };
        let (text, html) = match cx.services.mail_templates.render(self.template.name(), ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "mail template failed");
                return Sent::Failed("The email could not be prepared. Contact the administrator.".into());
            }
        };
        let mail = Mail {
            from: self.from_address.clone(),
            to: address.clone().unwrap_or_else(|| self.from_address.clone()),
            subject: self.subject.clone(),
            text,
            html: Some(html),
        };
        if address.is_some() {
            if cx.services.mail_queue.enqueue(&mailer, mail) {
                tracing::info!(flow = %cx.flow_slug, "verification mail queued");
            }
        } else {
            // Built on the mail thread and dropped: the machine does the same work either way.
            cx.services.mail_queue.enqueue_decoy(&mailer, mail);
            tracing::info!(flow = %cx.flow_slug, "no account or no address for the identifier: no mail sent");
        }
        Sent::Yes
    }

    /// Back through the link: the stored user (if any) is activated when configured, and its
    /// address is verified when the link went to it.
    async fn restored(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let Some(user) = cx.context.pending_user.as_ref().and_then(|p| p.user.as_ref()) else {
            return StageOutcome::Continue;
        };
        let proved = cx
            .context
            .extra
            .get(VERIFIED_ADDRESS)
            .and_then(Value::as_str)
            .is_some_and(|a| !user.email.is_empty() && names::email_key(a) == names::email_key(&user.email));
        let up = UserUpdate {
            is_active: self.activate_user_on_success.then_some(true),
            email_verified: (proved && !user.email_verified).then_some(true),
            ..Default::default()
        };
        if up.is_active.is_none() && up.email_verified.is_none() {
            return StageOutcome::Continue;
        }
        match cx.users.update_user(user.id, up).await {
            Ok(u) => {
                if let Some(p) = cx.context.pending_user.as_mut() {
                    p.user = Some(u);
                }
                StageOutcome::Continue
            }
            Err(e) => {
                tracing::error!(error = %e, "activating user failed");
                StageOutcome::Deny("Failed to activate the account. Please try again later.".into())
            }
        }
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
            Sent::Yes => {
                cx.context.extra.insert(SENT.into(), Value::Bool(true));
                StageOutcome::Challenge(self.page())
            }
            Sent::Failed(msg) => {
                StageOutcome::Challenge(self.page().with_error("non_field_errors", &msg, "email-failed"))
            }
            Sent::Limited(wait) => StageOutcome::RateLimited(wait),
            Sent::Unavailable => StageOutcome::Unavailable,
        }
    }

    /// Any response asks for the mail again (authentik: always "invalid" with `email-sent`).
    async fn submit(&self, cx: &mut StageCx<'_>, _response: &Map<String, Value>) -> StageOutcome {
        if cx.context.extra.contains_key("is_restored") {
            return self.restored(cx).await;
        }
        match self.send(cx).await {
            Sent::Yes => {
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
            Sent::Unavailable => StageOutcome::Unavailable,
        }
    }
}
