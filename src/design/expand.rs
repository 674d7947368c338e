//! Layer by layer: factorial candidates filtered by prunes and designs
//! (`select.rs`), each surviving point built by `pattern.rs`; tool steps,
//! analyses and extra patterns are in `steps.rs`, what they share in
//! `context.rs`, a pattern's resolved settings in `resolve.rs`.

use super::context::{base_scope, derived_of, explain, fixed_of, Ctx, Odometer};
use super::memo::{deps, Memo};
use super::pattern::{make_pattern, LayerMemo};
use super::scope::PointScope;
use super::select::select_design;
use super::steps::{add_extra_patterns, apply_schedules, expand_analyses, expand_steps};
use super::{Category, Design, FactorInfo, LayerInfo, Levels, Pattern};
use crate::check::model::{Experiment, Layer};
use crate::check::value::Value;
use crate::check::Model;
use crate::diagnostics::{Code, Diagnostic, Span};
use std::collections::{BTreeMap, HashMap, HashSet};

pub fn run(model: &Model, exp: &Experiment, diags: &mut Vec<Diagnostic>) -> Design {
    let m = super::experiment_model(model, exp).cloned();
    let kv = m.as_ref().map(|m| m.kv_bytes_per_token() as f64);
    let tp = exp.settings.get("tp").and_then(Value::as_f64).unwrap_or(1.0) as u32;
    let mut cx = Ctx {
        model,
        exp,
        base: base_scope(model, exp),
        factor_names: exp.factors.iter().map(|f| f.name.clone()).collect(),
        kv,
        diags,
        reported: HashSet::new(),
        groups: vec![],
        group_index: HashMap::new(),
        startup: vec![],
        prune_hits: HashMap::new(),
    };
    let mut layers = vec![];
    let mut patterns: Vec<Pattern> = vec![];
    for (li, layer) in exp.layers.iter().enumerate() {
        let info = if layer.steps.is_some() {
            expand_steps(&mut cx, li, layer, &mut patterns)
        } else if !layer.analyses.is_empty() {
            expand_analyses(&mut cx, li, layer, &mut patterns)
        } else {
            expand_factorial(&mut cx, li, layer, &mut patterns)
        };
        layers.push(info);
    }
    warn_idle_prunes(&mut cx);
    add_extra_patterns(&mut cx, &mut patterns);
    apply_schedules(&mut cx, &mut patterns);
    let patterns = super::replicate::probes(exp, super::replicate::replicate(exp, patterns));
    check_duplicate_ids(&mut cx, &patterns);
    // Notes on estimability only make sense for a design without errors.
    let clean = !cx.diags.iter().any(|d| d.is_error());
    let notes: Vec<String> = (if clean { super::tables::estimability_notes(exp, &layers, &patterns) } else { vec![] })
        .into_iter()
        .map(|(li, note)| {
            cx.diags.push(
                Diagnostic::error(Code::Unestimable, layers[li].span, note.clone())
                    .help("add points that vary it, or accept that the analysis cannot separate it"),
            );
            note
        })
        .collect();
    Design {
        experiment: exp.name.clone(),
        extends: exp.extends.clone(),
        prefix: exp.prefix.clone(),
        factors: exp.factors.iter().map(|f| FactorInfo { name: f.name.clone(), levels: f.levels.clone() }).collect(),
        layers,
        patterns,
        groups: cx.groups,
        model: m,
        tp: tp.max(1),
        startup: cx.startup,
        shuffle: super::replicate::shuffle_seed(exp),
        notes,
    }
}

/// A prune of this experiment's own block that removed no pattern in any layer it
/// applies to: its condition never holds (a level that is not listed, a typo'd
/// value) or earlier prunes already removed everything it matches.
fn warn_idle_prunes(cx: &mut Ctx) {
    // The experiment as written, before what it inherits was folded in.
    let Some(own) = cx.model.experiments.iter().find(|e| e.name == cx.exp.name) else { return };
    let idle: Vec<Span> = own
        .prunes
        .iter()
        .chain(own.layers.iter().flat_map(|l| l.prunes.iter()))
        .filter(|p| cx.prune_hits.get(&p.span) == Some(&0))
        .map(|p| p.span)
        .collect();
    for span in idle {
        cx.report(
            Diagnostic::error(Code::IdlePrune, span, "this prune removes no pattern")
                .label("its condition holds for no remaining pattern")
                .help("check the levels it names (a level that is not listed never matches), or remove the prune"),
        );
    }
}

