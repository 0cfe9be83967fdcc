//! Inputs from the cargo-fuzz targets in `fuzz/` (see fuzz/README.md and docs/performance.md,
//! "Fuzzing"), run through the same entry points as ordinary tests: the most hostile corpus
//! entries (alias bombs, deep nesting, tag bombs, NUL and overlong cookies, off-site `next`
//! values) must end in a clean error or a rejection, never a panic, a hang or a memory spike.
//! Every test here is fast (well under a second in a debug build).

use flowgate::blueprint::import;
use flowgate::config::{Config, Source};
use flowgate::flow::next::{next_from_query, safe_next, MAX_NEXT_LEN};
use flowgate::http::forms::{parse_form, parse_json, MAX_FIELDS};
use flowgate::session::{cookie_name, session_id_from_cookie_header, strip_cookie};

fn config(text: &str) -> Result<Config, String> {
    // Like `Config::from_yaml_str`, but relative paths resolve in an empty directory.
    let dir = tempfile::tempdir().unwrap();
    Config::from_sources(vec![Source {
        name: "fuzz.yaml".into(),
        text: text.into(),
        base_dir: dir.path().to_path_buf(),
    }])
    .map_err(|e| e.to_string())
}

fn config_err(text: &str) -> String {
    let e = config(text).expect_err("hostile config was accepted");
    assert!(!e.is_empty());
    e
}

