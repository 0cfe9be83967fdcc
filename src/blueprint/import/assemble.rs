//! Assembly: objects into native flows, stages and policies; attribute conversion by the
//! model tables; policy bindings (failing closed on policies flowgate cannot run).

use super::{ImportError, Imported, Importer, Obj, ObjKind};
use crate::blueprint::models::{self, Attr, Kind};
use crate::blueprint::timedelta;
use serde_json::{json, Map, Value};

/// Copies the values of `keys` that `from` sets (not null) into `into`.
fn copy_set(from: &Map<String, Value>, keys: &[&str], into: &mut Map<String, Value>) {
    for &k in keys {
        if let Some(v) = from.get(k).filter(|v| !v.is_null()) {
            into.insert(k.into(), v.clone());
        }
    }
}

impl Importer {
    /// Converts one attribute by its mapping; notes what cannot be carried over.
    fn convert(&mut self, o: &Obj, attr: Attr, ak: &str, v: &Value) -> Option<Value> {
        let is_stage = |k: ObjKind| matches!(k, ObjKind::Stage(_));
        let is_flow = |k: ObjKind| k == ObjKind::Flow;
        let is_group = |k: ObjKind| k == ObjKind::Group;
        let is_policy = |k: ObjKind| matches!(k, ObjKind::Policy(_));
        let dangling = |this: &mut Self, e: String| {
            this.note(&o.at, &o.model, format!("{ak}: {e}; left out"));
            None
        };
        match attr {
            Attr::Same => (!v.is_null()).then(|| v.clone()),
            Attr::NumberString => match v {
                Value::String(s) => s.parse::<i64>().ok().map(|n| json!(n)),
                Value::Null => None,
                other => Some(other.clone()),
            },
            Attr::Duration => match v {
                Value::String(s) => match timedelta::timedelta_seconds(s) {
                    Ok(secs) if secs >= 0.0 => Some(json!(timedelta::native_duration(secs.round() as u64))),
                    Ok(_) => dangling(self, "negative durations are not supported".into()),
                    Err(e) => dangling(self, e),
                },
                _ => None,
            },
            Attr::Seconds => v
                .as_f64()
                .map(|s| json!(timedelta::native_duration(s.max(0.0).round() as u64))),
            Attr::StageRef | Attr::FlowRef | Attr::GroupRef => {
                let want = match attr {
                    Attr::StageRef => is_stage,
                    Attr::FlowRef => is_flow,
                    _ => is_group,
                };
                match self.ref_name(v, want) {
                    Ok(n) => n.map(Value::String),
                    Err(e) => dangling(self, e),
                }
            }
            Attr::StageRefs | Attr::PolicyRefs => {
                let want = if attr == Attr::StageRefs { is_stage } else { is_policy };
                let mut out = Vec::new();
                for item in v.as_array().cloned().unwrap_or_default() {
                    match self.ref_name(&item, want) {
                        Ok(Some(n)) => out.push(Value::String(n)),
                        Ok(None) => {}
                        Err(e) => {
                            self.note(&o.at, &o.model, format!("{ak}: {e}; left out"));
                        }
                    }
                }
                Some(Value::Array(out))
            }
            Attr::Prompts => {
                let mut fields = Vec::new();
                for item in v.as_array().cloned().unwrap_or_default() {
                    let Some(p) = self.deref(&item).map(|i| self.objs[i].clone()) else {
                        self.note(
                            &o.at,
                            &o.model,
                            format!("fields: prompt {item} is not part of this import"),
                        );
                        continue;
                    };
                    fields.push(self.prompt_field(&p));
                }
                Some(Value::Array(fields))
            }
            Attr::EmailTemplate => {
                let name = models::email_template_name(v.as_str().unwrap_or("email/password_reset.html"));
                if name == "password_reset" || name == "account_confirmation" {
                    Some(json!(name))
                } else {
                    dangling(
                        self,
                        format!("mail template {name:?} is not built in (password_reset, account_confirmation)"),
                    )
                }
            }
            Attr::SourceRefs => {
                let mut out = Vec::new();
                for item in v.as_array().cloned().unwrap_or_default() {
                    match self.ref_name(&item, |k| k == ObjKind::Source) {
                        Ok(Some(n)) => out.push(Value::String(n)),
                        Ok(None) => {}
                        Err(e) => self.note(&o.at, &o.model, format!("{ak}: {e}; left out")),
                    }
                }
                Some(Value::Array(out))
            }
            Attr::DeviceClasses => {
                let mut out = Vec::new();
                for c in v.as_array().cloned().unwrap_or_default() {
                    match c.as_str() {
                        Some("totp") | Some("static") | Some("webauthn") => out.push(c),
                        Some(other) => self.note(
                            &o.at,
                            &o.model,
                            format!("device class {other:?} is not implemented; left out"),
                        ),
                        None => {}
                    }
                }
                Some(Value::Array(out))
            }
        }
    }