fn expand_factorial(cx: &mut Ctx, li: usize, layer: &Layer, out: &mut Vec<Pattern>) -> LayerInfo {
    let exp = cx.exp;
    let fixed = fixed_of(layer);
    let derived = derived_of(exp, layer);
    let prunes: Vec<&crate::check::model::Prune> = exp.prunes.iter().chain(layer.prunes.iter()).collect();
    let sizes: Vec<usize> = exp.factors.iter().map(|f| f.levels.len()).collect();
    let candidates = sizes.iter().try_fold(1usize, |a, &n| a.checked_mul(n)).filter(|&n| n <= MAX_CANDIDATES);
    let Some(candidates) = candidates else {
        cx.report(too_many_candidates(exp, layer, &sizes));
        return factorial_info(layer, 0, vec![], None);
    };
    let mut removed: Vec<(String, usize)> = prunes.iter().map(|p| (p.reason.clone(), 0)).collect();
    let mut no_overrides = BTreeMap::new();
    no_overrides.insert("layer".to_string(), Value::Str(layer.name.clone()));
    let base = std::mem::take(&mut cx.base);
    let names = std::mem::take(&mut cx.factor_names);
    // Each prune is evaluated once per combination of the factor levels it reads.
    let mut memos: Vec<Memo<bool>> =
        prunes.iter().map(|p| Memo::new(deps(&[&p.cond], &names, &fixed, &derived), &sizes)).collect();
    let mut survivors: Vec<Levels> = vec![];
    let mut odo = Odometer::new(sizes.clone());
    let mut levels: Vec<u32> = vec![0; sizes.len()];
    let mut values: Vec<Value> = Vec::with_capacity(sizes.len());
    let mut failed = false;
    while !odo.done && !failed {
        for (l, c) in levels.iter_mut().zip(&odo.cur) {
            *l = *c as u32;
        }
        // A scope is built only when some prune misses its cache.
        let miss = memos.iter().any(|m| m.get(&levels).is_none());
        if miss {
            values.clear();
            values.extend(odo.cur.iter().enumerate().map(|(i, l)| exp.factors[i].levels[*l].clone()));
        }
        let scope = miss.then(|| PointScope::new(&no_overrides, &names, &values, &fixed, &derived, &base, cx.kv));
        let mut pruned_by = None;
        for (pi, p) in prunes.iter().enumerate() {
            let hit = match memos[pi].get(&levels) {
                Some(b) => b,
                None => {
                    let sc = scope.as_ref().expect("built on a miss");
                    match sc.eval(&p.cond) {
                        Ok(Value::Bool(b)) => {
                            memos[pi].put(&levels, b);
                            b
                        }
                        Ok(other) => {
                            cx.report(Diagnostic::error(
                                Code::Type,
                                p.cond.span,
                                format!("a prune condition must be a boolean, found {}", other.type_name()),
                            ));
                            failed = true;
                            break;
                        }
                        Err(d) => {
                            cx.report(explain(&base, &names, *d));
                            failed = true;
                            break;
                        }
                    }
                }
            };
            if hit {
                pruned_by = Some(pi);
                break;
            }
        }
        if let Some(sc) = scope {
            let errs = sc.errors.take();
            if !errs.is_empty() {
                let errs = errs.into_iter().map(|d| explain(&base, &names, d)).collect();
                cx.report_all(errs);
                failed = true;
            }
        }
        match pruned_by {
            Some(pi) => removed[pi].1 += 1,
            None => survivors.push(Levels::from_slice(&levels)),
        }
        odo.advance();
    }
    cx.base = base;
    cx.factor_names = names;
    if !failed {
        for (p, (_, n)) in prunes.iter().zip(&removed) {
            *cx.prune_hits.entry(p.span).or_default() += n;
        }
    }
    let mut optimal = None;
    if failed {
        return factorial_info(layer, candidates, removed, optimal);
    }
    // A prune that empties the layer is a mistake worth stopping for.
    if survivors.is_empty() && candidates > 0 {
        let mut d = Diagnostic::error(
            Code::EmptyDesign,
            layer.span,
            format!("the prunes remove every pattern of layer `{}`", layer.name),
        )
        .help("loosen a prune condition, or remove the layer");
        for (p, (_, n)) in prunes.iter().zip(&removed) {
            if *n > 0 {
                d = d.with(p.span, format!("removes {n}"));
            }
        }
        cx.report(d);
    }
    survivors = select_design(cx, layer, survivors, &mut removed, &mut optimal);
    // Evaluate every derived setting once, so a unit error in one nothing reads is still reported.
    if let Some(first) = survivors.first() {
        let values: Vec<Value> = first.iter().enumerate().map(|(i, l)| exp.factors[i].levels[*l as usize].clone()).collect();
        let base = std::mem::take(&mut cx.base);
        let scope = PointScope::new(&no_overrides, &cx.factor_names, &values, &fixed, &derived, &base, cx.kv);
        let _ = scope.all_settings();
        let errs: Vec<Diagnostic> = scope.errors.take().into_iter().map(|d| explain(&base, &cx.factor_names, d)).collect();
        drop(scope);
        cx.base = base;
        if !errs.is_empty() {
            cx.report_all(errs);
            return factorial_info(layer, candidates, removed, optimal);
        }
    }
    let start = out.len();
    let mut memo = LayerMemo::new(exp, &cx.factor_names, &fixed, &derived);
    out.reserve(survivors.len());
    for levels in survivors {
        if let Some(p) = make_pattern(cx, li, layer, &fixed, &derived, levels, &no_overrides, layer.span, Some(&mut memo)) {
            out.push(p);
        } else {
            out.truncate(start);
            break;
        }
    }
    removed.retain(|(_, n)| *n > 0);
    factorial_info(layer, candidates, removed, optimal)
}

