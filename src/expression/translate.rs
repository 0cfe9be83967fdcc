//! Turns an authentik expression (a Python function body) into Starlark: known `from authentik…
//! import` names become constants, `is None` / `is not None` become `==` / `!=`, and the body is
//! wrapped in a function that receives the policy variables.

/// Constants authentik expressions import from `authentik.core.models`.
const KNOWN_IMPORTS: &[(&str, &str)] = &[
    ("USER_ATTRIBUTE_CHANGE_EMAIL", "goauthentik.io/user/can-change-email"),
    ("USER_ATTRIBUTE_CHANGE_NAME", "goauthentik.io/user/can-change-name"),
    (
        "USER_ATTRIBUTE_CHANGE_USERNAME",
        "goauthentik.io/user/can-change-username",
    ),
    ("USER_ATTRIBUTE_DEBUG", "goauthentik.io/user/debug"),
    ("USER_ATTRIBUTE_SA", "goauthentik.io/user/service-account"),
];

/// Module-level helpers available to every expression.
pub(super) const PRELUDE: &str = r#"
def __no_group_attributes(*args, **kwargs):
    return {}

def __yes(*args, **kwargs):
    return True

def __no(*args, **kwargs):
    return False

def __make_user(d):
    if d == None:
        return struct(pk = None, username = "", email = "", name = "", is_authenticated = False, is_active = False, is_superuser = False, groups = [], attributes = {}, group_attributes = __no_group_attributes, has_usable_password = __no)
    return struct(pk = d["pk"], username = d["username"], email = d["email"], name = d["name"], is_authenticated = True, is_active = True, is_superuser = d["is_superuser"], groups = d["groups"], attributes = d["attributes"], group_attributes = __no_group_attributes, has_usable_password = __yes if d.get("has_usable_password", True) else __no)

def ak_is_group_member(user, name = None, **kwargs):
    return name != None and name in user.groups

def ak_user_by(**kwargs):
    for field in ["username", "email"]:
        if field in kwargs:
            found = json.decode(__ak_user_lookup(field, str(kwargs[field])))
            if found == None:
                return None
            return __make_user(found)
    return None

def list_flatten(value):
    if type(value) == "list":
        if len(value) == 0:
            return None
        return value[0]
    return value

__http_request = struct(tenant = struct(default_user_change_email = False, default_user_change_name = True, default_user_change_username = False))
"#;

const HEADER: &str = "def flowgate_policy(__user, __context, ak_is_sso_flow, ak_client_ip, __messages, __in_flow):
    def ak_message(message):
        __messages.append(str(message))
    context = __context
    flow_plan = None
    if __in_flow:
        flow_plan = struct(context = context)
        context[\"flow_plan\"] = flow_plan
    request = struct(user = __make_user(__user), context = context, http_request = __http_request)
    http_request = __http_request
";

/// A translation, with the line of the wrapper where the user's body starts.
pub(super) struct Translated {
    /// Starlark source: prelude, wrapper, body.
    pub(super) source: String,
    /// Lines before the user's first line (to map error lines back).
    pub(super) offset: usize,
}

fn replace_is_none(line: &str) -> String {
    // Outside string literals only.
    let mut out = String::with_capacity(line.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    let b: Vec<char> = line.chars().collect();
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '#' {
            break;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        let rest: String = b[i..].iter().collect();
        if rest.starts_with(" is not ") {
            out.push_str(" != ");
            i += 8;
        } else if rest.starts_with(" is ") {
            out.push_str(" == ");
            i += 4;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Defines the constants for a comma-separated list of imported names (parentheses allowed).
fn import_names(list: &str, line: usize, consts: &mut String) -> Result<(), (usize, String)> {
    for name in list
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match KNOWN_IMPORTS.iter().find(|(k, _)| *k == name) {
            Some((k, v)) => consts.push_str(&format!("    {k} = \"{v}\"\n")),
            None => return Err((line, format!("import of {name:?} is not available in flowgate"))),
        }
    }
    Ok(())
}

/// Translates `body`, or says which line uses something unavailable.
pub(super) fn translate(body: &str) -> Result<Translated, (usize, String)> {
    let mut consts = String::new();
    let mut lines: Vec<String> = Vec::new();
    // The line a parenthesised import started on, while inside it.
    let mut in_import: Option<usize> = None;
    for (n, raw) in body.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(start) = in_import {
            import_names(trimmed, start + 1, &mut consts)?;
            if trimmed.ends_with(')') {
                in_import = None;
            }
            lines.push(String::new());
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("from ") {
            let Some((module, names)) = rest.split_once(" import ") else {
                return Err((n + 1, "invalid import".into()));
            };
            if module.trim() != "authentik.core.models" {
                return Err((
                    n + 1,
                    format!("imports from {:?} are not available in flowgate", module.trim()),
                ));
            }
            let names = names.trim();
            import_names(names, n + 1, &mut consts)?;
            if names.starts_with('(') && !names.ends_with(')') {
                in_import = Some(n);
            }
            lines.push(String::new());
            continue;
        }
        if trimmed.starts_with("import ") {
            return Err((n + 1, "imports are not available in flowgate expressions".into()));
        }
        lines.push(format!("    {}", replace_is_none(raw)));
    }
    let prelude_lines = PRELUDE.lines().count();
    let header_lines = HEADER.lines().count() + consts.lines().count();
    let mut source = String::with_capacity(PRELUDE.len() + HEADER.len() + body.len() * 2);
    source.push_str(PRELUDE);
    source.push_str(HEADER);
    source.push_str(&consts);
    for l in &lines {
        source.push_str(l);
        source.push('\n');
    }
    source.push_str("    return None\n");
    Ok(Translated {
        source,
        offset: prelude_lines + header_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_none_outside_strings() {
        assert_eq!(
            replace_is_none("x is None and y is not None"),
            "x == None and y != None"
        );
        assert_eq!(replace_is_none("return 'a is b'"), "return 'a is b'");
    }

    #[test]
    fn imports() {
        let t =
            translate("from authentik.core.models import (\n    USER_ATTRIBUTE_CHANGE_EMAIL,\n)\nreturn True").unwrap();
        assert!(t
            .source
            .contains("USER_ATTRIBUTE_CHANGE_EMAIL = \"goauthentik.io/user/can-change-email\""));
        assert!(translate("import os\nreturn True").is_err());
        assert_eq!(translate("x = 1\nfrom os import path").err().map(|e| e.0), Some(2));
    }
}
