//! KV-transfer telemetry and its guards, end to end: std/vllm's `metrics` command reads
//! the decode and the prefill servers' counters around each disaggregated pattern (the
//! emulator serves vLLM 0.16's NixlConnector metrics on both roles), a healthy run records
//! the transfer, each fault, on either side, fails its pattern with the guard's reason
//! instead of becoming a result, and at a decode TP above the model's KV heads the bytes
//! per token are compared with what the ranks hold together.

use crate::local::{text, PORTS};
use crate::support::{nixl, scratch};
use crate::vllm_world::{venv, world_apply, CAMPAIGN};
use std::path::Path;

const U_LAYER: &str = r#"  layer "U" {
    mode = unified
    id   = "w-u-{prompt}"
  }
"#;

/// The world campaign with its disaggregated (TCP) layer only, one prompt of 64 tokens.
fn campaign(hf: &Path) -> String {
    assert!(CAMPAIGN.contains(U_LAYER));
    CAMPAIGN
        .replace("HF_HOME_DIR", hf.to_str().unwrap())
        .replace(U_LAYER, "")
        .replace("factor prompt      = [64, 512]", "factor prompt      = [64]")
}

fn run(name: &str, fault: &str) -> (std::process::Output, std::path::PathBuf) {
    let (out, dir, _) = run_with(name, &[("NIXL_EMULATOR_KV_FAULT", fault)]);
    (out, dir)
}

/// The apply's output, its directory, and the prefill server's log (read before destroy
/// removes the nodes).
fn run_with(name: &str, env: &[(&str, &str)]) -> (std::process::Output, std::path::PathBuf, String) {
    let venv = venv().expect("checked by the caller");
    let dir = scratch(name);
    std::fs::write(dir.join("world.nixl"), campaign(&dir.join("hf"))).unwrap();
    let out = world_apply(&dir, &venv, env);
    let prefill_log = std::fs::read_to_string(dir.join(".nixl/world/local/nodes/node1/vllm-prefill.log")).unwrap_or_default();
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    (out, dir, prefill_log)
}

#[test]
fn kv_telemetry_is_recorded_and_each_kv_fault_fails_its_pattern_with_the_reason() {
    if venv().is_none() {
        return;
    }
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());

    // Healthy: the transfer's figures are in the result.
    let (out, dir) = run("kv-guards-healthy", "");
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world/w-tcp-64.json")).unwrap()).unwrap();
    let m = &rec["metrics"];
    let per_request = 64.0 * 262144.0; // the emulator's KV bytes per token (Qwen2.5-32B bf16), TP 1
    let bytes = m["kv_bytes"].as_f64().unwrap();
    let transfers = m["kv_transfers"].as_f64().unwrap();
    // Every request the client sent (its test request, warm-up and 4 measured) moved one prompt's KV.
    assert!(transfers >= 4.0 && bytes == transfers * per_request, "{m}");
    // The consumer computes the last prompt token itself, the other 63 come from the producer.
    assert_eq!(m["decode_prefill_tokens"].as_f64(), Some(transfers), "{m}");
    assert!((m["kv_bytes_per_token"].as_f64().unwrap() - 262144.0 * 64.0 / 63.0).abs() < 1e-6, "{m}");
    assert!(m["kv_gb_s"].as_f64().unwrap() > 0.0 && m["kv_transfer_ms_per_request"].as_f64().unwrap() > 0.0, "{m}");
    assert_eq!(rec["units"]["kv_bytes"], "bytes");
    // The prefill server's own counters: it computed every request's 64 prompt tokens (prefix
    // caching is off), finished each request the decode server took, and no KV expired.
    assert_eq!(m["prefill_prompt_tokens"].as_f64(), Some(64.0 * transfers), "{m}");
    assert_eq!(m["prefill_cached_tokens"].as_f64(), Some(0.0), "{m}");
    assert_eq!(m["prefill_requests"].as_f64(), Some(transfers), "{m}");
    assert_eq!(m["prefill_kv_expired_requests"].as_f64(), Some(0.0), "{m}");
    assert_eq!(rec["units"]["prefill_kv_expired_requests"], "requests");
    assert_eq!(rec["units"]["prefill_prompt_tokens"], "tokens");

    // The decode server ignores the producer's KV: no bytes, and it prefilled itself.
    let (out, dir) = run("kv-guards-none", "none_transferred");
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("not a disaggregated measurement") && t.contains("no KV bytes were transferred"), "{t}");
    assert!(t.contains("re-did the prefill"), "{t}");
    assert!(!dir.join(".nixl/results/world/w-tcp-64.json").exists(), "a guarded run is no result");
    let state = std::fs::read_to_string(dir.join(".nixl/world/state.json")).unwrap();
    assert!(state.contains("no KV bytes were transferred"), "the reason is kept in the state");

    // The KV moves, and the decode server prefills again anyway (vLLM #26896).
    let (out, _) = run("kv-guards-recompute", "recompute");
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("re-did the prefill") && !t.contains("no KV bytes"), "{t}");
    // The prefill side says the prompt was computed there too.
    assert!(t.contains("the prompt was prefilled twice"), "{t}");
}

