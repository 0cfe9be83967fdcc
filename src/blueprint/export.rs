//! Export: flows from the config files as native YAML (a flow with the stages and policies it
//! uses) or as an authentik blueprint (ids and `!KeyOf` references, so the file can go back to
//! authentik and come back to flowgate unchanged).

use super::models::{self, Attr, Kind};
use super::timedelta;
use serde_json::{json, Map, Value};
use serde_yaml::value::{Tag, TaggedValue};
use std::collections::BTreeSet;

type Y = serde_yaml::Value;

/// The native document (`{flows, stages, policies}`) of the flows `slugs` (all flows when
/// `None`) from the config's source texts, with every stage and policy they use.
pub fn native_doc(texts: &[String], slugs: Option<&[String]>) -> Result<Value, String> {
    let mut flows: Vec<Value> = Vec::new();
    let mut stages = Map::new();
    let mut policies = Map::new();
    for t in texts {
        let y: Y = serde_yaml::from_str(t).map_err(|e| e.to_string())?;
        let v = super::yaml_to_json(&y);
        if let Some(f) = v.get("flows").and_then(Value::as_array) {
            flows.extend(f.iter().cloned());
        }
        for (key, into) in [("stages", &mut stages), ("policies", &mut policies)] {
            if let Some(m) = v.get(key).and_then(Value::as_object) {
                for (k, v) in m {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let Some(slugs) = slugs else {
        return Ok(json!({ "flows": flows, "stages": stages, "policies": policies }));
    };
    let mut chosen = Vec::new();
    for s in slugs {
        match flows
            .iter()
            .find(|f| f.get("slug").and_then(Value::as_str) == Some(s.as_str()))
        {
            Some(f) => chosen.push(f.clone()),
            None => return Err(format!("unknown flow {s:?}")),
        }
    }
    // Stages bound, and the stages those refer to; policies bound anywhere or used by prompts.
    let mut want_stages: BTreeSet<String> = BTreeSet::new();
    let mut want_policies: BTreeSet<String> = BTreeSet::new();
    let take_policies = |bindings: Option<&Value>, into: &mut BTreeSet<String>| {
        for b in bindings.and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = b.get("policy").and_then(Value::as_str) {
                into.insert(p.to_string());
            }
        }
    };
    for f in &chosen {
        take_policies(f.get("policies"), &mut want_policies);
        for b in f.get("bindings").and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = b.get("stage").and_then(Value::as_str) {
                want_stages.insert(s.to_string());
            }
            take_policies(b.get("policies"), &mut want_policies);
        }
    }
    let mut queue: Vec<String> = want_stages.iter().cloned().collect();
    while let Some(s) = queue.pop() {
        let Some(def) = stages.get(&s) else { continue };
        let mut refs: Vec<String> = Vec::new();
        for key in ["password_stage", "webauthn_stage"] {
            if let Some(p) = def.get(key).and_then(Value::as_str) {
                refs.push(p.to_string());
            }
        }
        refs.extend(names(def, "configuration_stages").map(String::from));
        want_policies.extend(names(def, "validation_policies").map(String::from));
        for r in refs {
            if want_stages.insert(r.clone()) {
                queue.push(r);
            }
        }
    }
    let pick = |all: &Map<String, Value>, want: &BTreeSet<String>| -> Map<String, Value> {
        all.iter()
            .filter(|(k, _)| want.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    Ok(json!({ "flows": chosen, "stages": pick(&stages, &want_stages), "policies": pick(&policies, &want_policies) }))
}

/// The names a list-valued key of `def` holds.
fn names<'a>(def: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    def.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn tagged(tag: &str, v: Y) -> Y {
    Y::Tagged(Box::new(TaggedValue {
        tag: Tag::new(tag),
        value: v,
    }))
}

fn key_of(id: String) -> Y {
    tagged("KeyOf", Y::String(id))
}

/// `!KeyOf` references to the objects a list names: `{prefix}-{name}` for each name `name_of`
/// finds in an item.
fn key_list(v: &Value, prefix: &str, name_of: fn(&Value) -> Option<&str>) -> Y {
    let names = v.as_array().into_iter().flatten().filter_map(name_of);
    Y::Sequence(names.map(|n| key_of(format!("{prefix}-{n}"))).collect())
}

/// The key of a native prompt field.
fn field_key(f: &Value) -> Option<&str> {
    f.get("field_key").and_then(Value::as_str)
}

fn find(model: &str, field: &str, value: &str) -> Y {
    tagged(
        "Find",
        Y::Sequence(vec![
            Y::String(model.into()),
            Y::Sequence(vec![Y::String(field.into()), Y::String(value.into())]),
        ]),
    )
}

fn y(v: &Value) -> Y {
    super::json_to_yaml(v)
}

struct Writer<'a> {
    doc: &'a Value,
    entries: Vec<Y>,
}

fn entry(model: &str, id: Option<String>, identifiers: Y, attrs: serde_yaml::Mapping) -> Y {
    let mut m = serde_yaml::Mapping::new();
    m.insert("model".into(), Y::String(model.into()));
    if let Some(id) = id {
        m.insert("id".into(), Y::String(id));
    }
    m.insert("identifiers".into(), identifiers);
    if !attrs.is_empty() {
        m.insert("attrs".into(), Y::Mapping(attrs));
    }
    Y::Mapping(m)
}

/// Copies the values of `keys` that `from` sets (not null) into `attrs`, in the order of `keys`.
fn copy_set(from: &Value, keys: &[&str], attrs: &mut serde_yaml::Mapping) {
    for &k in keys {
        if let Some(v) = from.get(k).filter(|v| !v.is_null()) {
            attrs.insert(Y::String(k.into()), y(v));
        }
    }
}

fn ident(pairs: &[(&str, Y)]) -> Y {
    let mut m = serde_yaml::Mapping::new();
    for (k, v) in pairs {
        m.insert(Y::String((*k).into()), v.clone());
    }
    Y::Mapping(m)
}

impl Writer<'_> {
    fn has_flow(&self, slug: &str) -> bool {
        self.doc
            .get("flows")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f.get("slug").and_then(Value::as_str) == Some(slug)))
    }

    fn has_stage(&self, name: &str) -> bool {
        self.doc.get("stages").and_then(|s| s.get(name)).is_some()
    }

    fn attr(&self, stage: &str, attr: Attr, v: &Value) -> Result<Y, String> {
        Ok(match attr {
            Attr::Same | Attr::DeviceClasses => y(v),
            Attr::NumberString => Y::String(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            Attr::Duration => Y::String(timedelta::timedelta_of(v.as_str().unwrap_or("0s"))?),
            Attr::Seconds => {
                let d = crate::config::duration::parse_duration(v.as_str().unwrap_or("0s"))?;
                Y::Number(d.as_secs().into())
            }
            Attr::StageRef => {
                let n = v.as_str().unwrap_or("");
                if self.has_stage(n) {
                    key_of(format!("stage-{n}"))
                } else {
                    Y::Null
                }
            }
            Attr::FlowRef => {
                let s = v.as_str().unwrap_or("");
                if self.has_flow(s) {
                    key_of(format!("flow-{s}"))
                } else {
                    find("authentik_flows.flow", "slug", s)
                }
            }
            Attr::GroupRef => find("authentik_core.group", "name", v.as_str().unwrap_or("")),
            Attr::StageRefs => key_list(v, "stage", Value::as_str),
            Attr::PolicyRefs => key_list(v, "policy", Value::as_str),
            Attr::Prompts => key_list(v, &format!("prompt-{stage}"), field_key),
            Attr::EmailTemplate => Y::String(format!("email/{}.html", v.as_str().unwrap_or("password_reset"))),
            Attr::SourceRefs => Y::Sequence(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|slug| find(super::models::OAUTH_SOURCE_MODEL, "slug", slug))
                    .collect(),
            ),
        })
    }

    fn object(&mut self, kind: &Kind, prefix: &str, name: &str, def: &Value) -> Result<(), String> {
        let mut attrs = serde_yaml::Mapping::new();
        for (native, ak, attr) in kind.attrs {
            if let Some(v) = def.get(*native).filter(|v| !v.is_null()) {
                attrs.insert(Y::String((*ak).into()), self.attr(name, *attr, v)?);
            }
        }
        self.entries.push(entry(
            kind.model,
            Some(format!("{prefix}-{name}")),
            ident(&[("name", Y::String(name.into()))]),
            attrs,
        ));
        Ok(())
    }

    fn prompts(&mut self, stage: &str, def: &Value) {
        for f in def.get("fields").and_then(Value::as_array).into_iter().flatten() {
            let key = field_key(f).unwrap_or("");
            let mut attrs = serde_yaml::Mapping::new();
            copy_set(f, models::PROMPT_FIELD_KEYS, &mut attrs);
            // authentik takes choices from a placeholder expression returning a list.
            if let Some(c) = f.get("choices").and_then(Value::as_array).filter(|c| !c.is_empty()) {
                attrs.insert(
                    "placeholder".into(),
                    Y::String(format!("return {}", Value::Array(c.clone()))),
                );
                attrs.insert("placeholder_expression".into(), Y::Bool(true));
            }
            self.entries.push(entry(
                "authentik_stages_prompt.prompt",
                Some(format!("prompt-{stage}-{key}")),
                ident(&[("name", Y::String(format!("{stage}-{key}")))]),
                attrs,
            ));
        }
    }

    fn policy_bindings(&mut self, target: &str, list: Option<&Value>) -> Result<(), String> {
        for b in list.and_then(Value::as_array).into_iter().flatten() {
            let mut id: Vec<(&str, Y)> = Vec::new();
            if let Some(p) = b.get("policy").and_then(Value::as_str) {
                id.push(("policy", key_of(format!("policy-{p}"))));
            } else if let Some(g) = b.get("group").and_then(Value::as_str) {
                id.push(("group", find("authentik_core.group", "name", g)));
            } else if let Some(u) = b.get("user").and_then(Value::as_str) {
                id.push(("user", find("authentik_core.user", "username", u)));
            }
            id.push(("target", key_of(target.to_string())));
            if let Some(order) = b.get("order").and_then(Value::as_i64) {
                id.push(("order", Y::Number(order.into())));
            }
            let mut attrs = serde_yaml::Mapping::new();
            copy_set(b, models::POLICY_BINDING_KEYS, &mut attrs);
            if let Some(t) = b.get("timeout").and_then(Value::as_str) {
                let d = crate::config::duration::parse_duration(t)?;
                attrs.insert("timeout".into(), Y::Number(d.as_secs().into()));
            }
            self.entries
                .push(entry("authentik_policies.policybinding", None, ident(&id), attrs));
        }
        Ok(())
    }
}

