//! The values of authentik attributes flowgate lacks that mean "not used": an attribute set to
//! one of them is dropped quietly, any other value is reported.

use crate::blueprint::timedelta::timedelta_seconds;
use serde_json::Value;

pub(super) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

pub(super) fn is_zero_delta(v: &Value) -> bool {
    match v {
        Value::String(s) => timedelta_seconds(s).is_ok_and(|x| x == 0.0),
        other => is_empty(other),
    }
}

pub(super) fn only_inbuilt(v: &Value) -> bool {
    v.as_array().is_none_or(|a| {
        a.iter().all(|b| {
            matches!(
                b.as_str(),
                Some("authentik.core.auth.InbuiltBackend")
                    | Some("authentik.core.auth.TokenBackend")
                    | Some("authentik.sources.ldap.auth.LDAPBackend")
                    | Some("authentik.sources.kerberos.auth.KerberosBackend")
            )
        })
    })
}

pub(super) fn is_default_binding(v: &Value) -> bool {
    matches!(v.as_str(), None | Some("no_binding"))
}

pub(super) fn is_zero(v: &Value) -> bool {
    v.is_null() || v.as_i64() == Some(0)
}

pub(super) fn is_thirty_days(v: &Value) -> bool {
    match v {
        Value::String(s) => timedelta_seconds(s).is_ok_and(|x| x == 0.0 || x == 30.0 * 86_400.0),
        other => is_empty(other),
    }
}

pub(super) fn is_external(v: &Value) -> bool {
    matches!(v.as_str(), None | Some("external") | Some("internal"))
}

pub(super) fn is_12(v: &Value) -> bool {
    v.as_i64().is_none_or(|n| n == 12)
}

pub(super) fn is_default_email_attempts(v: &Value) -> bool {
    v.as_i64().is_none_or(|n| n == 5)
}
