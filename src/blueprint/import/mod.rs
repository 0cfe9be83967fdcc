//! Blueprint import: `version: 1` documents (and legacy JSON flow exports, which are the same
//! shape with raw primary keys) into flowgate's native config.
//!
//! Entries are processed in file order, as authentik does: each entry's `conditions`,
//! `identifiers` and `attrs` are resolved (tags.rs), then it becomes an object of its model.
//! References (`!KeyOf`, `!Find`, raw pks) become opaque tokens naming the object. At the end
//! the flows are assembled with their stage bindings and policy bindings. Every entry flowgate
//! cannot express, and every attribute it ignores, is reported with file, entry and line.

use super::models::Kind;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

mod assemble;
mod entries;
mod lookup;
mod sources;

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
    /// Native config: `{flows: [...], stages: {...}, policies: {...}}`, plus `sources: {...}`
    /// when the files had OAuth sources.
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
    /// An OAuth source (`sources.rs`).
    Source,
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

fn to_json(v: serde_yaml::Value) -> Value {
    super::yaml_to_json(&v)
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
