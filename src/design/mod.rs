//! Stage 3: an experiment to its patterns. Factors and levels, layers, prunes,
//! explicit points, D-optimal designs, tool steps and analyses become a flat
//! list of patterns with ids, restart keys, KV-cache sizes and estimates.

mod accepts;
pub mod campaign;
pub mod commands;
mod context;
pub mod doptimal;
mod expand;
mod memo;
pub mod merge;
mod pattern;
mod replicate;
pub use replicate::shuffle;
pub mod render;
mod resolve;
pub mod schedule;
mod scope;
mod select;
mod steps;
pub mod tables;
pub mod topology;

use crate::check::model::{Experiment, LlmModel};
use crate::check::value::Value;
use crate::check::Model;
use crate::diagnostics::Span;
use serde::Serialize;
use std::collections::BTreeMap;

pub use campaign::{Campaign, Templates};
pub use context::base_scope as expand_base_scope;
pub use resolve::{pattern_settings, Resolver};

/// What a layer holds, which decides its row in the reduction table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Baseline,
    E2e,
    Analysis,
    LowLevel,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::E2e => "E2E",
            Category::LowLevel => "low-level",
            Category::Baseline => "baseline",
            Category::Analysis => "analysis",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Design {
    pub experiment: String,
    pub extends: Option<String>,
    pub prefix: String,
    pub factors: Vec<FactorInfo>,
    pub layers: Vec<LayerInfo>,
    pub patterns: Vec<Pattern>,
    /// Distinct restart keys; `Pattern::group` indexes this.
    pub groups: Vec<RestartKey>,
    pub model: Option<LlmModel>,
    /// Tensor parallel size, for per-GPU KV sizes.
    pub tp: u32,
    /// Estimated server start-up per group, in seconds.
    pub startup: Vec<f64>,
    /// Seed of the shuffled run order inside each launch (`shuffle`, or 1 with replicates).
    pub shuffle: Option<u64>,
    /// Notes for the report (effects a prune made unestimable).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FactorInfo {
    pub name: String,
    pub levels: Vec<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub category: Category,
    /// Candidate patterns before prunes, design selection, keep and schedule.
    pub candidates: usize,
    /// Candidates removed, by reason, in declaration order.
    pub removed: Vec<(String, usize)>,
    /// How a `d_optimal` or `i_optimal` design chose the layer's points.
    pub optimal: Option<doptimal::OptimalDesign>,
    /// Where the layer's `design` is written: a child that writes its own has another one,
    /// so the reduction table can tell an override from an inherited design.
    pub design_span: Option<Span>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestartKey {
    pub values: Vec<(String, Value)>,
}

impl RestartKey {
    pub fn label(&self) -> String {
        self.values
            .iter()
            .filter(|(_, v)| !matches!(v, Value::None | Value::Bool(false)))
            .map(|(k, v)| match v {
                // A record such as YaRN's rope scaling reads as "on" in a one-line key.
                Value::Record(_) | Value::Bool(true) => k.clone(),
                _ => format!("{k}={}", v.interpolated()),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A pattern's level index per factor: inline for up to four factors (no allocation per pattern).
pub type Levels = smallvec::SmallVec<[u32; 4]>;

#[derive(Clone, Debug)]
pub struct Pattern {
    pub id: Box<str>,
    pub layer: u32,
    pub category: Category,
    /// Factor level indices (factorial patterns).
    pub levels: Levels,
    /// Restart group index; None for patterns that need no server.
    pub group: Option<u32>,
    pub duration: f64,
    /// Total KV-cache bytes of the prompt.
    pub kv_bytes: Option<f64>,
    pub adhoc: bool,
    pub span: Span,
    /// What few patterns have (values beyond factor levels, a tool, an analysis), in one box:
    /// a million factorial patterns carry one null pointer each, not 72 bytes of empty fields.
    pub(crate) extra: Option<Box<PatternExtra>>,
}

/// The rarely set parts of a [`Pattern`].
#[derive(Clone, Debug, Default)]
pub struct PatternExtra {
    /// Extra-pattern or step values that are not factor levels (and a replicate's or probe's number).
    pub values: BTreeMap<String, Value>,
    /// The tool of a step pattern.
    pub tool: Option<Box<str>>,
    /// The analysis (by its declared name) an analysis pattern computes.
    pub analysis: Option<Box<str>>,
    /// Layers an analysis reads.
    pub inputs: Box<[String]>,
}

impl PatternExtra {
    /// Boxed, or nothing when every part is empty.
    pub fn boxed(self) -> Option<Box<PatternExtra>> {
        let empty = self.values.is_empty() && self.tool.is_none() && self.analysis.is_none() && self.inputs.is_empty();
        (!empty).then(|| Box::new(self))
    }
}

static NO_VALUES: BTreeMap<String, Value> = BTreeMap::new();

impl Pattern {
    pub fn values(&self) -> &BTreeMap<String, Value> {
        self.extra.as_ref().map_or(&NO_VALUES, |e| &e.values)
    }
    pub fn values_mut(&mut self) -> &mut BTreeMap<String, Value> {
        &mut self.extra.get_or_insert_with(Box::default).values
    }
    pub fn tool(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.tool.as_deref())
    }
    pub fn analysis(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.analysis.as_deref())
    }
    pub fn inputs(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |e| &e.inputs)
    }
}

/// `nixl show --json` writes a pattern as it always has: every field at the top level.
impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            id: &'a str,
            layer: u32,
            category: Category,
            levels: &'a Levels,
            values: &'a BTreeMap<String, Value>,
            group: Option<u32>,
            duration: f64,
            kv_bytes: Option<f64>,
            adhoc: bool,
            tool: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            analysis: Option<&'a str>,
            inputs: &'a [String],
            span: Span,
        }
        Json {
            id: &self.id,
            layer: self.layer,
            category: self.category,
            levels: &self.levels,
            values: self.values(),
            group: self.group,
            duration: self.duration,
            kv_bytes: self.kv_bytes,
            adhoc: self.adhoc,
            tool: self.tool(),
            analysis: self.analysis(),
            inputs: self.inputs(),
            span: self.span,
        }
        .serialize(s)
    }
}

impl Design {
    pub fn factor_value(&self, p: &Pattern, name: &str) -> Option<Value> {
        if let Some(v) = p.values().get(name) {
            return Some(v.clone());
        }
        let i = self.factors.iter().position(|f| f.name == name)?;
        p.levels.get(i).map(|l| self.factors[i].levels[*l as usize].clone())
    }
    pub fn scheduled(&self) -> impl Iterator<Item = &Pattern> {
        self.patterns.iter().filter(|p| !p.adhoc)
    }
    pub fn pattern(&self, id: &str) -> Option<&Pattern> {
        self.patterns.iter().find(|p| *p.id == *id)
    }
}

/// The model an experiment serves, for KV sizes.
pub fn experiment_model<'m>(model: &'m Model, exp: &Experiment) -> Option<&'m LlmModel> {
    exp.model.as_ref().and_then(|m| model.models.get(m))
}
