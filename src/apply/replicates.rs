//! Replicates that need not run: a layer's `until = ci(METRIC) < FRACTION` holds over the
//! replicates of the same point already measured with the current settings.

use super::Exec;
use crate::check::value::Value;
use crate::plan::Action;
use crate::provider::Provider;

impl<P: Provider> Exec<'_, P> {
    /// Why a replicate is skipped, or None when it runs.
    pub(super) fn enough_replicates(&self, a: &Action) -> Option<String> {
        if self.campaign.experiment.layers.iter().all(|l| l.until.is_none()) {
            return None;
        }
        let design = &self.campaign.design;
        let p = design.pattern(a.id.pattern()?)?;
        let Some(Value::Num(k, _)) = p.values.get("replicate") else { return None };
        let layer = self.campaign.experiment.layers.get(p.layer as usize)?;
        let (until, n) = (layer.until.as_ref()?, layer.replicates?);
        let base = p.id.strip_suffix(&format!("-rep{}", *k as u32))?;
        // Only results of the current settings count: a sibling recorded under another hash
        // is an older measurement that runs again.
        let values: Vec<f64> = (1..=n)
            .map(|j| format!("{base}-rep{j}"))
            .filter(|id| id != &p.id)
            .filter_map(|id| {
                let sibling = design.pattern(&id)?;
                let rec = self.store.get(&id)?;
                (rec.hash == self.resolver.hash(sibling)).then(|| rec.metrics.get(&until.metric).copied()).flatten()
            })
            .collect();
        let rel = crate::check::until::reached(until, &values)?;
        Some(format!(
            "the 95 % interval of {} over {} replicates is ±{:.1} % of the mean, under {:.1} %",
            until.metric,
            values.len(),
            rel * 100.0,
            until.below * 100.0
        ))
    }
}
