//! Setup blocks: `let` values in order, then each step's commands, skip condition, timeout,
//! nodes and environment, as the planner and apply read them.

use super::{attrs, label, Ctx};
use crate::check::model::*;
use crate::check::shell::Renderer;
use crate::check::value::Value;
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{self, Block, StmtKind};
use std::collections::BTreeMap;

pub(super) fn build_setup(cx: &mut Ctx, b: &Block, name: String, span: Span) -> Setup {
    // Variables are evaluated in order; each may use the ones before it.
    let mut vars: BTreeMap<String, Value> = BTreeMap::new();
    let mut steps = vec![];
    let mut ids: BTreeMap<String, Span> = BTreeMap::new();
    for s in &b.body {
        match &s.kind {
            StmtKind::Let(id, e) => {
                let scope = crate::check::value::Layered { inner: &vars, outer: cx.g };
                match (crate::check::value::Eval { scope: &scope, kv_bytes_per_token: None }).eval(e) {
                    Ok(v) => {
                        vars.insert(id.name.clone(), v);
                    }
                    Err(d) => cx.diags.push(cx.g.explain(*d)),
                }
            }
            StmtKind::Block(step) if step.kind.name == "step" => {
                let (sid, sspan) = label(step);
                if let Some(prev) = ids.insert(sid.clone(), sspan) {
                    cx.diags.push(
                        Diagnostic::error(Code::Duplicate, sspan, format!("step `{sid}` is defined twice"))
                            .with(prev, "first defined here")
                            .help("step ids must be unique within a setup"),
                    );
                }
                let scope = crate::check::value::Layered { inner: &vars, outer: cx.g };
                let ev = crate::check::value::Eval { scope: &scope, kv_bytes_per_token: None };
                let a = attrs(step);
                let mut errs = vec![];
                let mut text = |key: &str| -> Option<Value> {
                    let e = a.get(key)?;
                    match ev.eval(e) {
                        Ok(v) => Some(v),
                        Err(d) => {
                            errs.push(cx.g.explain(*d));
                            None
                        }
                    }
                };
                let run_value = text("run");
                let skip_value = text("skip_if");
                let timeout_value = text("timeout");
                let name_value = text("name");
                let nodes_value = text("nodes");
                let provides: Vec<String> = match text("provides") {
                    Some(Value::List(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                    _ => vec![],
                };
                cx.diags.append(&mut errs);
                // Checked as values above; written as scripts, every interpolated value quoted.
                let shell = Renderer { eval: &ev };
                let run = match (&run_value, a.get("run")) {
                    (Some(Value::List(items)), Some(e)) if items.iter().all(|v| matches!(v, Value::Str(_))) => {
                        commands(&shell, e, cx.diags)
                    }
                    (Some(Value::Str(_)), Some(e)) => commands(&shell, e, cx.diags),
                    (Some(other), _) => {
                        let at = a.get("run").map(|e| e.span).unwrap_or(sspan);
                        cx.diags.push(Diagnostic::error(
                            Code::Type,
                            at,
                            format!("`run` must be a string or a list of strings, found {}", other.type_name()),
                        ));
                        vec![]
                    }
                    (None, _) => vec![],
                };
                let skip_if = match &skip_value {
                    Some(Value::Str(_)) => a.get("skip_if").and_then(|e| commands(&shell, e, cx.diags).pop()),
                    Some(other) => {
                        let at = a.get("skip_if").map(|e| e.span).unwrap_or(sspan);
                        cx.diags.push(Diagnostic::error(
                            Code::Type,
                            at,
                            format!("`skip_if` must be a shell condition string, found {}", other.type_name()),
                        ));
                        None
                    }
                    None => None,
                };
                if let Some(Value::Num(_, u)) = &timeout_value {
                    if *u != ast::Unit::Duration {
                        let at = a.get("timeout").map(|e| e.span).unwrap_or(sspan);
                        cx.diags.push(
                            Diagnostic::error(Code::Unit, at, format!("`timeout` must be a duration, found {}", u.describe()))
                                .help("write durations with a unit: 30s, 10min, 2h"),
                        );
                    }
                }
                let step_name = name_value.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| sid.clone());
                let timeout = timeout_value.and_then(|v| v.as_f64()).unwrap_or(1800.0);
                let nodes = match nodes_value {
                    Some(Value::List(items)) => items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                    _ => vec![],
                };
                let env = a.get("env").map(|e| step_env(cx.g, &ev, e, cx.diags)).unwrap_or_default();
                steps.push(SetupStep { id: sid, name: step_name, run, skip_if, timeout, nodes, env, provides, span: sspan });
            }
            _ => {}
        }
    }
    Setup { name, vars, steps, span }
}

/// The commands of a shell attribute: one per item of a list written in the file, else one
/// script (a name holding a list is the author's own commands, one per item).
pub(super) fn commands(shell: &Renderer, e: &ast::Expr, diags: &mut Vec<Diagnostic>) -> Vec<String> {
    let items: Vec<&ast::Expr> = match &e.kind {
        ast::ExprKind::List(items) => items.iter().collect(),
        _ => vec![e],
    };
    let mut out = vec![];
    for item in items {
        match shell.script(item) {
            Ok(s) => out.push(s),
            Err(d) => diags.push(*d),
        }
    }
    out
}

/// A step's `env`: each entry's text, or the secret it reads when it is `secret(...)` as a whole.
/// A name holding a record gives text only (a secret inside it is refused by the evaluator).
fn step_env(
    g: &crate::check::Globals,
    ev: &crate::check::value::Eval,
    e: &ast::Expr,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    let ast::ExprKind::Record(fields) = &e.kind else {
        match ev.eval(e) {
            Ok(Value::Record(m)) => env.extend(m.into_iter().map(|(k, v)| (k, EnvValue::Text(v.interpolated())))),
            Ok(_) => {} // the schema reports a value that is not a record
            Err(d) => diags.push(g.explain(*d)),
        }
        return env;
    };
    for f in fields {
        let value = match &f.value.kind {
            ast::ExprKind::Call(callee, args) if callee.as_name().is_some_and(|n| n.name == "secret") => {
                crate::check::secret::parse(args, callee.span).map(EnvValue::Secret)
            }
            _ => ev.eval(&f.value).map(|v| EnvValue::Text(v.interpolated())),
        };
        match value {
            Ok(v) => {
                env.insert(f.name.name.clone(), v);
            }
            Err(d) => diags.push(g.explain(*d)),
        }
    }
    env
}
