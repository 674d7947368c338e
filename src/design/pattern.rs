//! One pattern built from a point of a layer: its id, settings scope,
//! restart key, duration and KV size, with per-layer memos so a million
//! points evaluate each derived value once per distinct input.

use super::context::{explain, Ctx, DEFAULT_DURATION, DEFAULT_STARTUP};
use super::memo::{deps, Memo};
use super::scope::PointScope;
use super::{Category, Levels, Pattern, PatternExtra, RestartKey};
use crate::check::model::{Derived, Experiment, Layer};
use crate::check::value::{Scope, Value};
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{Expr, ExprKind, Ident, Unit};
use std::collections::BTreeMap;

/// Builds one factorial or extra pattern: id, restart group, duration, KV size.
#[allow(clippy::too_many_arguments)]
pub(super) fn make_pattern(
    cx: &mut Ctx,
    li: usize,
    layer: &Layer,
    fixed: &[(String, Expr)],
    derived: &[&Derived],
    levels: Levels,
    overrides: &BTreeMap<String, Value>,
    span: Span,
    mut memo: Option<&mut LayerMemo>,
) -> Option<Pattern> {
    let exp = cx.exp;
    let values: Vec<Value> =
        levels.iter().enumerate().map(|(i, l)| exp.factors[i].levels.get(*l as usize).cloned().unwrap_or(Value::None)).collect();
    let base = &cx.base;
    let scope = PointScope::new(overrides, &cx.factor_names, &values, fixed, derived, base, cx.kv);
    let id = match (overrides.get("id"), &layer.id) {
        (Some(Value::Str(id)), _) => Ok(Value::Str(id.clone())),
        (_, Some(t)) => scope.eval(t),
        (_, None) => Ok(Value::Str(format!(
            "{}-{}-{}",
            exp.prefix,
            layer.name.to_lowercase(),
            values.iter().map(Value::interpolated).collect::<Vec<_>>().join("-")
        ))),
    };
    let id = match id {
        Ok(v) => v.interpolated(),
        Err(d) => {
            let d = explain(base, &cx.factor_names, *d);
            cx.report(d);
            return None;
        }
    };
    // Restart group and estimates usually depend on few factors: look them up first.
    let cached_group = memo.as_ref().and_then(|m| m.group.get(&levels));
    let cached_duration = memo.as_ref().and_then(|m| m.duration.get(&levels));
    let kv = prompt_tokens(cx, &scope, &levels).and_then(|t| cx.kv.map(|k| t * k));
    if let (Some((group, _)), Some(duration)) = (cached_group, cached_duration) {
        return Some(Pattern {
            id: id.into(),
            layer: li as u32,
            category: Category::E2e,
            levels,
            group: Some(group),
            duration,
            kv_bytes: kv,
            adhoc: layer.adhoc,
            span,
            extra: None,
        });
    }
    let key = match &exp.restart_on {
        Some(e) => restart_key(&scope, e),
        None => Ok(vec![
            ("mode".into(), scope.lookup("mode").unwrap_or(Value::None)),
            ("transport".into(), scope.lookup("transport").unwrap_or(Value::None)),
        ]),
    };
    // Settings the server command reads: unset is a value too (a unified server has no backend).
    let key = key.map(|mut k| {
        k.extend(exp.restart_implied.iter().map(|n| (n.clone(), scope.lookup(n).unwrap_or(Value::None))));
        k
    });
    let duration = exp.duration.as_ref().map(|e| scope.eval(e));
    let startup = exp.startup.as_ref().map(|e| scope.eval(e));
    let errs = scope.errors.take();
    let ext = |r: Result<Value, Box<Diagnostic>>, cx: &mut Ctx| -> Option<f64> {
        match r {
            Ok(Value::Num(v, Unit::Duration)) => Some(v),
            Ok(other) => {
                cx.report(
                    Diagnostic::error(
                        Code::Unit,
                        exp.duration.as_ref().map(|e| e.span).unwrap_or(span),
                        format!("an estimate must be a duration, found {}", other.type_name()),
                    )
                    .help("write it with a unit: 5min"),
                );
                None
            }
            Err(d) => {
                let d = explain(&cx.base, &cx.factor_names, *d);
                cx.report(d);
                None
            }
        }
    };
    let duration = duration.and_then(|r| ext(r, cx)).unwrap_or(DEFAULT_DURATION);
    let startup = startup.and_then(|r| ext(r, cx)).unwrap_or(DEFAULT_STARTUP);
    if !errs.is_empty() {
        let errs = errs.into_iter().map(|d| explain(&cx.base, &cx.factor_names, d)).collect();
        cx.report_all(errs);
    }
    let key = match key {
        Ok(k) => k,
        Err(d) => {
            let d = explain(&cx.base, &cx.factor_names, *d);
            cx.report(d);
            return None;
        }
    };
    let label: String = key.iter().map(|(_, v)| v.interpolated()).collect::<Vec<_>>().join("\u{1f}");
    let group = match cx.group_index.get(&label) {
        Some(g) => *g,
        None => {
            let g = cx.groups.len() as u32;
            cx.groups.push(RestartKey { values: key });
            cx.startup.push(startup);
            cx.group_index.insert(label, g);
            g
        }
    };
    if let Some(m) = memo.as_mut() {
        m.group.put(&levels, (group, startup));
        m.duration.put(&levels, duration);
    }
    let mut extra = overrides.clone();
    extra.remove("id");
    extra.remove("layer");
    Some(Pattern {
        id: id.into(),
        layer: li as u32,
        category: Category::E2e,
        levels,
        group: Some(group),
        duration,
        kv_bytes: kv,
        adhoc: layer.adhoc,
        span,
        extra: PatternExtra { values: extra, ..PatternExtra::default() }.boxed(),
    })
}

