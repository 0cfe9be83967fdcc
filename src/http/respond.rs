//! The one mapping from a request's outcome to flowgate's own answer. Everything that stops a
//! request short of the app or of a flow page ([`Refusal`]) is rendered by [`render`], by who
//! asked ([`Client`]): an HTML page, a JSON error or a forward-auth answer. No other code builds
//! a status page, and each message is written once, in [`Refusal`]'s `Display`.
//!
//! | client | refusal | login required |
//! |---|---|---|
//! | [`Client::App`] (a request to an app's address) | HTML page | browser: 302 to the flow; API client or `Upgrade`: 401 `{error, login_url}` |
//! | [`Client::ForwardAuth`] | HTML page | nginx: 401 `{error, login_url}` + `X-Flowgate-Login`; Traefik/Caddy: 302 |
//! | [`Client::UiPage`] (login UI) | HTML page with a link home | (not used) |
//! | [`Client::UiApi`] (flow executor JSON API) | `{"detail": …}` | (not used) |
//!
//! An API client at an app's address gets the same HTML page as a browser for every refusal but
//! the login: that is how flowgate has always answered (a JSON body there would change the
//! answer tests and clients rely on). Bodies are generic; detail goes to the logs at the place
//! that decides to refuse. Every answer carries [`super::security_headers`].

use super::pages::Pages;
use super::{security_headers, HttpResponse};
use bytes::Bytes;
use serde_json::json;

/// Which forward-auth endpoint is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEndpoint {
    /// nginx `auth_request` (`/.flowgate/auth/nginx`).
    Nginx,
    /// Traefik `forwardAuth` and Caddy `forward_auth` (`/.flowgate/auth/traefik`).
    Traefik,
}

/// Who is asking: decides the form of the answer (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A request to an app's address (proxied when allowed). `browser`: `Accept` names
    /// `text/html` and there is no `Upgrade`.
    App {
        /// Whether a login is a redirect (browser) or a 401 (API client, WebSocket).
        browser: bool,
    },
    /// A forward-auth endpoint.
    ForwardAuth(AuthEndpoint),
    /// The login UI's HTML routes (flows, logout, default and cancel).
    UiPage,
    /// The flow executor's JSON API (authentik-compatible `{"detail": …}` errors).
    UiApi,
}

/// Which limit a request is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    /// The request target (414).
    Uri,
    /// The request headers (431).
    Headers,
    /// A form posted to the login UI (413).
    Form,
    /// A body for an app over its `max_body_bytes` (413).
    Body,
}

impl TooLarge {
    fn message(self) -> &'static str {
        match self {
            Self::Uri => "The address is too long.",
            Self::Headers => "The request headers are too large.",
            Self::Form => "The submitted form is too large.",
            Self::Body => "The request body is too large.",
        }
    }
}

/// Which kind of flow none applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFlowFor {
    /// The logout path (an invalidation flow).
    Logout,
    /// A `/.flowgate/flows/-/default/<designation>/` request.
    Designation,
}

impl NoFlowFor {
    fn message(self) -> &'static str {
        match self {
            Self::Logout => "No logout flow applies to you.",
            Self::Designation => "No flow of this kind applies to you.",
        }
    }
}

