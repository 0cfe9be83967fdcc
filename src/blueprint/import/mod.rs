//! Blueprint import: `version: 1` documents (and legacy JSON flow exports, which are the same
//! shape with raw primary keys) into flowgate's native config.
//!
//! Entries are processed in file order, as authentik does: each entry's `conditions`,
//! `identifiers` and `attrs` are resolved (tags.rs), then it becomes an object of its model.
//! References (`!KeyOf`, `!Find`, raw pks) become opaque tokens naming the object. At the end
//! the flows are assembled with their stage bindings and policy bindings. Every entry flowgate
//! cannot express, and every attribute it ignores, is reported with file, entry and line.

use super::models::{self, Kind};
use super::tags::{self, Lookup, TagContext};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

mod assemble;

/// Prefix of reference tokens (never valid in real data).
const REF: &str = "\u{1}ref:";
/// Prefix of "by name, outside this import" tokens from `!Find` on groups and users.
const NAMED: &str = "\u{1}name:";
/// Most entries one file may hold.
const MAX_ENTRIES: usize = 10_000;

/// An entry or attribute that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    /// File name.
    pub file: String,
    /// Entry index in the file.
    pub entry: usize,
    /// Line of the entry.
    pub line: usize,
    /// The entry's model.
    pub model: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: entries[{}] ({}): {}",
            self.file, self.line, self.entry, self.model, self.reason
        )
    }
}

/// An import error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {place}: {message}")]
pub struct ImportError {
    /// File name.
    pub file: String,
    /// Line.
    pub line: usize,
    /// `entries[3] (model)` or the document part.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

/// What an import produced.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Native config: `{flows: [...], stages: {...}, policies: {...}}`.
    pub doc: Value,
    /// Users and groups in the seed file format (`{groups, users}`), when the files had any.
    pub seed: Option<Value>,
    /// What was not imported.
    pub unsupported: Vec<Unsupported>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjKind {
    Flow,
    Stage(&'static Kind),
    Policy(&'static Kind),
    Prompt,
    Binding,
    PolicyBinding,
    Group,
    User,
    /// A model flowgate does not import; kept so references to it can be reported.
    Unsupported,
}

#[derive(Debug, Clone)]
struct Obj {
    kind: ObjKind,
    model: String,
    /// Slug (flows), name (stages, policies, prompts, groups), username (users).
    key: String,
    data: Map<String, Value>,
    at: Place,
}

#[derive(Debug, Clone)]
struct Place {
    file: String,
    entry: usize,
    line: usize,
}

/// The importer: objects across all files, ids per file.
#[derive(Default)]
pub struct Importer {
    objs: Vec<Obj>,
    by_pk: HashMap<String, usize>,
    errors: Vec<ImportError>,
    unsupported: Vec<Unsupported>,
    /// Stand-in policies for bindings to policies flowgate cannot run.
    generated: Map<String, Value>,
}

struct FileLookup<'a> {
    objs: &'a [Obj],
    ids: &'a HashMap<String, usize>,
}

fn token(i: usize) -> serde_yaml::Value {
    serde_yaml::Value::String(format!("{REF}{i}"))
}

fn pair_str(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

impl FileLookup<'_> {
    fn matches(o: &Obj, model: &str, pairs: &[(String, serde_yaml::Value)]) -> bool {
        if !model_eq(&o.model, model) {
            return false;
        }
        pairs.iter().all(|(field, v)| {
            let (field, ci) = match field.strip_suffix("__iexact") {
                Some(f) => (f, true),
                None => (field.as_str(), false),
            };
            let want = pair_str(v);
            let have = match o.data.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => return false,
            };
            if ci {
                have.eq_ignore_ascii_case(&want)
            } else {
                have == want
            }
        })
    }
}

impl Lookup for FileLookup<'_> {
    fn key_of(&self, id: &str) -> Result<serde_yaml::Value, String> {
        self.ids
            .get(id)
            .map(|i| token(*i))
            .ok_or_else(|| format!("no earlier entry has id {id:?} (a later entry, a cycle, or a typo)"))
    }

    fn find(&self, model: &str, pairs: &[(String, serde_yaml::Value)]) -> serde_yaml::Value {
        if let Some(i) = self.objs.iter().position(|o| Self::matches(o, model, pairs)) {
            return token(i);
        }
        // Groups and users outside the import are referred to by name: they may exist in the
        // user store (seed file) when the config runs.
        let named = ["authentik_core.group", "authentik_core.user"]
            .iter()
            .any(|m| model_eq(m, model));
        match (named, pairs) {
            (true, [(f, v)]) if f.starts_with("name") || f.starts_with("username") => {
                serde_yaml::Value::String(format!("{NAMED}{}", pair_str(v)))
            }
            _ => serde_yaml::Value::Null,
        }
    }

