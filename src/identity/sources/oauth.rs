//! The OAuth 2 / OpenID Connect client of one source: the authorization request (code flow with
//! PKCE S256, `state` and, for OpenID Connect, `nonce`), and the callback's exchange of the code
//! for tokens, the ID token checks (`oidc.rs`), userinfo (or GitHub's profile API) and the claim
//! mapping. Discovery documents and key sets are cached; an ID token signed with a key the cache
//! does not hold refetches the key set once (key rotation).
//!
//! Every failure is an [`OAuthFailure`]: a message for the user and a reason for the log, never
//! a secret (the client secret, codes and tokens are not logged).

use super::oidc::{self, Discovery, TokenError};
use super::{claims, github, SourceIdentity};
use crate::config::values::url::HttpUrl;
use crate::config::OAuthSourceDef;
use crate::outbound::http;
use openidconnect::core::CoreJsonWebKeySet;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long a started login may take before its callback (ms).
pub const PENDING_LOGIN_LIFETIME_MS: u64 = 10 * 60 * 1000;
/// How long a discovery document or key set is used before it is fetched again (ms).
pub const PROVIDER_CACHE_MS: u64 = 60 * 60 * 1000;
/// Largest answer read from a provider.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A started login, kept server-side in the pre-authentication session until its callback
/// (single use: taken out when the callback arrives).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    /// Source key.
    pub source: String,
    /// The `state` sent.
    pub state: String,
    /// The `nonce` sent (OpenID Connect).
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The `redirect_uri` sent (the token request repeats it).
    pub redirect_uri: String,
    /// When the login started (Unix ms, injected clock).
    pub created_ms: u64,
}

/// A refused login: what the user sees and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthFailure {
    /// Shown to the user.
    pub message: &'static str,
    /// Logged.
    pub reason: String,
}

/// Shown when the provider cannot be reached or answers nonsense.
pub const PROVIDER_UNAVAILABLE: &str = "The identity provider is not reachable right now. Try again later.";
/// Shown when what the provider sent fails a check.
pub const LOGIN_REFUSED: &str = "The login through the identity provider could not be verified.";

fn fail(message: &'static str, reason: impl Into<String>) -> OAuthFailure {
    OAuthFailure {
        message,
        reason: reason.into(),
    }
}

#[derive(Default)]
struct Cache {
    discovery: Option<(Arc<Discovery>, u64)>,
    keys: Option<(Arc<CoreJsonWebKeySet>, u64)>,
}

/// The client of one OAuth source.
pub struct OAuthClient {
    def: Arc<OAuthSourceDef>,
    cache: tokio::sync::Mutex<Cache>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OAuthClient({})", self.def.slug)
    }
}

fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A URL the provider gave: https, or plain http to a loopback address only.
fn provider_url(u: &str, what: &str) -> Result<HttpUrl, OAuthFailure> {
    let url = HttpUrl::parse(u).map_err(|e| fail(PROVIDER_UNAVAILABLE, format!("{what}: {e}")))?;
    let loopback = url.host() == "localhost" || url.host().parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if url.is_tls() || loopback {
        Ok(url)
    } else {
        Err(fail(PROVIDER_UNAVAILABLE, format!("{what} {u:?} is not https")))
    }
}

