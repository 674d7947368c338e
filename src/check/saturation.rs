//! `design = saturation(from = R0, to = R1, tolerance = T, metric = M)`: for every point of the
//! layer, the highest request rate that still meets the SLO (`metric = slo_met`, the default) or
//! whose goodput still keeps up with it (`metric = goodput`), found inside the running server
//! with as few benchmark runs as the search allows: the rate doubles from R0 until a run misses
//! the SLO (or R1 passes), then bisects between the last pass and the first miss until they are
//! within T of each other. Each probe is a pattern of its own (`<id>-probe01`...) with its own
//! result; the plan counts the most probes the search can take.

pub use super::symbols::SaturationMetric;
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{Expr, ExprKind, Unit};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Saturation {
    pub from: f64,
    pub to: f64,
    pub tolerance: f64,
    /// What a probe passes on.
    pub metric: SaturationMetric,
    pub span: Span,
}

/// What the search does next, given the probes run so far.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Probe(f64),
    /// Done: the highest rate that met the SLO and the lowest that missed it (None: none did).
    Knee {
        passed: Option<f64>,
        missed: Option<f64>,
    },
}

impl Saturation {
    /// Reads the call; None when `e` is not a `saturation(...)` design.
    pub fn parse(e: &Expr) -> Option<Result<Saturation, Box<Diagnostic>>> {
        let ExprKind::Call(f, args) = &e.kind else { return None };
        if f.as_name()?.name != "saturation" {
            return None;
        }
        let help = "write `saturation(from = 1, to = 64, tolerance = 0.05)`: request rates in requests/s, the tolerance a fraction; `metric = goodput` searches on goodput instead of `slo_met`";
        let arg = |name: &str| args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name));
        let num = |name: &str| -> Result<f64, Box<Diagnostic>> {
            let a = arg(name).ok_or_else(|| {
                Box::new(Diagnostic::error(Code::MissingAttribute, e.span, format!("`saturation` needs `{name}`")).help(help))
            })?;
            match &a.value.kind {
                ExprKind::Number { value, unit: Unit::None, .. } if *value > 0.0 => Ok(*value),
                _ => Err(Box::new(
                    Diagnostic::error(Code::Domain, a.value.span, format!("`{name}` must be a positive plain number")).help(help),
                )),
            }
        };
        let parsed = (|| {
            if let Some(a) = args
                .iter()
                .find(|a| a.name.as_ref().is_none_or(|n| !["from", "to", "tolerance", "metric"].contains(&n.name.as_str())))
            {
                return Err(Box::new(
                    Diagnostic::error(Code::Domain, a.value.span, "`saturation` takes `from`, `to`, `tolerance` and `metric`")
                        .help(help),
                ));
            }
            let metric = match arg("metric") {
                None => SaturationMetric::SloMet,
                Some(a) => a.value.as_name().and_then(|n| SaturationMetric::from_symbol(&n.name)).ok_or_else(|| {
                    Box::new(
                        Diagnostic::error(
                            Code::Domain,
                            a.value.span,
                            format!("`metric` is one of {}", SaturationMetric::NAMES.join(", ")),
                        )
                        .help("`metric = goodput` passes a probe whose goodput_rps is within the tolerance of its rate; `slo_met` (the default) one that meets every bound of the SLO"),
                    )
                })?,
            };
            let (from, to, tolerance) = (num("from")?, num("to")?, num("tolerance")?);
            if to <= from || tolerance >= 0.5 {
                return Err(Box::new(
                    Diagnostic::error(Code::Domain, e.span, "`to` must be above `from` and `tolerance` below 0.5").help(help),
                ));
            }
            Ok(Saturation { from, to, tolerance, metric, span: e.span })
        })();
        Some(parsed)
    }

    /// Probes while the rate doubles from `from` to `to` (both included).
    pub fn bracketing_probes(&self) -> u32 {
        (self.to / self.from).log2().ceil() as u32 + 1
    }

    /// Probes of the bisection: the bracket [lo, 2 lo] halves each time until within the tolerance.
    pub fn bisection_probes(&self) -> u32 {
        (1.0 / self.tolerance).log2().ceil() as u32
    }

    /// The most probes one point's search can take: what the plan counts.
    pub fn max_probes(&self) -> u32 {
        self.bracketing_probes() + self.bisection_probes()
    }

    /// Whether a probe run at `rate` with these metrics passed; None when a figure it needs is
    /// missing. Goodput keeps up when `goodput_rps` >= (1 - tolerance) x the offered rate.
    pub fn passes(&self, rate: f64, metrics: &BTreeMap<String, f64>) -> Option<bool> {
        match self.metric {
            SaturationMetric::SloMet => metrics.get("slo_met").map(|m| *m >= 1.0),
            SaturationMetric::Goodput => metrics.get("goodput_rps").map(|g| *g >= (1.0 - self.tolerance) * rate),
        }
    }

    /// The next rate, from the earlier probes' (rate, passed) in the order they ran.
    pub fn next(&self, runs: &[(f64, bool)]) -> Next {
        let passed = runs.iter().filter(|r| r.1).map(|r| r.0).fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let missed = runs.iter().filter(|r| !r.1).map(|r| r.0).fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
        let done = Next::Knee { passed, missed };
        match (passed, missed) {
            (None, None) => Next::Probe(self.from),
            (None, Some(_)) => done, // even the lowest rate misses
            (Some(p), None) if p >= self.to => done,
            (Some(p), None) => Next::Probe((p * 2.0).min(self.to)),
            (Some(p), Some(m)) if (m - p) / m <= self.tolerance || runs.len() as u32 >= self.max_probes() => done,
            (Some(p), Some(m)) => Next::Probe((p + m) / 2.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(knee: f64) -> (Option<f64>, usize) {
        let s = Saturation { from: 5.0, to: 80.0, tolerance: 0.05, metric: SaturationMetric::SloMet, span: Span::default() };
        let mut runs = vec![];
        loop {
            match s.next(&runs) {
                Next::Probe(r) => runs.push((r, r <= knee)),
                Next::Knee { passed, .. } => return (passed, runs.len()),
            }
        }
    }

    #[test]
    fn the_search_finds_the_knee_within_the_tolerance_and_the_bound() {
        let s = Saturation { from: 5.0, to: 80.0, tolerance: 0.05, metric: SaturationMetric::SloMet, span: Span::default() };
        assert_eq!((s.bracketing_probes(), s.bisection_probes(), s.max_probes()), (5, 5, 10));
        for knee in [5.0, 7.3, 20.0, 20.4, 33.0, 61.0, 79.9] {
            let (found, probes) = search(knee);
            let found = found.unwrap();
            assert!(found <= knee && (knee - found) / knee <= 0.05 + 1e-9, "knee {knee}: found {found}");
            assert!(probes as u32 <= s.max_probes(), "knee {knee}: {probes} probes");
        }
        assert_eq!(search(3.0), (None, 1), "below the lowest rate: one probe says so");
        assert_eq!(search(100.0).0, Some(80.0), "above the highest: the highest passes");
    }

    #[test]
    fn goodput_passes_within_the_tolerance_of_the_rate() {
        let s = Saturation { from: 5.0, to: 80.0, tolerance: 0.05, metric: SaturationMetric::Goodput, span: Span::default() };
        let m = |g: f64| BTreeMap::from([("goodput_rps".to_string(), g), ("slo_met".to_string(), 0.0)]);
        assert_eq!(s.passes(20.0, &m(19.0)), Some(true), "19 of 20 req/s is the 5 % tolerance");
        assert_eq!(s.passes(20.0, &m(18.9)), Some(false));
        assert_eq!(s.passes(20.0, &BTreeMap::new()), None);
        let slo = Saturation { metric: SaturationMetric::SloMet, ..s };
        assert_eq!(slo.passes(20.0, &m(20.0)), Some(false), "slo_met decides by default");
    }
}
