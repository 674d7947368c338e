//! A layer's `design`: explicit `points(...)`, or a D- or I-optimal subset of
//! the candidates that survived the prunes (its arguments read here, the search
//! in `doptimal`).

use super::context::Ctx;
use super::doptimal::exchange::{default_starts, Settings};
use super::doptimal::{self, terms, Criterion, ModelTerms, OptimalDesign, DEFAULT_SEED};
use super::Levels;
use crate::check::model::Layer;
use crate::check::value::{values_equal, Value};
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::Arg;
use crate::syntax::ast::{Expr, ExprKind};
use std::collections::HashSet;

/// Applies `design = points(...)`, `d_optimal(...)` or `i_optimal(...)` to the surviving
/// candidates; an optimal design says how it was found in `chosen_by`.
pub(super) fn select_design(
    cx: &mut Ctx,
    layer: &Layer,
    survivors: Vec<Levels>,
    removed: &mut Vec<(String, usize)>,
    chosen_by: &mut Option<OptimalDesign>,
) -> Vec<Levels> {
    let Some(design) = &layer.design else {
        return survivors;
    };
    let (func, args, named) = match &design.kind {
        ExprKind::Name(id) if id.name == "full" => return survivors,
        // Every point, each searched over request rates (design::replicate::probes).
        ExprKind::Call(f, _) if f.as_name().is_some_and(|n| n.name == "saturation") => return survivors,
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
            let mut wanted: Vec<Levels> = vec![];
            for it in items {
                if let Some(levels) = point_levels(cx, it) {
                    wanted.push(levels);
                }
            }
            let keep: HashSet<&Levels> = wanted.iter().collect();
            let before = survivors.len();
            let kept: Vec<Levels> = survivors.into_iter().filter(|s| keep.contains(s)).collect();
            removed.push(("not among the design's points".into(), before - kept.len()));
            kept
        }
        "d_optimal" | "i_optimal" => {
            let criterion = if func == "d_optimal" { Criterion::D } else { Criterion::I };
            match optimal(cx, design, criterion, &args, &named, &survivors) {
                Some((rows, info)) => {
                    let before = survivors.len();
                    let kept: Vec<Levels> = rows.into_iter().map(|i| survivors[i].clone()).collect();
                    removed.push((format!("not chosen by the {}-optimal design", criterion.label()), before - kept.len()));
                    *chosen_by = Some(info);
                    kept
                }
                None => survivors,
            }
        }
        _ => {
            cx.report(
                Diagnostic::error(Code::Type, design.span, "unknown design")
                    .help("use `full`, `points((1K, 1), ...)`, `d_optimal(terms, runs = N)` or `i_optimal(terms, runs = N)`"),
            );
            survivors
        }
    }
}

/// A point `(1K, 16)` (factor order) or `{ prompt = 1K, concurrency = 16 }` to level indices.
fn point_levels(cx: &mut Ctx, e: &Expr) -> Option<Levels> {
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
    Some(levels.into())
}

const OPTIMAL_HELP: &str = "write `d_optimal(quadratic(log(prompt), log(concurrency)), runs = 9)`, \
     or `i_optimal(terms = [prompt, backend, prompt*backend], runs = 8, seed = 7)`";

