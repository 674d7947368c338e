//! The local results store: every result the moment it exists, keyed by
//! pattern and content hash, raw output kept beside the parsed metrics.

pub mod analysis;
pub mod mlflow;
pub mod report;
pub mod rules;
pub mod stats;
pub mod svg;
pub mod tools;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultRecord {
    pub id: String,
    pub hash: String,
    pub layer: String,
    pub kind: ResultKind,
    pub finished_at: String,
    pub seconds: f64,
    /// Factor levels and settings that identify the pattern (prompt, concurrency, mode...).
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Named figures: ttft_mean, tpot_p99, throughput_tps, bandwidth_gbps...
    pub metrics: BTreeMap<String, f64>,
    /// Per-request samples when the tool reports them (ttft_ms, tpot_ms).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<f64>>,
    /// File name of the raw output beside the record.
    pub raw: String,
}

/// What produced a result: an E2E pattern, a tool step, or an analysis of other results.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    Pattern,
    Step,
    Analysis,
}

impl ResultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultKind::Pattern => "pattern",
            ResultKind::Step => "step",
            ResultKind::Analysis => "analysis",
        }
    }
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `.nixl/results/<experiment>` beside the file.
    pub fn new(dir: &Path) -> Store {
        Store { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the raw output, then the record (the record names the raw file, so it goes last).
    pub fn save(&self, rec: &ResultRecord, raw: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::state::write_atomic(&self.dir.join(&rec.raw), raw)?;
        let json = serde_json::to_vec_pretty(rec).expect("record serialises");
        crate::state::write_atomic(&self.dir.join(format!("{}.json", rec.id)), &json)
    }

    /// Every record, sorted by id.
    pub fn all(&self) -> Vec<ResultRecord> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return vec![] };
        let mut out: Vec<ResultRecord> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json") && !e.file_name().to_string_lossy().contains(".raw."))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a: &ResultRecord, b| a.id.cmp(&b.id));
        out
    }

    pub fn get(&self, id: &str) -> Option<ResultRecord> {
        let b = std::fs::read(self.dir.join(format!("{id}.json"))).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

/// Metrics from vLLM's benchmark result JSON (`vllm bench serve --save-result`), named as the seed named them.
/// Named figures and per-request samples of one result.
pub type Figures = (BTreeMap<String, f64>, BTreeMap<String, Vec<f64>>);

pub fn parse_vllm_bench(raw: &[u8]) -> Option<Figures> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let obj = v.as_object()?;
    let names = [
        ("mean_ttft_ms", "ttft_mean"),
        ("median_ttft_ms", "ttft_p50"),
        ("p99_ttft_ms", "ttft_p99"),
        ("mean_tpot_ms", "tpot_mean"),
        ("median_tpot_ms", "tpot_p50"),
        ("p99_tpot_ms", "tpot_p99"),
        ("mean_e2el_ms", "e2e_latency_mean"),
        ("output_throughput", "throughput_tps"),
    ];
    let mut metrics = BTreeMap::new();
    for (from, to) in names {
        if let Some(x) = obj.get(from).and_then(|x| x.as_f64()) {
            metrics.insert(to.to_string(), x);
        }
    }
    if metrics.is_empty() {
        return None;
    }
    let mut samples = BTreeMap::new();
    // vLLM reports per-request TTFTs in seconds.
    if let Some(list) = obj.get("ttfts").and_then(|x| x.as_array()) {
        samples.insert("ttft_ms".to_string(), list.iter().filter_map(|x| x.as_f64()).map(|s| s * 1000.0).collect());
    }
    if let Some(list) = obj.get("tpots").and_then(|x| x.as_array()) {
        samples.insert("tpot_ms".to_string(), list.iter().filter_map(|x| x.as_f64()).collect());
    }
    Some((metrics, samples))
}

/// Metrics from a tool's output: numeric fields of a JSON object, or `name: value` lines.
pub fn parse_tool_output(raw: &[u8]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(raw) {
        for (k, v) in o {
            if let Some(x) = v.as_f64() {
                m.insert(k, x);
            }
        }
        return m;
    }
    for line in String::from_utf8_lossy(raw).lines() {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.is_empty() {
                if let Ok(x) = v.trim().parse::<f64>() {
                    m.insert(k.to_string(), x);
                }
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vllm_bench_results_with_seed_names() {
        let raw = br#"{"mean_ttft_ms": 120.5, "median_ttft_ms": 110.0, "p99_ttft_ms": 300.0, "mean_tpot_ms": 20.0,
            "median_tpot_ms": 19.0, "p99_tpot_ms": 30.0, "mean_e2el_ms": 2700.0, "output_throughput": 512.0, "ttfts": [0.1, 0.2]}"#;
        let (m, s) = parse_vllm_bench(raw).unwrap();
        assert_eq!(m["ttft_mean"], 120.5);
        assert_eq!(m["throughput_tps"], 512.0);
        assert_eq!(s["ttft_ms"], vec![100.0, 200.0]);
        assert!(parse_vllm_bench(b"not json").is_none());
    }

    #[test]
    fn reads_tool_figures_from_json_or_lines() {
        assert_eq!(parse_tool_output(br#"{"bandwidth_gbps": 92.5, "note": "x"}"#)["bandwidth_gbps"], 92.5);
        assert_eq!(parse_tool_output(b"latency_us: 12.5\nnoise\n")["latency_us"], 12.5);
    }
}
