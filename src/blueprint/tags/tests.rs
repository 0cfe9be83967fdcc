use super::*;

fn y(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap_or_else(|e| panic!("test YAML {s:?}: {e}"))
}

fn map(s: &str) -> Mapping {
    y(s).as_mapping().cloned().unwrap_or_default()
}

/// Knows ids `a` (→ "pk-a") and `b` (→ 2); for model `m.echo`, Find echoes its arguments.
struct TestLookup;

impl Lookup for TestLookup {
    fn key_of(&self, id: &str) -> Result<Value, String> {
        match id {
            "a" => Ok("pk-a".into()),
            "b" => Ok(2.into()),
            _ => Err(format!("no entry with id {id:?}")),
        }
    }
    fn find(&self, model: &str, pairs: &[(String, Value)]) -> Value {
        let pairs = pairs
            .iter()
            .map(|(f, v)| Value::Sequence(vec![f.clone().into(), v.clone()]));
        match model {
            "m.echo" => Value::Sequence(std::iter::once(model.into()).chain(pairs).collect()),
            _ => Value::Null,
        }
    }
    fn find_object(&self, model: &str, pairs: &[(String, Value)]) -> Value {
        match self.find(model, pairs) {
            Value::Null => Value::Null,
            found => Value::Mapping(Mapping::from_iter([("found".into(), found)])),
        }
    }
}

/// The fixtures' lookup: every id exists (its reference is the id itself); nothing is found.
struct Permissive;

impl Lookup for Permissive {
    fn key_of(&self, id: &str) -> Result<Value, String> {
        Ok(id.into())
    }
    fn find(&self, _: &str, _: &[(String, Value)]) -> Value {
        Value::Null
    }
    fn find_object(&self, _: &str, _: &[(String, Value)]) -> Value {
        Value::Null
    }
}

const CTX: &str = "{k: v, model: m.echo, t: !KeyOf a, deep: [1, !Format ['%s!', !KeyOf b]], 7: seven, \
                   loop: !Context loop}";

fn cx<'a>(context: &'a Mapping, base_dir: &'a Path) -> TagContext<'a> {
    TagContext {
        context,
        base_dir,
        spent: Budget::default(),
    }
}

fn run_in(src: &str, base: &Path) -> Result<Value, TagError> {
    resolve(&y(src), &cx(&map(CTX), base), &TestLookup)
}

fn run(src: &str) -> Result<Value, TagError> {
    run_in(src, Path::new("."))
}

