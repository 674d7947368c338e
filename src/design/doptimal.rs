//! Optimal designs: choose `runs` of the candidate points that survive a layer's
//! prunes so that a model of the response can be fitted as well as possible.
//! `d_optimal` maximises det(X'X) (precise coefficients), `i_optimal` minimises
//! the average prediction variance over the candidates (precise predictions).
//! The model terms and their coding are in `terms.rs`, the seeded multi-start
//! exchange in `exchange.rs`. The same input always gives the same design.

pub mod exchange;
pub mod terms;

pub use exchange::{Candidates, Criterion};
pub use terms::{Effects, ModelTerms};

use serde::Serialize;

/// The seed of a design that does not set `seed = N`.
pub const DEFAULT_SEED: u64 = 18;

/// How a layer's optimal design was found, for the design report and the plan.
#[derive(Clone, Debug, Serialize)]
pub struct OptimalDesign {
    pub criterion: Criterion,
    /// Model-matrix columns, the intercept included.
    pub terms: usize,
    pub runs: usize,
    /// Points left after the prunes, among which the design chooses.
    pub candidates: usize,
    pub seed: u64,
    pub starts: usize,
    /// Starts whose exchange ended at the chosen design's value: when most do,
    /// more starts are unlikely to find better.
    pub best_reached: usize,
    /// The worst start's local optimum as an efficiency against the chosen design.
    pub worst_start: f64,
    /// The chosen design's D-efficiency, (det / det of the best D-optimal design found)^(1/terms):
    /// 1 for `d_optimal`; for `i_optimal`, what its predictions cost in coefficient precision.
    pub d_efficiency: f64,
    /// The effects the model asks for, which warning W0304 checks.
    pub effects: Effects,
}

/// Chooses the design's points; None when the candidates cannot estimate the model.
pub fn optimal_design(
    model: &ModelTerms,
    points: &[super::Levels],
    settings: exchange::Settings,
) -> Option<(Vec<usize>, OptimalDesign)> {
    let rows: Vec<Vec<f64>> = points.iter().map(|l| model.row(l)).collect();
    let c = Candidates::new(&rows);
    let found = exchange::search(&c, settings)?;
    let d_efficiency = match settings.criterion {
        Criterion::D => 1.0,
        Criterion::I => {
            let d_best = exchange::search(&c, exchange::Settings { criterion: Criterion::D, ..settings })?;
            let own = exchange::log_det(&c, &found.rows);
            exchange::efficiency(Criterion::D, own, d_best.value.max(own), c.terms())
        }
    };
    let info = OptimalDesign {
        criterion: settings.criterion,
        terms: c.terms(),
        runs: found.rows.len(),
        candidates: c.len(),
        seed: settings.seed,
        starts: settings.starts,
        best_reached: found.best_reached,
        worst_start: found.worst_start,
        d_efficiency,
        effects: model.effects(),
    };
    Some((found.rows, info))
}

#[cfg(test)]
mod tests;
