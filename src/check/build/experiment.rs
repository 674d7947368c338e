//! Experiments: factors, layers, settings, rules, as the design engine reads them.

use super::{attrs, label, Ctx};
use crate::check::model::*;
use crate::check::value::Value;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp, Span};
use crate::syntax::ast::{self, Block, StmtKind};
use std::collections::BTreeMap;

pub(super) fn build_experiment(cx: &mut Ctx, b: &Block, name: String, span: Span, model: &Model) -> Experiment {
    let extends = b.extends.as_ref().map(|e| {
        match cx.g.defs.get(&e.name) {
            Some(("experiment", _)) => {}
            _ => {
                let names: Vec<&str> =
                    cx.g.defs.iter().filter(|(_, (k, _))| *k == "experiment").map(|(n, _)| n.as_str()).collect();
                let mut d =
                    Diagnostic::error(Code::UnknownReference, e.span, format!("no experiment named `{}` to extend", e.name));
                d = d.help(did_you_mean(&e.name, names.iter().copied()).or_help(|| "import the file that defines it".into()));
                cx.diags.push(d);
            }
        }
        e.name.clone()
    });
    let a = attrs(b);
    let model_name = a.get("model").and_then(|e| e.as_name()).map(|i| i.name.clone());
    if let (Some(m), Some(e)) = (&model_name, a.get("model")) {
        if !model.models.contains_key(m) && cx.g.defs.get(m).is_some_and(|(k, _)| *k == "model") {
            cx.diags.push(Diagnostic::error(Code::UnknownReference, e.span, format!("model `{m}` is incomplete")));
        }
    }
    let mut settings = BTreeMap::new();
    for key in ["server", "bench"] {
        if let Some(v) = cx.value(b, key) {
            match v {
                Value::Ref { fields, .. } | Value::Record(fields) => {
                    for (k, v) in fields {
                        settings.insert(k, v);
                    }
                }
                other => cx.diags.push(Diagnostic::error(
                    Code::Type,
                    cx.span_of(b, key),
                    format!("`{key}` must be a `{key}` definition or a record, found {}", other.type_name()),
                )),
            }
        }
    }
    if let Some(v) = slo_of(cx, b) {
        settings.insert("slo".to_string(), v);
    }
    let experiment_slo = settings.contains_key("slo");
    let mut factors = vec![];
    let mut derived = vec![];
    let mut prunes = vec![];
    let mut layers = vec![];
    let mut patterns = vec![];
    let mut rules = vec![];
    let mut factor_names: BTreeMap<String, Span> = BTreeMap::new();
    for s in &b.body {
        match &s.kind {
            StmtKind::Factor(id, e) => {
                if let Some(prev) = factor_names.insert(id.name.clone(), id.span) {
                    cx.diags.push(
                        Diagnostic::error(Code::Duplicate, id.span, format!("factor `{}` is declared twice", id.name))
                            .with(prev, "first declared here")
                            .help("keep one declaration"),
                    );
                    continue;
                }
                if let Some(f) = build_factor(cx, id, e) {
                    factors.push(f);
                }
            }
            StmtKind::Let(id, e) | StmtKind::Set(id, e) => {
                derived.push(Derived {
                    name: id.name.clone(),
                    expr: e.clone(),
                    setting: matches!(s.kind, StmtKind::Set(..)),
                    span: id.span,
                });
            }
            StmtKind::Prune { cond, reason } => {
                prunes.push(Prune { cond: cond.clone(), reason: reason.value.clone(), span: s.span })
            }
            StmtKind::When { cond, action, reason } => rules.push(RuleDecl {
                cond: cond.clone(),
                action: action.clone(),
                reason: reason.as_ref().map(|r| r.value.clone()),
                span: s.span,
            }),
            StmtKind::Block(c) if c.kind.name == "layer" => {
                let layer = build_layer(cx, c);
                if let (Some(s), false) = (&layer.saturation, experiment_slo || layer.fixed.contains_key("slo")) {
                    cx.diags.push(
                        Diagnostic::error(Code::MissingAttribute, s.span, "a saturation search needs an `slo` to search against")
                            .help("add `slo = { ttft_p99 = 2s }` to the layer or its experiment"),
                    );
                }
                layers.push(layer);
            }
            StmtKind::Block(c) if c.kind.name == "pattern" => {
                let (id, pspan) = label(c);
                let values = attrs(c).into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                let (layer, layer_span) = c.in_layer.as_ref().map(|l| (l.value.clone(), l.span)).unwrap_or_default();
                if c.in_layer.is_none() {
                    cx.diags.push(
                        Diagnostic::error(
                            Code::MissingAttribute,
                            pspan,
                            format!("pattern `{id}` does not say which layer it is in"),
                        )
                        .help(format!("write `pattern \"{id}\" in \"LAYER\" {{ ... }}`")),
                    );
                }
                patterns.push(ExtraPattern { id, layer, layer_span, values, span: pspan });
            }
            _ => {}
        }
    }
    let mlflow = match cx.value(b, "mlflow") {
        Some(Value::Record(m)) => m,
        _ => BTreeMap::new(),
    };
    Experiment {
        extends,
        prefix: cx.str(b, "prefix").unwrap_or_else(|| name.clone()),
        model: model_name,
        stack: cx.str(b, "stack"),
        stack_span: cx.span_of(b, "stack"),
        server_def: definition_name(a.get("server").copied()),
        bench_def: definition_name(a.get("bench").copied()),
        overrides: ["server", "bench"]
            .iter()
            .filter_map(|k| a.get(k))
            .flat_map(|e| match &e.kind {
                ast::ExprKind::With(_, fields) => fields.iter().map(|f| (f.name.name.clone(), f.name.span)).collect(),
                _ => vec![],
            })
            .collect(),
        settings,
        factors,
        derived,
        restart_on: cx.expr(b, "restart_on"),
        restart_implied: vec![],
        duration: cx.expr(b, "duration"),
        startup: cx.expr(b, "startup"),
        order: cx.expr(b, "order"),
        parallel: parallel(cx, b),
        parallel_span: attrs(b).get("parallel").map(|e| e.span),
        prunes,
        layers,
        patterns,
        rules,
        mlflow,
        hand_estimate: cx.num(b, "hand_estimate"),
        shuffle: cx.num(b, "shuffle").map(|n| n as u64),
        discard_first_run: cx.bool(b, "discard_first_run"),
        name,
        span,
    }
}

