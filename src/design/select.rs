//! A layer's `design`: explicit `points(...)` or a D-optimal subset of the
//! candidates that survived the prunes.

use super::doptimal;
use super::expand::Ctx;
use crate::check::model::Layer;
use crate::check::value::{values_equal, Value};
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::{Expr, ExprKind};
use std::collections::HashSet;

/// Applies `design = points(...)` or `d_optimal(...)` to the surviving candidates.
pub(super) fn select_design(
    cx: &mut Ctx,
    layer: &Layer,
    survivors: Vec<Vec<u32>>,
    removed: &mut Vec<(String, usize)>,
) -> Vec<Vec<u32>> {
    let Some(design) = &layer.design else {
        return survivors;
    };
    let (func, args, named) = match &design.kind {
        ExprKind::Name(id) if id.name == "full" => return survivors,
        ExprKind::Call(f, args) => match f.as_name() {
            Some(n) => (
                n.name.as_str(),
                args.iter().filter(|a| a.name.is_none()).map(|a| &a.value).collect::<Vec<_>>(),
                args.iter().filter(|a| a.name.is_some()).collect::<Vec<_>>(),
            ),
            None => (" ", vec![], vec![]),
        },
        _ => (" ", vec![], vec![]),
    };
    match func {
        "points" => {
            let items: Vec<&Expr> = if args.len() == 1 {
                match &args[0].kind {
                    ExprKind::List(items) => items.iter().collect(),
                    _ => args.clone(),
                }
            } else {
                args.clone()
            };
            let mut wanted: Vec<Vec<u32>> = vec![];
            for it in items {
                if let Some(levels) = point_levels(cx, it) {
                    wanted.push(levels);
                }
            }
            let keep: HashSet<&Vec<u32>> = wanted.iter().collect();
            let before = survivors.len();
            let kept: Vec<Vec<u32>> = survivors.into_iter().filter(|s| keep.contains(s)).collect();
            removed.push(("not among the design's points".into(), before - kept.len()));
            kept
        }
        "d_optimal" => {
            let runs = named.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == "runs")).map(|a| &a.value);
            let Some(runs_expr) = runs else {
                cx.report(
                    Diagnostic::error(Code::DesignBudget, design.span, "`d_optimal` needs a run budget")
                        .help("write `d_optimal(quadratic(prompt, concurrency), runs = 9)`"),
                );
                return survivors;
            };
            let runs = match &runs_expr.kind {
                ExprKind::Number { value, .. } if *value >= 1.0 => *value as usize,
                _ => {
                    cx.report(Diagnostic::error(
                        Code::DesignBudget,
                        runs_expr.span,
                        "`runs` must be a whole number of at least 1",
                    ));
                    return survivors;
                }
            };
            let Some(terms) = args.first() else {
                cx.report(
                    Diagnostic::error(Code::DesignBudget, design.span, "`d_optimal` needs model terms")
                        .help("write `d_optimal(quadratic(prompt, concurrency), runs = 9)`"),
                );
                return survivors;
            };
            let model = match doptimal::terms(terms, &cx.factor_names) {
                Ok(m) => m,
                Err(d) => {
                    cx.report(*d);
                    return survivors;
                }
            };
            let p = model.columns();
            if runs > survivors.len() {
                cx.report(
                    Diagnostic::error(
                        Code::DesignBudget,
                        runs_expr.span,
                        format!("a budget of {runs} runs is more than the {} candidate points", survivors.len()),
                    )
                    .help("lower `runs`, or use the full factorial"),
                );
                return survivors;
            }
            if runs < p {
                cx.report(
                    Diagnostic::error(
                        Code::DesignBudget,
                        runs_expr.span,
                        format!("{runs} runs cannot estimate a model with {p} terms"),
                    )
                    .help(format!("give at least {p} runs, or a smaller model")),
                );
                return survivors;
            }
            let x: Vec<Vec<f64>> = survivors.iter().map(|s| model.row(&cx.exp.factors, s)).collect();
            let chosen = doptimal::fedorov(&x, runs);
            let before = survivors.len();
            let kept: Vec<Vec<u32>> = chosen.into_iter().map(|i| survivors[i].clone()).collect();
            removed.push(("not chosen by the D-optimal design".into(), before - kept.len()));
            kept
        }
        _ => {
            cx.report(
                Diagnostic::error(Code::Type, design.span, "unknown design")
                    .help("use `full`, `points((1K, 1), ...)` or `d_optimal(terms, runs = N)`"),
            );
            survivors
        }
    }
}

/// A point `(1K, 16)` (factor order) or `{ prompt = 1K, concurrency = 16 }` to level indices.
fn point_levels(cx: &mut Ctx, e: &Expr) -> Option<Vec<u32>> {
    let base = &cx.base;
    let ev = crate::check::value::Eval { scope: base, kv_bytes_per_token: cx.kv };
    let v = match ev.eval(e) {
        Ok(v) => v,
        Err(d) => {
            cx.report(*d);
            return None;
        }
    };
    let factors = &cx.exp.factors;
    let by_name: Vec<Option<Value>> = match v {
        Value::List(items) if items.len() == factors.len() => items.into_iter().map(Some).collect(),
        Value::Record(m) => factors.iter().map(|f| m.get(&f.name).cloned()).collect(),
        Value::List(items) => {
            cx.report(
                Diagnostic::error(
                    Code::PointOutsideLevels,
                    e.span,
                    format!("a point has {} values but the experiment has {} factors", items.len(), factors.len()),
                )
                .help(format!(
                    "give values in factor order: ({})",
                    factors.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            );
            return None;
        }
        other => {
            cx.report(Diagnostic::error(
                Code::Type,
                e.span,
                format!("a point is a tuple or record, found {}", other.type_name()),
            ));
            return None;
        }
    };
    let mut levels = vec![];
    for (f, v) in factors.iter().zip(by_name) {
        let Some(v) = v else {
            cx.report(Diagnostic::error(
                Code::PointOutsideLevels,
                e.span,
                format!("the point does not give factor `{}`", f.name),
            ));
            return None;
        };
        match f.levels.iter().position(|l| values_equal(l, &v)) {
            Some(i) => levels.push(i as u32),
            None => {
                cx.report(
                    Diagnostic::error(
                        Code::PointOutsideLevels,
                        e.span,
                        format!("{} is not a level of factor `{}`", v.display(), f.name),
                    )
                    .help(format!("its levels are {}", f.levels.iter().map(Value::display).collect::<Vec<_>>().join(", "))),
                );
                return None;
            }
        }
    }
    Some(levels)
}
