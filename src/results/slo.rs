//! Goodput and SLO attainment of one benchmark run, from its per-request samples.
//!
//! - `goodput_rps`: requests within every bound, per second of the run (vLLM's
//!   `request_goodput` for the same bounds).
//! - `slo_attainment`: the share of all requests sent, failed ones included, that were good.
//! - `slo_met`: 1 when every bound's statistic over the successful requests is within it.

use super::stats::{mean, quantile};
use super::vllm::BenchRun;
use crate::check::slo::{Slo, Stat};
use std::collections::BTreeMap;

pub fn measure(slo: &Slo, run: &BenchRun) -> BTreeMap<String, f64> {
    let good = run.requests.iter().filter(|r| slo.bounds.iter().all(|b| r.latency(b.samples) <= b.limit_ms)).count() as f64;
    let sent = (run.completed + run.failed) as f64;
    let mut out = BTreeMap::new();
    if let Some(d) = run.metrics.get("duration_s").filter(|d| **d > 0.0) {
        out.insert("goodput_rps".to_string(), good / d);
    }
    if sent > 0.0 {
        out.insert("slo_attainment".to_string(), good / sent);
    }
    let met = slo.bounds.iter().all(|b| {
        let mut v: Vec<f64> = run.requests.iter().map(|r| r.latency(b.samples)).collect();
        v.sort_by(f64::total_cmp);
        let stat = match b.stat {
            Stat::Each => v.last().copied().unwrap_or(f64::NAN),
            Stat::Mean => mean(&v),
            Stat::Percentile(p) => quantile(&v, p / 100.0),
        };
        stat <= b.limit_ms
    });
    out.insert("slo_met".to_string(), if met && run.failed == 0 { 1.0 } else { 0.0 });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::value::Value;
    use crate::syntax::ast::Unit;

    fn run(requests: &[(f64, f64)], failed: u64, duration: f64) -> BenchRun {
        let json = serde_json::json!({
            "completed": requests.len(), "failed": failed, "duration": duration,
            "ttfts": requests.iter().map(|r| r.0 / 1000.0).chain((0..failed).map(|_| 0.0)).collect::<Vec<_>>(),
            "itls": requests.iter().map(|r| vec![r.1 / 1000.0; 4]).chain((0..failed).map(|_| vec![])).collect::<Vec<_>>(),
            "errors": requests.iter().map(|_| "").chain((0..failed).map(|_| "boom")).collect::<Vec<_>>(),
        });
        crate::results::vllm::parse(json.to_string().as_bytes(), failed).unwrap()
    }

    fn slo(pairs: &[(&str, f64)]) -> Slo {
        let v = Value::Record(pairs.iter().map(|(k, s)| (k.to_string(), Value::Num(*s, Unit::Duration))).collect());
        Slo::from_value(&v).unwrap()
    }

    #[test]
    fn goodput_counts_requests_within_every_bound_and_failures_count_against_attainment() {
        // TTFT, TPOT in ms; the second misses TTFT, the third misses TPOT.
        let r = run(&[(100.0, 10.0), (2500.0, 10.0), (100.0, 60.0), (200.0, 20.0)], 1, 2.0);
        let m = measure(&slo(&[("ttft_p99", 2.0), ("tpot_p99", 0.05)]), &r);
        assert_eq!(m["goodput_rps"], 1.0); // 2 good requests in 2 s
        assert_eq!(m["slo_attainment"], 0.4); // 2 of 5 sent
        assert_eq!(m["slo_met"], 0.0);
    }

    #[test]
    fn a_percentile_bound_tolerates_the_tail_it_leaves_out() {
        let mut reqs = vec![(100.0, 10.0); 99];
        reqs.push((5000.0, 10.0));
        let r = run(&reqs, 0, 10.0);
        // p90 of TTFT is 100 ms: met, though one request is 5 s.
        assert_eq!(measure(&slo(&[("ttft_p90", 0.5)]), &r)["slo_met"], 1.0);
        // A bare latency bounds every request.
        assert_eq!(measure(&slo(&[("ttft", 0.5)]), &r)["slo_met"], 0.0);
        assert!((measure(&slo(&[("ttft", 0.5)]), &r)["goodput_rps"] - 9.9).abs() < 1e-9);
    }
}
