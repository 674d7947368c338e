//! KV-transfer telemetry of a disaggregated pattern, from the decode server's Prometheus
//! metrics read before and after the benchmark (vLLM 0.16's NixlConnector histograms and
//! its prompt-token counters by source), and the guards that fail a pattern whose figures
//! cannot be what was declared: the latency of a "disaggregated" run in which no KV moved,
//! or in which the decode server prefilled the prompt itself, measures something else.

use std::collections::BTreeMap;

/// The sum over every label set of one sample name (`vllm:nixl_bytes_transferred_sum`), or
/// of the label sets carrying `label` (`source="local_compute"`). None when absent.
pub fn sample(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some((labels, v)) => (labels, v),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue, // a longer name with this prefix
        };
        if label.is_some_and(|l| !labels.split(',').any(|x| x.trim() == l)) {
            continue;
        }
        let Some(v) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        *total.get_or_insert(0.0) += v;
    }
    total
}

const BYTES: &str = "vllm:nixl_bytes_transferred_sum";
const TRANSFERS: &str = "vllm:nixl_bytes_transferred_count";
const XFER_SECONDS: &str = "vllm:nixl_xfer_time_seconds_sum";
const FAILED: &str = "vllm:nixl_num_failed_transfers_total";
const BY_SOURCE: &str = "vllm:prompt_tokens_by_source_total";

/// What grew between the two reads, as result metrics (units in [`unit`]). A counter the
/// server does not have is left out rather than taken as zero.
pub fn deltas(before: &str, after: &str, completed: u64) -> BTreeMap<String, f64> {
    let d = |name: &str, label: Option<&str>| Some(sample(after, name, label)? - sample(before, name, label).unwrap_or(0.0));
    let mut out = BTreeMap::new();
    let bytes = d(BYTES, None);
    let seconds = d(XFER_SECONDS, None);
    let external = d(BY_SOURCE, Some("source=\"external_kv_transfer\""));
    let local = d(BY_SOURCE, Some("source=\"local_compute\""));
    let cached = d(BY_SOURCE, Some("source=\"local_cache_hit\""));
    let mut put = |k: &str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.insert(k.to_string(), v);
        }
    };
    put("kv_bytes", bytes);
    put("kv_transfers", d(TRANSFERS, None));
    put("kv_failed_transfers", d(FAILED, None));
    if completed > 0 {
        put("kv_transfer_ms_per_request", seconds.map(|s| s * 1000.0 / completed as f64));
    }
    put("kv_gb_s", bytes.zip(seconds).filter(|(_, s)| *s > 0.0).map(|(b, s)| b / s / 1e9));
    put("kv_bytes_per_token", bytes.zip(external).filter(|(_, t)| *t > 0.0).map(|(b, t)| b / t));
    put("decode_prefill_tokens", local);
    put("decode_prompt_tokens", local.zip(external).map(|(l, e)| l + e + cached.unwrap_or(0.0)));
    out
}

/// A decode server that computed more than this share of the prompt tokens did the prefill
/// itself. A healthy NixlConnector consumer computes one token per request.
pub const MAX_DECODE_PREFILL_SHARE: f64 = 0.5;

/// Why a disaggregated pattern's figures are not a disaggregated measurement, if they are not.
pub fn guard_failures(m: &BTreeMap<String, f64>) -> Vec<String> {
    let mut why = vec![];
    match m.get("kv_bytes") {
        None => why.push(
            "the decode server reports no NIXL transfer metrics (vllm:nixl_bytes_transferred): is NixlConnector configured?"
                .to_string(),
        ),
        Some(b) if *b <= 0.0 => {
            why.push("no KV bytes were transferred to the decode server (vllm:nixl_bytes_transferred did not grow)".to_string())
        }
        Some(_) => {}
    }
    if let Some(f) = m.get("kv_failed_transfers").filter(|f| **f > 0.0) {
        why.push(format!("{f} NIXL transfers failed on the decode server"));
    }
    if let (Some(local), Some(all)) = (m.get("decode_prefill_tokens"), m.get("decode_prompt_tokens")) {
        if *all > 0.0 && local / all > MAX_DECODE_PREFILL_SHARE {
            why.push(format!(
                "the decode server computed {local} of {all} prompt tokens itself: it re-did the prefill instead of using the transferred KV"
            ));
        }
    }
    why
}

/// What a transfer is compared with: the instance catalogue's fabric bandwidth (bits per
/// second, std/aws's `efa_bandwidth`) and the model's computed KV size per token (2 x layers
/// x kv_heads x head_dim x dtype bytes, std/models).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference {
    pub fabric_bits_per_s: Option<f64>,
    pub kv_bytes_per_token: Option<f64>,
}

