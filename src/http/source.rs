//! `/.flowgate/source/oauth/login/<slug>/` and `/.flowgate/source/oauth/callback/<slug>/`: a
//! login through an OAuth / OpenID Connect source. The login route starts the authorization
//! request and parks its `state`, `nonce` and PKCE verifier in the pre-authentication session;
//! the callback takes them out (once), checks `state` against the session's, has the source's
//! client verify everything, and hands the verified identity to the executor, which starts the
//! source's authentication or enrollment flow. Every failure is a page with a clear message, a
//! log line with the reason, no session and no user.

use super::respond::Refusal;
use super::{HttpRequest, HttpResponse};
use crate::flow::executor::SourceFlowError;
use crate::session;
use subtle::ConstantTimeEq;

/// Longest `code` / `state` / `error` accepted from the callback's query.
const MAX_PARAM_LEN: usize = 2048;

fn refused(status: u16, message: &str) -> Refusal {
    Refusal::SourceLogin {
        status,
        message: message.to_string(),
    }
}

impl super::Ui {
    /// The audit event of a refused source login (`login_failed`, reason `source_refused`, the
    /// source's key as the stage).
    fn audit_source_failure(&self, req: &HttpRequest, slug: &str) {
        self.executor
            .services()
            .telemetry
            .audit
            .emit(crate::telemetry::AuditEvent {
                event: "login_failed",
                client: Some(req.client_ip),
                result: "failure",
                reason: Some("source_refused"),
                stage: Some(slug),
                ..Default::default()
            });
    }

    pub(super) async fn source_oauth(&self, req: &HttpRequest, step: &str, slug: &str) -> HttpResponse {
        if req.method != http::Method::GET {
            return self.refuse_page(Refusal::MethodNotAllowed);
        }
        let client = self
            .executor
            .services()
            .sources
            .get(slug)
            .filter(|c| c.def().enabled)
            .cloned();
        let Some(client) = client else {
            return self.refuse_page(Refusal::NotFound);
        };
        match step {
            "login" => self.source_login(req, &client).await,
            "callback" => self.source_callback(req, &client).await,
            _ => self.refuse_page(Refusal::NotFound),
        }
    }

    async fn source_login(&self, req: &HttpRequest, client: &crate::identity::sources::OAuthClient) -> HttpResponse {
        let slug = &client.def().slug;
        // The callback address is built from the request's host only when it is one of ours:
        // an app's host, the portal's, loopback, or any host when an app serves every host.
        // (The provider also refuses a `redirect_uri` it does not have registered.)
        let ours = |h: &&str| {
            let bare = crate::routing::strip_port(h).to_ascii_lowercase();
            crate::routing::trusted_link_host(&self.router, h)
                || self.portal.as_ref().is_some_and(|p| p.host == bare)
                || (self.router.serves_any_host() && crate::routing::canonical_host(h).is_some())
        };
        let Some(host) = req.header("host").filter(ours) else {
            tracing::warn!(source = %slug, "source login from an untrusted host name refused");
            return self.refuse_page(Refusal::BadHost);
        };
        let scheme = if req.https { "https" } else { "http" };
        let redirect_uri = format!(
            "{scheme}://{host}{}source/oauth/callback/{slug}/",
            crate::config::RESERVED_PREFIX
        );
        let now = self.sessions.clock().now_ms();
        let (to, pending) = match client.begin(&redirect_uri, now).await {
            Ok(x) => x,
            Err(f) => {
                tracing::warn!(source = %slug, reason = %f.reason, "source login not started");
                return self.refuse_page(refused(502, f.message));
            }
        };
        let session = self.session_of(req).await;
        if session.as_ref().is_some_and(|s| s.user.is_some()) {
            // Already logged in: nothing to start, and the session cookie stays as it is (a
            // cross-site link here must not swap it for a pre-login one).
            let to = crate::flow::next::next_from_query(&req.query).unwrap_or_else(|| "/".into());
            return HttpResponse::redirect(&to);
        }
        match self.executor.park_source_login(session, pending, &req.query).await {
            Ok((s, fresh)) => {
                let mut resp = HttpResponse::redirect(&to);
                if fresh {
                    let name = self.cookie_name(req.https);
                    resp.headers.push((
                        "set-cookie",
                        session::set_cookie_in(&name, &s.id, req.https, None, self.cookie_domain_for(req)),
                    ));
                }
                resp
            }
            Err(_) => self.refuse_page(Refusal::Unavailable),
        }
    }

    async fn source_callback(&self, req: &HttpRequest, client: &crate::identity::sources::OAuthClient) -> HttpResponse {
        let def = client.def();
        let slug = def.slug.as_str();
        let param = |k: &str| {
            form_urlencoded::parse(req.query.as_bytes())
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
                .filter(|v| v.len() <= MAX_PARAM_LEN)
        };
        let fail = |status: u16, message: &str, reason: &str| {
            tracing::warn!(source = %slug, reason, "source login refused");
            self.audit_source_failure(req, slug);
            self.refuse_page(refused(status, message))
        };
        let Some(session) = self.session_of(req).await.filter(|s| s.user.is_none()) else {
            return fail(
                400,
                "Your login session has expired or was started in another browser. Please start again.",
                "callback without a pre-authentication session",
            );
        };
        let taken = match self.executor.take_source_login(&session).await {
            Ok(t) => t,
            Err(_) => return self.refuse_page(Refusal::Unavailable),
        };
        let Some((pending, query)) = taken else {
            return fail(
                400,
                "This login link is not valid any more. Please start again.",
                "no started login in the session (state reused or never issued)",
            );
        };
        let state = param("state").unwrap_or_default();
        let state_ok = pending.source == slug
            && state.len() == pending.state.len()
            && bool::from(state.as_bytes().ct_eq(pending.state.as_bytes()));
        if !state_ok {
            return fail(
                400,
                "This login link is not valid any more. Please start again.",
                "state does not match the session's",
            );
        }
        if let Some(error) = param("error") {
            let code: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
            return fail(
                403,
                "The identity provider did not grant the login.",
                &format!("provider answered error={code}"),
            );
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            return fail(
                400,
                "The identity provider sent no authorization code.",
                "callback without code",
            );
        };
        let now = self.sessions.clock().now_ms();
        let who = match client.finish(&pending, &code, now).await {
            Ok(w) => w,
            Err(f) => {
                let status = if f.message == crate::identity::sources::oauth::PROVIDER_UNAVAILABLE {
                    502
                } else {
                    403
                };
                return fail(status, f.message, &f.reason);
            }
        };
        let outages = self.users.unavailable_count();
        match self
            .executor
            .continue_source_login(&session, def, who, &query, Some(req.client_ip))
            .await
        {
            Ok(to) => HttpResponse::redirect(&to),
            Err(SourceFlowError::Denied(m)) => {
                self.audit_source_failure(req, slug);
                self.refuse_page(refused(403, &m))
            }
            Err(SourceFlowError::Unavailable) if self.users.unavailable_count() != outages => {
                self.refuse_page(Refusal::UserStoreDown)
            }
            Err(SourceFlowError::Unavailable) => self.refuse_page(Refusal::Unavailable),
        }
    }
}
