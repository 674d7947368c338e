//! KV-transfer telemetry and its guards, end to end: std/vllm's `metrics` command reads
//! the decode server's counters around each disaggregated pattern (the emulator serves
//! vLLM 0.16's NixlConnector metrics), a healthy run records the transfer, and each fault
//! fails its pattern with the guard's reason instead of becoming a result.

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
    let venv = venv().expect("checked by the caller");
    let dir = scratch(name);
    std::fs::write(dir.join("world.nixl"), campaign(&dir.join("hf"))).unwrap();
    let out = world_apply(&dir, &venv, &[("NIXL_EMULATOR_KV_FAULT", fault)]);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    (out, dir)
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
