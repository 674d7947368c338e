//! Analyses declared in the file, computed on the local machine from stored results.

use super::ResultRecord;
use crate::check::value::Value;
use std::collections::BTreeMap;

/// The figures an analysis produced, or why it could not.
pub fn run(method: &Value, inputs: &[String], results: &[ResultRecord]) -> Result<BTreeMap<String, f64>, String> {
    let func = method.field("function").and_then(Value::as_str).unwrap_or("");
    let args: Vec<Value> = match method.field("args") {
        Some(Value::List(a)) => a.clone(),
        _ => vec![],
    };
    fn of<'r>(results: &'r [ResultRecord], layer: &'r str) -> impl Iterator<Item = &'r ResultRecord> {
        results.iter().filter(move |r| r.layer == layer)
    }
    let metric_arg = |default: &str| args.first().map(Value::interpolated).unwrap_or_else(|| default.to_string());
    let mut out = BTreeMap::new();
    match func {
        "compare" => {
            let metric = metric_arg("ttft");
            let a = method
                .field("a")
                .map(Value::interpolated)
                .or_else(|| inputs.first().cloned())
                .ok_or("compare needs two layers")?;
            let b = method
                .field("b")
                .map(Value::interpolated)
                .or_else(|| inputs.get(1).cloned())
                .ok_or("compare needs two layers")?;
            let key = metric_key(&metric);
            // Pairs at matching factor levels (prompt, concurrency).
            let mut diffs = vec![];
            let mut ratios = vec![];
            for ra in of(results, &a) {
                for rb in of(results, &b) {
                    if same_levels(ra, rb) {
                        if let (Some(x), Some(y)) = (ra.metrics.get(&key), rb.metrics.get(&key)) {
                            diffs.push(x - y);
                            if *y != 0.0 {
                                ratios.push(x / y);
                            }
                        }
                    }
                }
            }
            if diffs.is_empty() {
                return Err(format!("no results of `{a}` and `{b}` at matching levels with `{key}`"));
            }
            out.insert(format!("{key}_diff_mean"), mean(&diffs));
            out.insert(format!("{key}_ratio_mean"), mean(&ratios));
            out.insert("pairs".into(), diffs.len() as f64);
        }
        "tpot_separation" => {
            for l in inputs {
                let v: Vec<f64> = of(results, l).filter_map(|r| r.metrics.get("tpot_mean").copied()).collect();
                if v.is_empty() {
                    return Err(format!("no TPOT results in `{l}`"));
                }
                out.insert(format!("tpot_mean_{}", slug(l)), mean(&v));
            }
            let means: Vec<f64> = out.values().copied().collect();
            let spread =
                means.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - means.iter().cloned().fold(f64::INFINITY, f64::min);
            out.insert("tpot_spread_ms".into(), spread);
        }
        "mean" => {
            let metric = metric_key(&metric_arg("ttft"));
            for l in inputs {
                let v: Vec<f64> = of(results, l).filter_map(|r| r.metrics.get(&metric).copied()).collect();
                if v.is_empty() {
                    return Err(format!("no `{metric}` results in `{l}`"));
                }
                out.insert(format!("{metric}_{}", slug(l)), mean(&v));
            }
        }
        "proxy_overhead" | "correlation" | "dip_test" => {
            return Err(format!(
                "analysis method `{func}` is not available in this build of nixl (compare, tpot_separation and mean are)"
            ))
        }
        other => return Err(format!("unknown analysis method `{other}`")),
    }
    Ok(out)
}

fn metric_key(m: &str) -> String {
    match m {
        "ttft" | "tpot" => format!("{m}_mean"),
        "e2e" => "e2e_latency_mean".into(),
        "throughput" => "throughput_tps".into(),
        other => other.to_string(),
    }
}

fn same_levels(a: &ResultRecord, b: &ResultRecord) -> bool {
    ["prompt", "concurrency"].iter().all(|k| a.settings.get(*k) == b.settings.get(*k))
}

fn slug(s: &str) -> String {
    s.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