    fn prompt_field(&mut self, p: &Obj) -> Value {
        let d = &p.data;
        let mut f = Map::new();
        copy_set(d, models::PROMPT_FIELD_KEYS, &mut f);
        let kind = d.get("type").and_then(Value::as_str).unwrap_or("");
        let placeholder = d.get("placeholder").and_then(Value::as_str).unwrap_or("");
        let expression = d.get("placeholder_expression").and_then(Value::as_bool) == Some(true);
        if kind == "radio-button-group" || kind == "dropdown" {
            // A literal list (`return ["a", "b"]`, as flowgate exports it) gives the choices;
            // a literal placeholder is the one choice.
            let literal = placeholder
                .trim()
                .strip_prefix("return")
                .and_then(|l| serde_json::from_str::<Vec<String>>(l.trim()).ok());
            let choices = match (expression, literal) {
                (true, Some(list)) => list,
                (true, None) => {
                    self.note(
                        &p.at,
                        &p.model,
                        "placeholder_expression: only a literal list of choices is understood",
                    );
                    Vec::new()
                }
                (false, _) => vec![placeholder.to_string()],
            };
            f.insert("choices".into(), json!(choices));
            f.remove("placeholder");
        } else if expression {
            self.note(
                &p.at,
                &p.model,
                "placeholder_expression: expressions in prompts are not evaluated; the text is used as it is",
            );
        }
        if d.get("initial_value_expression").and_then(Value::as_bool) == Some(true) {
            self.note(
                &p.at,
                &p.model,
                "initial_value_expression: expressions in prompts are not evaluated; the text is used as it is",
            );
        }
        Value::Object(f)
    }

    /// Converts a stage or policy object's attributes through its kind.
    fn native_of(&mut self, o: &Obj, kind: &'static Kind) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), json!(kind.native));
        for (native, ak, attr) in kind.attrs {
            if let Some(v) = o.data.get(*ak) {
                if let Some(c) = self.convert(o, *attr, ak, v) {
                    out.insert((*native).into(), c);
                }
            }
        }
        if kind.native == "authenticator_validate" && !o.data.contains_key("device_classes") {
            self.note(
                &o.at,
                &o.model,
                "device_classes: authentik's default (all classes) includes duo, sms and email, which are not implemented; totp, static and webauthn are used",
            );
        }
        for (k, v) in &o.data {
            if kind.attrs.iter().any(|(_, ak, _)| ak == k) || models::QUIET.contains(&k.as_str()) {
                continue;
            }
            match kind.ignored.iter().find(|(name, _)| name == k) {
                Some((_, unused)) if unused(v) => {}
                _ => self.note(
                    &o.at,
                    &o.model,
                    format!("attribute {k} is not supported by flowgate; ignored"),
                ),
            }
        }
        Value::Object(out)
    }

    fn policy_binding(&mut self, pb: &Obj) -> Option<Value> {
        let mut b = Map::new();
        let d = pb.data.clone();
        let unsupported_policy = d
            .get("policy")
            .and_then(|p| self.deref(p))
            .filter(|i| self.objs[*i].kind == ObjKind::Unsupported);
        let target = if let Some(i) = unsupported_policy {
            // Fail closed: a binding to a policy flowgate cannot run always fails (after its
            // `negate`), so nothing it guarded opens up.
            let negate = d.get("negate").and_then(Value::as_bool).unwrap_or(false);
            let name = format!(
                "unsupported-policy-{}-{}",
                self.objs[i].at.entry,
                if negate { "negated" } else { "plain" }
            );
            self.generated
                .insert(name.clone(), json!({ "type": "dummy", "result": negate }));
            let model = self.objs[i].model.clone();
            self.note(
                &pb.at,
                &pb.model,
                format!("binds {model}, which flowgate cannot run: bound to {name}, a policy that always fails"),
            );
            Ok(("policy", Some(name)))
        } else if let Some(p) = d.get("policy").filter(|v| !v.is_null()) {
            self.ref_name(p, |k| matches!(k, ObjKind::Policy(_)))
                .map(|n| ("policy", n))
        } else if let Some(g) = d.get("group").filter(|v| !v.is_null()) {
            self.ref_name(g, |k| k == ObjKind::Group).map(|n| ("group", n))
        } else if let Some(u) = d.get("user").filter(|v| !v.is_null()) {
            self.ref_name(u, |k| k == ObjKind::User).map(|n| ("user", n))
        } else {
            Err("a policy binding needs a policy, group or user".into())
        };
        match target {
            Ok((k, Some(n))) => {
                b.insert(k.into(), json!(n));
            }
            Ok((_, None)) => {
                self.note(
                    &pb.at,
                    &pb.model,
                    "binds nothing (reference resolved to null); left out",
                );
                return None;
            }
            Err(e) => {
                self.note(&pb.at, &pb.model, format!("{e}; left out"));
                return None;
            }
        }
        copy_set(&d, models::POLICY_BINDING_KEYS, &mut b);
        copy_set(&d, &["order"], &mut b);
        if let Some(t) = d.get("timeout").and_then(Value::as_f64) {
            b.insert(
                "timeout".into(),
                json!(timedelta::native_duration(t.max(0.0).round() as u64)),
            );
        }
        Some(Value::Object(b))
    }