/// The authentik blueprint of a native document.
pub fn blueprint(doc: &Value, name: &str) -> Result<String, String> {
    let mut w = Writer {
        doc,
        entries: Vec::new(),
    };
    let empty = Map::new();
    let flows = doc.get("flows").and_then(Value::as_array).cloned().unwrap_or_default();
    let stages = doc.get("stages").and_then(Value::as_object).unwrap_or(&empty).clone();
    let policies = doc.get("policies").and_then(Value::as_object).unwrap_or(&empty).clone();
    for f in &flows {
        let slug = f.get("slug").and_then(Value::as_str).unwrap_or("");
        let mut attrs = serde_yaml::Mapping::new();
        copy_set(f, models::FLOW_KEYS, &mut attrs);
        w.entries.push(entry(
            "authentik_flows.flow",
            Some(format!("flow-{slug}")),
            ident(&[("slug", Y::String(slug.into()))]),
            attrs,
        ));
    }
    for (name, def) in &stages {
        if def.get("type").and_then(Value::as_str) == Some("prompt") {
            w.prompts(name, def);
        }
    }
    for (name, def) in &policies {
        let t = def.get("type").and_then(Value::as_str).unwrap_or("");
        let kind = models::policy_by_native(t).ok_or_else(|| format!("policy {name}: unknown type {t:?}"))?;
        w.object(kind, "policy", name, def)?;
    }
    // Stages that refer to other stages come after them: an identification stage's
    // `webauthn_stage` is a validate stage, which may name configuration stages itself.
    let rank = |def: &Value| {
        if def.get("webauthn_stage").is_some() {
            2
        } else if def.get("password_stage").is_some() || def.get("configuration_stages").is_some() {
            1
        } else {
            0
        }
    };
    for pass in [0, 1, 2] {
        for (name, def) in stages.iter().filter(|(_, d)| rank(d) == pass) {
            let t = def.get("type").and_then(Value::as_str).unwrap_or("");
            let kind = models::stage_by_native(t).ok_or_else(|| format!("stage {name}: unknown type {t:?}"))?;
            w.object(kind, "stage", name, def)?;
        }
    }
    for f in &flows {
        let slug = f.get("slug").and_then(Value::as_str).unwrap_or("");
        w.policy_bindings(&format!("flow-{slug}"), f.get("policies"))?;
        for (i, b) in f
            .get("bindings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let stage = b.get("stage").and_then(Value::as_str).unwrap_or("");
            let id = format!("binding-{slug}-{i}");
            let mut attrs = serde_yaml::Mapping::new();
            copy_set(b, models::BINDING_KEYS, &mut attrs);
            w.entries.push(entry(
                "authentik_flows.flowstagebinding",
                Some(id.clone()),
                ident(&[
                    ("target", key_of(format!("flow-{slug}"))),
                    ("stage", key_of(format!("stage-{stage}"))),
                    ("order", y(b.get("order").unwrap_or(&json!(0)))),
                ]),
                attrs,
            ));
            w.policy_bindings(&id, b.get("policies"))?;
        }
    }
    let mut top = serde_yaml::Mapping::new();
    top.insert("version".into(), Y::Number(1.into()));
    let mut meta = serde_yaml::Mapping::new();
    meta.insert("name".into(), Y::String(name.into()));
    let mut labels = serde_yaml::Mapping::new();
    labels.insert("blueprints.goauthentik.io/generated".into(), Y::String("true".into()));
    labels.insert(
        "blueprints.goauthentik.io/instantiate".into(),
        Y::String("false".into()),
    );
    meta.insert("labels".into(), Y::Mapping(labels));
    top.insert("metadata".into(), Y::Mapping(meta));
    top.insert("entries".into(), Y::Sequence(w.entries));
    serde_yaml::to_string(&Y::Mapping(top)).map_err(|e| e.to_string())
}
