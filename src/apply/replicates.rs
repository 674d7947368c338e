//! Replicates that need not run: a layer's `until = ci(METRIC) < FRACTION` holds over the
//! replicates of the same point already measured with the current settings.

use super::Exec;
use crate::check::value::Value;
use crate::plan::Action;
use crate::provider::Provider;

impl<P: Provider> Exec<'_, P> {
    /// A saturation probe's request rate from the probes of its point that ran before it
    /// (their recorded rate and whether they passed on the search's `metric`), or why it is
    /// not needed; None for other patterns.
    pub(super) fn probe(&self, a: &Action) -> Option<Result<f64, String>> {
        let design = &self.campaign.design;
        let p = design.pattern(a.id.pattern()?)?;
        let Some(Value::Num(k, _)) = p.values().get("probe") else { return None };
        let search = self.campaign.experiment.layers.get(p.layer as usize)?.saturation.as_ref()?;
        let base = p.id.strip_suffix(&format!("-probe{:02}", *k as u32))?;
        let mut runs = vec![];
        for j in 1..(*k as u32) {
            let id = format!("{base}-probe{j:02}");
            let current = design.pattern(&id).zip(self.store.get(&id)).filter(|(q, rec)| rec.hash == self.resolver.hash(q));
            let Some((_, rec)) = current else {
                // The search stops where a probe has no result (it failed, or the search ended before it).
                return Some(Err(format!("{id} has no result, so the search for {base} ended there")));
            };
            // Settings are recorded as text.
            let rate = rec.settings.get("request_rate").and_then(|v| v.as_str()).and_then(|s| s.parse::<f64>().ok());
            match rate.and_then(|r| Some((r, search.passes(r, &rec.metrics)?))) {
                Some(run) => runs.push(run),
                None => return Some(Err(format!("{id} has no request rate or {} to search on", search.metric))),
            }
        }
        Some(match search.next(&runs) {
            crate::check::saturation::Next::Probe(rate) => Ok(rate),
            crate::check::saturation::Next::Knee { passed, missed } => {
                let said = |r: Option<f64>| r.map_or("none".to_string(), |r| format!("{r:.3} req/s"));
                Err(format!(
                    "the search for {base} is done after {} probes: the SLO holds up to {} and fails at {}",
                    runs.len(),
                    said(passed),
                    said(missed)
                ))
            }
        })
    }

    /// Why a replicate is skipped, or None when it runs.
    pub(super) fn enough_replicates(&self, a: &Action) -> Option<String> {
        if self.campaign.experiment.layers.iter().all(|l| l.until.is_none()) {
            return None;
        }
        let design = &self.campaign.design;
        let p = design.pattern(a.id.pattern()?)?;
        let Some(Value::Num(k, _)) = p.values().get("replicate") else { return None };
        let layer = self.campaign.experiment.layers.get(p.layer as usize)?;
        let (until, n) = (layer.until.as_ref()?, layer.replicates?);
        let base = p.id.strip_suffix(&format!("-rep{}", *k as u32))?;
        // Only results of the current settings count: a sibling recorded under another hash
        // is an older measurement that runs again.
        let values: Vec<f64> = (1..=n)
            .map(|j| format!("{base}-rep{j}"))
            .filter(|id| **id != *p.id)
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
