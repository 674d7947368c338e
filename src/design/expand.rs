//! Layer by layer: factorial candidates filtered by prunes and designs
//! (`select.rs`); tool steps, analyses and extra patterns are in `steps.rs`,
//! a pattern's resolved settings in `resolve.rs`.

use super::memo::{deps, Memo};
use super::scope::PointScope;
use super::select::select_design;
use super::steps::{add_extra_patterns, apply_schedules, expand_analyses, expand_steps};
use super::{Category, Design, FactorInfo, LayerInfo, Pattern, RestartKey};
use crate::check::model::{Derived, Experiment, Layer};
use crate::check::value::{Scope, Value};
use crate::check::Model;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp, Span};
use crate::syntax::ast::{Expr, ExprKind, Unit};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) const DEFAULT_DURATION: f64 = 300.0;
const DEFAULT_STARTUP: f64 = 600.0;
pub(super) const DEFAULT_ANALYSIS: f64 = 60.0;

/// Names every pattern has, with their values when a layer does not set them.
pub(super) fn defaults() -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert("mode".into(), Value::None);
    m.insert("transport".into(), Value::None);
    m.insert("cross_layers".into(), Value::Bool(false));
    m
}

/// Globals, definitions (tools, models, services) and experiment settings.
pub fn base_scope(model: &Model, exp: &Experiment) -> BTreeMap<String, Value> {
    let mut base = defaults();
    for (k, v) in &model.globals {
        base.insert(k.clone(), v.clone());
    }
    for (name, t) in &model.tools {
        base.insert(name.clone(), Value::Ref { kind: "tool".into(), name: name.clone(), fields: t.params.clone() });
    }
    for name in model.services.keys() {
        base.insert(name.clone(), Value::Ref { kind: "service".into(), name: name.clone(), fields: BTreeMap::new() });
    }
    for (name, m) in &model.models {
        let mut f = BTreeMap::new();
        f.insert("layers".into(), Value::num(m.layers as f64));
        f.insert("kv_heads".into(), Value::num(m.kv_heads as f64));
        f.insert("head_dim".into(), Value::num(m.head_dim as f64));
        f.insert("max_position_embeddings".into(), Value::num(m.max_position_embeddings as f64));
        f.insert("hf_id".into(), Value::Str(m.hf_id.clone()));
        base.insert(name.clone(), Value::Ref { kind: "model".into(), name: name.clone(), fields: f });
    }
    for (k, v) in &exp.settings {
        base.insert(k.clone(), v.clone());
    }
    base.insert("prefix".into(), Value::Str(exp.prefix.clone()));
    base
}

pub(super) struct Ctx<'a> {
    pub(super) model: &'a Model,
    pub(super) exp: &'a Experiment,
    pub(super) base: BTreeMap<String, Value>,
    pub(super) factor_names: Vec<String>,
    pub(super) kv: Option<f64>,
    pub(super) diags: &'a mut Vec<Diagnostic>,
    pub(super) reported: HashSet<(Span, String)>,
    pub(super) groups: Vec<RestartKey>,
    pub(super) group_index: HashMap<String, u32>,
    pub(super) startup: Vec<f64>,
    /// Patterns each prune removed, by the prune's span, over every layer it applies to.
    pub(super) prune_hits: HashMap<Span, usize>,
}

impl Ctx<'_> {
    pub(super) fn report(&mut self, d: Diagnostic) {
        if self.reported.insert((d.primary.span, d.message.clone())) {
            self.diags.push(d);
        }
    }
    pub(super) fn report_all(&mut self, ds: Vec<Diagnostic>) {
        for d in ds {
            self.report(d);
        }
    }
}

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

