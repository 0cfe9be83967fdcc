//! Reading a file: the document's `version`, `context` and `entries`, then each entry's model,
//! `conditions`, `state`, `identifiers` and `attrs` into an object (new, or updated in place).

use super::lookup::{pair_str, FileLookup};
use super::{to_json, ImportError, Importer, Obj, ObjKind, Place, MAX_ENTRIES};
use crate::blueprint::models;
use crate::blueprint::tags::{self, TagContext};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

fn line_of(text: &str, path: &str) -> usize {
    crate::config::locate::locate(text, &crate::config::locate::parse_path(path))
        .map(|p| p.line)
        .unwrap_or(1)
}

impl Importer {
    /// Reads one file (YAML blueprint or legacy JSON). `context` overrides the file's own.
    pub fn add_file(&mut self, name: &str, text: &str, base_dir: &Path, context: &serde_yaml::Mapping) {
        let doc_err = |line: usize, place: &str, message: String| ImportError {
            file: name.into(),
            line,
            place: place.into(),
            message,
        };
        // An error in a top-level key, at its line.
        let key_err = |key: &str, message: &str| doc_err(line_of(text, key), key, message.into());
        if let Err(e) = crate::input_limits::check_yaml_nesting(text) {
            self.errors.push(doc_err(e.line, "document", e.message));
            return;
        }
        let doc: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(d) => d,
            Err(e) => {
                let line = e.location().map(|l| l.line()).unwrap_or(1);
                self.errors
                    .push(doc_err(line, "document", format!("not valid YAML or JSON: {e}")));
                return;
            }
        };
        match doc.get("version").and_then(serde_yaml::Value::as_i64) {
            Some(1) => {}
            _ => {
                self.errors.push(key_err("version", "a blueprint needs `version: 1`"));
                return;
            }
        }
        // Context: the file's own, then the caller's on top.
        let mut ctx = doc
            .get("context")
            .cloned()
            .unwrap_or(serde_yaml::Value::Mapping(Default::default()));
        tags::deep_merge(&mut ctx, serde_yaml::Value::Mapping(context.clone()));
        let ctx = match ctx {
            serde_yaml::Value::Mapping(m) => m,
            _ => {
                self.errors.push(key_err("context", "context must be a mapping"));
                return;
            }
        };
        // Entries: a list, or a mapping of sections to lists (concatenated in order).
        let mut entries: Vec<(String, serde_yaml::Value)> = Vec::new();
        match doc.get("entries") {
            Some(serde_yaml::Value::Sequence(s)) => {
                entries.extend(s.iter().enumerate().map(|(i, e)| (format!("entries[{i}]"), e.clone())))
            }
            Some(serde_yaml::Value::Mapping(m)) => {
                for (k, v) in m {
                    let section = pair_str(k);
                    if let serde_yaml::Value::Sequence(s) = v {
                        entries.extend(
                            s.iter()
                                .enumerate()
                                .map(|(i, e)| (format!("entries.{section}[{i}]"), e.clone())),
                        );
                    }
                }
            }
            None | Some(serde_yaml::Value::Null) => {}
            Some(_) => {
                self.errors
                    .push(key_err("entries", "entries must be a list or a mapping of lists"));
                return;
            }
        }
        if entries.len() > MAX_ENTRIES {
            self.errors
                .push(doc_err(1, "entries", format!("more than {MAX_ENTRIES} entries")));
            return;
        }
        let mut ids: HashMap<String, usize> = HashMap::new();
        let tcx = TagContext {
            context: &ctx,
            base_dir,
            spent: Default::default(),
        };
        for (index, (path, entry)) in entries.into_iter().enumerate() {
            let at = Place {
                file: name.into(),
                entry: index,
                line: line_of(text, &path),
            };
            self.entry(&at, &entry, &tcx, &mut ids);
        }
    }

    fn entry(&mut self, at: &Place, entry: &serde_yaml::Value, tcx: &TagContext<'_>, ids: &mut HashMap<String, usize>) {
        let resolve = |this: &Self, v: Option<&serde_yaml::Value>| -> Result<serde_yaml::Value, String> {
            let lookup = FileLookup { objs: &this.objs, ids };
            match v {
                None => Ok(serde_yaml::Value::Null),
                Some(v) => tags::resolve(v, tcx, &lookup).map_err(|e| e.to_string()),
            }
        };
        let model = match resolve(self, entry.get("model")) {
            Ok(serde_yaml::Value::String(m)) => m.to_ascii_lowercase(),
            Ok(_) => return self.err(at, "?", "`model` is required (app_label.model_name)"),
            Err(e) => return self.err(at, "?", e),
        };
        // Conditions: any false skips the entry, as if it were not there.
        match resolve(self, entry.get("conditions")) {
            Ok(serde_yaml::Value::Sequence(c)) if c.iter().any(|v| !tags::truthy(v)) => return,
            Ok(_) => {}
            Err(e) => return self.err(at, &model, format!("conditions: {e}")),
        }
        let state = match resolve(self, entry.get("state")) {
            Ok(serde_yaml::Value::String(s)) => s,
            Ok(serde_yaml::Value::Null) => "present".into(),
            Ok(_) => return self.err(at, &model, "state must be present, created, must_created or absent"),
            Err(e) => return self.err(at, &model, format!("state: {e}")),
        };
        if !matches!(state.as_str(), "present" | "created" | "must_created" | "absent") {
            return self.err(
                at,
                &model,
                format!("unknown state {state:?} (expected present, created, must_created or absent)"),
            );
        }
        let kind = if model == "authentik_flows.flow" {
            ObjKind::Flow
        } else if model == "authentik_flows.flowstagebinding" {
            ObjKind::Binding
        } else if model == "authentik_policies.policybinding" {
            ObjKind::PolicyBinding
        } else if model == "authentik_stages_prompt.prompt" {
            ObjKind::Prompt
        } else if model == "authentik_core.group" {
            ObjKind::Group
        } else if model == "authentik_core.user" {
            ObjKind::User
        } else if model == models::OAUTH_SOURCE_MODEL {
            ObjKind::Source
        } else if let Some(k) = models::stage_by_model(&model) {
            ObjKind::Stage(k)
        } else if let Some(k) = models::policy_by_model(&model) {
            ObjKind::Policy(k)
        } else {
            let reason = models::unsupported_reason(&model).unwrap_or("model not supported by flowgate");
            self.note(at, &model, reason);
            // Keep a placeholder so that entries referring to this one are reported too.
            self.objs.push(Obj {
                kind: ObjKind::Unsupported,
                model: model.clone(),
                key: String::new(),
                data: Map::new(),
                at: at.clone(),
            });
            if let Some(id) = entry.get("id").and_then(serde_yaml::Value::as_str) {
                ids.insert(id.to_string(), self.objs.len() - 1);
            }
            return;
        };
        let identifiers = match resolve(self, entry.get("identifiers")) {
            Ok(v) => to_json(v),
            Err(e) => return self.err(at, &model, format!("identifiers: {e}")),
        };
        let attrs = match resolve(self, entry.get("attrs")) {
            Ok(v) => to_json(v),
            Err(e) => return self.err(at, &model, format!("attrs: {e}")),
        };
        if state == "absent" {
            return self.note(
                at,
                &model,
                "state absent: nothing to import (delete it from the config instead)",
            );
        }
        let mut data = identifiers.as_object().cloned().unwrap_or_default();
        let pk = data.remove("pk").map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        });
        if let Value::Object(a) = attrs {
            for (k, v) in a {
                data.insert(k, v);
            }
        }
        let key_field = match kind {
            ObjKind::Flow | ObjKind::Source => "slug",
            ObjKind::User => "username",
            ObjKind::Binding | ObjKind::PolicyBinding => "",
            _ => "name",
        };
        let key = if key_field.is_empty() {
            String::new()
        } else {
            match data.get(key_field) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                // Legacy exports name prompts by pk only.
                _ if kind == ObjKind::Prompt => pk.clone().unwrap_or_else(|| format!("prompt-{}", at.entry)),
                _ => return self.err(at, &model, format!("`{key_field}` is required")),
            }
        };
        // An object already imported (same model and key, or same pk) is updated in place.
        let existing = pk.as_ref().and_then(|p| self.by_pk.get(p).copied()).or_else(|| {
            (!key.is_empty())
                .then(|| self.objs.iter().position(|o| o.model == model && o.key == key))
                .flatten()
        });
        let index = match existing {
            Some(_) if state == "must_created" => {
                return self.err(at, &model, format!("{key:?} already exists (state must_created)"));
            }
            Some(i) if state == "created" => i,
            Some(i) => {
                for (k, v) in data {
                    self.objs[i].data.insert(k, v);
                }
                i
            }
            None => {
                self.objs.push(Obj {
                    kind,
                    model: model.clone(),
                    key,
                    data,
                    at: at.clone(),
                });
                self.objs.len() - 1
            }
        };
        if let Some(p) = pk {
            self.by_pk.insert(p, index);
        }
        if let Some(id) = entry.get("id").and_then(serde_yaml::Value::as_str) {
            ids.insert(id.to_string(), index);
        }
    }
}
