//! `vllm bench serve --save-result --save-detailed` JSON, read with its failures:
//! `completed`, `failed` and `errors` decide whether the run is a result at all,
//! and a failed request never becomes a sample (vLLM records it with TTFT 0).

use std::collections::BTreeMap;
use std::fmt;

/// A run of the benchmark client, its successful requests only.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRun {
    pub completed: u64,
    pub failed: u64,
    /// Named figures, units in [`unit`]: ttft_mean, ttft_p90, itl_p99, request_throughput_rps...
    pub metrics: BTreeMap<String, f64>,
    /// Per-request samples of the successful requests: ttft_ms, tpot_ms, itl_ms, e2e_latency_ms.
    pub samples: BTreeMap<String, Vec<f64>>,
    /// The successful requests' latencies side by side, for per-request goodput.
    pub requests: Vec<Request>,
}

/// One successful request's latencies in ms; `tpot_ms` is absent with a single output token.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub ttft_ms: f64,
    pub tpot_ms: Option<f64>,
    pub e2e_latency_ms: f64,
}

impl Request {
    /// A latency by its samples' name (`ttft_ms`...); a missing TPOT counts as 0, as vLLM's goodput does.
    pub fn latency(&self, samples: &str) -> f64 {
        match samples {
            "ttft_ms" => self.ttft_ms,
            "tpot_ms" => self.tpot_ms.unwrap_or(0.0),
            _ => self.e2e_latency_ms,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum BenchError {
    /// Not the client's JSON (or not JSON at all).
    NotAResult(String),
    /// More requests failed than the pattern allows (`max_failed_requests`, 0 by default).
    Failed { failed: u64, total: u64, allowed: u64, first_error: String },
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::NotAResult(why) => write!(f, "the benchmark's output is not a vLLM result: {why}"),
            BenchError::Failed { failed, total, allowed, first_error } => {
                write!(f, "{failed} of {total} requests failed (max_failed_requests = {allowed})")?;
                if !first_error.is_empty() {
                    write!(f, "; the first error: {first_error}")?;
                }
                Ok(())
            }
        }
    }
}

/// vLLM's summary keys and the names results use (the seed's for the ones it had).
const SUMMARY: &[(&str, &str)] = &[
    ("mean_ttft_ms", "ttft_mean"),
    ("median_ttft_ms", "ttft_p50"),
    ("std_ttft_ms", "ttft_std"),
    ("p90_ttft_ms", "ttft_p90"),
    ("p99_ttft_ms", "ttft_p99"),
    ("mean_tpot_ms", "tpot_mean"),
    ("median_tpot_ms", "tpot_p50"),
    ("std_tpot_ms", "tpot_std"),
    ("p90_tpot_ms", "tpot_p90"),
    ("p99_tpot_ms", "tpot_p99"),
    ("mean_itl_ms", "itl_mean"),
    ("median_itl_ms", "itl_p50"),
    ("std_itl_ms", "itl_std"),
    ("p90_itl_ms", "itl_p90"),
    ("p99_itl_ms", "itl_p99"),
    ("mean_e2el_ms", "e2e_latency_mean"),
    ("median_e2el_ms", "e2e_latency_p50"),
    ("std_e2el_ms", "e2e_latency_std"),
    ("p90_e2el_ms", "e2e_latency_p90"),
    ("p99_e2el_ms", "e2e_latency_p99"),
    ("output_throughput", "throughput_tps"),
    ("total_token_throughput", "total_throughput_tps"),
    ("request_throughput", "request_throughput_rps"),
    ("duration", "duration_s"),
];

/// Whether a vLLM result (or its SLO figures) has this metric, by the name results use.
pub fn is_metric(name: &str) -> bool {
    SUMMARY.iter().any(|(_, to)| *to == name)
        || ["completed", "failed", "goodput_rps", "slo_attainment", "slo_met"].contains(&name)
}

/// The unit of a metric a vLLM result yields (results record it beside the figure).
pub fn unit(metric: &str) -> &'static str {
    match metric {
        m if m.ends_with("_tps") => "tokens/s",
        m if m.ends_with("_rps") => "requests/s",
        m if m.ends_with("_s") => "s",
        "completed" | "failed" => "requests",
        "slo_attainment" => "fraction",
        "slo_met" => "boolean",
        _ => "ms",
    }
}

