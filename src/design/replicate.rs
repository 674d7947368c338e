//! Replicates: `replicates = N` on a layer runs each of its E2E patterns N times, as
//! patterns of their own (`<id>-rep1` ... `<id>-repN`), each with its own result. They share
//! the restart group, so replicates add runs, never server launches; the run order inside
//! each launch is shuffled (`Design::shuffle`) so a drift over time spreads over the points
//! instead of landing on the ones that happen to run last.

use super::{Category, Pattern};
use crate::check::model::Experiment;
use crate::check::value::Value;

/// The patterns with every replicated one repeated; others unchanged, order kept.
pub(super) fn replicate(exp: &Experiment, patterns: Vec<Pattern>) -> Vec<Pattern> {
    let times = |p: &Pattern| exp.layers.get(p.layer as usize).and_then(|l| l.replicates).filter(|n| *n > 1);
    copies(patterns, times, "replicate", |id, k| format!("{id}-rep{k}"))
}

/// Every E2E pattern of a layer with a saturation search becomes its probes, `<id>-probe01`
/// ... up to the search's bound, each with `probe` in its values; apply gives each its rate.
pub(super) fn probes(exp: &Experiment, patterns: Vec<Pattern>) -> Vec<Pattern> {
    let bound = |p: &Pattern| exp.layers.get(p.layer as usize).and_then(|l| l.saturation.as_ref()).map(|s| s.max_probes());
    copies(patterns, bound, "probe", |id, k| format!("{id}-probe{k:02}"))
}

/// Each E2E pattern that `count` gives a number N becomes N patterns, named by `name`, with
/// `key` = 1..N in their values; every other pattern stays as it is, in order.
fn copies(
    patterns: Vec<Pattern>,
    count: impl Fn(&Pattern) -> Option<u32>,
    key: &str,
    name: impl Fn(&str, u32) -> String,
) -> Vec<Pattern> {
    let count = |p: &Pattern| count(p).filter(|_| p.category == Category::E2e);
    if patterns.iter().all(|p| count(p).is_none()) {
        return patterns;
    }
    let mut out = Vec::with_capacity(patterns.iter().map(|p| count(p).unwrap_or(1) as usize).sum());
    for p in patterns {
        let Some(n) = count(&p) else {
            out.push(p);
            continue;
        };
        for k in 1..=n {
            let mut r = p.clone();
            r.id = name(&p.id, k).into();
            r.values_mut().insert(key.into(), Value::num(k as f64));
            out.push(r);
        }
    }
    out
}

/// The seed of the run order inside each launch: the experiment's `shuffle`, else 1 when
/// some layer has replicates (recorded in the plan either way), else none (policy order).
pub(super) fn shuffle_seed(exp: &Experiment) -> Option<u64> {
    exp.shuffle.or_else(|| exp.layers.iter().any(|l| l.replicates.is_some_and(|n| n > 1)).then_some(1))
}

/// Shuffles one launch's patterns (Fisher-Yates), seeded by the experiment's seed and the
/// restart group, so each group's order is reproducible on its own.
pub fn shuffle(members: &mut [usize], seed: u64, group: u32) {
    let mut rng = crate::results::stats::Rng::new(seed ^ (u64::from(group) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..members.len()).rev() {
        let j = rng.below(i + 1);
        members.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::shuffle;

    #[test]
    fn the_same_seed_gives_the_same_order_and_another_seed_another() {
        let base: Vec<usize> = (0..12).collect();
        let (mut a, mut b, mut c) = (base.clone(), base.clone(), base.clone());
        shuffle(&mut a, 7, 3);
        shuffle(&mut b, 7, 3);
        shuffle(&mut c, 8, 3);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, base);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, base, "a permutation");
    }
}
