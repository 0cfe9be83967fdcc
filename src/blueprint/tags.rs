//! authentik blueprint custom YAML tags (`!KeyOf`, `!Find`, `!Context`, `!Enumerate`, ...), resolved
//! on a parsed [`serde_yaml::Value`] (tags arrive as `Value::Tagged`).
//!
//! [`resolve`] walks the value (sequences, mappings and mapping keys) and replaces every tagged node
//! with what the tag stands for; the result holds no tags. Semantics follow authentik's loader
//! (`authentik/blueprints/v1/common.py`), with these differences:
//!
//! * every argument and default is resolved (authentik leaves tags inside literal arguments alone),
//!   and defaults only when used;
//! * `!File` paths are relative to [`TagContext::base_dir`] (authentik: the working directory); a
//!   file over 1 MiB or not UTF-8 counts as unreadable (the default is used);
//! * `!Enumerate ... MAP` merges with [`deep_merge`], so a list from a later item replaces an earlier
//!   one (authentik's `always_merger` appends lists);
//! * runaway input is stopped at [`MAX_DEPTH`] nesting levels or [`MAX_NODES`] nodes.
//!
//! `!File` reads any path the blueprint names, as authentik does: resolve trusted blueprints only.

use super::pyfmt::{py_format, py_repr};
use serde_yaml::{Mapping, Value};
use std::path::Path;

/// Deepest nesting of sequences, mappings and tags that [`resolve`] accepts.
pub const MAX_DEPTH: usize = 64;
/// Most nodes [`resolve`] visits or copies (values produced by tags count too).
pub const MAX_NODES: usize = 100_000;
/// Most nodes resolved in one file, over all its entries.
pub const MAX_FILE_NODES: usize = 1_000_000;
/// Most string bytes resolved in one file (`!Format "%4096s"` inside nested `!Enumerate` would
/// otherwise build hundreds of megabytes from a few hundred bytes).
pub const MAX_FILE_BYTES: usize = 16 << 20;
/// Largest file `!File` reads; a bigger one falls back to the default.
const MAX_FILE: u64 = 1 << 20;

/// What tag resolution may ask the importer.
pub trait Lookup {
    /// `!KeyOf id`: the reference value of an earlier entry with that id.
    fn key_of(&self, id: &str) -> Result<Value, String>;
    /// `!Find [model, [field, value]...]`: the reference of the first match, or Null.
    fn find(&self, model: &str, pairs: &[(String, Value)]) -> Value;
    /// `!FindObject`: the first match as a mapping, or Null.
    fn find_object(&self, model: &str, pairs: &[(String, Value)]) -> Value;
}

/// Context for resolution.
pub struct TagContext<'a> {
    /// The blueprint's merged context, read by `!Context`.
    pub context: &'a Mapping,
    /// Directory that relative `!File` paths start from.
    pub base_dir: &'a Path,
    /// What every resolution in this file has used so far.
    pub spent: Budget,
}

/// Nodes and string bytes resolved across one file, so that many entries each just under the
/// per-resolution limit cannot add up to an amplification bomb.
#[derive(Debug, Default)]
pub struct Budget {
    nodes: std::cell::Cell<usize>,
    bytes: std::cell::Cell<usize>,
}

/// A resolution error with the tag that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{tag}: {message}")]
pub struct TagError {
    /// The tag as written (`!KeyOf`); a limit hit names the innermost enclosing tag, or `(untagged)`.
    pub tag: String,
    /// What went wrong.
    pub message: String,
}

fn err(tag: &str, message: impl Into<String>) -> TagError {
    TagError {
        tag: tag.to_string(),
        message: message.into(),
    }
}

/// `"{what}, got {repr of v}"`.
fn got(tag: &str, what: &str, v: &Value) -> TagError {
    err(tag, format!("{what}, got {}", py_repr(v)))
}

/// Fills in the tag of a limit error raised below `tag`.
fn named(tag: &str) -> impl FnOnce(TagError) -> TagError + '_ {
    move |mut e| {
        if e.tag.is_empty() {
            e.tag = tag.to_string();
        }
        e
    }
}

/// Resolves every tag in `v`.
pub fn resolve(v: &Value, cx: &TagContext<'_>, lookup: &dyn Lookup) -> Result<Value, TagError> {
    let mut r = Resolver {
        cx,
        lookup,
        stack: Vec::new(),
        nodes: 0,
    };
    r.node(v, 0).map_err(named("(untagged)"))
}

/// Python truthiness of a resolved value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        // NaN is true in Python, and NaN != 0.0.
        Value::Number(n) => !matches!(n.as_f64(), Some(f) if f == 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::Tagged(t) => truthy(&t.value),
    }
}

/// Deep merge: mappings merge key by key (recursively), anything else in `over` replaces.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

