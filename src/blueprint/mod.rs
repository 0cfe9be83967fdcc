//! authentik blueprints: import (`version: 1` YAML documents and pre-2022.8 JSON flow exports)
//! into flowgate's native config, and export back.
//!
//! ```text
//! text ─▶ serde_yaml ─▶ entries ─▶ tags resolved (tags.rs) ─▶ objects by model (import/,
//!      models/) ─▶ flows with bindings and policy bindings ─▶ native YAML ─▶ config check
//! native YAML ─▶ export.rs ─▶ blueprint (ids and !KeyOf) | native YAML for one flow
//! ```

pub mod export;
pub mod import;
pub mod models;
mod pyfmt;
pub mod tags;
pub mod timedelta;

/// A YAML value as JSON (numbers kept as numbers; tags must be resolved first, a leftover tag
/// keeps only its value). Done by hand: serde's generic conversion turns numbers into maps
/// when serde_json's `arbitrary_precision` is on in the dependency graph.
pub fn yaml_to_json(v: &serde_yaml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    match v {
        Y::Null => J::Null,
        Y::Bool(b) => J::Bool(*b),
        Y::Number(n) => n
            .as_i64()
            .map(J::from)
            .or_else(|| n.as_u64().map(J::from))
            .or_else(|| n.as_f64().map(J::from))
            .unwrap_or(J::Null),
        Y::String(s) => J::String(s.clone()),
        Y::Sequence(s) => J::Array(s.iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s.clone(),
                        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(&t.value),
    }
}

/// A JSON value as YAML (see [`yaml_to_json`]).
pub fn json_to_yaml(v: &serde_json::Value) -> serde_yaml::Value {
    use serde_json::Value as J;
    use serde_yaml::Value as Y;
    match v {
        J::Null => Y::Null,
        J::Bool(b) => Y::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map(|i| Y::Number(i.into()))
            .or_else(|| n.as_u64().map(|u| Y::Number(u.into())))
            .or_else(|| n.as_f64().map(|f| Y::Number(f.into())))
            .unwrap_or(Y::Null),
        J::String(s) => Y::String(s.clone()),
        J::Array(a) => Y::Sequence(a.iter().map(json_to_yaml).collect()),
        J::Object(o) => Y::Mapping(o.iter().map(|(k, v)| (Y::String(k.clone()), json_to_yaml(v))).collect()),
    }
}