/// Lines `source ==> expected YAML` (with [`CTX`] and [`TestLookup`]).
const OK: &str = r#"
    !KeyOf a ==> pk-a
    [!KeyOf b, {x: !KeyOf a}] ==> [2, {x: pk-a}]
    {!KeyOf a: 1, !Format ['%s', k]: [x, {y: null}]} ==> {pk-a: 1, k: [x, {y: null}]}
    !Find [m.none, [slug, x]] ==> null
    !Find [!Format ['m.%s', echo], [!Format ['%s__iexact', slug], !KeyOf a], [n, [!KeyOf b]]] ==> [m.echo, [slug__iexact, pk-a], [n, [2]]]
    !FindObject [!Context model, [pk, 1]] ==> {found: [m.echo, [pk, 1]]}
    !FindObject [m.none] ==> null
    !Context k ==> v
    !Context [k, d] ==> v
    !Context [missing, d] ==> d
    !Context [missing, !KeyOf a] ==> pk-a
    !Context missing ==> null
    !Context t ==> pk-a
    !Context deep ==> [1, '2!']
    !Context 7 ==> seven
    !Context [!Format ['%s', k]] ==> v
    !Context [k, !KeyOf nope] ==> v
    !Env ['A=B', d] ==> d
    !Env ['', d] ==> d
    !Format ['%s.view_%s', authentik_flows, flow] ==> authentik_flows.view_flow
    !Format [plain] ==> plain
    !Format ['100%% %s', done] ==> 100% done
    !Format ['%d|%i|%d|%d|%d', 42, -7, 3.9, -3.9, true] ==> 42|-7|3|-3|1
    !Format ['%f|%.2f|%.0f|%f|%.1f', 1.5, 2.345678, 2.5, 3, -0.25] ==> 1.500000|2.35|2|3.000000|-0.2
    !Format ['%r|%r|%r|%r', it's, x, 5, null] ==> "\"it's\"|'x'|5|None"
    !Format ['%r', "a'b\"c\n"] ==> '''a\''b"c\n'''
    !Format ['%s %s %s %s %s', null, true, 1.0, 1e20, .inf] ==> None True 1.0 1e+20 inf
    !Format ['%s|%s|%s', 0.0001, 0.00001, -123.25] ==> 0.0001|1e-05|-123.25
    !Format ['%s|%s|%s|%s', 1e16, -1.5e-5, 1e15, 0.30000000000000004] ==> 1e+16|-1.5e-05|1000000000000000.0|0.30000000000000004
    !Format ['%s', [a, 1, null, {k: [false]}]] ==> "['a', 1, None, {'k': [False]}]"
    !Format ['[%5s|%-5s|%05d|%+d|% d|%.2s|%.3d]', ab, ab, -42, 3, 3, abcdef, 5] ==> '[   ab|ab   |-0042|+3| 3|ab|005]'
    !Format ['%s', !KeyOf a] ==> pk-a
    !Format [!Format ['%%%s', s], 1] ==> '1'
    !If [null] ==> false
    !If [!KeyOf a] ==> true
    !If [false, t, f] ==> f
    !If [0, t, f] ==> f
    !If [0.0, t, f] ==> f
    !If ['', t, f] ==> f
    !If [[], t, f] ==> f
    !If [{}, t, f] ==> f
    !If ['0', t, f] ==> t
    !If [[0], t, f] ==> t
    !If [{a: null}, t, f] ==> t
    !If [-1, t, f] ==> t
    !If [.nan, t, f] ==> t
    !If [' ', t, f] ==> t
    !If [!KeyOf a, [!KeyOf b], !KeyOf nope] ==> [2]
    !If [!Context missing, !KeyOf nope, {x: !KeyOf a}] ==> {x: pk-a}
    !Condition [xor, [1], {}, !KeyOf a] ==> false
    !Condition [XnOr, [1], {}, !KeyOf a] ==> true
    !Condition [nor, !Find [m.none, [a, b]]] ==> true
    !Enumerate [[a, b], SEQ, [!Index 0, !Value 0]] ==> [[0, a], [1, b]]
    !Enumerate [[], SEQ, !KeyOf nope] ==> []
    !Enumerate [{x: 1, y: 2}, seq, !Format ['%s=%s', !Index 0, !Value 0]] ==> ['x=1', 'y=2']
    !Enumerate [ab, SEQ, !Value 0] ==> [a, b]
    !Enumerate [[a, b], MAP, [!Value 0, !Index 0]] ==> {a: 0, b: 1}
    !Enumerate [{x: 1, y: 2}, MAP, {all: {!Index 0: !Value 0}, last: !Index 0}] ==> {all: {x: 1, y: 2}, last: y}
    !Enumerate [[a, b], SEQ, !Enumerate [{x: 1}, SEQ, [!Index 1, !Value 1, !Index 0, !Value 0]]] ==> [[[0, a, x, 1]], [[1, b, x, 1]]]
    !Enumerate [[[1, 2], [3]], SEQ, !Enumerate [!Value 1, SEQ, !Format ['%s.%s', !Index 1, !Value 0]]] ==> [['0.1', '0.2'], ['1.3']]
    !Enumerate [[[1, 2]], MAP, [!Index 0, !Enumerate [!Value 1, MAP, [!Value 0, !Index 1]]]] ==> {0: {1: 0, 2: 0}}
    !AtIndex [[a, b, c], 1] ==> b
    !AtIndex [[a, b, c], -1] ==> c
    !AtIndex [{k: [v]}, k] ==> [v]
    !AtIndex [{k: v}, missing, d] ==> d
    !AtIndex [[a], 5, !KeyOf a] ==> pk-a
    !AtIndex [[a], 0, !KeyOf nope] ==> a
    !AtIndex [!Enumerate [[x, y], SEQ, !Value 0], !KeyOf b, d] ==> d
    !ParseJSON '{"a": [1, 2.5, null, true], "b": "x"}' ==> {a: [1, 2.5, null, true], b: x}
    !ParseJSON 5 ==> 5
    !ParseJSON '[18446744073709551615, -5, 0.5]' ==> [18446744073709551615, -5, 0.5]
"#;

/// Lines `source ==> !Tag: part of the message`.
const ERR: &str = r#"
    {x: [!KeyOf nope]} ==> !KeyOf: no entry with id "nope"
    !KeyOf [a] ==> !KeyOf: expects a literal scalar
    !Find [m.echo, [slug]] ==> !Find: [field, value] pair, got ['slug']
    !Find [m.echo, [1, x]] ==> !Find: [field, value] pair
    !Find [[m]] ==> !Find: the model must be a string
    !Find m.echo ==> !Find: expects a sequence of at least 1 items
    !Context loop ==> !Context: nested deeper than 64 levels
    !Context {a: 1} ==> !Context: expects a scalar or [value, default]
    !Env [a, b, c] ==> !Env: expects a scalar or [value, default]
    !Format ['%s %s', a] ==> !Format: not enough arguments for format string
    !Format ['%s', a, b] ==> !Format: not all arguments converted
    !Format ['no specifiers', a] ==> !Format: not all arguments converted
    !Format ['%d', x] ==> !Format: %d format: a real number is required, not 'x'
    !Format ['%d', .nan] ==> !Format: cannot convert float nan to integer
    !Format ['%f', [1]] ==> !Format: %f format: a real number is required
    !Format ['%q', 1] ==> !Format: unsupported format character 'q'
    !Format ['%(k)s', 1] ==> !Format: mapping keys
    !Format ['50%'] ==> !Format: incomplete format
    !Format ['%99999s', 1] ==> !Format: width or precision over 4096
    !Format [[a]] ==> !Format: the format must be a string
    !If [a, b] ==> !If: expects [condition] or
    !If [] ==> !If: expects a sequence of 1 to 3 items
    !Condition [AND] ==> !Condition: at least one value is required
    !Condition [MAYBE, true] ==> !Condition: the mode must be AND, NAND, OR, NOR, XOR or XNOR, got 'MAYBE'
    !Index 0 ==> !Index: only usable inside !Enumerate
    [!Value 0] ==> !Value: only usable inside !Enumerate
    !Enumerate [[a], SEQ, !Value 1] ==> !Value: invalid depth: 1. Max depth: 0
    !Enumerate [[a], SEQ, !Enumerate [[b], SEQ, !Index 2]] ==> !Index: invalid depth: 2. Max depth: 1
    !Enumerate [[a], SEQ, !Index -1] ==> !Index: non-negative integer, got -1
    !Enumerate [[a], SEQ, !Index x] ==> !Index: non-negative integer
    !Enumerate [!Value 0, SEQ, x] ==> !Value: depth 0: that !Enumerate's iterable is resolving
    !Enumerate [!Context missing, SEQ, x] ==> !Enumerate: sequence or a mapping, got None
    !Enumerate [5, SEQ, x] ==> !Enumerate: sequence or a mapping, got 5
    !Enumerate [[a], LIST, x] ==> !Enumerate: SEQ or MAP, got "LIST"
    !Enumerate [[a], MAP, x] ==> !Enumerate: [key, value] pair or a mapping, got 'x'
    !Enumerate [[a], MAP, [1, 2, 3]] ==> !Enumerate: [key, value] pair
    !Enumerate [[a], SEQ] ==> !Enumerate: expects a sequence of 3 to 3 items
    !AtIndex [{k: v}, missing] ==> !AtIndex: does not exist: 'missing'
    !AtIndex [[a], 1] ==> !AtIndex: does not exist: 1
    !AtIndex [[a], x, d] ==> !AtIndex: an index must be an integer, got 'x'
    !AtIndex [text, 0, d] ==> !AtIndex: can only index a sequence or a mapping
    !AtIndex [[a]] ==> !AtIndex: expects a sequence of 2 to 3 items
    !ParseJSON '{' ==> !ParseJSON: invalid JSON
    !ParseJSON [1] ==> !ParseJSON: expects a literal scalar
    {a: [1, !Bogus x]} ==> !Bogus: unknown tag
"#;

/// `!File` cases, relative to a directory with `secret.txt`, `sub/x`, `big` (over 1 MiB) and `bin`.
const FILES: &str = r#"
    !File secret.txt ==> s3cret
    !File [sub/x, d] ==> x
    !File missing ==> null
    !File [missing, d] ==> d
    !File [sub, d] ==> d
    !File [big, d] ==> d
    !File [bin, d] ==> d
    !File [!Format ['%s.txt', secret], d] ==> s3cret
"#;

fn cases(table: &str) -> impl Iterator<Item = (&str, &str)> {
    let lines = table.lines().map(str::trim).filter(|l| !l.is_empty());
    lines.map(|l| l.split_once(" ==> ").unwrap_or_else(|| panic!("no ` ==> ` in {l}")))
}

#[test]
fn table() {
    assert!(matches!(y("!Index 0"), Value::Tagged(t) if t.tag == "Index" && t.value == y("0")));
    for (src, want) in cases(OK) {
        assert_eq!(run(src), Ok(y(want)), "{src}");
    }
    for (src, want) in cases(ERR) {
        let (tag, part) = want.split_once(": ").unwrap_or((want, ""));
        let e = run(src).expect_err(src);
        assert!(e.tag == tag && e.message.contains(part), "{src}: {e}");
    }
    let e = run("!KeyOf nope").expect_err("unknown id");
    assert_eq!(e.to_string(), "!KeyOf: no entry with id \"nope\"");
    // A tagged argument to !ParseJSON (YAML cannot write it: a node has one tag).
    let mut v = y("!ParseJSON x");
    if let Value::Tagged(t) = &mut v {
        t.value = y("!Context k");
    }
    let e = resolve(&v, &cx(&Mapping::new(), Path::new(".")), &TestLookup).expect_err("nested tag");
    let want = "!ParseJSON: expects a literal scalar (not a nested tag), got !Context 'k'";
    assert_eq!(e.to_string(), want);
}

#[test]
fn condition_modes() {
    // Modes: AND, NAND, OR, NOR, XOR, XNOR.
    for (vals, want) in [
        ("true, true", [true, false, true, false, false, true]),
        ("true, false", [false, true, true, false, true, false]),
        ("false, false", [false, true, false, true, false, true]),
        ("true, true, true", [true, false, true, false, true, false]),
        ("true", [true, false, true, false, true, false]),
        ("0", [false, true, false, true, false, true]),
    ] {
        let got = ["AND", "NAND", "OR", "NOR", "XOR", "XNOR"]
            .map(|m| run(&format!("!Condition [{m}, {vals}]")) == Ok(Value::Bool(true)));
        assert_eq!(got, want, "{vals}");
    }
}

#[test]
fn env_and_file() {
    let path = std::env::var("PATH").unwrap_or_default();
    assert!(!path.is_empty(), "PATH is set in the test environment");
    assert_eq!(run("!Env PATH"), Ok(Value::String(path.clone())));
    assert_eq!(run("!Env [PATH, fallback]"), Ok(Value::String(path)));
    let unset = "FLOWGATE_TAGS_TEST_SURELY_UNSET_7f3c91";
    assert!(std::env::var(unset).is_err());
    assert_eq!(run(&format!("!Env {unset}")), Ok(Value::Null));
    assert_eq!(run(&format!("!Env [{unset}, fallback]")), Ok(y("fallback")));
    assert_eq!(run(&format!("!Env [{unset}, !KeyOf a]")), Ok(y("pk-a")));
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).expect("write");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    write("secret.txt", b"  s3cret \n\n");
    write("sub/x", b"x");
    write("big", &vec![b'a'; MAX_FILE as usize + 1]);
    write("bin", &[0xff, 0xfe]);
    let abs = format!("!File '{}' ==> s3cret", dir.path().join("secret.txt").display());
    for (src, want) in cases(FILES).chain(cases(&abs)) {
        assert_eq!(run_in(src, dir.path()), Ok(y(want)), "{src}");
    }
}

