//! The patterns that are not a factorial: tool steps expanded over their
//! parameter lists, analyses, single extra patterns, and layer schedules.

use super::context::{derived_of, explain, fixed_of, Ctx, Odometer, DEFAULT_ANALYSIS};
use super::pattern::make_pattern;
use super::{Category, LayerInfo, Levels, Pattern, PatternExtra};
use crate::check::model::Layer;
use crate::check::value::{values_equal, Layered, Value};
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp, Span};
use crate::syntax::ast::ExprKind;
use std::collections::BTreeMap;

pub(super) fn expand_steps(cx: &mut Ctx, li: usize, layer: &Layer, out: &mut Vec<Pattern>) -> LayerInfo {
    let steps = layer.steps.as_ref().expect("steps layer");
    let base = std::mem::take(&mut cx.base);
    let items = match (crate::check::value::Eval { scope: &base, kv_bytes_per_token: cx.kv }).eval(steps) {
        Ok(Value::List(items)) => items,
        Ok(other) => {
            cx.report(Diagnostic::error(
                Code::Type,
                steps.span,
                format!("`steps` must be a list of tool runs, found {}", other.type_name()),
            ));
            vec![]
        }
        Err(d) => {
            cx.report(explain(&base, &[], *d));
            vec![]
        }
    };
    let item_spans: Vec<Span> = match &steps.kind {
        ExprKind::List(xs) => xs.iter().map(|x| x.span).collect(),
        _ => vec![],
    };
    let mut saw_lowlevel = false;
    let mut candidates = 0;
    let mut made = vec![];
    for (i, item) in items.into_iter().enumerate() {
        let span = item_spans.get(i).copied().unwrap_or(steps.span);
        let Value::Ref { kind, name, fields } = item else {
            cx.report(
                Diagnostic::error(Code::Type, span, format!("a step is a tool, found {}", item.type_name()))
                    .help("write a tool name such as `fi_info`, or `nixlbench { backend = [efa, ucx] }`"),
            );
            continue;
        };
        let Some(tool) = cx.model.tools.get(&name).filter(|_| kind == "tool") else {
            cx.report(Diagnostic::error(Code::UnknownReference, span, format!("`{name}` is a {kind}, not a tool")));
            continue;
        };
        // A layer of baseline tools is a baseline layer; any low-level tool makes it low level.
        if tool.kind != crate::check::model::ToolKind::Baseline {
            saw_lowlevel = true;
        }
        // Overrides must be params; lists expand into one run per value.
        let mut axes: Vec<(String, Vec<Value>)> = vec![];
        for (k, v) in &fields {
            if !tool.params.contains_key(k) {
                let mut d = Diagnostic::error(Code::UnknownAttribute, span, format!("tool `{name}` has no parameter `{k}`"));
                d = d
                    .help(did_you_mean(k, tool.params.keys().map(String::as_str)).or_help(|| {
                        format!("its parameters are {}", tool.params.keys().cloned().collect::<Vec<_>>().join(", "))
                    }));
                cx.report(d);
                continue;
            }
            let default_is_list = matches!(tool.params.get(k), Some(Value::List(_)));
            if default_is_list && !matches!(v, Value::List(_)) {
                // Its commands take it as one word per item: text would be one word, unsplit.
                cx.report(
                    Diagnostic::error(
                        Code::Type,
                        span,
                        format!(
                            "parameter `{k}` of `{name}` is a list (one word per item in its commands), found {}",
                            v.type_name()
                        ),
                    )
                    .help(format!(
                        "write a list: `{k} = [{}]`",
                        v.interpolated().split_whitespace().collect::<Vec<_>>().join(", ")
                    )),
                );
                continue;
            }
            match v {
                Value::List(xs) if !default_is_list => axes.push((k.clone(), xs.clone())),
                other => axes.push((k.clone(), vec![other.clone()])),
            }
        }
        let sizes: Vec<usize> = axes.iter().map(|(_, v)| v.len()).collect();
        let mut odo = Odometer::new(sizes);
        while !odo.done {
            let mut params = tool.params.clone();
            for (ai, (k, vals)) in axes.iter().enumerate() {
                params.insert(k.clone(), vals[odo.cur[ai]].clone());
            }
            params.insert("tool".into(), Value::Str(name.clone()));
            params.insert("layer".into(), Value::Str(layer.name.clone()));
            candidates += 1;
            let scope = Layered { inner: &params, outer: &base };
            let ev = crate::check::value::Eval { scope: &scope, kv_bytes_per_token: cx.kv };
            let slug = match ev.eval(&tool.slug) {
                Ok(v) => v.interpolated(),
                Err(d) => {
                    cx.report(*d);
                    odo.advance();
                    continue;
                }
            };
            params.insert("slug".into(), Value::Str(slug.clone()));
            let scope = Layered { inner: &params, outer: &base };
            let ev = crate::check::value::Eval { scope: &scope, kv_bytes_per_token: cx.kv };
            let id = match &layer.id {
                Some(t) => match ev.eval(t) {
                    Ok(v) => v.interpolated(),
                    Err(d) => {
                        cx.report(explain(&base, &[], *d));
                        odo.advance();
                        continue;
                    }
                },
                None => format!("{}-{slug}", cx.exp.prefix),
            };
            params.remove("layer");
            params.remove("slug");
            params.remove("tool");
            let kv = params.get("tokens").and_then(Value::as_f64).and_then(|t| cx.kv.map(|k| t * k));
            made.push(Pattern {
                id: id.into(),
                layer: li as u32,
                category: Category::LowLevel,
                levels: Levels::new(),
                group: None,
                duration: tool.duration,
                kv_bytes: kv,
                adhoc: layer.adhoc,
                span,
                extra: PatternExtra { values: params, tool: Some(name.as_str().into()), ..PatternExtra::default() }.boxed(),
            });
            odo.advance();
        }
    }
    let mut removed = vec![];
    if let Some(keep) = &layer.keep {
        let names: Vec<String> = match (crate::check::value::Eval { scope: &base, kv_bytes_per_token: None }).eval(keep) {
            Ok(Value::List(xs)) => xs.iter().map(Value::interpolated).collect(),
            Ok(other) => {
                cx.report(Diagnostic::error(
                    Code::Type,
                    keep.span,
                    format!("`keep` must be a list of tools or ids, found {}", other.type_name()),
                ));
                vec![]
            }
            Err(d) => {
                cx.report(explain(&base, &[], *d));
                vec![]
            }
        };
        let before = made.len();
        made.retain(|p| names.iter().any(|n| Some(n.as_str()) == p.tool() || **n == *p.id));
        removed.push(("not kept by this experiment".to_string(), before - made.len()));
    }
    cx.base = base;
    let category = if saw_lowlevel { Category::LowLevel } else { Category::Baseline };
    for p in &mut made {
        p.category = category;
    }
    out.extend(made);
    removed.retain(|(_, n)| *n > 0);
    LayerInfo { name: layer.name.clone(), category, candidates, removed, optimal: None, design_span: None, span: layer.span }
}