/// `parallel = k` as a count; a value that is not a whole number of at least 1 is reported by
/// the schema check (`Ty::PosInt`) and counts as 1 here.
fn parallel(cx: &mut Ctx, b: &Block) -> u32 {
    match cx.num(b, "parallel") {
        Some(k) if k >= 1.0 && k.fract() == 0.0 && k <= u32::MAX as f64 => k as u32,
        _ => 1,
    }
}

/// `vllm` or `vllm { tp = 4 }`: the definition an attribute builds on.
fn definition_name(e: Option<&ast::Expr>) -> Option<String> {
    match &e?.kind {
        ast::ExprKind::Name(i) => Some(i.name.clone()),
        ast::ExprKind::With(base, _) => base.as_name().map(|i| i.name.clone()),
        _ => None,
    }
}

fn build_factor(cx: &mut Ctx, id: &ast::Ident, e: &ast::Expr) -> Option<Factor> {
    let v = cx.g.eval_report(e, cx.diags)?;
    let Value::List(levels) = v else {
        cx.diags.push(
            Diagnostic::error(
                Code::Type,
                e.span,
                format!("factor `{}` needs a list of levels, found {}", id.name, v.type_name()),
            )
            .help(format!("write `factor {} = [level1, level2]`", id.name)),
        );
        return None;
    };
    if levels.is_empty() {
        cx.diags.push(
            Diagnostic::error(Code::Domain, e.span, format!("factor `{}` has no levels", id.name))
                .help("give at least one level"),
        );
        return None;
    }
    let items: Vec<&ast::Expr> = match &e.kind {
        ast::ExprKind::List(items) => items.iter().collect(),
        _ => vec![],
    };
    let repeated = repeated_levels(&levels);
    for (i, l) in levels.iter().enumerate() {
        let at = items.get(i).map(|x| x.span).unwrap_or(e.span);
        if repeated.contains(&i) {
            cx.diags.push(
                Diagnostic::error(Code::Duplicate, at, format!("level {} of factor `{}` is listed twice", l.display(), id.name))
                    .help("remove the repeated level"),
            );
        }
        if id.name == "concurrency" {
            let ok = matches!(l, Value::Num(x, ast::Unit::None) if *x >= 1.0 && x.fract() == 0.0 && *x <= u32::MAX as f64);
            if !ok {
                cx.diags.push(
                    Diagnostic::error(
                        Code::Domain,
                        at,
                        format!("concurrency must be a whole number from 1 to 4,294,967,295, found {}", l.display()),
                    )
                    .help("concurrency is the number of requests in flight"),
                );
            }
        }
        if id.name == "prompt" && !matches!(l, Value::Num(x, ast::Unit::Tokens) | Value::Num(x, ast::Unit::None) if *x >= 1.0) {
            cx.diags.push(
                Diagnostic::error(Code::Unit, at, format!("prompt lengths are tokens, found {}", l.type_name()))
                    .help("write prompt lengths as 1K, 12K, 128K"),
            );
        }
    }
    Some(Factor { name: id.name.clone(), levels, span: id.span })
}

