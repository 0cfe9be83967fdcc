//! Turns parsed raw files into the validated [`Config`]. Every problem is recorded with its
//! file and field path and turned into a line and column through `locate`; all errors of a
//! load are returned together.

mod apps;
mod authenticators;
mod collector;
mod database;
mod flows;
mod headers;
mod jwt;
mod ldap;
mod policies;
mod prompt;
mod secrets;
mod services;
mod settings;
mod sign_on;
mod sources;
mod stages;

pub(crate) use collector::{known, Collector};

use crate::config::error::ConfigErrors;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::Source;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where each merged item came from.
pub(crate) struct Parsed {
    pub(crate) files: Vec<RawFile>,
}

/// Validates parsed files (index 0 is the main file) into a [`Config`].
pub(crate) fn validate(sources: &[Source], parsed: Parsed) -> Result<Config, ConfigErrors> {
    let mut c = Collector {
        sources,
        errors: Vec::new(),
    };
    let main = &parsed.files[0];
    let base = sources[0].base_dir.clone();

    for (fi, f) in parsed.files.iter().enumerate().skip(1) {
        let main_only = [
            ("listen", f.listen.is_some()),
            ("data_dir", f.data_dir.is_some()),
            ("session", f.session.is_some()),
            ("identity", f.identity.is_some()),
            ("trusted_proxies", !f.trusted_proxies.is_empty()),
            ("strip_headers", !f.strip_headers.is_empty()),
            ("logout", f.logout.is_some()),
            ("default_flows", f.default_flows.is_some()),
            ("apps", !f.apps.is_empty()),
            ("include", !f.include.is_empty()),
            ("blueprints", !f.blueprints.is_empty()),
            ("limits", f.limits.is_some()),
            ("mail", f.mail.is_some()),
            ("ui", f.ui.is_some()),
            ("rate_limits", f.rate_limits.is_some()),
            ("portal", f.portal.is_some()),
            ("admin", f.admin.is_some()),
            ("events", f.events.is_some()),
        ];
        for (key, present) in main_only {
            if present {
                c.err(
                    fi,
                    key,
                    "only the main file may set this (included files hold flows, stages and policies)",
                );
            }
        }
    }

    let listen = settings::listen(&mut c, main, &base);
    let admin = settings::admin(&mut c, main, &listen);
    let events = settings::events(&mut c, main, &base);
    let data_dir = main
        .data_dir
        .as_deref()
        .map(|d| base.join(d))
        .unwrap_or_else(|| base.join(DEFAULT_DATA_DIR));
    let session = settings::session(&mut c, main);
    let identity = settings::identity(&mut c, main, &base, &data_dir);
    let trusted_proxies = settings::trusted(&mut c, main);
    let strip_headers = settings::strip_headers(&mut c, main);
    let raw_limits = main.limits.as_ref();
    let header_timeout = c.duration(
        0,
        "limits.header_timeout".into(),
        &raw_limits.and_then(|l| l.header_timeout.clone()),
        DEFAULT_HEADER_TIMEOUT,
    );
    let keepalive_timeout = c.duration(
        0,
        "limits.keepalive_timeout".into(),
        &raw_limits.and_then(|l| l.keepalive_timeout.clone()),
        DEFAULT_KEEPALIVE_TIMEOUT,
    );
    let shutdown_timeout = c.duration(
        0,
        "limits.shutdown_timeout".into(),
        &raw_limits.and_then(|l| l.shutdown_timeout.clone()),
        DEFAULT_SHUTDOWN_TIMEOUT,
    );
    for (key, d) in [
        ("limits.header_timeout", header_timeout),
        ("limits.keepalive_timeout", keepalive_timeout),
    ] {
        if d.is_zero() {
            c.err(0, key, "must be longer than 0s");
        }
    }
    let limits = Limits {
        max_body_bytes: raw_limits.and_then(|l| l.max_body_bytes),
        header_timeout,
        keepalive_timeout,
        shutdown_timeout,
        max_form_bytes: main
            .limits
            .as_ref()
            .and_then(|l| l.max_form_bytes)
            .unwrap_or(DEFAULT_MAX_FORM_BYTES),
        max_connections: main
            .limits
            .as_ref()
            .and_then(|l| l.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
    };
    if limits.max_connections == 0 {
        c.err(0, "limits.max_connections", "must be at least 1");
    }

    // Merge stages, policies and flows from every file, rejecting duplicates.
    let mut stages = BTreeMap::new();
    let mut policies = BTreeMap::new();
    let mut flow_src: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (fi, f) in parsed.files.iter().enumerate() {
        for (name, raw) in &f.policies {
            if policies.contains_key(name) {
                c.err(
                    fi,
                    format!("policies.{name}"),
                    format!("policy {name:?} is defined twice"),
                );
                continue;
            }
            if let Some(p) = policies::policy(&mut c, fi, name, raw) {
                policies.insert(name.clone(), p);
            }
        }
    }
    for (fi, f) in parsed.files.iter().enumerate() {
        for (name, raw) in &f.stages {
            if stages.contains_key(name) {
                c.err(fi, format!("stages.{name}"), format!("stage {name:?} is defined twice"));
                continue;
            }
            if let Some(s) = stages::stage(&mut c, fi, name, raw) {
                stages.insert(name.clone(), s);
            }
        }
    }
    stages::check_stage_refs(&mut c, &parsed.files, &stages);
    let mut flows = BTreeMap::new();
    for (fi, f) in parsed.files.iter().enumerate() {
        for (i, raw) in f.flows.iter().enumerate() {
            let path = format!("flows[{i}]");
            if let Some(&(ofi, oi)) = flow_src.get(&raw.slug) {
                let other = &sources[ofi].name;
                c.err(
                    fi,
                    format!("{path}.slug"),
                    format!("flow slug {:?} is already used by flows[{oi}] in {other}", raw.slug),
                );
                continue;
            }
            flow_src.insert(raw.slug.clone(), (fi, i));
            if let Some(flow) = flows::flow(&mut c, fi, &path, raw, &stages, &policies) {
                flows.insert(flow.slug.clone(), flow);
            }
        }
    }

    let flow_slugs: Vec<String> = flow_src.keys().cloned().collect();
    let mail = services::mail(&mut c, main, &base, &data_dir);
    let ui = services::ui(&mut c, main, &base);
    let rate_limits = services::rate_limits(&mut c, main);
    stages::check_refs(&mut c, &parsed.files, &stages, &policies, &flow_slugs, mail.is_some());
    let id_sources = sources::sources(&mut c, &parsed.files);
    sources::check_refs(&mut c, &parsed.files, &id_sources, &flows);
    sources::resolve_buttons(&mut stages, &id_sources);
    let directories = ldap::sources(&mut c, &parsed.files);
    ldap::check_backend_refs(&mut c, &parsed.files, &directories);
    let default_flows = default_flows(&mut c, main, &flows);
    let logout = logout(&mut c, main, &flows, &default_flows);
    let mut apps = Vec::new();
    for (i, raw) in main.apps.iter().enumerate() {
        if let Some(mut app) = apps::app(&mut c, i, raw, &flows, &default_flows, &policies) {
            app.max_body_bytes = raw.max_body_bytes.or(limits.max_body_bytes);
            if apps.iter().any(|a: &App| a.name == app.name) {
                c.err(
                    0,
                    format!("apps[{i}].name"),
                    format!("app name {:?} is used twice", app.name),
                );
            }
            apps.push(app);
        }
    }
    for (i, a) in apps.iter().enumerate() {
        for b in apps.iter().take(i) {
            let same_hosts = a.hosts == b.hosts;
            if same_hosts && a.path_prefix == b.path_prefix {
                c.err(
                    0,
                    format!("apps[{i}].path_prefix"),
                    format!(
                        "app {:?} has the same hosts and path prefix as app {:?}",
                        a.name, b.name
                    ),
                );
            }
        }
    }

    let portal = sign_on::check(&mut c, main, &session, &apps);

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Config {
        source: sources[0].name.clone(),
        listen,
        data_dir,
        session,
        identity,
        trusted_proxies,
        strip_headers,
        logout,
        default_flows,
        apps,
        flows,
        stages,
        policies,
        sources: id_sources,
        limits,
        mail,
        ui,
        rate_limits,
        portal,
        admin,
        events,
        directories,
        notes: Vec::new(),
        texts: sources.iter().map(|s| s.text.clone()).collect(),
        paths: sources
            .iter()
            .map(|s| PathBuf::from(s.name.trim_end_matches(" (imported)")))
            .filter(|p| p.is_file())
            .collect(),
    })
}