pub(super) fn expand_analyses(cx: &mut Ctx, li: usize, layer: &Layer, out: &mut Vec<Pattern>) -> LayerInfo {
    let layer_names: Vec<&str> = cx.exp.layers.iter().map(|l| l.name.as_str()).collect();
    for a in &layer.analyses {
        for (input, span) in &a.inputs {
            if !layer_names.contains(&input.as_str()) {
                let mut d = Diagnostic::error(
                    Code::UnknownReference,
                    *span,
                    format!("analysis `{}` reads layer `{input}`, which does not exist", a.name),
                );
                d = d.help(
                    did_you_mean(input, layer_names.iter().copied()).or_help(|| format!("layers: {}", layer_names.join(", "))),
                );
                cx.report(d);
            }
        }
        let mut vars = BTreeMap::new();
        vars.insert("name".to_string(), Value::Str(a.name.clone()));
        let scope = Layered { inner: &vars, outer: &cx.base };
        let id = match &layer.id {
            Some(t) => match (crate::check::value::Eval { scope: &scope, kv_bytes_per_token: None }).eval(t) {
                Ok(v) => v.interpolated(),
                Err(d) => {
                    let d = explain(&cx.base, &[], *d);
                    cx.report(d);
                    continue;
                }
            },
            None => format!("{}-analysis-{}", cx.exp.prefix, a.name),
        };
        out.push(Pattern {
            id: id.into(),
            layer: li as u32,
            category: Category::Analysis,
            levels: Levels::new(),
            group: None,
            duration: a.duration.unwrap_or(DEFAULT_ANALYSIS),
            kv_bytes: None,
            adhoc: layer.adhoc,
            span: a.span,
            extra: PatternExtra {
                analysis: Some(a.name.as_str().into()),
                inputs: a.inputs.iter().map(|(s, _)| s.clone()).collect(),
                ..PatternExtra::default()
            }
            .boxed(),
        });
    }
    LayerInfo {
        name: layer.name.clone(),
        category: Category::Analysis,
        candidates: layer.analyses.len(),
        removed: vec![],
        optimal: None,
        design_span: None,
        span: layer.span,
    }
}