/// A block's `slo`, checked: each bad bound is reported at its field.
fn slo_of(cx: &mut Ctx, b: &Block) -> Option<Value> {
    let e = attrs(b).get("slo").copied()?;
    let v = cx.g.eval(e).ok()?;
    if let Err((key, why)) = crate::check::slo::Slo::from_value(&v) {
        let at = match (&e.kind, &key) {
            (ast::ExprKind::Record(fields), Some(k)) => fields.iter().find(|f| &f.name.name == k).map(|f| f.name.span),
            _ => None,
        };
        let d = Diagnostic::error(Code::Domain, at.unwrap_or(e.span), why)
            .help(format!("bounds are upper limits on {}", crate::check::slo::KEY_FORM));
        cx.diags.push(d);
        return None;
    }
    Some(v)
}

fn build_layer(cx: &mut Ctx, b: &Block) -> Layer {
    let (name, span) = label(b);
    slo_of(cx, b);
    let mut fixed = BTreeMap::new();
    let mut derived = vec![];
    let mut prunes = vec![];
    let mut analyses = vec![];
    const OWN: &[&str] =
        &["id", "design", "steps", "keep", "adhoc", "new", "schedule", "name", "priority", "description", "replicates", "until"];
    for s in &b.body {
        match &s.kind {
            StmtKind::Attr(id, e) if !OWN.contains(&id.name.as_str()) => {
                fixed.insert(id.name.clone(), e.clone());
            }
            StmtKind::Let(id, e) | StmtKind::Set(id, e) => {
                derived.push(Derived {
                    name: id.name.clone(),
                    expr: e.clone(),
                    setting: matches!(s.kind, StmtKind::Set(..)),
                    span: id.span,
                });
            }
            StmtKind::Prune { cond, reason } => {
                prunes.push(Prune { cond: cond.clone(), reason: reason.value.clone(), span: s.span })
            }
            StmtKind::Block(c) if c.kind.name == "analysis" => {
                let (aname, aspan) = label(c);
                let inputs = match attrs(c).get("inputs").map(|e| &e.kind) {
                    Some(ast::ExprKind::List(items)) => {
                        items.iter().filter_map(|i| i.as_plain_str().map(|s| (s, i.span))).collect()
                    }
                    _ => vec![],
                };
                analyses.push(Analysis {
                    name: aname,
                    inputs,
                    method: cx.expr(c, "method").unwrap_or(ast::Expr { kind: ast::ExprKind::None, span: aspan }),
                    metrics: cx.strs(c, "metrics"),
                    duration: cx.num(c, "duration"),
                    span: aspan,
                });
            }
            _ => {}
        }
    }
    let replicates = cx.num(b, "replicates").map(|n| n as u32);
    let saturation = attrs(b)
        .get("design")
        .and_then(|e| crate::check::saturation::Saturation::parse(e))
        .and_then(|r| r.map_err(|d| cx.diags.push(*d)).ok());
    let until = attrs(b).get("until").and_then(|e| {
        let parsed = crate::check::until::parse(e, &crate::results::vllm::is_metric);
        let parsed = parsed.and_then(|u| match replicates {
            Some(n) if n >= 2 => Ok(u),
            _ => Err(Box::new(
                Diagnostic::error(Code::Domain, e.span, "`until` stops replicates, but the layer has none")
                    .help("add `replicates = N` (the most runs it may take)"),
            )),
        });
        parsed.map_err(|d| cx.diags.push(*d)).ok()
    });
    let schedule = match attrs(b).get("schedule").map(|e| &e.kind) {
        Some(ast::ExprKind::List(items)) => Some(items.iter().filter_map(|i| i.as_plain_str().map(|s| (s, i.span))).collect()),
        _ => None,
    };
    Layer {
        id: cx.expr(b, "id"),
        design: cx.expr(b, "design"),
        steps: cx.expr(b, "steps"),
        keep: cx.expr(b, "keep"),
        adhoc: cx.bool(b, "adhoc").unwrap_or(false),
        new: cx.bool(b, "new").unwrap_or(false),
        schedule,
        replicates,
        until,
        saturation,
        fixed,
        derived,
        prunes,
        analyses,
        name,
        span,
    }
}

