//! Expression compilation and evaluation (the engine under `expression` policies): authentik's Python-style expressions run in a Starlark sandbox
//! (`starlark` crate). No file, network or clock access exists in the sandbox; a statement
//! budget and a heap budget stop expressions that loop or allocate without bound, and the
//! policy then yields its `failure_result`.
//!
//! Variables (docs/design.md §4.2): `request` (`.user`, `.context`, `.http_request`), `context`
//! (the flow context; mutable), `flow_plan` (`.context`, inside flows), `ak_is_sso_flow`,
//! `ak_client_ip`, `ak_message(text)`, `ak_is_group_member(user, name=…)`, `ak_user_by(username=
//! or email=)` (reads the user store from the blocking pool; `None` where no store is given), `regex_match(value, regex)`,
//! `regex_replace(value, regex, replacement)`, `list_flatten(value)` and `http_request`. Changes
//! an expression makes to the context are not written back to the flow.

mod translate;

use starlark::environment::{FrozenModule, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::Evaluator;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::list::AllocList;
use starlark::values::{OwnedFrozenValue, Value};
use std::sync::Arc;

/// Most statements one evaluation may run.
pub const MAX_STATEMENTS: u64 = 100_000;
/// Most heap bytes one evaluation may hold.
pub const MAX_HEAP_BYTES: usize = 16 * 1024 * 1024;

/// A compiled expression.
#[derive(Clone)]
pub struct Expression {
    func: Arc<OwnedFrozenValue>,
    uses_users: bool,
}

thread_local! {
    /// The user store and runtime `ak_user_by` may use; set only on blocking-pool threads.
    static USERS: std::cell::RefCell<Option<Arc<dyn UserLookup>>> = const { std::cell::RefCell::new(None) };
}

/// The wrapper function's name (public, so it is imported into each evaluation's module).
const ENTRY: &str = "flowgate_policy";

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expression")
    }
}

#[starlark::starlark_module]
fn regex_globals(builder: &mut GlobalsBuilder) {
    fn regex_match(value: &str, regex: &str) -> anyhow::Result<bool> {
        let re = regex::RegexBuilder::new(regex).size_limit(1 << 20).build()?;
        // authentik uses re.search: a match anywhere counts.
        Ok(re.is_match(value))
    }

    fn __ak_user_lookup(field: &str, value: &str) -> anyhow::Result<String> {
        // Answers JSON text ("null" when unknown) so the Starlark side can build the user.
        let found = USERS.with(|u| {
            let guard = u.borrow();
            let Some(users) = guard.as_ref() else {
                return Ok(None);
            };
            let key = match field {
                "username" => UserKey::Username,
                "email" => UserKey::Email,
                _ => return Err(anyhow::anyhow!("ak_user_by supports username= and email=")),
            };
            users.find(key, value).map_err(|e| anyhow::anyhow!("{e}"))
        })?;
        Ok(match found {
            Some(u) => u.to_string(),
            None => "null".into(),
        })
    }

    fn regex_replace(value: &str, regex: &str, replacement: &str) -> anyhow::Result<String> {
        let re = regex::RegexBuilder::new(regex).size_limit(1 << 20).build()?;
        Ok(re.replace_all(value, replacement).into_owned())
    }
}

fn globals() -> starlark::environment::Globals {
    GlobalsBuilder::extended_by(&[
        LibraryExtension::StructType,
        LibraryExtension::Json,
        LibraryExtension::Map,
        LibraryExtension::Filter,
    ])
    .with(regex_globals)
    .build()
}

fn dialect() -> Dialect {
    Dialect {
        enable_top_level_stmt: true,
        enable_f_strings: true,
        ..Dialect::Extended
    }
}

/// Compiles an expression; the error names the expression's own line.
pub fn compile(body: &str) -> Result<Expression, String> {
    let t = translate::translate(body).map_err(|(line, msg)| format!("expression line {line}: {msg}"))?;
    let ast = AstModule::parse("expression", t.source, &dialect()).map_err(|e| describe(&e, t.offset))?;
    let globals = globals();
    let frozen = Module::with_temp_heap(|module| -> Result<FrozenModule, String> {
        {
            let mut eval = Evaluator::new(&module);
            eval.eval_module(ast, &globals).map_err(|e| describe(&e, t.offset))?;
        }
        module
            .freeze()
            .map_err(|e| format!("expression cannot be prepared: {e:?}"))
    })?;
    let func = frozen
        .get(ENTRY)
        .map_err(|e| format!("expression cannot be prepared: {e}"))?;
    Ok(Expression {
        func: Arc::new(func),
        uses_users: body.contains("ak_user_by"),
    })
}

