//! KV-transfer telemetry of a disaggregated pattern, from the decode and prefill servers'
//! Prometheus metrics read before and after the benchmark (vLLM 0.16's NixlConnector
//! histograms and counters, its prompt-token counters by source, its finished requests),
//! and the guards that fail a pattern whose figures cannot be what was declared: the
//! latency of a "disaggregated" run in which no KV moved, in which the decode server
//! prefilled the prompt itself, or whose prefill servers computed KV no decode server read,
//! measures something else.
//!
//! Who reports what in vLLM 0.16 (`nixl_connector.py`): the decode side READs the KV, so
//! only its workers record the transfers (`vllm:nixl_bytes_transferred`,
//! `vllm:nixl_xfer_time_seconds`, `vllm:nixl_num_failed_transfers`); the executor sums every
//! rank's records (`KVOutputAggregator`), so at TP > 1 the bytes are all ranks' and there is
//! one transfer per rank. The prefill side counts the requests whose KV it released unread
//! after `VLLM_NIXL_ABORT_REQUEST_TIMEOUT` (`vllm:nixl_num_kv_expired_reqs`, "tracked on the
//! P instance") and, like any server, the prompt tokens it computed and the requests it finished.

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
const EXPIRED: &str = "vllm:nixl_num_kv_expired_reqs_total";
const FINISHED: &str = "vllm:request_success_total";
const LOCAL_COMPUTE: &str = "source=\"local_compute\"";
const LOCAL_CACHE_HIT: &str = "source=\"local_cache_hit\"";

/// What grew between the two reads, as result metrics (units in [`unit`]). A counter the
/// server does not have is left out rather than taken as zero.
pub fn deltas(before: &str, after: &str, completed: u64) -> BTreeMap<String, f64> {
    let d = |name: &str, label: Option<&str>| Some(sample(after, name, label)? - sample(before, name, label).unwrap_or(0.0));
    let mut out = BTreeMap::new();
    let bytes = d(BYTES, None);
    let seconds = d(XFER_SECONDS, None);
    let external = d(BY_SOURCE, Some("source=\"external_kv_transfer\""));
    let local = d(BY_SOURCE, Some(LOCAL_COMPUTE));
    let cached = d(BY_SOURCE, Some(LOCAL_CACHE_HIT));
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
    // One READ's mean duration: each decode rank READs its share of a request's KV at once, so
    // this is the wait for a request's KV at any TP, where the sum over the ranks grows with TP.
    let transfers = d(TRANSFERS, None);
    put("kv_read_ms", seconds.zip(transfers).filter(|(_, n)| *n > 0.0).map(|(s, n)| s * 1000.0 / n));
    put("kv_gb_s", bytes.zip(seconds).filter(|(_, s)| *s > 0.0).map(|(b, s)| b / s / 1e9));
    put("kv_bytes_per_token", bytes.zip(external).filter(|(_, t)| *t > 0.0).map(|(b, t)| b / t));
    put("decode_prefill_tokens", local);
    put("decode_prompt_tokens", local.zip(external).map(|(l, e)| l + e + cached.unwrap_or(0.0)));
    out
}

/// What grew on the prefill servers between the two reads (their metrics read as one):
/// `prefill_prompt_tokens` they computed, `prefill_cached_tokens` their prefix cache held,
/// `prefill_requests` they finished (every `finished_reason`; the proxy's prefill requests
/// stop at one token), `prefill_kv_expired_requests` whose KV they released unread. A
/// counter the servers do not have is left out.
pub fn prefill_deltas(before: &str, after: &str) -> BTreeMap<String, f64> {
    let d = |name: &str, label: Option<&str>| Some(sample(after, name, label)? - sample(before, name, label).unwrap_or(0.0));
    let figures = [
        ("prefill_prompt_tokens", d(BY_SOURCE, Some(LOCAL_COMPUTE))),
        ("prefill_cached_tokens", d(BY_SOURCE, Some(LOCAL_CACHE_HIT))),
        ("prefill_requests", d(FINISHED, None)),
        ("prefill_kv_expired_requests", d(EXPIRED, None)),
    ];
    figures.into_iter().filter_map(|(k, v)| Some((k.to_string(), v.filter(|v| v.is_finite())?))).collect()
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
            // The prefill side says which: the prompt computed twice, or never on the prefill servers.
            let prefill = match m.get("prefill_prompt_tokens") {
                Some(p) if *p > 0.0 => format!(" (the prefill servers computed {p} as well: the prompt was prefilled twice)"),
                Some(_) => " (the prefill servers computed none: the prefill did not run on them)".to_string(),
                None => String::new(),
            };
            why.push(format!(
                "the decode server computed {local} of {all} prompt tokens itself: it re-did the prefill instead of using the transferred KV{prefill}"
            ));
        }
    }
    if let Some(n) = m.get("prefill_kv_expired_requests").filter(|n| **n > 0.0) {
        why.push(format!(
            "the prefill servers released the KV of {n} requests that no decode server read (vllm:nixl_num_kv_expired_reqs): their prefill was wasted"
        ));
    }
    why
}