/// Indices of levels equal (`values_equal`) to an earlier level, in O(n log n):
/// numbers are sorted and compared with their neighbours (equality has a
/// tolerance, so they cannot be hashed), everything else is hashed by its text.
fn repeated_levels(levels: &[Value]) -> std::collections::HashSet<usize> {
    let mut nums: Vec<(f64, usize)> = vec![];
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out = std::collections::HashSet::new();
    for (i, l) in levels.iter().enumerate() {
        let key = match l {
            Value::Num(x, _) => {
                nums.push((*x, i));
                continue;
            }
            Value::Str(s) | Value::Sym(s) | Value::Ref { name: s, .. } => format!("n:{s}"),
            other => format!("v:{}", other.display()),
        };
        if !seen.insert(key) {
            out.insert(i);
        }
    }
    nums.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    // A run of equal numbers: every member but the earliest listed is a repeat.
    let mut run_start = 0;
    for k in 1..=nums.len() {
        let same = k < nums.len() && crate::check::value::values_equal(&Value::num(nums[k - 1].0), &Value::num(nums[k].0));
        if !same {
            let run = &nums[run_start..k];
            let earliest = run.iter().map(|x| x.1).min().unwrap_or(0);
            out.extend(run.iter().map(|x| x.1).filter(|i| *i != earliest));
            run_start = k;
        }
    }
    out
}

/// A layer in an extending experiment overrides the parent's layer of the same
/// name; a name the parent chain lacks is a misspelling unless the layer says `new = true`
/// (otherwise a typo would silently add a whole layer to the campaign).
pub(super) fn check_layer_overrides(model: &Model, diags: &mut Vec<Diagnostic>) {
    for exp in &model.experiments {
        let Some(parent) = &exp.extends else { continue };
        let mut inherited: Vec<&str> = vec![];
        let mut seen = vec![exp.name.as_str()];
        let mut cur = model.experiments.iter().find(|e| &e.name == parent);
        while let Some(p) = cur.filter(|p| !seen.contains(&p.name.as_str())) {
            seen.push(&p.name);
            inherited.extend(p.layers.iter().map(|l| l.name.as_str()));
            cur = p.extends.as_ref().and_then(|pp| model.experiments.iter().find(|e| &e.name == pp));
        }
        if cur.is_none() && seen.len() == 1 {
            continue; // the parent is missing: reported where `extends` names it
        }
        for l in exp.layers.iter().filter(|l| !l.new && !inherited.contains(&l.name.as_str())) {
            let help = match did_you_mean(&l.name, inherited.iter().copied()) {
                Some(h) => format!("{h} To add a layer of its own, write `new = true` in it"),
                None => "to add a layer the parent does not have, write `new = true` in it".to_string(),
            };
            diags.push(
                Diagnostic::error(
                    Code::UnknownReference,
                    l.span,
                    format!("`{}` extends `{parent}`, which has no layer `{}` to override", exp.name, l.name),
                )
                .help(help),
            );
        }
    }
}
