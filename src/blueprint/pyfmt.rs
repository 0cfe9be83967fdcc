//! Python's text conversions as authentik's blueprint tags use them: `repr` and `str` of a
//! resolved value (`None`, `True`, `'text'`, `[1, 'a']`) and `fmt % args` for `!Format`.

use serde_yaml::{Number, Value};

/// Largest width or precision in a `!Format` conversion.
const MAX_WIDTH: usize = 4096;

/// Python's `repr` of a float. Rust's `{:?}` picks the same shortest digits and the same switch to
/// an exponent (below 1e-4 or from 1e16); Python writes the exponent signed, with two digits at least.
fn py_float(f: f64) -> String {
    let s = format!("{f:?}");
    match s.split_once('e') {
        _ if f.is_nan() => "nan".into(),
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Python's `repr` of a string: single quotes unless the text has `'` and no `"`.
fn py_str_repr(s: &str) -> String {
    let q = match (s.contains('\''), s.contains('"')) {
        (true, false) => '"',
        _ => '\'',
    };
    let mut out = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => out.extend(['\\', c]),
            c if c < ' ' || ('\x7f'..='\u{9f}').contains(&c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// Python's `repr` of a resolved value (`None`, `True`, `'text'`, `[1, 'a']`, `{'k': 1.0}`).
pub(super) fn py_repr(v: &Value) -> String {
    let join = |items: Vec<String>| items.join(", ");
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) if n.is_f64() => py_float(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Sequence(s) => format!("[{}]", join(s.iter().map(py_repr).collect())),
        Value::Mapping(m) => format!(
            "{{{}}}",
            join(m.iter().map(|(k, v)| py_repr(k) + ": " + &py_repr(v)).collect())
        ),
        Value::Tagged(t) => format!("{} {}", t.tag, py_repr(&t.value)),
    }
}

/// Reads a width or precision (digits) from a conversion spec.
fn spec_number(it: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>, String> {
    if it.peek() == Some(&'*') {
        return Err("'*' width or precision is not supported".into());
    }
    let mut n = None;
    while let Some(digit) = it.next_if(char::is_ascii_digit).and_then(|c| c.to_digit(10)) {
        let v = n.unwrap_or(0usize).saturating_mul(10).saturating_add(digit as usize);
        if v > MAX_WIDTH {
            return Err(format!("width or precision over {MAX_WIDTH}"));
        }
        n = Some(v);
    }
    Ok(n)
}

/// A `%d` or `%f` argument; booleans are 0 and 1.
fn real(conv: char, v: &Value) -> Result<Number, String> {
    match v {
        Value::Bool(b) => Ok(u8::from(*b).into()),
        Value::Number(n) => Ok(n.clone()),
        other => Err(format!(
            "%{conv} format: a real number is required, not {}",
            py_repr(other)
        )),
    }
}

/// `%d` of a number: (negative, decimal digits); floats truncate.
fn int_parts(n: &Number) -> Result<(bool, String), String> {
    match n.as_f64().map(f64::trunc) {
        Some(f) if n.is_f64() && f.is_finite() => Ok((f < 0.0, format!("{:.0}", f.abs()))),
        Some(f) if n.is_f64() => Err(format!("cannot convert float {} to integer", py_float(f))),
        _ => {
            let s = n.to_string();
            Ok(s.strip_prefix('-')
                .map_or((false, s.clone()), |d| (true, d.to_string())))
        }
    }
}

/// Python `fmt % tuple(args)` for `%s %r %a %d %i %u %f %F %%`, with flags `-+ 0`, width and
/// precision (`%5s`, `%-5s`, `%05d`, `%+d`, `%.2f`, `%.3s`).
pub(super) fn py_format(fmt: &str, args: &[Value]) -> Result<String, String> {
    let (mut out, mut next, mut it) = (String::new(), 0, fmt.chars().peekable());
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(f) = it.next_if(|c| "-+ 0#".contains(*c)) {
            flags.push(f);
        }
        let width = spec_number(&mut it)?.unwrap_or(0);
        let prec = match it.next_if_eq(&'.') {
            Some(_) => Some(spec_number(&mut it)?.unwrap_or(0)),
            None => None,
        };
        while it.next_if(|c| matches!(c, 'h' | 'l' | 'L')).is_some() {}
        let conv = it.next().ok_or("incomplete format")?;
        if conv == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(next).ok_or("not enough arguments for format string")?;
        next += 1;
        let (numeric, neg, body) = match conv {
            's' | 'r' | 'a' => {
                let s = if conv == 's' { py_str(arg) } else { py_repr(arg) };
                (false, false, prec.map_or(s.clone(), |p| s.chars().take(p).collect()))
            }
            'd' | 'i' | 'u' => {
                let (neg, digits) = int_parts(&real(conv, arg)?)?;
                (true, neg, format!("{digits:0>w$}", w = prec.unwrap_or(0)))
            }
            'f' | 'F' => {
                let f = real(conv, arg)?.as_f64().unwrap_or(f64::NAN);
                let body = match f.is_finite() {
                    true => format!("{:.*}", prec.unwrap_or(6), f.abs()),
                    false => py_float(f.abs()),
                };
                let body = if conv == 'F' { body.to_uppercase() } else { body };
                (true, f.is_sign_negative() && !f.is_nan(), body)
            }
            '(' => return Err("mapping keys (%(name)s) are not supported".into()),
            other => return Err(format!("unsupported format character '{other}' (0x{:x})", other as u32)),
        };
        let sign = match (numeric, neg) {
            (true, true) => "-",
            (true, false) if flags.contains('+') => "+",
            (true, false) if flags.contains(' ') => " ",
            _ => "",
        };
        let pad = width.saturating_sub(sign.len() + body.chars().count());
        out.push_str(&if flags.contains('-') {
            format!("{sign}{body}{}", " ".repeat(pad))
        } else if numeric && flags.contains('0') {
            format!("{sign}{}{body}", "0".repeat(pad))
        } else {
            format!("{}{sign}{body}", " ".repeat(pad))
        });
    }
    if next < args.len() {
        return Err("not all arguments converted during string formatting".into());
    }
    Ok(out)
}

/// Python's `str` of a resolved value.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}