/// Why flowgate answers a request itself instead of forwarding it or showing a flow page.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    // === request checks, before routing ===
    /// The request line or headers are over a limit, or a body is.
    #[error("{}", .0.message())]
    TooLarge(TooLarge),
    /// Framing a proxy must not guess at; the reason names it.
    #[error("{0}")]
    BadRequest(&'static str),
    /// `Host` / `:authority` malformed, repeated or disagreeing.
    #[error("The request's host name is not valid.")]
    BadHost,
    /// A path that is refused or a disguised reserved path.
    #[error("The request path is not valid.")]
    BadPath,

    // === the access decision ===
    /// No app serves this host and path.
    #[error("No application is configured for this address.")]
    NoApp,
    /// The user must log in; the flow's URL (with `next`).
    #[error("authentication required")]
    LoginRequired(String),
    /// No login flow applies to the request.
    #[error("No login flow applies to this request.")]
    NoLoginFlow,
    /// An API client of an app with `basic_auth` without valid credentials: 401 with
    /// `WWW-Authenticate` for the realm (the app's name), never a login redirect.
    #[error("Valid credentials are required.")]
    ApiUnauthorized(String),
    /// An API client over the login rate limits: 429 after this many seconds.
    #[error("Too many attempts. Please wait {0} seconds and try again.")]
    ApiRateLimited(u64),
    /// The app's policies deny the session's user; their messages.
    #[error("You do not have access to this application.")]
    Denied(Vec<String>),

    // === the upstream ===
    /// The app could not be reached (502).
    #[error("The application is not reachable right now.")]
    UpstreamDown,
    /// The app did not answer in time (504).
    #[error("The application did not answer in time.")]
    UpstreamTimeout,
    /// Proxying failed with this status otherwise.
    #[error("The request could not be completed.")]
    Failed(u16),

    // === the gateway's own stores ===
    /// The session store or the shared limits cannot be reached (503): new logins and
    /// unknown sessions are refused until it is back (fail closed).
    #[error("Sign-in is unavailable right now. Try again shortly.")]
    Unavailable,

    // === forward auth ===
    /// The forward-auth caller is not a trusted proxy.
    #[error("This endpoint answers configured trusted proxies only.")]
    UntrustedPeer,
    /// The trusted proxy's description of the original request is unusable; the reason.
    #[error("{0}")]
    BadOriginal(String),
    /// The original path is refused or is flowgate's own.
    #[error("The original path is not valid or is flowgate's own; leave /.flowgate/ out of forward auth.")]
    BadOriginalPath,

    // === the login UI ===
    /// Nothing under the reserved prefix answers this path, or the flow does not exist.
    #[error("There is nothing here.")]
    NotFound,
    /// No flow of the asked kind applies.
    #[error("{}", .0.message())]
    NoFlow(NoFlowFor),
    /// A method other than GET and POST.
    #[error("Use GET or POST.")]
    MethodNotAllowed,
    /// A state-changing request whose `Origin` is another site.
    #[error("Cross-origin request refused.")]
    CrossOrigin,
    /// A body that is not a form (HTML) or JSON (API).
    #[error("Unsupported content type.")]
    UnsupportedType,
    /// A body that does not decode; the reason.
    #[error("{0}")]
    MalformedBody(&'static str),
    /// A form post without a session.
    #[error("Your session has expired. Please start again.")]
    SessionExpired,
    /// A form post whose CSRF token does not match the session's.
    #[error("The form has expired or did not come from this site. Please try again.")]
    FormExpired,
    /// Too many attempts at a flow; wait `retry_after` seconds. The page is titled after the
    /// flow and links to its cancel URL.
    #[error("Too many attempts. Please wait {retry_after} seconds and try again.")]
    RateLimited {
        /// Seconds to wait (at least 1).
        retry_after: u64,
        /// The flow's title (the page heading).
        title: String,
        /// Where "Start again" leads.
        cancel_url: String,
    },
    /// The user database could not be reached while the flow needed it (503); sessions keep
    /// being proxied meanwhile.
    #[error("Logging in is unavailable right now. Please try again in a moment.")]
    UserStoreDown,
    /// A login through an identity provider (source) failed: the status and the message
    /// (the reason is logged where it was decided).
    #[error("{message}")]
    SourceLogin {
        /// 400 (bad callback), 403 (refused), 502 (provider unreachable or broken).
        status: u16,
        /// Shown to the user.
        message: String,
    },
}

/// `Retry-After` of a 503 for an unreachable user database, in seconds.
const USER_STORE_RETRY_AFTER_SECS: u64 = 5;

impl Refusal {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge(TooLarge::Uri) => 414,
            Self::TooLarge(TooLarge::Headers) => 431,
            Self::TooLarge(_) => 413,
            Self::BadRequest(_) | Self::BadHost | Self::BadPath | Self::BadOriginal(_) | Self::BadOriginalPath => 400,
            Self::MalformedBody(_) => 400,
            Self::NoApp | Self::NoLoginFlow | Self::NotFound | Self::NoFlow(_) => 404,
            Self::LoginRequired(_) | Self::ApiUnauthorized(_) => 401,
            Self::ApiRateLimited(_) => 429,
            Self::Denied(_) | Self::UntrustedPeer | Self::CrossOrigin | Self::SessionExpired | Self::FormExpired => 403,
            Self::UpstreamDown => 502,
            Self::Unavailable => 503,
            Self::UpstreamTimeout => 504,
            Self::Failed(status) => *status,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedType => 415,
            Self::RateLimited { .. } => 429,
            Self::UserStoreDown => 503,
            Self::SourceLogin { status, .. } => *status,
        }
    }

    /// The page heading.
    fn heading(&self) -> &str {
        match self {
            Self::TooLarge(_) => "Request too large",
            Self::BadRequest(_) | Self::BadHost | Self::BadPath => "Bad request",
            Self::NoApp | Self::NotFound => "Not found",
            Self::LoginRequired(_) | Self::ApiUnauthorized(_) => "Authentication required",
            Self::ApiRateLimited(_) => "Too many attempts",
            Self::NoLoginFlow => "No login available",
            Self::Denied(_) => "Access denied",
            Self::UpstreamDown => "Bad gateway",
            Self::Unavailable => "Service unavailable",
            Self::UpstreamTimeout => "Gateway timeout",
            Self::Failed(_) => "Request failed",
            Self::UntrustedPeer => "Forward auth refused",
            Self::BadOriginal(_) | Self::BadOriginalPath => "Bad forward-auth request",
            Self::NoFlow(_) => "No flow available",
            Self::MethodNotAllowed => "Method not allowed",
            Self::CrossOrigin
            | Self::UnsupportedType
            | Self::MalformedBody(_)
            | Self::SessionExpired
            | Self::FormExpired => "Request refused",
            Self::RateLimited { title, .. } => title,
            Self::UserStoreDown => "Service unavailable",
            Self::SourceLogin { .. } => "Login failed",
        }
    }

    /// The `detail` of the executor API's JSON error: the message, except for a missing flow,
    /// which authentik answers with `Not found.`.
    fn detail(&self) -> String {
        match self {
            Self::NotFound => "Not found.".into(),
            other => other.to_string(),
        }
    }
}

