//! Transport counters, GPU memory and the wrong-interface guard, end to end: std/vllm's
//! `transport_counters` reads the decode and the prefill nodes' sysfs byte counters (the
//! engine emulator keeps them in the kernel's layout under the node's `sys/`,
//! NIXL_SYSFS_ROOT; with its side channel on, the prefill node sends each READ's bytes)
//! around a disaggregated pattern declared over EFA, and its `gpu_memory` asks nvidia-smi
//! (the stand-in in tests/support/vllm_world/bin, fed by the emulator) after it. A healthy
//! run records the figures of both ends; KV that crossed TCP instead
//! (NIXL_EMULATOR_KV_FAULT=tcp_fallback) fails the pattern, the reason naming both ends.

use crate::local::{text, PORTS};
use crate::support::{nixl, scratch};
use crate::vllm_world::{venv, world_apply, CAMPAIGN};
use std::path::{Path, PathBuf};

const TCP_LAYER: &str = r#"  layer "TCP" {
    mode      = disaggregated
    transport = tcp
    id        = "w-tcp-{prompt}"
  }
"#;

const EFA_LAYER: &str = r#"  layer "EFA" {
    mode      = disaggregated
    transport = efa
    id        = "w-efa-{prompt}"
  }
"#;

/// Qwen2.5-7B's KV bytes per token (2 x 28 layers x 4 KV heads x 128 x 2 bytes), the model the
/// world campaign declares; the emulator is told to move as many.
const QWEN_7B_KV: f64 = 2.0 * 28.0 * 4.0 * 128.0 * 2.0;

/// The world campaign with one disaggregated layer over EFA, one prompt of 64 tokens, and
/// the counters read from the emulator's sysfs tree in each node's directory.
fn campaign(hf: &Path) -> String {
    let u_layer = "  layer \"U\" {\n    mode = unified\n    id   = \"w-u-{prompt}\"\n  }\n";
    assert!(CAMPAIGN.contains(u_layer) && CAMPAIGN.contains(TCP_LAYER));
    CAMPAIGN
        .replace("hf_home = \"HF_HOME_DIR\",", &format!("hf_home = \"{}\",", hf.display()))
        .replace(u_layer, "")
        .replace(TCP_LAYER, EFA_LAYER)
        .replace("factor prompt      = [64, 512]", "factor prompt      = [64]")
}

/// The apply's output, its directory, and the decode node's EFA rx_bytes file as the
/// emulator left it (read before destroy removes the nodes).
fn run(name: &str, fault: &str) -> (std::process::Output, PathBuf, String) {
    let venv = venv().expect("checked by the caller");
    let dir = scratch(name);
    std::fs::write(dir.join("world.nixl"), campaign(&dir.join("hf"))).unwrap();
    let env = [
        ("NIXL_EMULATOR_KV_FAULT", fault),
        ("NIXL_EMULATOR_SYSFS_ROOT", "sys"),
        ("NIXL_SYSFS_ROOT", "sys"),
        ("NIXL_FAKE_GPU_DIR", "gpus"),
        ("NIXL_EMULATOR_KV_BYTES_PER_TOKEN", "57344"),
        ("NIXL_EMULATOR_KV_HEADS", "4"),
        ("NIXL_EMULATOR_SIDE_CHANNEL", "1"),
        ("VLLM_NIXL_SIDE_CHANNEL_PORT", "18177"),
    ];
    let out = world_apply(&dir, &venv, &env);
    let efa_rx = dir.join(".nixl/world/local/nodes/node2/sys/class/infiniband/rdmap0s31/ports/1/hw_counters/rx_bytes");
    let efa_rx = std::fs::read_to_string(efa_rx).unwrap_or_default();
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    (out, dir, efa_rx)
}