struct Resolver<'r, 'a> {
    cx: &'r TagContext<'a>,
    lookup: &'r dyn Lookup,
    /// `!Enumerate` frames, innermost last: `(index or key, value)`, or `None` while that
    /// Enumerate's own iterable is resolved (as in authentik, it is on the stack without an item).
    stack: Vec<Option<(Value, Value)>>,
    nodes: usize,
}

/// Adds `n` to one of a file's budgets; past `max`, a limit error saying `max` `what`.
fn spend(spent: &std::cell::Cell<usize>, n: usize, max: usize, what: &str) -> Result<(), TagError> {
    spent.set(spent.get().saturating_add(n));
    if spent.get() > max {
        return Err(err("", format!("more than {max} {what} in this file (runaway input?)")));
    }
    Ok(())
}

impl Resolver<'_, '_> {
    /// Counts `n` more nodes. Limit errors carry an empty tag; [`named`] fills it in.
    fn charge(&mut self, n: usize) -> Result<(), TagError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            let message = format!("more than {MAX_NODES} nodes resolved (runaway input?)");
            return Err(err("", message));
        }
        spend(&self.cx.spent.nodes, n, MAX_FILE_NODES, "nodes resolved")
    }

    /// Counts `n` more bytes of resolved strings.
    fn charge_bytes(&mut self, n: usize) -> Result<(), TagError> {
        spend(&self.cx.spent.bytes, n, MAX_FILE_BYTES, "bytes of strings resolved")
    }

    /// Takes a value produced by a tag (lookups, JSON, enumeration items): counts its nodes and
    /// makes sure it holds no tags.
    fn adopt(&mut self, tag: &str, v: Value) -> Result<Value, TagError> {
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut todo = vec![&v];
        while let Some(x) = todo.pop() {
            n += 1;
            match x {
                Value::String(s) => bytes += s.len(),
                Value::Sequence(s) => todo.extend(s),
                Value::Mapping(m) => m.iter().for_each(|(k, x)| todo.extend([k, x])),
                Value::Tagged(t) => return Err(err(tag, format!("the result still holds the tag {}", t.tag))),
                _ => {}
            }
        }
        self.charge(n)?;
        self.charge_bytes(bytes)?;
        Ok(v)
    }

    fn node(&mut self, v: &Value, depth: usize) -> Result<Value, TagError> {
        if depth >= MAX_DEPTH {
            return Err(err("", format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.charge(1)?;
        match v {
            Value::Sequence(s) => {
                let mut out = Vec::with_capacity(s.len());
                for x in s {
                    out.push(self.node(x, depth + 1)?);
                }
                Ok(Value::Sequence(out))
            }
            Value::Mapping(m) => {
                let mut out = Mapping::with_capacity(m.len());
                for (k, x) in m {
                    let k = self.node(k, depth + 1)?;
                    out.insert(k, self.node(x, depth + 1)?);
                }
                Ok(Value::Mapping(out))
            }
            Value::Tagged(t) => {
                let tag = t.tag.to_string();
                let out = self.tag(&tag, &t.value, depth + 1).map_err(named(&tag))?;
                if let Value::String(s) = &out {
                    self.charge_bytes(s.len()).map_err(named(&tag))?;
                }
                Ok(out)
            }
            Value::String(s) => {
                self.charge_bytes(s.len())?;
                Ok(Value::String(s.clone()))
            }
            other => Ok(other.clone()),
        }
    }

    /// Resolves `v` and requires a string.
    fn string(&mut self, tag: &str, what: &str, v: &Value, depth: usize) -> Result<String, TagError> {
        match self.node(v, depth)? {
            Value::String(s) => Ok(s),
            other => Err(got(tag, &format!("{what} must be a string"), &other)),
        }
    }

    /// `x` or `[x, default]`: `x` resolved, and the default left unresolved (it is resolved if used).
    fn with_default<'v>(&mut self, tag: &str, a: &'v Value, d: usize) -> Result<(Value, Option<&'v Value>), TagError> {
        let (x, default) = match a {
            Value::Sequence(s) => match s.as_slice() {
                [x] => (x, None),
                [x, default] => (x, Some(default)),
                _ => return Err(got(tag, "expects a scalar or [value, default]", a)),
            },
            Value::Mapping(_) | Value::Null => return Err(got(tag, "expects a scalar or [value, default]", a)),
            x => (x, None),
        };
        Ok((self.node(x, d)?, default))
    }

    fn or_default(&mut self, default: Option<&Value>, d: usize) -> Result<Value, TagError> {
        default.map_or(Ok(Value::Null), |v| self.node(v, d))
    }

    fn tag(&mut self, tag: &str, arg: &Value, d: usize) -> Result<Value, TagError> {
        match tag.strip_prefix('!').unwrap_or(tag) {
            "KeyOf" => {
                let v = self.lookup.key_of(&literal(tag, arg)?).map_err(|m| err(tag, m))?;
                self.adopt(tag, v)
            }
            name @ ("Find" | "FindObject") => {
                let a = args(tag, arg, 1, usize::MAX)?;
                let model = self.string(tag, "the model", &a[0], d)?;
                let mut pairs = Vec::with_capacity(a.len() - 1);
                for p in &a[1..] {
                    let p = self.node(p, d)?;
                    match p.as_sequence().map(Vec::as_slice) {
                        Some([Value::String(f), v]) => pairs.push((f.clone(), v.clone())),
                        _ => return Err(got(tag, "each condition must be a [field, value] pair", &p)),
                    }
                }
                let v = match name {
                    "Find" => self.lookup.find(&model, &pairs),
                    _ => self.lookup.find_object(&model, &pairs),
                };
                self.adopt(tag, v)
            }
            "Context" => {
                let (key, default) = self.with_default(tag, arg, d)?;
                let context = self.cx.context;
                // `!Context 5` also finds the key "5" (authentik reads a scalar key as text).
                let found = context.get(&key).or_else(|| context.get(scalar_text(&key)?.as_str()));
                match found {
                    Some(v) => self.node(v, d),
                    None => self.or_default(default, d),
                }
            }
            "Env" => {
                let (name, default) = self.with_default(tag, arg, d)?;
                let name = scalar_text(&name).ok_or_else(|| got(tag, "the name must be a scalar", &name))?;
                // `std::env::var` may panic on such names, and they cannot be set anyway.
                let usable = !name.is_empty() && !name.contains(['=', '\0']);
                match usable.then(|| std::env::var(&name).ok()).flatten() {
                    Some(v) if !v.is_empty() => Ok(Value::String(v)),
                    _ => self.or_default(default, d),
                }
            }
            "File" => {
                let (path, default) = self.with_default(tag, arg, d)?;
                let path = scalar_text(&path).ok_or_else(|| got(tag, "the path must be a scalar", &path))?;
                match read_capped(&self.cx.base_dir.join(path)) {
                    Some(text) => Ok(Value::String(text.trim().to_string())),
                    None => self.or_default(default, d),
                }
            }
            "Format" => {
                let a = args(tag, arg, 1, usize::MAX)?;
                let fmt = self.string(tag, "the format", &a[0], d)?;
                let values = a[1..].iter().map(|x| self.node(x, d)).collect::<Result<Vec<_>, _>>()?;
                py_format(&fmt, &values).map(Value::String).map_err(|m| err(tag, m))
            }
            "If" => {
                let a = args(tag, arg, 1, 3)?;
                if a.len() == 2 {
                    return Err(err(tag, "expects [condition] or [condition, when_true, when_false]"));
                }
                let c = truthy(&self.node(&a[0], d)?);
                match a.len() {
                    1 => Ok(Value::Bool(c)),
                    _ => self.node(&a[if c { 1 } else { 2 }], d),
                }
            }
            "Condition" => {
                let a = args(tag, arg, 1, usize::MAX)?;
                let mode = self.string(tag, "the mode", &a[0], d)?.to_ascii_uppercase();
                if a.len() < 2 {
                    return Err(err(tag, "at least one value is required after the mode"));
                }
                let (n, mut n_true) = (a.len() - 1, 0);
                for x in &a[1..] {
                    n_true += usize::from(truthy(&self.node(x, d)?));
                }
                Ok(Value::Bool(match mode.as_str() {
                    "AND" => n_true == n,
                    "NAND" => n_true != n,
                    "OR" => n_true > 0,
                    "NOR" => n_true == 0,
                    "XOR" => n_true % 2 == 1,
                    "XNOR" => n_true % 2 == 0,
                    _ => return Err(got(tag, "the mode must be AND, NAND, OR, NOR, XOR or XNOR", &a[0])),
                }))
            }
            "Enumerate" => self.enumerate(tag, arg, d),
            name @ ("Index" | "Value") => {
                let depth = scalar_text(arg).and_then(|s| s.trim().parse::<usize>().ok());
                let depth = depth.ok_or_else(|| got(tag, "the depth must be a non-negative integer", arg))?;
                let max = self.stack.len().checked_sub(1);
                let max = max.ok_or_else(|| err(tag, "only usable inside !Enumerate"))?;
                let at = max.checked_sub(depth);
                let at = at.ok_or_else(|| err(tag, format!("invalid depth: {depth}. Max depth: {max}")))?;
                let item = match &self.stack[at] {
                    Some((k, v)) => (if name == "Index" { k } else { v }).clone(),
                    None => {
                        return Err(err(
                            tag,
                            format!("depth {depth}: that !Enumerate's iterable is resolving"),
                        ))
                    }
                };
                self.adopt(tag, item)
            }
            "AtIndex" => {
                let a = args(tag, arg, 2, 3)?;
                let obj = self.node(&a[0], d)?;
                let key = self.node(&a[1], d)?;
                let found = match obj {
                    Value::Sequence(s) => {
                        let i = key
                            .as_i64()
                            .ok_or_else(|| got(tag, "an index must be an integer", &key))?;
                        let i = if i < 0 { i.saturating_add(s.len() as i64) } else { i };
                        usize::try_from(i).ok().and_then(|i| s.into_iter().nth(i))
                    }
                    Value::Mapping(mut m) => m.remove(&key),
                    other => return Err(got(tag, "can only index a sequence or a mapping", &other)),
                };
                match (found, a.get(2)) {
                    (Some(v), _) => Ok(v),
                    (None, Some(default)) => self.node(default, d),
                    (None, None) => Err(err(tag, format!("index or key does not exist: {}", py_repr(&key)))),
                }
            }
            "ParseJSON" => {
                let json =
                    serde_json::from_str(&literal(tag, arg)?).map_err(|e| err(tag, format!("invalid JSON: {e}")))?;
                self.adopt(tag, from_json(json))
            }
            _ => Err(err(tag, "unknown tag")),
        }
    }

    /// `!Enumerate [iterable, SEQ|MAP, body]`.
    fn enumerate(&mut self, tag: &str, arg: &Value, d: usize) -> Result<Value, TagError> {
        let a = args(tag, arg, 3, 3)?;
        self.stack.push(None);
        let iterable = self.node(&a[0], d);
        self.stack.pop();
        let items: Vec<(Value, Value)> = match iterable? {
            Value::Mapping(m) => m.into_iter().collect(),
            Value::Sequence(s) => s.into_iter().enumerate().map(|(i, v)| (i.into(), v)).collect(),
            Value::String(s) => s
                .chars()
                .enumerate()
                .map(|(i, c)| (i.into(), String::from(c).into()))
                .collect(),
            other => return Err(got(tag, "the iterable must be a sequence or a mapping", &other)),
        };
        let as_map = match self.string(tag, "the output", &a[1], d)?.to_ascii_uppercase().as_str() {
            "SEQ" => false,
            "MAP" => true,
            other => return Err(err(tag, format!("the output must be SEQ or MAP, got {other:?}"))),
        };
        let (mut seq, mut map) = (Vec::new(), Value::Mapping(Mapping::new()));
        for item in items {
            self.stack.push(Some(item));
            let r = self.node(&a[2], d);
            self.stack.pop();
            match r? {
                r if !as_map => seq.push(r),
                r @ Value::Mapping(_) => deep_merge(&mut map, r),
                Value::Sequence(p) if p.len() == 2 => {
                    let mut p = p.into_iter();
                    deep_merge(&mut map, Value::Mapping(p.next().zip(p.next()).into_iter().collect()));
                }
                other => return Err(got(tag, "a MAP item must be a [key, value] pair or a mapping", &other)),
            }
        }
        Ok(if as_map { map } else { Value::Sequence(seq) })
    }
}

/// A JSON value as YAML (by hand: with serde_json's `arbitrary_precision`, `to_value` would keep
/// numbers as private maps).
fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => b.into(),
        J::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or_else(|| n.to_string().into()),
        J::String(s) => s.into(),
        J::Array(a) => Value::Sequence(a.into_iter().map(from_json).collect()),
        J::Object(o) => Value::Mapping(o.into_iter().map(|(k, v)| (k.into(), from_json(v))).collect()),
    }
}

/// The sequence argument of `tag`, with `min..=max` items.
fn args<'v>(tag: &str, arg: &'v Value, min: usize, max: usize) -> Result<&'v [Value], TagError> {
    match arg {
        Value::Sequence(s) if (min..=max).contains(&s.len()) => Ok(s),
        _ if max == usize::MAX => Err(got(tag, &format!("expects a sequence of at least {min} items"), arg)),
        _ => Err(got(tag, &format!("expects a sequence of {min} to {max} items"), arg)),
    }
}

/// The text of a literal scalar argument (`!KeyOf id`, `!ParseJSON text`); not a nested tag.
fn literal(tag: &str, arg: &Value) -> Result<String, TagError> {
    match scalar_text(arg) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(got(tag, "expects a literal scalar (not a nested tag)", arg)),
    }
}

/// A scalar as text: strings as they are, numbers and booleans as YAML writes them.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// File contents, or `None` if unreadable, larger than [`MAX_FILE`] or not UTF-8.
fn read_capped(path: &Path) -> Option<String> {
    crate::input_limits::read_capped_string(path, MAX_FILE).ok()
}

#[cfg(test)]
mod tests;
