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

#[derive(Clone, Debug, Serialize)]
pub struct Pattern {
    pub id: String,
    pub layer: u32,
    pub category: Category,
    /// Factor level indices (factorial patterns).
    pub levels: Levels,
    /// Extra-pattern or step values that are not factor levels.
    pub values: BTreeMap<String, Value>,
    /// Restart group index; None for patterns that need no server.
    pub group: Option<u32>,
    pub duration: f64,
    /// Total KV-cache bytes of the prompt.
    pub kv_bytes: Option<f64>,
    pub adhoc: bool,
    // Boxed strings and slices: most patterns have none of these, and a million patterns
    // should not carry three empty Vecs' worth of headers each.
    /// The tool of a step pattern.
    pub tool: Option<Box<str>>,
    /// The analysis (by its declared name) an analysis pattern computes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Box<str>>,
    /// Layers an analysis reads.
    pub inputs: Box<[String]>,
    pub span: Span,
}

impl Design {
    pub fn factor_value(&self, p: &Pattern, name: &str) -> Option<Value> {
        if let Some(v) = p.values.get(name) {
            return Some(v.clone());
        }
        let i = self.factors.iter().position(|f| f.name == name)?;
        p.levels.get(i).map(|l| self.factors[i].levels[*l as usize].clone())
    }
    pub fn scheduled(&self) -> impl Iterator<Item = &Pattern> {
        self.patterns.iter().filter(|p| !p.adhoc)
    }
    pub fn pattern(&self, id: &str) -> Option<&Pattern> {
        self.patterns.iter().find(|p| p.id == id)
    }
}

/// The model an experiment serves, for KV sizes.
pub fn experiment_model<'m>(model: &'m Model, exp: &Experiment) -> Option<&'m LlmModel> {
    exp.model.as_ref().and_then(|m| model.models.get(m))
}
