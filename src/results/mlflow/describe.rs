//! What a result's MLflow run says: its params, tags, metrics and times, named
//! as the seed named them, with the result's provenance and units as tags.

use crate::results::{Provenance, ResultKind, ResultRecord};

/// Tags that find a result's run again: its id and content hash (the run's key).
pub const TAG_PATTERN: &str = "nixl_pattern_id";
pub const TAG_HASH: &str = "nixl_hash";
/// Prefix of the provenance tags (`nixl.provider`, `nixl.instance_type`...) and of the units (`nixl.unit.ttft_mean`).
const TAG_PREFIX: &str = "nixl.";
/// Older MLflow servers keep params of at most 500 characters.
const PARAM_CHARS: usize = 500;
/// The settings an analysis run shows: what it computed and from what, never the
/// experiment's server settings (ports) that every result inherits.
const ANALYSIS_PARAMS: [&str; 4] = ["analysis", "method", "inputs", "layer"];

pub type Pairs = Vec<(String, String)>;

/// Params, tags and metrics of a result's run.
#[derive(Debug, Default, PartialEq)]
pub struct Described {
    pub params: Pairs,
    pub tags: Pairs,
    pub metrics: Vec<(String, f64)>,
}

/// The seed's layer tag of each low-level tool (seed 002, section 5.2).
fn seed_tool_layer(tool: &str) -> Option<&'static str> {
    match tool {
        "fi_pingpong" | "fi_rma_pingpong" | "fi_rdm_pingpong" => Some("L0"),
        "nixlbench" => Some("L1"),
        "kvbench" => Some("L2"),
        "ucx_perftest" => Some("L3"),
        _ => None,
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A setting's text, None when unset or `none`.
fn setting(rec: &ResultRecord, key: &str) -> Option<String> {
    rec.settings.get(key).map(text).filter(|s| !s.is_empty() && s != "none")
}

/// Params, tags and metrics of a result.
pub fn describe(rec: &ResultRecord) -> Described {
    let tool = setting(rec, "tool");
    let rename = metric_namer(rec, tool.as_deref());
    let metrics = rec.metrics.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| rename(k, *v)).collect();
    let mut tags = key_tags(rec, tool.as_deref());
    tags.extend(provenance_tags(rec.provenance.as_ref()));
    // A unit belongs to the name the metric is logged under.
    tags.extend(rec.units.iter().map(|(k, unit)| (format!("{TAG_PREFIX}unit.{}", rename(k, 0.0).0), unit.clone())));
    Described { params: params(rec), tags, metrics }
}

/// `pattern_id`, the model, and the pattern's settings (an analysis: only its own).
fn params(rec: &ResultRecord) -> Pairs {
    let mut params: Pairs = vec![("pattern_id".into(), rec.id.clone())];
    if let Some(m) = rec.provenance.as_ref().and_then(|p| p.model.clone()) {
        params.push(("model".into(), m));
    }
    let analysis = rec.kind == ResultKind::Analysis;
    for (k, v) in &rec.settings {
        if !analysis || ANALYSIS_PARAMS.contains(&k.as_str()) {
            params.push((k.clone(), text(v).chars().take(PARAM_CHARS).collect()));
        }
    }
    params
}

/// The run's key, and what the seed tagged: layer, kind, mode, transport, tool.
fn key_tags(rec: &ResultRecord, tool: Option<&str>) -> Pairs {
    let mut tags: Pairs = vec![
        ("layer".into(), rec.layer.clone()),
        ("kind".into(), rec.kind.as_str().to_string()),
        (TAG_PATTERN.into(), rec.id.clone()),
        (TAG_HASH.into(), rec.hash.clone()),
    ];
    for k in ["mode", "transport"] {
        if let Some(v) = setting(rec, k) {
            tags.push((k.into(), v));
        }
    }
    if let Some(t) = tool {
        tags.push(("tool".into(), t.to_string()));
        if let Some(l) = seed_tool_layer(t) {
            tags.push(("tool_layer".into(), l.into()));
        }
        if t == "nixlbench" {
            if let Some(tok) = setting(rec, "tokens") {
                tags.push(("kv_cache_equivalent_tokens".into(), tok));
            }
        }
    }
    tags
}

/// One `nixl.<field>` tag per provenance field that is known (a version that
/// could not be read on the node has no tag). Records of earlier releases have none.
fn provenance_tags(p: Option<&Provenance>) -> Pairs {
    let Some(p) = p else { return vec![] };
    let known: [(&str, Option<&String>); 8] = [
        ("provider", Some(&p.provider)),
        ("stack", p.stack.as_ref()),
        ("zone", p.zone.as_ref()),
        ("instance_type", p.instance_type.as_ref()),
        ("image", p.image.as_ref()),
        ("model", p.model.as_ref()),
        ("vllm_version", p.vllm_version.as_ref()),
        ("nixl_version", p.nixl_version.as_ref()),
    ];
    let mut tags: Pairs = known
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (format!("{TAG_PREFIX}{k}"), v.clone())))
        .collect();
    tags.push((format!("{TAG_PREFIX}synthetic"), p.synthetic.to_string()));
    tags.push((format!("{TAG_PREFIX}nixl_cli"), p.nixl_cli.clone()));
    tags
}

