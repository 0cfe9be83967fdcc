//! `sources:`: each source checked and turned into a [`SourceDef`], the provider preset applied
//! (endpoints, scopes, claim names), and the references made to sources (identification
//! stages' `sources:`) and from them (their flows) checked.

use super::{known, secrets, Collector};
use crate::config::model::{Designation, Flow};
use crate::config::raw::RawFile;
use crate::config::raw_clients::RawSource;
use crate::config::raw_sources::RawOAuthSource;
use crate::config::source_model::*;
use crate::config::values::url::HttpUrl;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Characters a source key may use: it appears in URLs.
fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether a provider may be reached over plain HTTP: only on the loopback interface (tests,
/// a provider on the same machine). Anything else must be HTTPS.
fn plain_http_ok(u: &HttpUrl) -> bool {
    let h = u.host();
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses an endpoint URL at `p.key`.
fn endpoint(c: &mut Collector<'_>, fi: usize, p: &str, key: &str, v: Option<&String>) -> Option<HttpUrl> {
    let v = v?;
    match HttpUrl::parse(v) {
        Ok(u) if u.is_tls() || plain_http_ok(&u) => Some(u),
        Ok(_) => {
            c.err(
                fi,
                format!("{p}.{key}"),
                format!("{v:?} must use https:// (plain http:// only to a loopback address)"),
            );
            None
        }
        Err(e) => {
            c.err(fi, format!("{p}.{key}"), e);
            None
        }
    }
}

/// Validates every file's `sources:` (keys unique across files).
pub(crate) fn sources(c: &mut Collector<'_>, files: &[RawFile]) -> BTreeMap<String, SourceDef> {
    let mut out = BTreeMap::new();
    // Every key seen so far, of any kind, and whether it was an OAuth source: a key used twice
    // is reported here when either entry is OAuth (`validate/ldap.rs` reports two directories).
    let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
    for (fi, f) in files.iter().enumerate() {
        for (slug, raw) in &f.sources {
            let p = format!("sources.{slug}");
            let this_oauth = matches!(raw, RawSource::Oauth(_));
            if let Some(&was_oauth) = seen.get(slug.as_str()) {
                if was_oauth || this_oauth {
                    c.err(fi, p, format!("source {slug:?} is defined twice"));
                }
                continue;
            }
            seen.insert(slug, this_oauth);
            let RawSource::Oauth(o) = raw else { continue };
            if !slug_ok(slug) {
                c.err(
                    fi,
                    p.clone(),
                    format!("invalid source key {slug:?} (1-64 characters: a-z, 0-9, '-', '_'; it appears in URLs)"),
                );
            }
            if let Some(d) = oauth(c, fi, &p, slug, o) {
                out.insert(slug.clone(), SourceDef::OAuth(Arc::new(d)));
            }
        }
    }
    out
}

fn oauth(c: &mut Collector<'_>, fi: usize, p: &str, slug: &str, r: &RawOAuthSource) -> Option<OAuthSourceDef> {
    let names: Vec<&str> = ProviderType::NAMES.iter().map(|(n, _)| *n).collect();
    let Some(provider) = ProviderType::NAMES
        .iter()
        .find(|(n, _)| *n == r.provider_type)
        .map(|(_, t)| *t)
    else {
        c.err(
            fi,
            format!("{p}.provider_type"),
            format!(
                "unknown provider_type {:?} (expected one of: {})",
                r.provider_type,
                names.join(", ")
            ),
        );
        return None;
    };
    let mode = c.choice(
        fi,
        format!("{p}.user_matching_mode"),
        &r.user_matching_mode,
        DEFAULT_USER_MATCHING_MODE,
        UserMatchingMode::NAMES,
    );
    if provider == ProviderType::EntraId && mode == UserMatchingMode::EmailLink {
        c.err(
            fi,
            format!("{p}.user_matching_mode"),
            "email_link is refused for entraid: Entra ID's email claim is not verified and can be set by any tenant (the \"nOAuth\" takeover); use identifier, email_deny, username_link or username_deny",
        );
    }
    if r.consumer_key.trim().is_empty() {
        c.err(fi, format!("{p}.consumer_key"), "must not be empty");
    }
    let secret = secrets::secret(
        c,
        fi,
        p,
        r.consumer_secret.as_ref(),
        r.consumer_secret_env.as_ref(),
        r.consumer_secret_file.as_ref(),
        "consumer_secret",
    );
    let given_secret =
        r.consumer_secret.is_some() || r.consumer_secret_env.is_some() || r.consumer_secret_file.is_some();
    if !given_secret {
        c.err(
            fi,
            p.to_string(),
            "consumer_secret_env or consumer_secret_file is needed (the client secret)",
        );
    }
    let mut well_known = endpoint(c, fi, p, "oidc_well_known_url", r.oidc_well_known_url.as_ref());
    let mut authorization_url = endpoint(c, fi, p, "authorization_url", r.authorization_url.as_ref());
    let mut access_token_url = endpoint(c, fi, p, "access_token_url", r.access_token_url.as_ref());
    let mut profile_url = endpoint(c, fi, p, "profile_url", r.profile_url.as_ref());
    let preset = |u: &str| HttpUrl::parse(u).ok();
    match provider {
        ProviderType::OpenIdConnect if r.oidc_well_known_url.is_none() => c.err(
            fi,
            p.to_string(),
            "provider_type openidconnect needs oidc_well_known_url (the provider's /.well-known/openid-configuration)",
        ),
        ProviderType::EntraId if r.oidc_well_known_url.is_none() => c.err(
            fi,
            p.to_string(),
            "provider_type entraid needs oidc_well_known_url with your tenant id: https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration (the multi-tenant \"common\" endpoint is not supported)",
        ),
        ProviderType::Google if well_known.is_none() => well_known = preset(GOOGLE_WELL_KNOWN_URL),
        ProviderType::GitLab if well_known.is_none() => well_known = preset(GITLAB_WELL_KNOWN_URL),
        ProviderType::GitHub => {
            if r.oidc_well_known_url.is_some() {
                c.err(
                    fi,
                    format!("{p}.oidc_well_known_url"),
                    "github is not an OpenID Connect provider (set authorization_url, access_token_url and profile_url for GitHub Enterprise)",
                );
            }
            authorization_url = authorization_url.or_else(|| preset(GITHUB_AUTHORIZATION_URL));
            access_token_url = access_token_url.or_else(|| preset(GITHUB_ACCESS_TOKEN_URL));
            profile_url = profile_url.or_else(|| preset(GITHUB_PROFILE_URL));
        }
        _ => {}
    }
    if let Some(u) = &well_known {
        if !u.path().contains("/.well-known/") {
            c.err(
                fi,
                format!("{p}.oidc_well_known_url"),
                format!(
                    "{:?} is not a discovery document address (expected …/.well-known/openid-configuration)",
                    r.oidc_well_known_url.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    let mut scopes: Vec<String> = match provider {
        ProviderType::GitHub => GITHUB_SCOPES.iter().map(|s| s.to_string()).collect(),
        _ => OIDC_SCOPES.iter().map(|s| s.to_string()).collect(),
    };
    for (i, s) in r.additional_scopes.iter().enumerate() {
        // authentik stores them space-separated in one string; accept both.
        for s in s.split_whitespace() {
            if s.bytes().any(|b| b <= 0x20 || b == b'"' || b == b'\\' || b >= 0x7f) {
                c.err(
                    fi,
                    format!("{p}.additional_scopes[{i}]"),
                    format!("invalid scope {s:?}"),
                );
            } else if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_string());
            }
        }
    }
    let claims = claims(r, provider);
    if let Some(m) = &r.claims {
        for (k, v) in [
            ("username", &m.username),
            ("email", &m.email),
            ("name", &m.name),
            ("groups", &m.groups),
        ] {
            if v.as_deref().is_some_and(str::is_empty) {
                c.err(fi, format!("{p}.claims.{k}"), "must not be empty");
            }
        }
    }
    let timeout = c.duration(fi, format!("{p}.timeout"), &r.timeout, DEFAULT_SOURCE_TIMEOUT);
    if timeout.is_zero() {
        c.err(fi, format!("{p}.timeout"), "must be longer than 0s");
    }
    let name = r.name.clone().unwrap_or_else(|| slug.to_string());
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        c.err(fi, format!("{p}.name"), "1-100 characters without control characters");
    }
    if let Some(i) = &r.icon_url {
        if !(i.starts_with("https://") || i.starts_with('/')) || i.chars().any(|ch| ch.is_whitespace() || ch == '"') {
            c.err(
                fi,
                format!("{p}.icon_url"),
                "expected an https:// URL or an absolute path",
            );
        }
    }
    Some(OAuthSourceDef {
        slug: slug.to_string(),
        name,
        enabled: r.enabled.unwrap_or(true),
        provider,
        well_known,
        authorization_url,
        access_token_url,
        profile_url,
        client_id: r.consumer_key.trim().to_string(),
        client_secret: secret.unwrap_or_default().into(),
        scopes,
        user_matching_mode: mode,
        authentication_flow: r.authentication_flow.clone(),
        enrollment_flow: r.enrollment_flow.clone(),
        icon_url: r.icon_url.clone(),
        claims,
        timeout,
    })
}

/// The claim mapping: the config's names over the preset's (authentik's defaults).
fn claims(r: &RawOAuthSource, provider: ProviderType) -> ClaimMapping {
    let default_username: &[&str] = match provider {
        ProviderType::GitHub => &["login"],
        ProviderType::Google => &["email"],
        _ => &["preferred_username", "nickname"],
    };
    let m = r.claims.as_ref();
    ClaimMapping {
        username: match m.and_then(|m| m.username.clone()) {
            Some(u) => vec![u],
            None => default_username.iter().map(|s| s.to_string()).collect(),
        },
        email: m.and_then(|m| m.email.clone()).unwrap_or_else(|| "email".into()),
        name: m.and_then(|m| m.name.clone()).unwrap_or_else(|| "name".into()),
        groups: match m.and_then(|m| m.groups.clone()) {
            Some(g) => Some(g),
            None if provider == ProviderType::OpenIdConnect => Some("groups".into()),
            None => None,
        },
        attributes: m.map(|m| m.attributes.clone()).unwrap_or_default(),
    }
}

/// The flows a source names exist and have the right designation; identification stages
/// name existing sources.
pub(crate) fn check_refs(
    c: &mut Collector<'_>,
    files: &[RawFile],
    sources: &BTreeMap<String, SourceDef>,
    flows: &BTreeMap<String, Flow>,
) {
    for (fi, f) in files.iter().enumerate() {
        for (slug, raw) in &f.sources {
            let RawSource::Oauth(r) = raw else { continue };
            let p = format!("sources.{slug}");
            for (key, v, want) in [
                (
                    "authentication_flow",
                    &r.authentication_flow,
                    Designation::Authentication,
                ),
                ("enrollment_flow", &r.enrollment_flow, Designation::Enrollment),
                (
                    "pre_authentication_flow",
                    &r.pre_authentication_flow,
                    Designation::StageConfiguration,
                ),
            ] {
                let Some(v) = v else { continue };
                match flows.get(v) {
                    None => c.err(
                        fi,
                        format!("{p}.{key}"),
                        format!("unknown flow {v:?} (known: {})", known(flows.keys())),
                    ),
                    Some(fl) if fl.designation != want => c.err(
                        fi,
                        format!("{p}.{key}"),
                        format!("flow {v:?} has designation {}, not {}", fl.designation.as_str(), want.as_str()),
                    ),
                    Some(fl) if key == "pre_authentication_flow" && !fl.bindings.is_empty() => c.err(
                        fi,
                        format!("{p}.{key}"),
                        format!("flow {v:?} has stages: a pre-authentication flow with stages is not supported yet (only an empty one, as authentik's default)"),
                    ),
                    Some(_) => {}
                }
            }
        }
        for (name, raw) in &f.stages {
            if let crate::config::raw::RawStage::Identification { sources: list, .. } = raw {
                for (i, s) in list.iter().enumerate() {
                    if !sources.contains_key(s) {
                        c.err(
                            fi,
                            format!("stages.{name}.sources[{i}]"),
                            format!("unknown source {s:?} (known: {})", known(sources.keys())),
                        );
                    }
                }
            }
        }
    }
}

/// Fills each identification stage's `source_buttons` from the sources it names (disabled
/// sources are not shown).
pub(crate) fn resolve_buttons(
    stages: &mut BTreeMap<String, crate::config::model::StageDef>,
    sources: &BTreeMap<String, SourceDef>,
) {
    for def in stages.values_mut() {
        if let crate::config::model::StageDef::Identification(d) = def {
            d.source_buttons = d
                .sources
                .iter()
                .filter_map(|s| match sources.get(s) {
                    Some(SourceDef::OAuth(o)) if o.enabled => Some(crate::config::SourceButton {
                        slug: o.slug.clone(),
                        name: o.name.clone(),
                        icon_url: o.icon_url.clone(),
                    }),
                    _ => None,
                })
                .collect();
        }
    }
}