/// `kv_fabric_share`: the achieved KV GB/s over the fabric's bandwidth in the same unit;
/// `kv_bytes_per_token_ratio`: the bytes moved per transferred token over the model's KV
/// size per token (1 when exactly the model's KV crossed; more when the connector counts
/// the token each request computes itself, far from 1 when another model or dtype ran).
pub fn against(reference: Reference, m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let fabric_gb_s = reference.fabric_bits_per_s.filter(|b| *b > 0.0).map(|b| b / 8.0 / 1e9);
    if let (Some(gb_s), Some(fabric)) = (m.get("kv_gb_s"), fabric_gb_s) {
        out.insert("kv_fabric_share".to_string(), gb_s / fabric);
    }
    if let (Some(per_token), Some(model)) = (m.get("kv_bytes_per_token"), reference.kv_bytes_per_token.filter(|k| *k > 0.0)) {
        out.insert("kv_bytes_per_token_ratio".to_string(), per_token / model);
    }
    out
}

/// The unit of a telemetry metric.
pub fn unit(metric: &str) -> Option<&'static str> {
    Some(match metric {
        "kv_bytes" | "kv_bytes_per_token" | "efa_bytes" | "tcp_bytes" => "bytes",
        "kv_fabric_share" | "kv_bytes_per_token_ratio" => "fraction",
        "kv_transfers" | "kv_failed_transfers" => "transfers",
        "kv_transfer_ms_per_request" => "ms",
        "kv_gb_s" => "GB/s",
        "decode_prefill_tokens" | "decode_prompt_tokens" => "tokens",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(bytes: f64, xfers: f64, secs: f64, local: f64, external: f64) -> String {
        format!(
            "# TYPE vllm:nixl_bytes_transferred histogram\n\
             vllm:nixl_bytes_transferred_count{{engine=\"0\",model_name=\"m\"}} {xfers}\n\
             vllm:nixl_bytes_transferred_sum{{engine=\"0\",model_name=\"m\"}} {bytes}\n\
             vllm:nixl_xfer_time_seconds_sum{{engine=\"0\",model_name=\"m\"}} {secs}\n\
             vllm:nixl_num_failed_transfers_total{{engine=\"0\",model_name=\"m\"}} 0.0\n\
             vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"m\",source=\"local_compute\"}} {local}\n\
             vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"m\",source=\"local_cache_hit\"}} 0.0\n\
             vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"m\",source=\"external_kv_transfer\"}} {external}\n"
        )
    }

    #[test]
    fn deltas_of_a_healthy_transfer_pass_the_guards() {
        let before = scrape(1e6, 2.0, 0.01, 2.0, 126.0);
        let after = scrape(1e6 + 4.0 * 64.0 * 65536.0, 6.0, 0.03, 6.0, 126.0 + 252.0);
        let m = deltas(&before, &after, 4);
        assert_eq!(m["kv_bytes"], 4.0 * 64.0 * 65536.0);
        assert_eq!(m["kv_transfers"], 4.0);
        assert!((m["kv_transfer_ms_per_request"] - 5.0).abs() < 1e-9);
        assert!((m["kv_gb_s"] - 4.0 * 64.0 * 65536.0 / 0.02 / 1e9).abs() < 1e-9);
        assert_eq!(m["decode_prefill_tokens"], 4.0);
        assert_eq!(m["decode_prompt_tokens"], 256.0);
        assert!(guard_failures(&m).is_empty(), "{:?}", guard_failures(&m));
    }

    #[test]
    fn each_guard_fires_on_its_own_fault() {
        let before = scrape(0.0, 0.0, 0.0, 0.0, 0.0);
        // No bytes moved, the decode server prefilled everything.
        let m = deltas(&before, &scrape(0.0, 0.0, 0.0, 256.0, 0.0), 4);
        let why = guard_failures(&m);
        assert!(why.iter().any(|w| w.contains("no KV bytes")), "{why:?}");
        assert!(why.iter().any(|w| w.contains("re-did the prefill")), "{why:?}");
        // Bytes moved, and the decode server prefilled again anyway.
        let m = deltas(&before, &scrape(1e6, 4.0, 0.01, 256.0, 252.0), 4);
        assert_eq!(guard_failures(&m).len(), 1);
        assert!(guard_failures(&m)[0].contains("computed 256 of 508"), "{:?}", guard_failures(&m));
        // No connector metrics at all.
        assert!(guard_failures(&deltas("", "", 4))[0].contains("NixlConnector"));
    }

    #[test]
    fn a_transfer_against_the_catalogue() {
        // 2.5 GB/s on g6e.12xlarge's 100 Gbps (12.5 GB/s); 57,344 B per token against Qwen2.5-7B's 57,344.
        let m = BTreeMap::from([("kv_gb_s".to_string(), 2.5), ("kv_bytes_per_token".to_string(), 57344.0 * 64.0 / 63.0)]);
        let r = Reference { fabric_bits_per_s: Some(100e9), kv_bytes_per_token: Some(57344.0) };
        let out = against(r, &m);
        assert_eq!(out["kv_fabric_share"], 0.2);
        assert!((out["kv_bytes_per_token_ratio"] - 64.0 / 63.0).abs() < 1e-12);
        assert!(against(Reference::default(), &m).is_empty(), "nothing to compare with, no figure");
    }

    #[test]
    fn a_sample_name_is_not_matched_by_a_longer_one() {
        let text = "vllm:nixl_bytes_transferred_sum_other{a=\"1\"} 5\nvllm:nixl_bytes_transferred_sum 7\n";
        assert_eq!(sample(text, BYTES, None), Some(7.0));
    }
}