/// Per-layer caches of the restart group (with its start-up) and the duration estimate.
pub(super) struct LayerMemo {
    group: Memo<(u32, f64)>,
    duration: Memo<f64>,
}

impl LayerMemo {
    pub(super) fn new(exp: &Experiment, factors: &[String], fixed: &[(String, Expr)], derived: &[&Derived]) -> LayerMemo {
        let sizes: Vec<usize> = exp.factors.iter().map(|f| f.levels.len()).collect();
        let implied: Vec<Expr> = exp
            .restart_implied
            .iter()
            .map(|n| Expr { kind: ExprKind::Name(Ident { name: n.clone(), span: exp.span }), span: exp.span })
            .collect();
        let group_exprs: Vec<&Expr> = exp.restart_on.iter().chain(exp.startup.iter()).chain(implied.iter()).collect();
        // Without `restart_on` the key is mode and transport, which the layer fixes.
        let mut group_deps = deps(&group_exprs, factors, fixed, derived);
        if exp.restart_on.is_none() {
            let names: Vec<Expr> =
                fixed.iter().filter(|(n, _)| n == "mode" || n == "transport").map(|(_, e)| e.clone()).collect();
            let refs: Vec<&Expr> = names.iter().collect();
            group_deps.extend(deps(&refs, factors, fixed, derived));
            group_deps.sort_unstable();
            group_deps.dedup();
        }
        let duration_deps = deps(&exp.duration.iter().collect::<Vec<_>>(), factors, fixed, derived);
        LayerMemo { group: Memo::new(group_deps, &sizes), duration: Memo::new(duration_deps, &sizes) }
    }
}

/// The prompt length of a pattern, in tokens, read from its factor level when it is one.
fn prompt_tokens(cx: &Ctx, scope: &PointScope, levels: &[u32]) -> Option<f64> {
    let v = match cx.factor_names.iter().position(|n| n == "prompt") {
        Some(i) if scope.overrides.get("prompt").is_none() => cx.exp.factors[i].levels.get(levels[i] as usize).cloned(),
        _ => scope.lookup("prompt"),
    };
    match v {
        Some(Value::Num(t, Unit::Tokens | Unit::None)) => Some(t),
        _ => None,
    }
}

fn restart_key(scope: &PointScope, e: &Expr) -> Result<Vec<(String, Value)>, Box<Diagnostic>> {
    let ExprKind::List(items) = &e.kind else {
        return Err(Box::new(
            Diagnostic::error(Code::Type, e.span, "`restart_on` must be a list of setting names")
                .help("write `restart_on = [mode, transport, max_model_len]`"),
        ));
    };
    let mut key = vec![];
    for i in items {
        let Some(id) = i.as_name() else {
            return Err(Box::new(Diagnostic::error(Code::Type, i.span, "`restart_on` lists setting names")));
        };
        let v = scope.lookup(&id.name).ok_or_else(|| {
            Box::new(Diagnostic::error(Code::UnknownName, id.span, format!("unknown name `{}`", id.name)).subject(&id.name))
        })?;
        key.push((id.name.clone(), v));
    }
    Ok(key)
}