#[test]
fn efa_counters_and_gpu_memory_are_recorded_and_kv_over_tcp_fails_an_efa_pattern() {
    if venv().is_none() {
        return;
    }
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());

    // Healthy: the KV crossed the EFA device, the requests the ENI.
    let (out, dir, efa_rx) = run("transport-guards-healthy", "");
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world/w-efa-64.json")).unwrap()).unwrap();
    let m = &rec["metrics"];
    let f = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("no {k} in {m}"));
    let transfers = f("kv_transfers");
    assert!(transfers >= 4.0, "{m}");
    assert_eq!(f("kv_bytes"), transfers * 64.0 * QWEN_7B_KV, "{m}");
    // Every pulled byte was received on the EFA device, and nothing else crossed it.
    assert_eq!(f("efa_bytes"), f("kv_bytes"), "{m}");
    // The ENI carried the completion requests' bodies: some bytes, far fewer than the KV.
    assert!(f("tcp_bytes") > 0.0 && f("tcp_bytes") < f("kv_bytes") / 10.0, "{m}");
    // The prefill node sent every byte the decode node read on its own EFA device.
    assert_eq!(f("prefill_efa_bytes"), f("kv_bytes"), "{m}");
    assert!(f("prefill_tcp_bytes") > 0.0 && f("prefill_tcp_bytes") < f("kv_bytes") / 10.0, "{m}");
    assert_eq!(rec["units"]["prefill_efa_bytes"], "bytes");
    // g6e.12xlarge's 100 Gbps is 12.5 GB/s.
    assert!((f("kv_fabric_share") - f("kv_gb_s") / 12.5).abs() < 1e-12, "{m}");
    // 64 tokens' KV per request, 63 of them counted as transferred (the consumer computes the last).
    assert!((f("kv_bytes_per_token_ratio") - 64.0 / 63.0).abs() < 1e-12, "{m}");
    // The decode server at TP 1 holds 0.9 of one L40S (46068 MiB) of the node's four.
    assert_eq!(f("gpu_memory_used_mib"), (0.9f64 * 46068.0).floor(), "{m}");
    assert_eq!(f("gpu_memory_total_mib"), 4.0 * 46068.0, "{m}");
    assert!((f("gpu_memory_used_share") - 41461.0 / 184272.0).abs() < 1e-15, "{m}");
    // Per role, each node read on its own: the prefill node's server holds as much as the decode's.
    assert_eq!((f("prefill_gpu_memory_used_mib"), f("decode_gpu_memory_used_mib")), (41461.0, 41461.0), "{m}");
    assert_eq!(f("prefill_gpu_memory_total_mib"), 4.0 * 46068.0, "{m}");
    assert_eq!(rec["units"]["decode_gpu_memory_used_mib"], "MiB");
    assert_eq!(rec["units"]["efa_bytes"], "bytes");
    assert_eq!(rec["units"]["gpu_memory_used_mib"], "MiB");
    assert_eq!(rec["units"]["kv_fabric_share"], "fraction");
    // The counters are the kernel's format: one integer per file.
    assert!(efa_rx.ends_with('\n') && efa_rx.trim().parse::<u64>().is_ok_and(|n| n as f64 >= f("efa_bytes")), "{efa_rx:?}");

    // UCX fell back to TCP: the KV moved, the EFA counters did not.
    let (out, dir, _) = run("transport-guards-tcp-fallback", "tcp_fallback");
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    // Both ends show it: the decode node received the KV, the prefill node sent it, over TCP.
    assert!(
        t.contains("transport = efa was declared, but the KV went over TCP: on the decode nodes the EFA counters moved 0 bytes"),
        "{t}"
    );
    assert!(t.contains("; on the prefill nodes the EFA counters moved 0 bytes while the TCP interfaces carried"), "{t}");
    assert!(!t.contains("no KV bytes"), "the KV did move: {t}");
    assert!(!dir.join(".nixl/results/world/w-efa-64.json").exists(), "a guarded run is no result");
    let state = std::fs::read_to_string(dir.join(".nixl/world/state.json")).unwrap();
    assert!(state.contains("the KV went over TCP"), "the reason is kept in the state");
}
