//! The named identity header presets (`headers: default | authentik | remote-user`).

use super::model::HeaderSet;

/// The preset names, in the order messages list them.
pub const PRESET_NAMES: &[&str] = &["default", "authentik", "remote-user"];

/// The named identity header presets.
pub fn preset(name: &str) -> Option<HeaderSet> {
    let s = |v: &str| Some(v.to_string());
    Some(match name {
        "default" => HeaderSet {
            preset: name.into(),
            user: s("X-Forwarded-User"),
            email: s("X-Forwarded-Email"),
            groups: s("X-Forwarded-Groups"),
            name: s("X-Forwarded-Name"),
            uid: s("X-Forwarded-Uid"),
            groups_separator: ",".into(),
            meta: false,
        },
        "authentik" => HeaderSet {
            preset: name.into(),
            user: s("X-authentik-username"),
            email: s("X-authentik-email"),
            groups: s("X-authentik-groups"),
            name: s("X-authentik-name"),
            uid: s("X-authentik-uid"),
            groups_separator: "|".into(),
            meta: true,
        },
        "remote-user" => HeaderSet {
            preset: name.into(),
            user: s("Remote-User"),
            email: s("Remote-Email"),
            groups: s("Remote-Groups"),
            name: s("Remote-Name"),
            uid: None,
            groups_separator: ",".into(),
            meta: false,
        },
        _ => return None,
    })
}