#[test]
fn limits_and_deep_merge() {
    let nested = |n: usize| format!("{}x{}", "[".repeat(n), "]".repeat(n));
    assert!(run(&nested(MAX_DEPTH - 1)).is_ok());
    let e = run(&format!("{{k: {}}}", nested(MAX_DEPTH))).expect_err("too deep");
    assert_eq!(e.to_string(), "(untagged): nested deeper than 64 levels");
    let e = run(&format!("[!Format ['%s', {}]]", nested(MAX_DEPTH))).expect_err("too deep");
    assert_eq!(e.to_string(), "!Format: nested deeper than 64 levels");
    let list = format!("[{}]", vec!["1"; 400].join(", "));
    let e = run(&format!("!Enumerate [{list}, SEQ, !Enumerate [{list}, SEQ, !Value 1]]"));
    assert_eq!(
        e.expect_err("too big").to_string(),
        "!Enumerate: more than 100000 nodes resolved (runaway input?)"
    );
    assert!(run(&format!("!Enumerate [{list}, SEQ, !Enumerate [[1, 2], SEQ, !Value 1]]")).is_ok());
    let mut base = y("{a: {x: 1, l: [1]}, b: 1, c: {d: 1}}");
    deep_merge(&mut base, y("{a: {y: 2, l: [2]}, b: {z: 1}, c: 5, n: null}"));
    assert_eq!(base, y("{a: {x: 1, l: [2], y: 2}, b: {z: 1}, c: 5, n: null}"));
    let mut s = y("[1]");
    deep_merge(&mut s, y("{a: 1}"));
    assert_eq!(s, y("{a: 1}"));
}

