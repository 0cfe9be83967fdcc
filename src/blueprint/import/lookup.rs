//! References while a file is read: `!KeyOf` by the file's ids, `!Find` by model and fields
//! over the objects imported so far (groups and users outside the import by name).

use super::{Obj, NAMED, REF};
use crate::blueprint::tags::Lookup;
use serde_json::Value;
use std::collections::HashMap;

pub(super) struct FileLookup<'a> {
    pub(super) objs: &'a [Obj],
    pub(super) ids: &'a HashMap<String, usize>,
}

fn token(i: usize) -> serde_yaml::Value {
    serde_yaml::Value::String(format!("{REF}{i}"))
}

pub(super) fn pair_str(v: &serde_yaml::Value) -> String {
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
            .map(|o| crate::blueprint::json_to_yaml(&Value::Object(o.data.clone())))
            .unwrap_or(serde_yaml::Value::Null)
    }
}

/// `app.Model` compared case-insensitively on the model part, as authentik does.
fn model_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