fn describe(e: &starlark::Error, offset: usize) -> String {
    let text = e.without_diagnostic().to_string();
    let line = e.span().map(|s| s.resolve_span().begin.line + 1);
    match line {
        Some(l) if l > offset => format!("expression line {}: {}", l - offset, text.lines().next().unwrap_or("")),
        _ => format!("expression: {}", text.lines().next().unwrap_or("")),
    }
}

/// Counts statements and watches the heap.
struct Budget {
    statements: u64,
}

impl<'e> starlark::eval::BeforeStmtFuncDyn<'e> for Budget {
    fn call<'v>(
        &mut self,
        _span: starlark::codemap::FileSpanRef<'_>,
        _continued: bool,
        eval: &mut Evaluator<'v, '_, 'e>,
    ) -> starlark::Result<()> {
        self.statements += 1;
        if self.statements > MAX_STATEMENTS {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                "expression ran more than {MAX_STATEMENTS} statements"
            )));
        }
        if eval.heap().allocated_bytes() > MAX_HEAP_BYTES {
            return Err(starlark::Error::new_other(anyhow::anyhow!(
                "expression used more than {MAX_HEAP_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// Which field `ak_user_by` looks a user up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey {
    /// `ak_user_by(username=…)`.
    Username,
    /// `ak_user_by(email=…)`.
    Email,
}

/// The user lookup behind `ak_user_by`, given by the caller (the user store); called
/// synchronously on the evaluating thread. Answers the user as authentik's JSON shape.
pub trait UserLookup: Send + Sync {
    /// The user whose `key` field is `value`, if any.
    fn find(&self, key: UserKey, value: &str) -> Result<Option<serde_json::Value>, String>;
}

/// What one evaluation sees.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The evaluation user as authentik's JSON shape, if any.
    pub user: Option<serde_json::Value>,
    /// The flow context.
    pub context: &'a serde_json::Map<String, serde_json::Value>,
    /// `ak_is_sso_flow`.
    pub is_sso: bool,
    /// `ak_client_ip`; unknown reads as 255.255.255.255.
    pub client_ip: Option<std::net::IpAddr>,
    /// Evaluated inside a flow.
    pub in_flow: bool,
}

impl Expression {
    /// Whether the expression calls `ak_user_by` (and so needs a [`UserLookup`]).
    pub fn uses_users(&self) -> bool {
        self.uses_users
    }

    /// Runs `f` with `users` answering `ak_user_by` on this thread.
    pub fn with_users<R>(users: Arc<dyn UserLookup>, f: impl FnOnce() -> R) -> R {
        USERS.with(|u| *u.borrow_mut() = Some(users));
        let r = f();
        USERS.with(|u| *u.borrow_mut() = None);
        r
    }

    /// Runs the expression on this thread: whether it passed and the messages it left, or the
    /// error's text.
    pub fn run(&self, input: &Input<'_>) -> Result<(bool, Vec<String>), String> {
        let user = &input.user;
        let in_flow = input.in_flow;
        Module::with_temp_heap(|module| -> Result<(bool, Vec<String>), String> {
            let mut eval = Evaluator::new(&module);
            eval.before_stmt_for_dap(starlark::eval::BeforeStmtFunc::Dyn(Box::new(Budget { statements: 0 })));
            let heap = module.heap();
            let messages = heap.alloc(AllocList(Vec::<Value<'_>>::new()));
            let user_v = match &user {
                Some(u) => heap.alloc(u.clone()),
                None => Value::new_none(),
            };
            let ctx = heap.alloc(input.context.clone());
            // Unknown addresses read as 255.255.255.255, as authentik does since CVE-2024-47070.
            let ip = heap.alloc(
                input
                    .client_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "255.255.255.255".into()),
            );
            let args = [
                user_v,
                ctx,
                Value::new_bool(input.is_sso),
                ip,
                messages,
                Value::new_bool(in_flow),
            ];
            let func = module.heap().access_owned_frozen_value(&self.func);
            let out = eval
                .eval_function(func, &args, &[])
                .map_err(|e| e.without_diagnostic().to_string())?;
            let msgs = starlark::values::list::ListRef::from_value(messages)
                .map(|l| {
                    l.iter()
                        .map(|v| v.unpack_str().map(str::to_string).unwrap_or_else(|| v.to_str()))
                        .collect()
                })
                .unwrap_or_default();
            Ok((out.to_bool(), msgs))
        })
    }
}