/// How a metric is named in MLflow: fi_pingpong's figures carry the message size
/// in their names as in the seed (`latency_us_64b`, `bandwidth_mbps_64b` in MB/s).
fn metric_namer(rec: &ResultRecord, tool: Option<&str>) -> impl Fn(&str, f64) -> (String, f64) {
    let pingpong = tool.is_some_and(|t| t.contains("pingpong"));
    let size = setting(rec, "size").map(|s| s.to_lowercase()).filter(|_| pingpong);
    move |k, v| match (size.as_deref(), k) {
        (Some(s), "latency_us") => (format!("latency_us_{s}"), v),
        (Some(s), "bandwidth_gb_s") => (format!("bandwidth_mbps_{s}"), v * 1000.0),
        _ => (k.to_string(), v),
    }
}

/// A run's start and end, in milliseconds since the epoch, from the measurement:
/// it ended at `finished_at` and took `seconds`. None when the record has no
/// readable time (records written by hand, or by tests).
pub fn run_times(rec: &ResultRecord) -> Option<(i64, i64)> {
    let end = i64::try_from(crate::state::lock::parse_utc(&rec.finished_at)?).ok()? * 1000;
    let took = if rec.seconds.is_finite() && rec.seconds > 0.0 { (rec.seconds * 1000.0).round() as i64 } else { 0 };
    Some((end - took, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn rec(tool: &str, size: &str) -> ResultRecord {
        let mut settings = BTreeMap::new();
        settings.insert("tool".into(), json!(tool));
        settings.insert("size".into(), json!(size));
        ResultRecord {
            id: "p-ll".into(),
            hash: "h".into(),
            layer: "L5".into(),
            kind: ResultKind::Step,
            finished_at: String::new(),
            seconds: 1.0,
            settings,
            metrics: [("latency_us".to_string(), 12.0), ("bandwidth_gb_s".to_string(), 1.5)].into(),
            samples: BTreeMap::new(),
            units: BTreeMap::new(),
            raw: String::new(),
            provenance: None,
            intervals: vec![],
            tests: vec![],
            front: vec![],
            launch: None,
        }
    }

    fn has(pairs: &Pairs, k: &str, v: &str) -> bool {
        pairs.contains(&(k.to_string(), v.to_string()))
    }

    #[test]
    fn pingpong_metrics_carry_the_message_size_as_in_the_seed() {
        let mut r = rec("fi_pingpong", "64B");
        r.units.insert("latency_us".into(), "us".into());
        let d = describe(&r);
        assert!(d.metrics.contains(&("latency_us_64b".to_string(), 12.0)), "{:?}", d.metrics);
        assert!(d.metrics.contains(&("bandwidth_mbps_64b".to_string(), 1500.0)), "{:?}", d.metrics);
        assert!(has(&d.tags, "tool_layer", "L0"));
        assert!(has(&d.tags, "nixl.unit.latency_us_64b", "us"), "{:?}", d.tags);
        let d = describe(&rec("ucx_perftest", "1MiB"));
        assert!(d.metrics.contains(&("latency_us".to_string(), 12.0)));
    }

    #[test]
    fn every_known_provenance_field_is_a_tag_and_the_model_a_param() {
        let mut r = rec("nixlbench", "1MiB");
        r.provenance = Some(Provenance {
            provider: "aws".into(),
            synthetic: false,
            stack: Some("nixl-efa".into()),
            zone: Some("us-west-2b".into()),
            instance_type: Some("p5.48xlarge".into()),
            image: Some("ami-0abc".into()),
            model: Some("Qwen/Qwen2.5-7B-Instruct".into()),
            vllm_version: Some("0.11.0".into()),
            nixl_version: None,
            nixl_cli: "0.1.0".into(),
        });
        let d = describe(&r);
        for (k, v) in [
            ("nixl.provider", "aws"),
            ("nixl.synthetic", "false"),
            ("nixl.stack", "nixl-efa"),
            ("nixl.zone", "us-west-2b"),
            ("nixl.instance_type", "p5.48xlarge"),
            ("nixl.image", "ami-0abc"),
            ("nixl.model", "Qwen/Qwen2.5-7B-Instruct"),
            ("nixl.vllm_version", "0.11.0"),
            ("nixl.nixl_cli", "0.1.0"),
        ] {
            assert!(has(&d.tags, k, v), "{k}={v} missing from {:?}", d.tags);
        }
        assert!(!d.tags.iter().any(|(k, _)| k == "nixl.nixl_version"), "an unread version has no tag");
        assert!(has(&d.params, "model", "Qwen/Qwen2.5-7B-Instruct"));
    }

    #[test]
    fn an_analysis_run_shows_its_method_not_the_server_settings() {
        let mut r = rec("", "");
        r.kind = ResultKind::Analysis;
        r.settings = [
            ("analysis", "efa-vs-unified"),
            ("method", "compare(ttft_mean, a = L2-EFA, b = L1-Unified)"),
            ("inputs", "L2-EFA, L1-Unified"),
            ("layer", "L4-Analysis"),
            ("proxy_port", "18000"),
            ("decode_port", "18200"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
        let d = describe(&r);
        let keys: Vec<&str> = d.params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["pattern_id", "analysis", "inputs", "layer", "method"]);
    }

    #[test]
    fn a_run_spans_the_measurement() {
        let mut r = rec("nixlbench", "1MiB");
        r.finished_at = "2026-03-02T00:00:10Z".into();
        r.seconds = 2.5;
        let end = 1_772_409_610_000;
        assert_eq!(run_times(&r), Some((end - 2_500, end)));
        r.finished_at = String::new();
        assert_eq!(run_times(&r), None);
    }
}