/// Renders `refusal` for `client` (see the module doc).
pub fn render(pages: &Pages, client: Client, refusal: &Refusal) -> HttpResponse {
    if let Refusal::LoginRequired(login_url) = refusal {
        return login(client, refusal, login_url);
    }
    match refusal {
        Refusal::ApiUnauthorized(realm) => {
            let realm = realm.replace(['"', '\\'], "");
            return HttpResponse::json(401, &json!({ "error": refusal.to_string() })).with_header(
                "www-authenticate",
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\", Bearer realm=\"{realm}\""),
            );
        }
        Refusal::ApiRateLimited(secs) => {
            return HttpResponse::json(429, &json!({ "error": refusal.to_string(), "retry_after": secs }))
                .with_header("retry-after", secs.to_string());
        }
        _ => {}
    }
    let retry_after = match refusal {
        Refusal::RateLimited { retry_after, .. } => Some(retry_after.to_string()),
        Refusal::UserStoreDown => Some(USER_STORE_RETRY_AFTER_SECS.to_string()),
        _ => None,
    };
    let status = refusal.status();
    let resp = if client == Client::UiApi {
        let mut body = json!({ "detail": refusal.detail() });
        if let Refusal::RateLimited { retry_after, .. } = refusal {
            body["retry_after"] = json!(retry_after);
        }
        HttpResponse::json(status, &body)
    } else {
        let messages: &[String] = match refusal {
            Refusal::Denied(messages) => messages,
            _ => &[],
        };
        let link = match (client, refusal) {
            (Client::UiPage | Client::UiApi, Refusal::RateLimited { cancel_url, .. }) => {
                Some((cancel_url.as_str(), "Start again"))
            }
            (Client::UiPage | Client::UiApi, _) => Some(("/", "Home")),
            (Client::App { .. } | Client::ForwardAuth(_), _) => None,
        };
        let message = refusal.to_string();
        HttpResponse::html(status, pages.error(status, refusal.heading(), &message, messages, link))
    };
    match retry_after {
        Some(secs) => resp.with_header("retry-after", secs),
        None => resp,
    }
}