    fn find_object(&self, model: &str, pairs: &[(String, serde_yaml::Value)]) -> serde_yaml::Value {
        self.objs
            .iter()
            .find(|o| Self::matches(o, model, pairs))
            .map(|o| super::json_to_yaml(&Value::Object(o.data.clone())))
            .unwrap_or(serde_yaml::Value::Null)
    }
}

/// `app.Model` compared case-insensitively on the model part, as authentik does.
fn model_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn to_json(v: serde_yaml::Value) -> Value {
    super::yaml_to_json(&v)
}

fn line_of(text: &str, path: &str) -> usize {
    crate::config::locate::locate(text, &crate::config::locate::parse_path(path))
        .map(|p| p.line)
        .unwrap_or(1)
}

impl Importer {
    /// A new importer.
    pub fn new() -> Self {
        Self::default()
    }

    fn err(&mut self, at: &Place, model: &str, message: impl Into<String>) {
        self.errors.push(ImportError {
            file: at.file.clone(),
            line: at.line,
            place: format!("entries[{}] ({model})", at.entry),
            message: message.into(),
        });
    }

    fn note(&mut self, at: &Place, model: &str, reason: impl Into<String>) {
        self.unsupported.push(Unsupported {
            file: at.file.clone(),
            entry: at.entry,
            line: at.line,
            model: model.to_string(),
            reason: reason.into(),
        });
    }

    /// Reads one file (YAML blueprint or legacy JSON). `context` overrides the file's own.
    pub fn add_file(&mut self, name: &str, text: &str, base_dir: &Path, context: &serde_yaml::Mapping) {
        if let Err(e) = crate::input_limits::check_yaml_nesting(text) {
            self.errors.push(ImportError {
                file: name.into(),
                line: e.line,
                place: "document".into(),
                message: e.message,
            });
            return;
        }
        let doc: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(d) => d,
            Err(e) => {
                self.errors.push(ImportError {
                    file: name.into(),
                    line: e.location().map(|l| l.line()).unwrap_or(1),
                    place: "document".into(),
                    message: format!("not valid YAML or JSON: {e}"),
                });
                return;
            }
        };
        let doc_err = |line: usize, place: &str, message: String| ImportError {
            file: name.into(),
            line,
            place: place.into(),
            message,
        };
        match doc.get("version").and_then(serde_yaml::Value::as_i64) {
            Some(1) => {}
            _ => {
                self.errors.push(doc_err(
                    line_of(text, "version"),
                    "version",
                    "a blueprint needs `version: 1`".into(),
                ));
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
                self.errors.push(doc_err(
                    line_of(text, "context"),
                    "context",
                    "context must be a mapping".into(),
                ));
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
                self.errors.push(doc_err(
                    line_of(text, "entries"),
                    "entries",
                    "entries must be a list or a mapping of lists".into(),
                ));
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
            ObjKind::Flow => "slug",
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

    /// The object a reference value names.
    fn deref(&self, v: &Value) -> Option<usize> {
        let s = v.as_str()?;
        match s.strip_prefix(REF) {
            Some(i) => i.parse().ok(),
            None => self.by_pk.get(s).copied(),
        }
    }

    /// The name a reference gives, for groups and users also outside the import.
    fn ref_name(&self, v: &Value, want: fn(ObjKind) -> bool) -> Result<Option<String>, String> {
        if v.is_null() {
            return Ok(None);
        }
        if let Some(n) = v.as_str().and_then(|s| s.strip_prefix(NAMED)) {
            return Ok(Some(n.to_string()));
        }
        match self.deref(v).map(|i| &self.objs[i]) {
            Some(o) if want(o.kind) => Ok(Some(o.key.clone())),
            Some(o) if o.kind == ObjKind::Unsupported => Err(format!(
                "refers to {} (entries[{}]), which is not imported",
                o.model, o.at.entry
            )),
            Some(o) => Err(format!("refers to a {} entry, not the expected kind", o.model)),
            None => Err(format!("refers to {v} which is not part of this import")),
        }
    }
}

/// Imports files (path, text) in order; tags resolve against each file's directory.
pub fn import(files: &[(String, String)], context: &serde_yaml::Mapping) -> Result<Imported, Vec<ImportError>> {
    let mut imp = Importer::new();
    for (name, text) in files {
        let base = Path::new(name).parent().unwrap_or(Path::new("."));
        imp.add_file(name, text, base, context);
    }
    imp.finish()
}

/// The native document as YAML text with a header naming its sources.
pub fn to_yaml(doc: &Value, sources: &[String]) -> String {
    let body = serde_yaml::to_string(&super::json_to_yaml(doc)).unwrap_or_default();
    format!(
        "# Imported by `flowgate import` from: {}\n# Check it with `flowgate check`; every key is in docs/configuration.md.\n{body}",
        sources.join(", ")
    )
}