/// What a transfer is compared with: the instance catalogue's fabric bandwidth (bits per
/// second, std/aws's `efa_bandwidth`) and the KV size per token a decode server reads over
/// all its ranks (2 x layers x kv_heads x head_dim x dtype bytes from std/models, times the
/// replication above `kv_heads` ranks: `LlmModel::kv_bytes_per_token_over_ranks` at the
/// pattern's decode TP).
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
        "kv_transfer_ms_per_request" | "kv_read_ms" => "ms",
        "kv_gb_s" => "GB/s",
        "decode_prefill_tokens" | "decode_prompt_tokens" | "prefill_prompt_tokens" | "prefill_cached_tokens" => "tokens",
        "prefill_requests" | "prefill_kv_expired_requests" => "requests",
        "prefill_efa_bytes" | "prefill_tcp_bytes" => "bytes",
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
        assert!((m["kv_read_ms"] - 5.0).abs() < 1e-9, "0.02 s over 4 READs");
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

    /// What std/vllm's `metrics` keeps of a vLLM 0.16 prefill server (NixlConnector producer):
    /// the transfer histograms are registered but only the reader (decode) side fills them.
    fn prefill_scrape(computed: f64, cached: f64, finished: f64, expired: f64) -> String {
        format!(
            "vllm:nixl_xfer_time_seconds_sum{{engine=\"0\",model_name=\"m\"}} 0.0\n\
             vllm:nixl_bytes_transferred_count{{engine=\"0\",model_name=\"m\"}} 0.0\n\
             vllm:nixl_bytes_transferred_sum{{engine=\"0\",model_name=\"m\"}} 0.0\n\
             vllm:nixl_num_failed_transfers_total{{engine=\"0\",model_name=\"m\"}} 0.0\n\
             vllm:nixl_num_kv_expired_reqs_total{{engine=\"0\",model_name=\"m\"}} {expired}\n\
             vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"m\",source=\"local_compute\"}} {computed}\n\
             vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"m\",source=\"local_cache_hit\"}} {cached}\n\
             vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"m\",source=\"external_kv_transfer\"}} 0.0\n\
             vllm:request_success_total{{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"}} 0.0\n\
             vllm:request_success_total{{engine=\"0\",finished_reason=\"length\",model_name=\"m\"}} {finished}\n\
             vllm:request_success_total{{engine=\"0\",finished_reason=\"abort\",model_name=\"m\"}} 0.0\n"
        )
    }

    #[test]
    fn prefill_deltas_are_the_prefill_servers_own_counters() {
        // Two prefill servers' reads, concatenated as apply reads them: summed per name.
        let before = prefill_scrape(640.0, 0.0, 10.0, 0.0) + &prefill_scrape(0.0, 0.0, 0.0, 0.0);
        let after = prefill_scrape(640.0 + 128.0, 16.0, 12.0, 0.0) + &prefill_scrape(192.0, 0.0, 3.0, 1.0);
        let m = prefill_deltas(&before, &after);
        assert_eq!(m["prefill_prompt_tokens"], 320.0);
        assert_eq!(m["prefill_cached_tokens"], 16.0);
        assert_eq!(m["prefill_requests"], 5.0);
        assert_eq!(m["prefill_kv_expired_requests"], 1.0);
        // Nothing of the decode side's names.
        assert!(!m.contains_key("kv_bytes") && !m.contains_key("decode_prefill_tokens"), "{m:?}");
        // A server without the NIXL counter: left out, not zero.
        assert!(!prefill_deltas("", "vllm:request_success_total{a=\"1\"} 3\n").contains_key("prefill_kv_expired_requests"));
        assert_eq!(unit("prefill_kv_expired_requests"), Some("requests"));
        assert_eq!(unit("prefill_prompt_tokens"), Some("tokens"));
    }

    #[test]
    fn the_prefill_side_fails_unread_kv_and_says_where_a_re_prefill_came_from() {
        let healthy_decode = deltas(&scrape(0.0, 0.0, 0.0, 0.0, 0.0), &scrape(4.0 * 64.0 * 65536.0, 4.0, 0.02, 4.0, 252.0), 4);
        let with = |prefill: BTreeMap<String, f64>| healthy_decode.clone().into_iter().chain(prefill).collect();
        // Healthy on both sides: the prefill servers computed the 256 prompt tokens, none expired.
        let m: BTreeMap<String, f64> =
            with(prefill_deltas(&prefill_scrape(0.0, 0.0, 0.0, 0.0), &prefill_scrape(256.0, 0.0, 4.0, 0.0)));
        assert!(guard_failures(&m).is_empty(), "{:?}", guard_failures(&m));
        // KV released unread on the prefill side: failed with the prefill guard's reason alone.
        let m: BTreeMap<String, f64> =
            with(prefill_deltas(&prefill_scrape(0.0, 0.0, 0.0, 0.0), &prefill_scrape(256.0, 0.0, 4.0, 2.0)));
        let why = guard_failures(&m);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("released the KV of 2 requests that no decode server read"), "{why:?}");
        // The decode re-did the prefill: the prefill side says whether it ran too.
        let redo = deltas(&scrape(0.0, 0.0, 0.0, 0.0, 0.0), &scrape(1e6, 4.0, 0.01, 256.0, 0.0), 4);
        let twice: BTreeMap<String, f64> =
            redo.clone().into_iter().chain(prefill_deltas("", &prefill_scrape(256.0, 0.0, 4.0, 0.0))).collect();
        assert!(guard_failures(&twice).iter().any(|w| w.contains("computed 256 as well: the prompt was prefilled twice")));
        let bypassed: BTreeMap<String, f64> =
            redo.clone().into_iter().chain(prefill_deltas("", &prefill_scrape(0.0, 0.0, 0.0, 0.0))).collect();
        assert!(guard_failures(&bypassed).iter().any(|w| w.contains("the prefill servers computed none")));
        assert!(guard_failures(&redo).iter().all(|w| !w.contains("prefill servers")), "no prefill read, no claim about it");
    }

    #[test]
    fn a_sample_name_is_not_matched_by_a_longer_one() {
        let text = "vllm:nixl_bytes_transferred_sum_other{a=\"1\"} 5\nvllm:nixl_bytes_transferred_sum 7\n";
        assert_eq!(sample(text, BYTES, None), Some(7.0));
    }
}
