//! What the design stage's steps share: the expansion context (model,
//! merged experiment, base scope, restart keys found so far, diagnostics), the
//! defaults every pattern has, and small helpers over layers. `expand`,
//! `select`, `steps` and `pattern` depend on it and not on each other's internals.

use super::RestartKey;
use crate::check::model::{Derived, Experiment, Layer};
use crate::check::value::Value;
use crate::check::Model;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp, Span};
use crate::syntax::ast::Expr;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) const DEFAULT_DURATION: f64 = 300.0;
pub(super) const DEFAULT_STARTUP: f64 = 600.0;
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
