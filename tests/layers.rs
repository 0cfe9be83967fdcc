//! Architecture check (docs/architecture.md): imports between the top-level modules of `src/`
//! point down the layer table only, and the top-level modules form no cycle.
//!
//! The check reads the source text: `crate::x` paths (also inside `use crate::{x, y::z}` groups)
//! and `super::` paths that climb out of a top-level module. Comments and string literals are
//! skipped. `src/lib.rs` (the wiring) and the binary (`src/main.rs`, `src/cli/`) sit on top and
//! may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer table: a module may import from its own layer and the layers below (smaller
/// numbers), never from above. Every top-level module of `src/` must be listed.
const LAYERS: &[(&str, u8)] = &[
    // 0: leaves with no crate imports: input limits, the expression engine, telemetry (metrics,
    //    audit events).
    ("input_limits", 0),
    ("expression", 0),
    ("telemetry", 0),
    // 1: the configuration model and its validation, with its value types (`config::values`).
    ("config", 1),
    // 2: what the engine runs on: users, sessions, outbound calls, TLS, listeners, routing
    //    tables, and the blueprint translator (authentik YAML in, native YAML out).
    ("identity", 2),
    ("session", 2),
    ("outbound", 2),
    ("tls", 2),
    ("listen", 2),
    ("routing", 2),
    ("blueprint", 2),
    // 3: the flow engine: planner, executor, stages, policies.
    ("flow", 3),
    // 4: the HTTP faces: the proxy phases, the login UI, the error mapping.
    ("proxy", 4),
    ("http", 4),
    ("error", 4),
    // 5: the library's wiring: loading (blueprint expansion), the demo upstream, `lib.rs`.
    ("loader", 5),
    ("admin", 5),
    ("demo", 5),
    ("lib", 5),
    ("reload", 5),
    // 6: the binary.
    ("main", 6),
    ("cli", 6),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Source text with comments, string and char literals blanked out (newlines kept).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && !ident_byte_before(b, i)
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if b.get(i) == Some(&b'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&x| x == b'\'').map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            // Multi-byte UTF-8 characters are copied whole.
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_byte_before(b: &[u8], i: usize) -> bool {
    i > 0 && (ident_byte(b[i - 1]) || b[i - 1] == b'$')
}

fn ident_at(s: &str, i: usize) -> &str {
    let end = s[i..].bytes().position(|c| !ident_byte(c)).map_or(s.len(), |p| i + p);
    &s[i..end]
}

/// The top-level names a `crate::` path starting at `i` (just after `crate::`) names.
fn crate_targets(s: &str, i: usize) -> Vec<String> {
    let b = s.as_bytes();
    let mut i = i;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if b.get(i) != Some(&b'{') {
        let id = ident_at(s, i);
        return if id.is_empty() { vec![] } else { vec![id.to_string()] };
    }
    // A group: names at depth one, each after `{` or `,`.
    let mut out = Vec::new();
    let mut depth = 0;
    let mut want = false;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                want = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => want = true,
            c if want && ident_byte(c) => {
                let id = ident_at(s, i);
                out.push(id.to_string());
                i += id.len();
                want = false;
                continue;
            }
            c if want && !c.is_ascii_whitespace() => want = false,
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module path of a file under `src/`: `config/values/mod.rs` → `[config, values]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        if stem != "mod" {
            parts.push(stem);
        }
    }
    parts
}

/// The top-level modules one file imports: `(target, line)` pairs.
fn imports(rel: &Path, src: &str) -> Vec<(String, usize)> {
    let s = strip(src);
    let b = s.as_bytes();
    let file_path = module_path(rel);
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) open at a brace depth; `super::` inside them climbs
    // one level less out of the file.
    let mut depth = 0usize;
    let mut inline: Vec<usize> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        } else if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            if inline.last() == Some(&depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
        } else if ident_byte(c) && !ident_byte_before(b, i) {
            let id = ident_at(&s, i);
            if id == "mod" {
                let rest = &s[i + 3..];
                let name_start = rest.len() - rest.trim_start().len();
                let name = ident_at(rest, name_start);
                let after = rest[name_start + name.len()..].trim_start();
                if !name.is_empty() && after.starts_with('{') {
                    inline.push(depth + 1);
                }
            } else if id == "crate" && s[i + 5..].starts_with("::") {
                for t in crate_targets(&s, i + 7) {
                    out.push((t, line));
                }
            } else if id == "super" && s[i + 5..].starts_with("::") {
                let mut path = file_path.clone();
                path.extend((0..inline.len()).map(|_| "<inline>".to_string()));
                let mut j = i;
                while s[j..].starts_with("super::") {
                    path.pop();
                    j += 7;
                }
                if path.is_empty() {
                    for t in crate_targets(&s, j) {
                        out.push((t, line));
                    }
                }
                i = j;
                continue;
            }
            i += id.len();
            continue;
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to.
fn owner(rel: &Path) -> String {
    let first = rel
        .iter()
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Edges between top-level modules, each with one place it is written.
fn graph(src_dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let tops: BTreeSet<String> = files
        .iter()
        .map(|f| owner(f.strip_prefix(src_dir).unwrap_or(f)))
        .collect();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src_dir).unwrap_or(f);
        let from = owner(rel);
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (to, line) in imports(rel, &text) {
            if to != from && tops.contains(&to) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("src/{}:{line}", rel.display()));
            }
        }
    }
    edges
}

fn cycle(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut c = stack[at..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn problems(src_dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let mut out = Vec::new();
    let tops: BTreeSet<String> = files
        .iter()
        .map(|f| owner(f.strip_prefix(src_dir).unwrap_or(f)))
        .collect();
    for t in &tops {
        if layer(t).is_none() {
            out.push(format!("src/{t}: not in the layer table of tests/layers.rs"));
        }
    }
    let edges = graph(src_dir);
    for (from, tos) in &edges {
        for (to, at) in tos {
            if let (Some(a), Some(b)) = (layer(from), layer(to)) {
                if b > a {
                    out.push(format!(
                        "{at}: {from} (layer {a}) imports {to} (layer {b}), a layer above it"
                    ));
                }
            }
        }
    }
    if let Some(c) = cycle(&edges) {
        out.push(format!("top-level modules form a cycle: {}", c.join(" -> ")));
    }
    out
}

#[test]
fn imports_point_down_the_layers_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src);
    assert!(found.is_empty(), "layer check failed:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_each_import_form() {
    let src = "use crate::config::Config;\n\
               use crate::{flow::{a, b}, session, identity::X};\n\
               // crate::proxy in a comment\n\
               const S: &str = \"crate::http\";\n\
               fn f() { super::routing::x(); }\n\
               mod tests { use super::*; use super::super::tls::Y; }\n";
    let got: Vec<String> = imports(Path::new("outbound.rs"), src)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(got, ["config", "flow", "session", "identity", "routing", "tls"]);
    let names =
        |file: &str, src: &str| -> Vec<String> { imports(Path::new(file), src).into_iter().map(|(t, _)| t).collect() };
    assert_eq!(names("flow/stages/mod.rs", "use super::super::config;\n"), ["config"]);
    assert!(names("flow/stages/password.rs", "use super::super::Flow;\n").is_empty());
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into(), String::new());
    edges.entry("b".into()).or_default().insert("a".into(), String::new());
    assert_eq!(
        cycle(&edges),
        Some(vec!["a".to_string(), "b".to_string(), "a".to_string()])
    );
}