impl OAuthClient {
    /// A client for `def`; nothing is fetched until the first login.
    pub fn new(def: Arc<OAuthSourceDef>) -> Self {
        Self {
            def,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// The source's definition.
    pub fn def(&self) -> &Arc<OAuthSourceDef> {
        &self.def
    }

    fn timeout(&self) -> Duration {
        self.def.timeout
    }

    /// `GET url` as JSON.
    async fn get_json(&self, url: &HttpUrl, headers: &[(&str, &str)], what: &str) -> Result<Value, OAuthFailure> {
        let (status, body) = http::call(url, headers, None, self.timeout(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| fail(PROVIDER_UNAVAILABLE, format!("{what}: {e}")))?;
        if status != 200 {
            return Err(fail(PROVIDER_UNAVAILABLE, format!("{what}: status {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| fail(PROVIDER_UNAVAILABLE, format!("{what}: not JSON: {e}")))
    }

    /// The discovery document (cached).
    async fn discovery(&self, now_ms: u64) -> Result<Arc<Discovery>, OAuthFailure> {
        let mut cache = self.cache.lock().await;
        if let Some((d, at)) = &cache.discovery {
            if now_ms.saturating_sub(*at) < PROVIDER_CACHE_MS {
                return Ok(d.clone());
            }
        }
        let Some(url) = &self.def.well_known else {
            return Err(fail(PROVIDER_UNAVAILABLE, "no discovery document configured"));
        };
        let v = self
            .get_json(url, &[("accept", "application/json")], "discovery")
            .await?;
        let d: Discovery =
            serde_json::from_value(v).map_err(|e| fail(PROVIDER_UNAVAILABLE, format!("discovery document: {e}")))?;
        // OpenID Connect Discovery 1.0 §4.3: the issuer is the document's address less the suffix.
        let expected = url.to_string();
        let expected = expected
            .strip_suffix("/.well-known/openid-configuration")
            .unwrap_or(&expected);
        if d.issuer.trim_end_matches('/') != expected.trim_end_matches('/') {
            return Err(fail(
                PROVIDER_UNAVAILABLE,
                format!("discovery document names issuer {:?}, not {expected:?}", d.issuer),
            ));
        }
        if oidc::allowed_algs(&d.id_token_signing_alg_values_supported).is_empty() {
            return Err(fail(
                PROVIDER_UNAVAILABLE,
                format!(
                    "the provider announces no asymmetric ID token algorithm (announced: {:?})",
                    d.id_token_signing_alg_values_supported
                ),
            ));
        }
        let d = Arc::new(d);
        cache.discovery = Some((d.clone(), now_ms));
        Ok(d)
    }

    /// The key set: cached, or fetched when `refresh` (an unknown key) or stale.
    async fn keys(&self, d: &Discovery, now_ms: u64, refresh: bool) -> Result<Arc<CoreJsonWebKeySet>, OAuthFailure> {
        let mut cache = self.cache.lock().await;
        if let Some((k, at)) = &cache.keys {
            if !refresh && now_ms.saturating_sub(*at) < PROVIDER_CACHE_MS {
                return Ok(k.clone());
            }
        }
        let url = provider_url(&d.jwks_uri, "jwks_uri")?;
        let v = self
            .get_json(&url, &[("accept", "application/json")], "key set")
            .await?;
        let keys: CoreJsonWebKeySet =
            serde_json::from_value(v).map_err(|e| fail(PROVIDER_UNAVAILABLE, format!("key set: {e}")))?;
        let keys = Arc::new(keys);
        cache.keys = Some((keys.clone(), now_ms));
        Ok(keys)
    }

    /// Starts a login: the address to send the browser to, and what to keep until the callback.
    pub async fn begin(&self, redirect_uri: &str, now_ms: u64) -> Result<(String, PendingLogin), OAuthFailure> {
        let endpoint = match (&self.def.authorization_url, self.def.provider.is_oidc()) {
            (Some(u), _) => u.to_string(),
            (None, true) => provider_url(
                &self.discovery(now_ms).await?.authorization_endpoint,
                "authorization_endpoint",
            )?
            .to_string(),
            (None, false) => return Err(fail(PROVIDER_UNAVAILABLE, "no authorization_url")),
        };
        let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
        let pending = PendingLogin {
            source: self.def.slug.clone(),
            state: random_token(),
            nonce: random_token(),
            verifier: verifier.secret().clone(),
            redirect_uri: redirect_uri.to_string(),
            created_ms: now_ms,
        };
        let scope = self.def.scopes.join(" ");
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.def.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", &pending.state)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        if self.def.provider.is_oidc() {
            q.append_pair("nonce", &pending.nonce);
        }
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        Ok((format!("{endpoint}{sep}{}", q.finish()), pending))
    }

    /// Finishes a login: `code` exchanged, everything checked, claims mapped.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        code: &str,
        now_ms: u64,
    ) -> Result<SourceIdentity, OAuthFailure> {
        if now_ms.saturating_sub(pending.created_ms) > PENDING_LOGIN_LIFETIME_MS {
            return Err(fail(
                "The login took too long. Please start again.",
                "callback after the pending login expired",
            ));
        }
        let discovery = if self.def.provider.is_oidc() {
            Some(self.discovery(now_ms).await?)
        } else {
            None
        };
        let token_url = match (&self.def.access_token_url, &discovery) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => provider_url(&d.token_endpoint, "token_endpoint")?,
            (None, None) => return Err(fail(PROVIDER_UNAVAILABLE, "no access_token_url")),
        };
        let tokens = self.exchange(&token_url, discovery.as_deref(), pending, code).await?;
        let access_token = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail(LOGIN_REFUSED, "token answer without access_token"))?
            .to_string();
        let (subject, claims) = match &discovery {
            Some(d) => self.oidc_claims(d, &tokens, &access_token, pending, now_ms).await?,
            None => {
                let profile = self
                    .def
                    .profile_url
                    .as_ref()
                    .ok_or_else(|| fail(PROVIDER_UNAVAILABLE, "no profile_url"))?;
                github::claims(profile, &access_token, self.timeout()).await?
            }
        };
        Ok(claims::map(&self.def.slug, subject, &claims, &self.def.claims))
    }

    /// The token request (client_secret_basic where the provider takes it, else _post).
    async fn exchange(
        &self,
        url: &HttpUrl,
        d: Option<&Discovery>,
        pending: &PendingLogin,
        code: &str,
    ) -> Result<Map<String, Value>, OAuthFailure> {
        use base64::Engine;
        let methods = d
            .map(|d| d.token_endpoint_auth_methods_supported.as_slice())
            .unwrap_or(&[]);
        let basic = d.is_some() && (methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic"));
        let secret = self.def.client_secret.expose();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
            ("client_id", self.def.client_id.as_str()),
        ];
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(&self.def.client_id), enc(secret)))
        );
        let mut headers = vec![("accept", "application/json")];
        if basic {
            headers.push(("authorization", auth.as_str()));
        } else {
            form.push(("client_secret", secret));
        }
        let (status, body) = http::call(url, &headers, Some(&form), self.timeout(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| fail(PROVIDER_UNAVAILABLE, format!("token request: {e}")))?;
        let v: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
        match (status, v) {
            (200, Some(m)) if !m.contains_key("error") => Ok(m),
            (_, Some(m)) => Err(fail(
                LOGIN_REFUSED,
                format!(
                    "token request refused (status {status}): {}",
                    m.get("error").and_then(Value::as_str).unwrap_or("no error code")
                ),
            )),
            (_, None) => Err(fail(
                PROVIDER_UNAVAILABLE,
                format!("token request: status {status}, not JSON"),
            )),
        }
    }

    /// The ID token's claims (verified), with userinfo's over them.
    async fn oidc_claims(
        &self,
        d: &Discovery,
        tokens: &Map<String, Value>,
        access_token: &str,
        pending: &PendingLogin,
        now_ms: u64,
    ) -> Result<(String, Map<String, Value>), OAuthFailure> {
        let jwt = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| fail(LOGIN_REFUSED, "token answer without id_token"))?;
        let algs = oidc::allowed_algs(&d.id_token_signing_alg_values_supported);
        let check = |keys: &CoreJsonWebKeySet| {
            oidc::verify(jwt, &self.def.client_id, &d.issuer, keys, &algs, &pending.nonce, now_ms)
        };
        let keys = self.keys(d, now_ms, false).await?;
        let mut claims = match check(&keys) {
            Ok(c) => c,
            Err(TokenError::UnknownKey) => {
                tracing::info!(source = %self.def.slug, "ID token signed with a key not in the cached set; fetching the key set again");
                let keys = self.keys(d, now_ms, true).await?;
                match check(&keys) {
                    Ok(c) => c,
                    Err(TokenError::UnknownKey) => {
                        return Err(fail(
                            LOGIN_REFUSED,
                            "ID token signed with a key the provider does not publish",
                        ))
                    }
                    Err(TokenError::Invalid(r)) => return Err(fail(LOGIN_REFUSED, r)),
                }
            }
            Err(TokenError::Invalid(r)) => return Err(fail(LOGIN_REFUSED, r)),
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| fail(LOGIN_REFUSED, "ID token without a usable sub"))?
            .to_string();
        let userinfo = match (&self.def.profile_url, &d.userinfo_endpoint) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(u)) => Some(provider_url(u, "userinfo_endpoint")?),
            (None, None) => None,
        };
        if let Some(url) = userinfo {
            let bearer = format!("Bearer {access_token}");
            let v = self
                .get_json(
                    &url,
                    &[("authorization", bearer.as_str()), ("accept", "application/json")],
                    "userinfo",
                )
                .await?;
            let Value::Object(info) = v else {
                return Err(fail(LOGIN_REFUSED, "userinfo is not a JSON object"));
            };
            // OpenID Connect Core §5.3.2: userinfo's sub must be the ID token's.
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(fail(LOGIN_REFUSED, "userinfo sub differs from the ID token's"));
            }
            for (k, v) in info {
                if !matches!(k.as_str(), "iss" | "aud" | "azp" | "exp" | "iat" | "nonce") {
                    claims.insert(k, v);
                }
            }
        }
        Ok((subject, claims))
    }
}