pub(super) fn add_extra_patterns(cx: &mut Ctx, out: &mut Vec<Pattern>) {
    let exp = cx.exp;
    for xp in &exp.patterns {
        let Some(li) = exp.layers.iter().position(|l| l.name == xp.layer) else {
            let names: Vec<&str> = exp.layers.iter().map(|l| l.name.as_str()).collect();
            let mut d = Diagnostic::error(
                Code::UnknownReference,
                xp.layer_span,
                format!("pattern `{}` is placed in layer `{}`, which does not exist", xp.id, xp.layer),
            );
            d = d.help(did_you_mean(&xp.layer, names.iter().copied()).or_help(|| format!("layers: {}", names.join(", "))));
            cx.report(d);
            continue;
        };
        let layer = &exp.layers[li];
        let base = &cx.base;
        let ev = crate::check::value::Eval { scope: base, kv_bytes_per_token: cx.kv };
        let mut overrides = BTreeMap::new();
        let mut errs = vec![];
        for (k, e) in &xp.values {
            match ev.eval(e) {
                Ok(v) => {
                    overrides.insert(k.clone(), v);
                }
                Err(d) => errs.push(explain(base, &cx.factor_names, *d)),
            }
        }
        cx.report_all(errs);
        overrides.insert("id".into(), Value::Str(xp.id.clone()));
        let levels: Levels = exp
            .factors
            .iter()
            .map(|f| overrides.get(&f.name).and_then(|v| f.levels.iter().position(|l| values_equal(l, v))).unwrap_or(0) as u32)
            .collect();
        let fixed = fixed_of(layer);
        let derived = derived_of(exp, layer);
        // Factor values given by the pattern take the place of the levels.
        overrides.insert("layer".into(), Value::Str(layer.name.clone()));
        if let Some(p) = make_pattern(cx, li, layer, &fixed, &derived, levels, &overrides, xp.span, None) {
            out.push(p);
        }
    }
}

pub(super) fn apply_schedules(cx: &mut Ctx, out: &mut [Pattern]) {
    for (li, layer) in cx.exp.layers.iter().enumerate() {
        let Some(schedule) = &layer.schedule else {
            continue;
        };
        for (id, span) in schedule {
            if !out.iter().any(|p| p.layer as usize == li && *p.id == **id) {
                let ids: Vec<&str> = out.iter().filter(|p| p.layer as usize == li).map(|p| &*p.id).collect();
                let mut d = Diagnostic::error(
                    Code::UnknownReference,
                    *span,
                    format!("layer `{}` has no pattern `{id}` to schedule", layer.name),
                );
                d = d.help(
                    did_you_mean(id, ids.iter().copied()).or_help(|| "check the id against `nixl plan`'s pattern table".into()),
                );
                cx.diags.push(d);
            }
        }
        for p in out.iter_mut().filter(|p| p.layer as usize == li) {
            p.adhoc = !schedule.iter().any(|(id, _)| **id == *p.id);
        }
    }
}
