//! authentik's OAuth sources (`authentik_sources_oauth.oauthsource`) as native `sources:`
//! entries. The client secret is never written into the generated config: the source reads it
//! from a file named after its slug beside the config, and the import says so. What flowgate
//! does not implement (OAuth 1, a static JWKS, property mappings, group matching) is reported.

use super::{Importer, Obj, ObjKind};
use serde_json::{json, Map, Value};

/// authentik's `provider_type` values flowgate runs, with the native spelling.
const PROVIDERS: &[(&str, &str)] = &[
    ("openidconnect", "openidconnect"),
    ("github", "github"),
    ("google", "google"),
    ("azuread", "entraid"),
    ("entraid", "entraid"),
    ("gitlab", "gitlab"),
];

/// Attributes that carry no behaviour in flowgate and are dropped quietly (the slug is the key;
/// the path template and policy mode concern authentik's own directory and policies).
const QUIET: &[&str] = &[
    "slug",
    "name",
    "user_path_template",
    "policy_engine_mode",
    "consumer_secret",
];

/// The file (relative to the config) an imported source reads its client secret from.
pub(super) fn secret_file(slug: &str) -> String {
    let s: String = slug
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("secrets/source-{s}.secret")
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Importer {
    /// The native form of OAuth source `o`, or `None` (reported) when flowgate cannot run it.
    pub(super) fn source_native(&mut self, o: &Obj) -> Option<Value> {
        let d = &o.data;
        let ak_type = text(d.get("provider_type")).unwrap_or_default();
        let Some((_, native_type)) = PROVIDERS.iter().find(|(a, _)| *a == ak_type) else {
            self.note(
                &o.at,
                &o.model,
                format!(
                    "provider_type {ak_type:?} is not supported (openidconnect, github, google, azuread/entraid, gitlab); source left out"
                ),
            );
            return None;
        };
        let mut s = Map::new();
        s.insert("type".into(), json!("oauth"));
        if let Some(n) = text(d.get("name")) {
            s.insert("name".into(), json!(n));
        }
        if let Some(e) = d.get("enabled").and_then(Value::as_bool) {
            s.insert("enabled".into(), json!(e));
        }
        s.insert("provider_type".into(), json!(native_type));
        for k in [
            "oidc_well_known_url",
            "authorization_url",
            "access_token_url",
            "profile_url",
        ] {
            if let Some(u) = text(d.get(k)) {
                s.insert(k.into(), json!(u));
            }
        }
        s.insert(
            "consumer_key".into(),
            json!(text(d.get("consumer_key")).unwrap_or_default()),
        );
        let file = secret_file(&o.key);
        s.insert("consumer_secret_file".into(), json!(file));
        self.note(
            &o.at,
            &o.model,
            format!(
                "consumer_secret is not written into the config: put the client secret in {file} (beside the config)"
            ),
        );
        let scopes: Vec<Value> = text(d.get("additional_scopes"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|x| json!(x))
            .collect();
        if !scopes.is_empty() {
            s.insert("additional_scopes".into(), Value::Array(scopes));
        }
        if let Some(mut mode) = text(d.get("user_matching_mode")) {
            if *native_type == "entraid" && mode == "email_link" {
                self.note(
                    &o.at,
                    &o.model,
                    "user_matching_mode email_link is refused for Entra ID (its email claim is unverified: the \"nOAuth\" takeover); imported as email_deny",
                );
                mode = "email_deny".into();
            }
            s.insert("user_matching_mode".into(), json!(mode));
        }
        for k in ["authentication_flow", "enrollment_flow", "pre_authentication_flow"] {
            match d.get(k).map(|v| self.ref_name(v, |k| k == ObjKind::Flow)) {
                Some(Ok(Some(slug))) => {
                    s.insert(k.into(), json!(slug));
                }
                Some(Err(e)) => self.note(&o.at, &o.model, format!("{k}: {e}; left out")),
                _ => {}
            }
        }
        if let Some(i) = text(d.get("icon")).filter(|i| i.starts_with("https://") || i.starts_with('/')) {
            s.insert("icon_url".into(), json!(i));
        }
        for (k, v) in d {
            let handled = QUIET.contains(&k.as_str())
                || s.contains_key(k)
                || matches!(
                    k.as_str(),
                    "provider_type"
                        | "enabled"
                        | "additional_scopes"
                        | "user_matching_mode"
                        | "icon"
                        | "authentication_flow"
                        | "enrollment_flow"
                        | "pre_authentication_flow"
                );
            let unused = v.is_null()
                || v.as_str() == Some("")
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(Map::is_empty);
            if !handled && !unused {
                self.note(
                    &o.at,
                    &o.model,
                    format!("attribute {k} is not supported by flowgate; ignored"),
                );
            }
        }
        Some(Value::Object(s))
    }
}