    /// The object a binding's `target` names.
    fn target_of(&self, binding: &Obj) -> Option<usize> {
        binding.data.get("target").and_then(|t| self.deref(t))
    }

    fn bindings_on(&mut self, target: usize) -> Vec<Value> {
        let idx: Vec<usize> = (0..self.objs.len())
            .filter(|i| {
                let o = &self.objs[*i];
                o.kind == ObjKind::PolicyBinding && self.target_of(o) == Some(target)
            })
            .collect();
        let mut out: Vec<(i64, Value)> = Vec::new();
        for i in idx {
            let pb = self.objs[i].clone();
            if let Some(v) = self.policy_binding(&pb) {
                out.push((pb.data.get("order").and_then(Value::as_i64).unwrap_or(0), v));
            }
        }
        out.sort_by_key(|(o, _)| *o);
        out.into_iter().map(|(_, v)| v).collect()
    }

    /// Assembles the native document; `Err` lists every error of every file.
    pub fn finish(mut self) -> Result<Imported, Vec<ImportError>> {
        let mut flows = Vec::new();
        let mut stages = Map::new();
        let mut policies = Map::new();
        let mut groups = Vec::new();
        let mut users = Vec::new();
        let mut sources = Map::new();
        for i in 0..self.objs.len() {
            let o = self.objs[i].clone();
            match o.kind {
                ObjKind::Flow => {
                    let mut f = Map::new();
                    f.insert("slug".into(), json!(o.key));
                    copy_set(&o.data, models::FLOW_KEYS, &mut f);
                    for (k, v) in &o.data {
                        let known = k == "slug" || models::FLOW_KEYS.contains(&k.as_str());
                        let harmless = ["compatibility_mode", "background"];
                        if !(known || harmless.contains(&k.as_str()) || v.is_null()) {
                            self.note(
                                &o.at,
                                &o.model,
                                format!("attribute {k} is not supported by flowgate; ignored"),
                            );
                        }
                    }
                    let fp = self.bindings_on(i);
                    if !fp.is_empty() {
                        f.insert("policies".into(), Value::Array(fp));
                    }
                    let mut bindings: Vec<(i64, String, Value)> = Vec::new();
                    for j in 0..self.objs.len() {
                        let b = self.objs[j].clone();
                        if b.kind != ObjKind::Binding || self.target_of(&b) != Some(i) {
                            continue;
                        }
                        let stage = match b
                            .data
                            .get("stage")
                            .map(|s| self.ref_name(s, |k| matches!(k, ObjKind::Stage(_))))
                        {
                            Some(Ok(Some(s))) => s,
                            Some(Err(e)) => {
                                let model = b.model.clone();
                                let unsupported = b
                                    .data
                                    .get("stage")
                                    .and_then(|s| self.deref(s))
                                    .is_some_and(|i| self.objs[i].kind == ObjKind::Unsupported);
                                if unsupported {
                                    self.note(&b.at, &model, format!("stage {e}; binding left out"));
                                } else {
                                    self.err(&b.at, &model, format!("binding to a missing stage: stage {e}"));
                                }
                                continue;
                            }
                            _ => {
                                let model = b.model.clone();
                                self.err(&b.at, &model, "binding to a missing stage: `stage` is empty");
                                continue;
                            }
                        };
                        let order = b.data.get("order").and_then(Value::as_i64).unwrap_or(0);
                        let mut nb = Map::new();
                        nb.insert("stage".into(), json!(stage));
                        nb.insert("order".into(), json!(order));
                        copy_set(&b.data, models::BINDING_KEYS, &mut nb);
                        let bp = self.bindings_on(j);
                        if !bp.is_empty() {
                            nb.insert("policies".into(), Value::Array(bp));
                        }
                        bindings.push((order, stage, Value::Object(nb)));
                    }
                    bindings.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                    f.insert(
                        "bindings".into(),
                        Value::Array(bindings.into_iter().map(|(_, _, v)| v).collect()),
                    );
                    flows.push(Value::Object(f));
                }
                ObjKind::Stage(k) => {
                    let v = self.native_of(&o, k);
                    stages.insert(o.key.clone(), v);
                }
                ObjKind::Policy(k) => {
                    let mut v = self.native_of(&o, k);
                    // An expression the sandbox cannot run becomes a policy that always fails:
                    // dropping it could open what it guarded.
                    if let Some(src) = v.get("expression").and_then(Value::as_str) {
                        if let Err(e) = crate::expression::compile(src) {
                            let first = e.lines().next().unwrap_or("").to_string();
                            self.note(
                                &o.at,
                                &o.model,
                                format!("expression does not run in flowgate's sandbox ({first}); replaced by a policy that always fails"),
                            );
                            v = json!({ "type": "dummy", "result": false });
                        }
                    }
                    policies.insert(o.key.clone(), v);
                }
                ObjKind::Group => {
                    let mut g = Map::new();
                    g.insert("name".into(), json!(o.key));
                    if let Some(p) = o.data.get("parent") {
                        if let Ok(Some(n)) = self.ref_name(p, |k| k == ObjKind::Group) {
                            g.insert("parent".into(), json!(n));
                        }
                    }
                    if let Some(a) = o.data.get("attributes").filter(|a| a.is_object()) {
                        g.insert("attributes".into(), a.clone());
                    }
                    if o.data.get("is_superuser").and_then(Value::as_bool) == Some(true) {
                        self.note(
                            &o.at,
                            &o.model,
                            "superuser groups are not supported; make users superusers instead",
                        );
                    }
                    groups.push(Value::Object(g));
                }
                ObjKind::User => {
                    let mut u = Map::new();
                    u.insert("username".into(), json!(o.key));
                    copy_set(&o.data, &["email", "name", "is_active", "attributes"], &mut u);
                    let mut gs = Vec::new();
                    for g in o
                        .data
                        .get("groups")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                    {
                        if let Ok(Some(n)) = self.ref_name(&g, |k| k == ObjKind::Group) {
                            gs.push(json!(n));
                        }
                    }
                    if !gs.is_empty() {
                        u.insert("groups".into(), Value::Array(gs));
                    }
                    if o.data.contains_key("password") {
                        self.note(
                            &o.at,
                            &o.model,
                            "passwords are not imported; set one with `flowgate user passwd`",
                        );
                    }
                    users.push(Value::Object(u));
                }
                ObjKind::PolicyBinding => {
                    let target = self.target_of(&o).map(|t| self.objs[t].kind);
                    if !matches!(target, Some(ObjKind::Flow) | Some(ObjKind::Binding)) {
                        self.note(
                            &o.at,
                            &o.model,
                            "binds to something other than a flow or a stage binding; left out",
                        );
                    }
                }
                ObjKind::Binding => {
                    let target = self.target_of(&o).map(|t| self.objs[t].kind);
                    if target != Some(ObjKind::Flow) {
                        self.err(
                            &o.at,
                            &o.model.clone(),
                            "stage binding without a flow in this import (`target`)",
                        );
                    }
                }
                ObjKind::Source => {
                    if let Some(v) = self.source_native(&o) {
                        sources.insert(o.key.clone(), v);
                    }
                }
                ObjKind::Prompt | ObjKind::Unsupported => {}
            }
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        for (k, v) in std::mem::take(&mut self.generated) {
            policies.insert(k, v);
        }
        let seed = (!groups.is_empty() || !users.is_empty()).then(|| json!({ "groups": groups, "users": users }));
        let mut doc = json!({ "flows": flows, "stages": stages, "policies": policies });
        if !sources.is_empty() {
            doc["sources"] = Value::Object(sources);
        }
        Ok(Imported {
            doc,
            seed,
            unsupported: self.unsupported,
        })
    }
}