fn default_flows(
    c: &mut Collector<'_>,
    main: &RawFile,
    flows: &BTreeMap<String, Flow>,
) -> BTreeMap<Designation, String> {
    let mut out = BTreeMap::new();
    if let Some(map) = &main.default_flows {
        for (k, slug) in map {
            let path = format!("default_flows.{k}");
            let Some(d) = Designation::parse(k) else {
                let names: Vec<&str> = Designation::ALL.iter().map(|(n, _)| *n).collect();
                c.err(
                    0,
                    path,
                    format!("unknown designation {k:?} (expected one of: {})", names.join(", ")),
                );
                continue;
            };
            match flows.get(slug) {
                None => c.err(
                    0,
                    path,
                    format!("unknown flow {slug:?} (known: {})", known(flows.keys())),
                ),
                Some(f) if f.designation != d => c.err(
                    0,
                    path,
                    format!("flow {slug:?} has designation {}, not {k}", f.designation.as_str()),
                ),
                Some(_) => {
                    out.insert(d, slug.clone());
                }
            }
        }
    }
    // Designations without an explicit default are chosen per request: the first flow of the
    // designation, in slug order, whose policies pass (flow::FlowRegistry::select).
    out
}

fn logout(
    c: &mut Collector<'_>,
    main: &RawFile,
    flows: &BTreeMap<String, Flow>,
    defaults: &BTreeMap<Designation, String>,
) -> LogoutSettings {
    let raw = main.logout.as_ref();
    let path = raw
        .and_then(|l| l.path.clone())
        .unwrap_or_else(|| DEFAULT_LOGOUT_PATH.to_string());
    if !path.starts_with('/') || path.starts_with(RESERVED_PREFIX) || path.contains(['?', '#']) {
        c.err(
            0,
            "logout.path",
            format!("invalid logout path {path:?} (expected an absolute path outside {RESERVED_PREFIX})"),
        );
    }
    let flow = match raw.and_then(|l| l.flow.clone()) {
        Some(slug) => {
            match flows.get(&slug) {
                None => c.err(
                    0,
                    "logout.flow",
                    format!("unknown flow {slug:?} (known: {})", known(flows.keys())),
                ),
                Some(f) if f.designation != Designation::Invalidation => c.err(
                    0,
                    "logout.flow",
                    format!(
                        "flow {slug:?} has designation {}, not invalidation",
                        f.designation.as_str()
                    ),
                ),
                Some(_) => {}
            }
            Some(slug)
        }
        None => {
            let any = flows.values().any(|f| f.designation == Designation::Invalidation);
            if !any && !main.apps.is_empty() {
                c.err(
                    0,
                    "logout",
                    "no flow with designation invalidation is configured (include flows/default-invalidation.yaml)",
                );
            }
            defaults.get(&Designation::Invalidation).cloned()
        }
    };
    LogoutSettings { path, flow }
}