#[test]
fn authentik_fixtures_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/authentik");
    assert!(root.is_dir(), "fixtures missing: {}", root.display());
    let pattern = format!("{}/**/*.yaml", root.display());
    let mut files: Vec<_> = glob::glob(&pattern)
        .expect("pattern")
        .map(|p| p.expect("readable"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "only {} fixture files", files.len());
    let empty = Mapping::new();
    let rbac_ctx = map("{goauthentik.io/rbac/models: {flow: authentik_flows}}");
    let mut failed = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let doc: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.strip_prefix(&root).unwrap_or(path).display().to_string();
        match resolve(&doc, &cx(&empty, &root), &Permissive) {
            Ok(v) => assert!(v["entries"].as_sequence().is_some_and(|e| !e.is_empty()), "{name}"),
            Err(e) => failed.push((name, e.to_string())),
        }
        // With (part of) authentik's default context, that one resolves too.
        if path.ends_with("rbac-role-read-only.yaml") {
            let v = resolve(&doc, &cx(&rbac_ctx, &root), &Permissive).expect("resolves with the rbac context");
            let permissions = &v["entries"][0]["attrs"]["permissions"];
            assert_eq!(permissions, &y("[authentik_flows.view_flow]"));
            assert_eq!(v["entries"][1]["attrs"]["roles"], y("[role]"));
        }
    }
    // authentik fails it too without its default context: `!Context goauthentik.io/rbac/models` is
    // null there, and `!Enumerate` over null is invalid.
    let msg = "!Enumerate: the iterable must be a sequence or a mapping, got None";
    let want = [("default/rbac-role-read-only.yaml".to_string(), msg.to_string())];
    assert_eq!(failed, want, "of {} files", files.len());
}
