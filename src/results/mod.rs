//! The local results store: every result the moment it exists, keyed by
//! pattern and content hash, raw output kept beside the parsed metrics.

pub mod analysis;
pub mod decisions;
pub mod export;
pub mod factors;
pub mod gpu_memory;
pub mod mlflow;
pub mod pareto;
pub mod report;
pub mod report_decisions;
pub mod report_load;
pub mod rules;
pub mod slo;
pub mod stats;
pub mod svg;
pub mod telemetry;
pub mod tools;
pub mod transport;
pub mod vllm;

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
    /// Named figures: ttft_mean, tpot_p99, throughput_tps, bandwidth_gb_s...
    pub metrics: BTreeMap<String, f64>,
    /// Per-request samples when the tool reports them (ttft_ms, tpot_ms).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<f64>>,
    /// The unit of each metric that has one (ms, tokens/s, requests/s, s, requests).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub units: BTreeMap<String, String>,
    /// File name of the raw output beside the record.
    pub raw: String,
    /// What the figures were measured on and with (absent in records of earlier releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// An analysis's intervals, each with its n and method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<Interval>,
    /// An analysis's test of each result it read (the dip test per result), corrected as a family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<ResultTest>,
    /// A `pareto` analysis's front: the ids of the patterns on it, by increasing throughput per GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub front: Vec<String>,
    /// The server launch an E2E result was measured in (absent for tool steps, analyses and earlier releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchStart>,
}

/// A server launch as its results record it: the start-up it paid, which the cost per
/// token shares out among the results measured after it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LaunchStart {
    /// The launch number of the apply that ran it (the plan's numbering).
    pub number: u32,
    /// Measured seconds from the start command to a healthy server.
    pub startup_seconds: f64,
    /// When the server was up (RFC 3339): tells apart two runs of launch N in different applies.
    pub up_at: String,
}

/// A 95% interval an analysis computed, with what it rests on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    /// What it bounds, as the metrics name it without a suffix: `ttft_mean_diff`, `ttft_mean_ratio`.
    pub quantity: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// The value meaning "no effect": 0 for a difference, 1 for a ratio.
    pub reference: f64,
    /// Values (pairs) the interval is computed from.
    pub n: usize,
    pub method: IntervalMethod,
}

/// How an interval was computed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IntervalMethod {
    /// Student's t interval of the mean (few values: a bootstrap would be too narrow).
    StudentT,
    /// Percentile bootstrap of the mean, seeded.
    BootstrapPercentile { resamples: usize },
}

impl IntervalMethod {
    pub fn describe(self) -> String {
        match self {
            IntervalMethod::StudentT => "Student t".into(),
            IntervalMethod::BootstrapPercentile { resamples } => format!("percentile bootstrap, {resamples} resamples"),
        }
    }
}

/// One result's test inside an analysis that tests many (the dip test of each
/// result's per-request samples), with its p-value corrected over the family.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultTest {
    /// The result tested; None when the analysis pooled the results' values (no per-request samples).
    pub result: Option<String>,
    /// The samples tested: the name of the result's samples (`ttft_ms`), or the metric pooled (`ttft_mean`).
    pub sample: String,
    /// The pooled values, when `result` is None (a result's samples stay in its record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    pub n: usize,
    /// The test statistic (Hartigan's dip).
    pub statistic: f64,
    pub p_value: f64,
    /// The p-value after `correction` over every result the analysis tested.
    pub p_adjusted: f64,
    pub correction: Correction,
    pub alpha: f64,
    /// Adjusted p-value below alpha.
    pub flagged: bool,
    /// Where the two-component split falls (the seed's phase A/B boundary).
    pub split: Option<f64>,
}

/// A multiple-testing correction.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm's step-down adjustment: family-wise error at alpha.
    Holm,
}

impl Correction {
    pub fn as_str(self) -> &'static str {
        match self {
            Correction::Holm => "Holm",
        }
    }
}

/// Where a result came from: the provider, the machines as launched, and the
/// software versions read on them. Local runs are marked synthetic: their
/// figures come from stand-ins, not from the hardware the campaign describes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// `aws` or `local`.
    pub provider: String,
    pub synthetic: bool,
    pub stack: Option<String>,
    pub zone: Option<String>,
    /// As launched (a fallback type may differ from the first one declared); several when the nodes differ.
    pub instance_type: Option<String>,
    /// The machine image (AMI id).
    pub image: Option<String>,
    /// The model's Hugging Face id.
    pub model: Option<String>,
    /// Read on the first node (`vllm --version`, the `nixl` package); None when it could not be read.
    pub vllm_version: Option<String>,
    pub nixl_version: Option<String>,
    /// The nixl that ran the campaign.
    pub nixl_cli: String,
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
    /// A record already there (a `--replace`, a changed pattern) is kept under `superseded/`
    /// with its raw output, never overwritten.
    pub fn save(&self, rec: &ResultRecord, raw: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if let Some(old) = self.get(&rec.id) {
            self.supersede(&old)?;
        }
        crate::state::write_atomic(&self.dir.join(&rec.raw), raw)?;
        let json = serde_json::to_vec_pretty(rec).expect("record serialises");
        crate::state::write_atomic(&self.dir.join(format!("{}.json", rec.id)), &json)
    }

    /// Keeps the raw output of a run that is not a result (failed requests), for inspection.
    pub fn keep_raw(&self, name: &str, raw: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::state::write_atomic(&self.dir.join(name), raw)
    }

    /// Moves a record and its raw output to `superseded/`, named by when it finished.
    fn supersede(&self, old: &ResultRecord) -> std::io::Result<()> {
        let dir = self.dir.join("superseded");
        std::fs::create_dir_all(&dir)?;
        let stamp = old.finished_at.replace(':', "");
        if self.dir.join(&old.raw).exists() && !old.raw.is_empty() {
            std::fs::rename(self.dir.join(&old.raw), dir.join(format!("{}.{stamp}", old.raw)))?;
        }
        std::fs::rename(self.dir.join(format!("{}.json", old.id)), dir.join(format!("{}.{stamp}.json", old.id)))
    }

    /// Records a `--replace` or a change superseded, oldest first.
    pub fn superseded(&self) -> Vec<ResultRecord> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("superseded")) else { return vec![] };
        let mut out: Vec<ResultRecord> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a: &ResultRecord, b| a.finished_at.cmp(&b.finished_at));
        out
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

    /// The raw output a record names, if it has one and it is still there.
    pub fn raw(&self, rec: &ResultRecord) -> Option<Vec<u8>> {
        if rec.raw.is_empty() {
            return None;
        }
        std::fs::read(self.dir.join(&rec.raw)).ok()
    }

    pub fn get(&self, id: &str) -> Option<ResultRecord> {
        let b = std::fs::read(self.dir.join(format!("{id}.json"))).ok()?;
        serde_json::from_slice(&b).ok()
    }
}

/// How a setting's value is stored in a record: as the file writes it, strings unquoted
/// (`12K`, `4`, `efa`). Rules and the report compare levels by this text.
pub fn setting_text(v: &crate::check::value::Value) -> String {
    v.display().trim_matches('"').to_string()
}

/// Named figures and per-request samples of one result.
pub type Figures = (BTreeMap<String, f64>, BTreeMap<String, Vec<f64>>);

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
    fn reads_tool_figures_from_json_or_lines() {
        assert_eq!(parse_tool_output(br#"{"bandwidth_gb_s": 92.5, "note": "x"}"#)["bandwidth_gb_s"], 92.5);
        assert_eq!(parse_tool_output(b"latency_us: 12.5\nnoise\n")["latency_us"], 12.5);
    }
}