#[test]
fn kv_the_prefill_server_released_unread_fails_the_pattern_with_the_prefill_guard_s_reason() {
    if venv().is_none() {
        return;
    }
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // The prefill server's side channel is down (its advertised address unreachable): with
    // the emulator's side channel on, every decode handshake fails, the decode server
    // recomputes, and the prefill server releases each request's KV unread once
    // VLLM_NIXL_ABORT_REQUEST_TIMEOUT (0 s here, 480 s by default) has passed.
    let side_channel =
        [("NIXL_EMULATOR_SIDE_CHANNEL", "1"), ("VLLM_NIXL_SIDE_CHANNEL_PORT", "18177"), ("VLLM_NIXL_ABORT_REQUEST_TIMEOUT", "0")];
    let fault = [&side_channel[..], &[("NIXL_EMULATOR_KV_FAULT", "side_channel_down")]].concat();
    let (out, dir, prefill_log) = run_with("kv-guards-side-channel-down", &fault);
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("not a disaggregated measurement"), "{t}");
    assert!(t.contains("the prefill servers released the KV of") && t.contains("requests that no decode server read"), "{t}");
    assert!(t.contains("NIXL transfers failed on the decode server") && t.contains("re-did the prefill"), "{t}");
    assert!(!dir.join(".nixl/results/world/w-tcp-64.json").exists(), "a guarded run is no result");
    // The prefill server logged NixlConnector's own warning for each request it released.
    assert!(prefill_log.contains("[nixl_connector.py:1976] Releasing expired KV blocks for request"), "{prefill_log}");

    // The same side channel up: every READ reaches the prefill server in time, nothing expires.
    let (out, dir, _) =
        run_with("kv-guards-side-channel-up", &[("NIXL_EMULATOR_SIDE_CHANNEL", "1"), ("VLLM_NIXL_SIDE_CHANNEL_PORT", "18177")]);
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world/w-tcp-64.json")).unwrap()).unwrap();
    assert_eq!(rec["metrics"]["prefill_kv_expired_requests"].as_f64(), Some(0.0), "{}", rec["metrics"]);
    assert_eq!(rec["metrics"]["kv_failed_transfers"].as_f64(), Some(0.0), "{}", rec["metrics"]);
}

/// A model with one KV head (multi-query attention), Qwen2.5-7B's other shapes: 14,336 B of KV
/// per token. At decode TP 2 vLLM gives each rank the one head (`max(1, 1 // 2)`), so the two
/// ranks hold, and read, 28,672 B per token together.
const MQA_MODEL: &str = r#"model mqa_7b {
  hf_id                   = "Qwen/Qwen2.5-7B-Instruct"
  layers                  = 28
  kv_heads                = 1
  head_dim                = 128
  dtype                   = bf16
  max_position_embeddings = 32768
  params                  = 7.6e9
}