/// Reads one result; more than `allowed` failed requests (or none completed) is an error.
pub fn parse(raw: &[u8], allowed: u64) -> Result<BenchRun, BenchError> {
    let text = without_non_finite(&String::from_utf8_lossy(raw));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| BenchError::NotAResult(e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| BenchError::NotAResult("not a JSON object".into()))?;
    let count = |k: &str| obj.get(k).and_then(serde_json::Value::as_u64);
    let completed = count("completed").ok_or_else(|| BenchError::NotAResult("no `completed` count".into()))?;
    let errors: Vec<String> = obj
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|a| a.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    let failed = count("failed").unwrap_or_else(|| errors.iter().filter(|e| !e.is_empty()).count() as u64);
    let total = count("num_prompts").unwrap_or(completed + failed);
    if failed > allowed || completed == 0 {
        let first_error = errors.iter().find(|e| !e.is_empty()).cloned().unwrap_or_default();
        return Err(BenchError::Failed { failed: failed.max(total - completed.min(total)), total, allowed, first_error });
    }
    let mut metrics = BTreeMap::new();
    for (from, to) in SUMMARY {
        if let Some(x) = obj.get(*from).and_then(serde_json::Value::as_f64).filter(|x| x.is_finite()) {
            metrics.insert(to.to_string(), x);
        }
    }
    metrics.insert("completed".into(), completed as f64);
    metrics.insert("failed".into(), failed as f64);
    let (samples, requests) = samples(obj, &errors);
    Ok(BenchRun { completed, failed, metrics, samples, requests })
}

/// Per-request samples of the requests that succeeded (an empty error string), in ms.
fn samples(obj: &serde_json::Map<String, serde_json::Value>, errors: &[String]) -> (BTreeMap<String, Vec<f64>>, Vec<Request>) {
    let ok = |i: usize| errors.get(i).is_none_or(|e| e.is_empty());
    let ttfts: Vec<Option<f64>> =
        obj.get("ttfts").and_then(|x| x.as_array()).map(|a| a.iter().map(|x| x.as_f64()).collect()).unwrap_or_default();
    let itls: Vec<Vec<f64>> = obj
        .get("itls")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter().map(|r| r.as_array().map(|r| r.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default()).collect()
        })
        .unwrap_or_default();
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut requests = vec![];
    for (i, t) in ttfts.iter().enumerate() {
        let Some(t) = t.filter(|_| ok(i)) else { continue };
        out.entry("ttft_ms".into()).or_default().push(t * 1000.0);
        let mut request = Request { ttft_ms: t * 1000.0, tpot_ms: None, e2e_latency_ms: t * 1000.0 };
        if let Some(r) = itls.get(i).filter(|r| !r.is_empty()) {
            let sum: f64 = r.iter().sum();
            request.tpot_ms = Some(sum / r.len() as f64 * 1000.0);
            request.e2e_latency_ms = (t + sum) * 1000.0;
            out.entry("tpot_ms".into()).or_default().push(sum / r.len() as f64 * 1000.0);
            out.entry("e2e_latency_ms".into()).or_default().push((t + sum) * 1000.0);
            out.entry("itl_ms".into()).or_default().extend(r.iter().map(|x| x * 1000.0));
        }
        requests.push(request);
    }
    (out, requests)
}

/// Python's json module writes NaN and Infinity, which JSON (and serde) do not have:
/// outside strings they become null, so a figure vLLM could not compute is absent.
fn without_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        let word = ["-Infinity", "Infinity", "NaN"].into_iter().find(|w| rest.starts_with(w));
        if let Some(w) = word {
            out.push_str("null");
            rest = &rest[w.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_requests_never_become_samples() {
        let raw = br#"{"completed": 2, "failed": 1, "num_prompts": 3, "mean_ttft_ms": 20.0,
            "ttfts": [0.01, 0.0, 0.03], "itls": [[0.002, 0.004], [], [0.006]], "errors": ["", "boom", ""]}"#;
        let e = parse(raw, 0).unwrap_err();
        assert_eq!(e, BenchError::Failed { failed: 1, total: 3, allowed: 0, first_error: "boom".into() });
        let r = parse(raw, 1).unwrap();
        assert_eq!(r.samples["ttft_ms"], vec![10.0, 30.0]);
        assert_eq!(r.samples["tpot_ms"], vec![3.0, 6.0]);
        assert_eq!(r.metrics["failed"], 1.0);
    }

    #[test]
    fn nan_is_an_absent_figure_not_an_unreadable_file() {
        let raw =
            br#"{"completed": 1, "failed": 0, "mean_ttft_ms": NaN, "std_ttft_ms": -Infinity, "label": "NaN", "ttfts": [0.5]}"#;
        let r = parse(raw, 0).unwrap();
        assert!(!r.metrics.contains_key("ttft_mean") && !r.metrics.contains_key("ttft_std"));
        assert_eq!(r.samples["ttft_ms"], vec![500.0]);
        assert!(matches!(parse(b"not json", 0), Err(BenchError::NotAResult(_))));
    }
}