/// The answer to a request that needs a login.
fn login(client: Client, refusal: &Refusal, login_url: &str) -> HttpResponse {
    let api = || {
        let body = json!({ "error": refusal.to_string(), "login_url": login_url });
        HttpResponse::json(refusal.status(), &body)
    };
    match client {
        Client::App { browser: false } => api(),
        Client::ForwardAuth(AuthEndpoint::Nginx) => api().with_header("x-flowgate-login", login_url.to_string()),
        Client::App { browser: true } | Client::ForwardAuth(AuthEndpoint::Traefik) | Client::UiPage | Client::UiApi => {
            HttpResponse::redirect(login_url)
        }
    }
}

/// The forward-auth answer that lets a request pass: 200, empty, flowgate's headers (the
/// caller adds the identity headers).
pub fn forward_auth_pass() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: security_headers(),
        body: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        Pages::new(None).expect("embedded templates compile")
    }

    fn body(r: &HttpResponse) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn one_heading_for_every_size_limit() {
        let p = pages();
        for (kind, status) in [
            (TooLarge::Uri, 414),
            (TooLarge::Headers, 431),
            (TooLarge::Form, 413),
            (TooLarge::Body, 413),
        ] {
            let r = render(&p, Client::App { browser: false }, &Refusal::TooLarge(kind));
            assert_eq!(r.status, status);
            assert!(body(&r).contains("Request too large"), "{kind:?}");
        }
    }

    #[test]
    fn login_by_client() {
        let p = pages();
        let r = Refusal::LoginRequired("/.flowgate/flow/f/?next=%2Fx".into());
        let browser = render(&p, Client::App { browser: true }, &r);
        assert_eq!(browser.status, 302);
        assert!(browser
            .headers
            .contains(&("location", "/.flowgate/flow/f/?next=%2Fx".into())));
        let api = render(&p, Client::App { browser: false }, &r);
        assert_eq!(api.status, 401);
        let v: serde_json::Value = serde_json::from_slice(&api.body).expect("json");
        assert_eq!(v["error"], "authentication required");
        assert_eq!(v["login_url"], "/.flowgate/flow/f/?next=%2Fx");
        let nginx = render(&p, Client::ForwardAuth(AuthEndpoint::Nginx), &r);
        assert_eq!(nginx.status, 401);
        assert!(nginx.headers.iter().any(|(n, _)| *n == "x-flowgate-login"));
        assert_eq!(render(&p, Client::ForwardAuth(AuthEndpoint::Traefik), &r).status, 302);
    }

    #[test]
    fn api_errors_are_json_with_detail() {
        let p = pages();
        let r = render(&p, Client::UiApi, &Refusal::NotFound);
        assert_eq!(r.status, 404);
        assert_eq!(body(&r), r#"{"detail":"Not found."}"#);
        let r = render(
            &p,
            Client::UiApi,
            &Refusal::RateLimited {
                retry_after: 7,
                title: "T".into(),
                cancel_url: "/c".into(),
            },
        );
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("retry-after", "7".into())));
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["retry_after"], 7);
        assert_eq!(v["detail"], "Too many attempts. Please wait 7 seconds and try again.");
    }

    #[test]
    fn pages_escape_and_list_policy_messages() {
        let p = pages();
        let r = render(
            &p,
            Client::App { browser: true },
            &Refusal::Denied(vec!["<b>staff only</b>".into()]),
        );
        assert_eq!(r.status, 403);
        let b = body(&r);
        assert!(b.contains("Access denied") && b.contains("&lt;b&gt;staff only"), "{b}");
        assert!(!b.contains("Home"), "no link on an app's page");
        let ui = body(&render(&p, Client::UiPage, &Refusal::CrossOrigin));
        assert!(ui.contains("Request refused") && ui.contains("Home"), "{ui}");
    }
}