experiment world {"#;

#[test]
fn at_a_decode_tp_above_the_kv_heads_the_bytes_per_token_are_compared_with_every_rank_s_heads() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("kv-guards-decode-tp");
    let file = campaign(&dir.join("hf"))
        .replace("experiment world {", MQA_MODEL)
        .replace("model  = qwen2_5_7b", "model  = mqa_7b")
        .replace("    transport = tcp\n", "    transport = tcp\n    decode_tp = 2\n");
    assert!(file.contains("model  = mqa_7b") && file.contains("decode_tp = 2"), "the world campaign changed: {file}");
    std::fs::write(dir.join("world.nixl"), file).unwrap();
    // The emulator holds the same model: 1 KV head, 14,336 B per token.
    let env = [("NIXL_EMULATOR_KV_HEADS", "1"), ("NIXL_EMULATOR_KV_BYTES_PER_TOKEN", "14336")];
    let out = world_apply(&dir, &venv, &env);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world/w-tcp-64.json")).unwrap()).unwrap();
    let m = &rec["metrics"];
    let f = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("no {k} in {m}"));
    // One request per decode_prefill_token; each rank READs once per request.
    let requests = f("decode_prefill_tokens");
    assert!(requests >= 4.0, "{m}");
    assert_eq!(f("kv_transfers"), 2.0 * requests, "{m}");
    // Both ranks' bytes: 64 tokens x 2 x 14,336 B per request.
    assert_eq!(f("kv_bytes"), requests * 64.0 * 2.0 * 14336.0, "{m}");
    // Against the two ranks' heads together, not the model's one head: 64/63, as at TP 1
    // (63 of the 64 tokens counted as transferred), where the model's KV alone gives twice that.
    assert!((f("kv_bytes_per_token_ratio") - 64.0 / 63.0).abs() < 1e-12, "{m}");
    // Each READ takes the emulator's pull time of 64 tokens (0.001 ms a token), whatever the TP;
    // the time summed over the ranks per request is twice that and more (warm-ups included).
    assert!((f("kv_read_ms") - 0.064).abs() < 1e-9, "{m}");
    assert!(f("kv_transfer_ms_per_request") >= 2.0 * 0.064, "{m}");
}

/// Completions a server's log shows it answered (uvicorn's access lines).
fn served(log: &Path) -> u64 {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains("POST /v1/completions")).count() as u64
}

#[test]
fn with_two_decode_servers_the_kv_figures_are_the_sum_over_both() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("kv-guards-1p2d");
    let text_1p2d = campaign(&dir.join("hf"))
        .replace("proxy_port = 18172", "proxy_port = 18179")
        .replace("    transport = tcp\n", "    transport = tcp\n    decode_nodes = 2\n");
    assert!(text_1p2d.contains("decode_nodes = 2") && text_1p2d.contains("18179"));
    std::fs::write(dir.join("world.nixl"), text_1p2d).unwrap();
    // Each node records its servers' GPU memory in its own directory (the nvidia-smi stand-in).
    let out = world_apply(&dir, &venv, &[("NIXL_FAKE_GPU_DIR", "gpus")]);
    let nodes = dir.join(".nixl/world/local/nodes");
    let by_decode = (served(&nodes.join("node2/vllm-decode.log")), served(&nodes.join("node3/vllm-decode.log")));
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world/w-tcp-64.json")).unwrap()).unwrap();
    let m = &rec["metrics"];
    let per_request = 64.0 * 262144.0;
    // Each decode server took about half the requests; each request moved one prompt's KV,
    // so the pattern's figures are the two servers' together, not the first one's.
    assert!(by_decode.0 >= 2 && by_decode.1 >= 2, "served {by_decode:?}");
    let transfers = m["kv_transfers"].as_f64().unwrap();
    assert_eq!(transfers, (by_decode.0 + by_decode.1) as f64, "{m} against served {by_decode:?}");
    assert_eq!(m["kv_bytes"].as_f64(), Some(transfers * per_request), "{m}");
    assert_eq!(m["decode_prefill_tokens"].as_f64(), Some(transfers), "{m}");
    // GPU memory per role: both decode nodes' servers (0.9 of one 46068 MiB GPU each), the
    // one prefill node's; `gpu_memory_used_mib` stays the first decode node's, as for 1P:1D.
    let one = (0.9f64 * 46068.0).floor();
    assert_eq!(m["decode_gpu_memory_used_mib"].as_f64(), Some(2.0 * one), "{m}");
    assert_eq!(m["prefill_gpu_memory_used_mib"].as_f64(), Some(one), "{m}");
    assert_eq!(m["gpu_memory_used_mib"].as_f64(), Some(one), "{m}");
}