/// Candidate points a factorial layer may have: each is visited, and 10^7 already takes
/// seconds and gigabytes. Checked before anything is allocated.
pub const MAX_CANDIDATES: usize = 10_000_000;

fn too_many_candidates(exp: &crate::check::model::Experiment, layer: &Layer, sizes: &[usize]) -> Diagnostic {
    let product = sizes.iter().map(|&n| n as f64).product::<f64>();
    let levels = exp.factors.iter().map(|f| format!("{} {}", f.levels.len(), f.name)).collect::<Vec<_>>().join(" x ");
    let mut d = Diagnostic::error(
        Code::Limit,
        layer.span,
        format!("layer `{}` has {product:.0} candidate points ({levels}), more than the limit of {MAX_CANDIDATES}", layer.name),
    )
    .help("fewer levels, or a layer of its own for the factors that vary together");
    if let Some(f) = exp.factors.iter().max_by_key(|f| f.levels.len()) {
        d = d.with(f.span, format!("{} levels", f.levels.len()));
    }
    d
}

/// What the reduction table and `nixl show` know of a factorial layer.
fn factorial_info(
    layer: &Layer,
    candidates: usize,
    removed: Vec<(String, usize)>,
    optimal: Option<super::doptimal::OptimalDesign>,
) -> LayerInfo {
    LayerInfo {
        name: layer.name.clone(),
        category: Category::E2e,
        candidates,
        removed,
        optimal,
        design_span: layer.design.as_ref().map(|d| d.span),
        span: layer.span,
    }
}

/// FNV-1a: ids are short strings, and SipHash's DoS resistance buys nothing here.
#[derive(Default, Clone, Copy)]
struct BuildFnv;

struct Fnv(u64);

impl std::hash::BuildHasher for BuildFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Each id produced more than once is reported once, at its second pattern, with the count.
fn check_duplicate_ids(cx: &mut Ctx, patterns: &[Pattern]) {
    let mut seen: HashMap<&str, (usize, usize, usize), BuildFnv> = HashMap::with_capacity_and_hasher(patterns.len(), BuildFnv);
    for (i, p) in patterns.iter().enumerate() {
        let e = seen.entry(&*p.id).or_insert((i, i, 0));
        e.2 += 1;
        if e.2 == 2 {
            e.1 = i;
        }
    }
    let mut dups: Vec<(usize, usize, usize)> = seen.into_values().filter(|e| e.2 > 1).collect();
    dups.sort_unstable();
    for (first, second, n) in dups {
        let p = &patterns[second];
        let times = if n == 2 { "twice".to_string() } else { format!("{n} times") };
        cx.report(
            Diagnostic::error(Code::Duplicate, p.span, format!("pattern id `{}` is produced {times}", p.id))
                .label("second pattern with this id")
                .with(patterns[first].span, "first produced here")
                .help("make the id template include every factor that varies, e.g. \"{prefix}-efa-{prompt}-c{concurrency}\""),
        );
    }
}