pub(super) fn fixed_of(layer: &Layer) -> Vec<(String, Expr)> {
    layer.fixed.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(super) fn derived_of<'e>(exp: &'e Experiment, layer: &'e Layer) -> Vec<&'e Derived> {
    exp.derived.iter().chain(layer.derived.iter()).collect()
}

/// Iterates the level indices of a full factorial, last factor fastest.
pub(super) struct Odometer {
    pub(super) sizes: Vec<usize>,
    pub(super) cur: Vec<usize>,
    pub(super) done: bool,
}

impl Odometer {
    pub(super) fn new(sizes: Vec<usize>) -> Odometer {
        let done = sizes.contains(&0);
        Odometer { cur: vec![0; sizes.len()], sizes, done }
    }
    pub(super) fn advance(&mut self) {
        for i in (0..self.cur.len()).rev() {
            self.cur[i] += 1;
            if self.cur[i] < self.sizes[i] {
                return;
            }
            self.cur[i] = 0;
        }
        self.done = true;
    }
}

fn expand_factorial(cx: &mut Ctx, li: usize, layer: &Layer, out: &mut Vec<Pattern>) -> LayerInfo {
    let exp = cx.exp;
    let fixed = fixed_of(layer);
    let derived = derived_of(exp, layer);
    let prunes: Vec<&crate::check::model::Prune> = exp.prunes.iter().chain(layer.prunes.iter()).collect();
    let sizes: Vec<usize> = exp.factors.iter().map(|f| f.levels.len()).collect();
    let candidates: usize = sizes.iter().product();
    let mut removed: Vec<(String, usize)> = prunes.iter().map(|p| (p.reason.clone(), 0)).collect();
    let mut no_overrides = BTreeMap::new();
    no_overrides.insert("layer".to_string(), Value::Str(layer.name.clone()));
    let base = std::mem::take(&mut cx.base);
    let names = std::mem::take(&mut cx.factor_names);
    // Each prune is evaluated once per combination of the factor levels it reads.
    let mut memos: Vec<Memo<bool>> =
        prunes.iter().map(|p| Memo::new(deps(&[&p.cond], &names, &fixed, &derived), &sizes)).collect();
    let mut survivors: Vec<Vec<u32>> = vec![];
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
            None => survivors.push(levels.clone()),
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
        return LayerInfo { name: layer.name.clone(), category: Category::E2e, candidates, removed, optimal, span: layer.span };
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
            return LayerInfo {
                name: layer.name.clone(),
                category: Category::E2e,
                candidates,
                removed,
                optimal,
                span: layer.span,
            };
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
    LayerInfo { name: layer.name.clone(), category: Category::E2e, candidates, removed, optimal, span: layer.span }
}

/// Unknown names get a "did you mean" over factors and globals.
pub(super) fn explain(base: &BTreeMap<String, Value>, factors: &[String], mut d: Diagnostic) -> Diagnostic {
    if d.code == Code::UnknownName && d.help.is_none() {
        if let Some(name) = d.subject.clone() {
            let mut names: Vec<&str> = base.keys().map(String::as_str).chain(factors.iter().map(String::as_str)).collect();
            names.extend(crate::check::value::SYMBOLS);
            d = d.help(
                did_you_mean(&name, names).or_help(|| "declare it with `factor`, `let` or `set`, or fix the spelling".into()),
            );
        }
    }
    d
}

/// Builds one factorial or extra pattern: id, restart group, duration, KV size.
#[allow(clippy::too_many_arguments)]
pub(super) fn make_pattern(
    cx: &mut Ctx,
    li: usize,
    layer: &Layer,
    fixed: &[(String, Expr)],
    derived: &[&Derived],
    levels: Vec<u32>,
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
            id,
            layer: li as u32,
            category: Category::E2e,
            levels,
            values: BTreeMap::new(),
            group: Some(group),
            duration,
            kv_bytes: kv,
            adhoc: layer.adhoc,
            tool: None,
            inputs: vec![],
            span,
        });
    }
    let key = match &exp.restart_on {
        Some(e) => restart_key(&scope, e),
        None => Ok(vec![
            ("mode".into(), scope.lookup("mode").unwrap_or(Value::None)),
            ("transport".into(), scope.lookup("transport").unwrap_or(Value::None)),
        ]),
    };
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
        id,
        layer: li as u32,
        category: Category::E2e,
        levels,
        values: extra,
        group: Some(group),
        duration,
        kv_bytes: kv,
        adhoc: layer.adhoc,
        tool: None,
        inputs: vec![],
        span,
    })
}

/// Per-layer caches of the restart group (with its start-up) and the duration estimate.
pub(super) struct LayerMemo {
    group: Memo<(u32, f64)>,
    duration: Memo<f64>,
}

impl LayerMemo {
    fn new(exp: &Experiment, factors: &[String], fixed: &[(String, Expr)], derived: &[&Derived]) -> LayerMemo {
        let sizes: Vec<usize> = exp.factors.iter().map(|f| f.levels.len()).collect();
        let group_exprs: Vec<&Expr> = exp.restart_on.iter().chain(exp.startup.iter()).collect();
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
        let e = seen.entry(p.id.as_str()).or_insert((i, i, 0));
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