/// Reads an optimal design's model and settings, checks the budget, and searches.
fn optimal(
    cx: &mut Ctx,
    design: &Expr,
    criterion: Criterion,
    args: &[&Expr],
    named: &[&Arg],
    survivors: &[Levels],
) -> Option<(Vec<usize>, OptimalDesign)> {
    let name = if criterion == Criterion::D { "d_optimal" } else { "i_optimal" };
    let arg = |n: &str| named.iter().find(|a| a.name.as_ref().is_some_and(|x| x.name == n)).map(|a| &a.value);
    if let Some(other) =
        named.iter().filter_map(|a| a.name.as_ref()).find(|n| !["runs", "seed", "starts", "terms"].contains(&n.name.as_str()))
    {
        cx.report(
            Diagnostic::error(Code::DesignBudget, other.span, format!("`{name}` has no argument `{}`", other.name))
                .help("its arguments are the model, `runs`, and optionally `seed` and `starts`"),
        );
        return None;
    }
    let Some(runs_expr) = arg("runs") else {
        cx.report(Diagnostic::error(Code::DesignBudget, design.span, format!("`{name}` needs a run budget")).help(OPTIMAL_HELP));
        return None;
    };
    let model = match (args, arg("terms")) {
        ([call], None) => terms::from_call(call, &cx.exp.factors),
        ([], Some(list)) => terms::from_list(list, &cx.exp.factors),
        ([], None) => {
            cx.report(
                Diagnostic::error(Code::DesignBudget, design.span, format!("`{name}` needs model terms")).help(OPTIMAL_HELP),
            );
            return None;
        }
        _ => {
            cx.report(
                Diagnostic::error(
                    Code::DesignBudget,
                    design.span,
                    "give the model once: one of `linear(...)`, `interaction(...)`, `quadratic(...)` or `terms = [...]`",
                )
                .help(OPTIMAL_HELP),
            );
            return None;
        }
    };
    let model = match model {
        Ok(m) => m,
        Err(d) => {
            cx.report(*d);
            return None;
        }
    };
    let runs = whole_number(cx, runs_expr, "runs", 1)?;
    let seed = match arg("seed") {
        Some(e) => whole_number(cx, e, "seed", 0)? as u64,
        None => DEFAULT_SEED,
    };
    let p = model.columns();
    let starts = match arg("starts") {
        Some(e) => whole_number(cx, e, "starts", 1)?,
        None => default_starts(survivors.len(), runs, p),
    };
    if runs > survivors.len() {
        cx.report(
            Diagnostic::error(
                Code::DesignBudget,
                runs_expr.span,
                format!("a budget of {runs} runs is more than the {} candidate points", survivors.len()),
            )
            .help("lower `runs`, or use the full factorial"),
        );
        return None;
    }
    if runs < p {
        cx.report(
            Diagnostic::error(Code::DesignBudget, runs_expr.span, format!("{runs} runs cannot estimate a model with {p} terms"))
                .help(format!("give at least {p} runs, or a smaller model")),
        );
        return None;
    }
    let found = doptimal::optimal_design(&model, survivors, Settings { criterion, runs, seed, starts });
    if found.is_none() {
        cx.report(
            Diagnostic::error(Code::DesignBudget, design.span, unestimable_reason(cx, &model, survivors))
                .help("leave that factor out of the model, or loosen the prune that removes its levels"),
        );
    }
    found
}

/// A whole number of at least `min`, or an error on the argument.
fn whole_number(cx: &mut Ctx, e: &Expr, what: &str, min: usize) -> Option<usize> {
    match &e.kind {
        ExprKind::Number { value, .. } if *value >= min as f64 && value.fract() == 0.0 && *value < 1e15 => Some(*value as usize),
        _ => {
            cx.report(Diagnostic::error(
                Code::DesignBudget,
                e.span,
                format!("`{what}` must be a whole number of at least {min}"),
            ));
            None
        }
    }
}

/// Why the candidates left by the prunes cannot estimate the model: the first model
/// factor that lost levels, or the general statement.
fn unestimable_reason(cx: &Ctx, model: &ModelTerms, survivors: &[Levels]) -> String {
    for f in model.effects().factors {
        let factor = &cx.exp.factors[f];
        let present: HashSet<u32> = survivors.iter().map(|s| s[f]).collect();
        let numeric = factor.levels.iter().all(|v| matches!(v, Value::Num(..)));
        if present.len() < 2 || (!numeric && present.len() < factor.levels.len()) {
            let missing: Vec<String> = (0..factor.levels.len())
                .filter(|l| !present.contains(&(*l as u32)))
                .map(|l| factor.levels[l].display())
                .collect();
            return format!(
                "the candidates left by the prunes cannot estimate the model: `{}` has no candidate at {}",
                factor.name,
                missing.join(", ")
            );
        }
    }
    "the candidates left by the prunes cannot estimate every term of the model (its model matrix is singular)".into()
}