fn blueprint(text: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("fuzz.yaml").display().to_string();
    let out = match import::import(&[(name.clone(), text.to_string())], &Default::default()) {
        Ok(imp) => {
            let yaml = import::to_yaml(&imp.doc, &[name]);
            let _ = flowgate::loader::check_import(&yaml);
            Ok(yaml)
        }
        Err(errs) => {
            assert!(!errs.is_empty());
            Err(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        }
    };
    out
}

/// Nine levels of nine aliases each: 9^9 (387M) nodes if expanded.
fn billion_laughs(last: &str) -> String {
    let mut s = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        s.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    s.push_str(last);
    s
}

#[test]
fn config_alias_bomb_is_a_clean_error() {
    let e = config_err(&billion_laughs("listen: *i\n"));
    assert!(e.contains("fuzz.yaml"), "{e}");
}

fn deep(depth: usize) -> [String; 3] {
    [
        format!("listen: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
        format!("listen: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth)),
        format!("apps: {}\n", "- ".repeat(depth)),
    ]
}

#[test]
fn config_deep_nesting_is_a_clean_error() {
    for depth in [129, 1_000] {
        for text in deep(depth) {
            config_err(&text);
        }
    }
}

/// Fuzz finding 1: serde_yaml (unsafe-libyaml) scans deeply nested flow collections in
/// quadratic time before its recursion limit applies. 20,000 levels (40 kB) take seconds; the
/// 4 MiB a config file may have would take hours. The same parser reads blueprints and seeds.
/// Fixed by a nesting check that drives yaml-rust2 one event at a time and stops at level 129
/// (`flowgate::input_limits`), so the deep input never reaches serde_yaml: the test asserts that
/// the refusal comes from that check (its message), not how long it took.
#[test]
fn config_very_deep_flow_nesting_is_rejected_quickly() {
    let [flow_seq, flow_map, block] = deep(20_000);
    for text in [flow_seq, flow_map] {
        let e = config(&text).expect_err("deep config accepted");
        assert!(e.contains("nested deeper than 128 levels"), "{e}");
    }
    // `apps: - - - …` on one line is not valid YAML: refused as such.
    let e = config(&block).expect_err("deep config accepted");
    assert!(e.contains("not allowed in this context"), "{e}");
    let e = blueprint(&format!(
        "version: 1\nentries: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    ))
    .expect_err("deep blueprint accepted");
    assert!(e.contains("nested deeper than 128 levels"), "{e}");
    let slow = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/config/slow-deep-flow-nesting.yaml"
    ))
    .unwrap();
    let e = config(&slow).expect_err("fuzz input accepted");
    assert!(e.contains("nested deeper than 128 levels"), "{e}");
    let seed = format!("users: {}{}\n", "[".repeat(20_000), "]".repeat(20_000));
    let e = flowgate::identity::seed::SeedFile::from_yaml_str(&seed, "users.yaml").expect_err("deep seed accepted");
    assert!(e.to_string().contains("nested deeper than 128 levels"), "{e}");
}

#[test]
fn config_odd_yaml_is_a_clean_error() {
    for text in [
        "listen: !Bogus x\n",
        "listen: !!binary aGVsbG8=\n",
        "? [a, b]\n: c\n",
        "listen: { http: \"127.0.0.1:0\" }\nlisten: { http: \"127.0.0.1:1\" }\n",
        "--- a\n--- b\n",
        "\u{feff}listen: [\u{0}]\n",
        "listen: &x { http: *x }\n",
        "session: { ttl: 99999999999999999999999d }\n",
        "session: { ttl: -1s, max_sessions: 18446744073709551616 }\n",
        "include: [\"[\"]\n",
        "include: [\"\u{0}\"]\n",
    ] {
        config_err(text);
    }
}

#[test]
fn blueprint_alias_bomb_is_a_clean_error() {
    let e = blueprint(&billion_laughs("version: 1\nentries: *i\n")).expect_err("alias bomb imported");
    assert!(!e.is_empty());
}

#[test]
fn blueprint_tag_bombs_are_clean_errors() {
    // Deeply nested tags stop at MAX_DEPTH.
    let deep = format!(
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    attrs:\n      name: {}x{}\n",
        "!Format [".repeat(100),
        "]".repeat(100)
    );
    let e = blueprint(&deep).expect_err("deep tags imported");
    assert!(e.contains("nested deeper than 64 levels"), "{e}");
    let deeper = deep.replace("!Format [", "!Format [[");
    let e = blueprint(&deeper).expect_err("deep tags imported");
    assert!(e.contains("nested deeper than 128 levels"), "{e}");
    // Nested !Enumerate multiplying wide !Format strings stops at MAX_NODES.
    let ten = "!Context ten";
    let mut inner = "!Format [\"%4096s\", x]".to_string();
    for _ in 0..5 {
        inner = format!("!Enumerate [{ten}, SEQ, {inner}]");
    }
    let bomb = format!(
        "version: 1\ncontext:\n  ten: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nentries:\n  - model: authentik_flows.flow\n    identifiers: {{ slug: bomb }}\n    attrs:\n      name: {inner}\n"
    );
    let e = blueprint(&bomb).expect_err("enumerate bomb imported");
    assert!(e.contains("resolved in this file (runaway input?)"), "{e}");
    // Unknown and malformed tags are errors, not panics.
    for text in [
        "version: 1\nentries: !Bogus x\n",
        "version: 1\nentries:\n  - !KeyOf x\n",
        "version: 1\nentries:\n  - model: !Enumerate [!Index 0, SEQ, x]\n",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    attrs: { name: !Format ['%*d', 1] }\n",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    attrs: { name: !ParseJSON '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' }\n",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    attrs: { name: !AtIndex [[a], -9223372036854775808, d] }\n",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    attrs: { name: !Condition [XOR] }\n",
    ] {
        let _ = blueprint(text);
    }
}

/// Fuzz finding 2: `MAX_NODES` counts nodes, not bytes. `!Format` makes a 40 kB string from ten
/// `%4096s`, and each `!Enumerate` level over it with ten `!Value 0` multiplies it by ten at the
/// cost of a dozen nodes. This 668-byte blueprint resolves a 40 MB name; one level more (820
/// bytes, fuzz/regressions/blueprint/) is a 400 MB string and went past the fuzzer's 2 GB RSS
/// limit; every further level multiplies by ten.
const FORMAT_AMPLIFICATION: &[u8] = br#"version: 1
entries:
  - model: authentik_flows.flow
    identifiers: { slug: bomb }
    attrs:
      name: !Enumerate [!Enumerate [!Enumerate [[!Format ["%4096s%4096s%4096s%4096s%4096s%4096s%4096s%4096s%4096s%4096s", x, x, x, x, x, x, x, x, x, x]], SEQ, !Format ["%s%s%s%s%s%s%s%s%s%s", !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0]], SEQ, !Format ["%s%s%s%s%s%s%s%s%s%s", !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0]], SEQ, !Format ["%s%s%s%s%s%s%s%s%s%s", !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0, !Value 0]]
"#;

/// Fixed by a per-file budget of resolved string bytes (`tags::MAX_FILE_BYTES`), charged as
/// strings are produced, so the bomb stops before the 40 MB string is built.
#[test]
fn blueprint_format_amplification_is_bounded() {
    let text = std::str::from_utf8(FORMAT_AMPLIFICATION).unwrap();
    let out = blueprint(text);
    let len = out.as_ref().map(String::len).unwrap_or_default();
    let e = out.expect_err(&format!("a {len}-byte document was resolved from 668 bytes"));
    assert!(e.contains("bytes of strings resolved in this file"), "{e}");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/blueprint/oom-format-enumerate-amplification.yaml"
    ))
    .unwrap();
    let e = blueprint(&text).expect_err("820-byte amplification imported");
    assert!(e.contains("bytes of strings resolved in this file"), "{e}");
}

#[test]
fn json_and_form_bodies_are_bounded() {
    for depth in [129, 100_000] {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_json(deep.as_bytes()).is_err(), "depth {depth}");
    }
    let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("\"k{i}\":{i}")).collect();
    assert!(parse_json(format!("{{{}}}", many.join(",")).as_bytes()).is_err());
    let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("k{i}={i}")).collect();
    assert!(parse_form(many.join("&").as_bytes()).is_err());
    for bad in [
        &b"{\"a\":\"\\ud800\"}"[..],
        b"{\"a\":1,",
        b"\xff{}",
        b"[{}]",
        b"null",
        b"1e999999",
    ] {
        assert!(parse_json(bad).is_err(), "{bad:?}");
    }
    for bad in [&b"a=%ff"[..], b"%C0%80=x", b"a=1&a=2", b"\xc3\x28=1"] {
        assert!(parse_form(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn hostile_cookie_headers_give_no_session() {
    let name = "flowgate_session";
    let id = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    assert_eq!(session_id_from_cookie_header(&format!("{name}={id}"), name), Some(id));
    let long = format!("{name}={}", "A".repeat(1 << 20));
    for header in [
        format!("{name}={id}\u{0}"),
        format!("{name}=\u{0}{}", &id[1..]),
        format!("{name}\u{0}={id}"),
        format!("{name}={id}; {name}={id}"),
        format!("{name}={id};{name}="),
        format!("{name}={}é", &id[1..]),
        format!("{name}={id}x"),
        long.clone(),
        ";".repeat(1 << 16),
        "=".repeat(1 << 16),
    ] {
        assert_eq!(
            session_id_from_cookie_header(&header, name),
            None,
            "{:?}",
            &header[..header.len().min(80)]
        );
    }
    let host = cookie_name(name, true);
    assert_eq!(host, "__Host-flowgate_session");
    assert_eq!(session_id_from_cookie_header(&format!("{name}={id}"), &host), None);
    assert_eq!(strip_cookie(&format!("{name}={id}; {name}=x"), name), None);
    assert_eq!(
        strip_cookie(&format!("a=1;{name}={id};;b"), name).as_deref(),
        Some("a=1; b")
    );
    assert!(strip_cookie(&long, name).is_none());
}

#[test]
fn off_site_next_values_are_rejected() {
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "/%2F/evil.example",
        "/%2f%2fevil.example",
        "/%5C/evil.example",
        "/%5cevil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "/%0d%0aLocation:%20x",
        "/\u{0085}",
        "/%C2%85",
        "/\u{7f}",
        "/%7F",
        "/%FF",
        "https://evil.example",
        "javascript:alert(1)",
        " /app",
        "\\/evil.example",
        "",
    ] {
        assert_eq!(safe_next(bad), None, "{bad:?}");
    }
    assert_eq!(safe_next(&format!("/{}", "a".repeat(MAX_NEXT_LEN))), None);
    for bad in ["/a\\b", "/a b", "/a\u{a0}b", "/a\u{2028}"] {
        assert_eq!(safe_next(bad), None, "{bad:?}");
    }
    for ok in ["/", "/app?x=1", "/a%2Fb", "/%E2%80%AE", "/a//b"] {
        assert_eq!(safe_next(ok), Some(ok), "{ok:?}");
    }
    for q in [
        "next=%2F%2Fevil.example",
        "next=/%252F%252Fevil",
        "next=%2F%5Cevil",
        "next=%2F%09%2Fevil",
        "next=%2F%0D%0A",
        "next=%FF",
        "next",
    ] {
        // `/%252F%252Fevil` is `/%2F%2Fevil` after form decoding: off-site once decoded again.
        assert_eq!(next_from_query(q), None, "{q:?}");
    }
    assert_eq!(
        next_from_query("a=1&next=%2Fok&next=%2F%2Fevil").as_deref(),
        Some("/ok")
    );
}

/// Fuzz finding 3: `/dev/zero` or a FIFO named as a blueprint, a secret file or a seed is refused
/// as "not a regular file" instead of being read until memory runs out (or forever).
#[test]
fn device_and_fifo_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for file in ["/dev/zero", fifo.to_str().unwrap()] {
        let e = config(&format!("blueprints: [\"{file}\"]\n")).expect_err("device blueprint accepted");
        assert!(e.contains("not a regular file"), "{e}");
        let e = config(&format!(
            "mail: {{ transport: smtp, host: localhost, username: u, password_file: \"{file}\" }}\n"
        ))
        .expect_err("device secret accepted");
        assert!(e.contains("not a regular file"), "{e}");
        let e = flowgate::identity::seed::SeedFile::load(std::path::Path::new(file)).expect_err("device seed accepted");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
