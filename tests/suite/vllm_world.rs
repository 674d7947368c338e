//! The commands nixl sends, checked by the real vLLM 0.16.0: its own argument
//! parsers read every rendered `vllm serve` and `vllm bench serve` command, and a
//! local campaign runs std/vllm's own templates against the engine emulator
//! (tests/support/vllm_world) with the real `vllm bench serve` client.
//!
//! The venv (`pip install vllm==0.16.0`, made by .ci/run) is found at
//! NIXL_VLLM_VENV or ~/.cache/nixl-test/vllm-0.16.0. Without it these tests say so
//! and pass, unless NIXL_REQUIRE_VLLM=1 (set by .ci/run), where its absence fails.

use crate::local::{text, PORTS};
use crate::support::{nixl, root, scratch};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("NIXL_VLLM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/nixl-test/vllm-0.16.0"));
    if dir.join("bin/vllm").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("NIXL_REQUIRE_VLLM").as_deref() != Ok("1"),
        "vLLM 0.16.0 is required here but {} has no bin/vllm: run .ci/run",
        dir.display()
    );
    eprintln!("skipped: no vLLM venv at {} (python3 -m venv DIR && DIR/bin/pip install vllm==0.16.0)", dir.display());
    None
}

fn world() -> PathBuf {
    root().join("tests/support/vllm_world")
}

/// Runs check_args.py on script lines; returns (id, ok, error) per line.
pub(crate) fn parse_with_vllm(venv: &Path, lines: &[(String, String)]) -> Vec<(String, bool, String)> {
    let input: Vec<serde_json::Value> = lines.iter().map(|(id, l)| serde_json::json!({ "id": id, "line": l })).collect();
    let mut child = Command::new(venv.join("bin/python"))
        .arg(world().join("check_args.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("venv python");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check_args.py: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_string(),
                r["ok"] == true,
                r["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every distinct `vllm ...` line apply would send for the examples' E2E patterns.
fn rendered_vllm_lines(example: &str) -> Vec<(String, String)> {
    let loaded = nixl::pipeline::load(&root().join("examples").join(example));
    assert!(!loaded.check.has_errors(), "{example}: {:?}", loaded.check.diagnostics);
    let mut seen = BTreeSet::new();
    let mut out = vec![];
    for campaign in &loaded.campaigns {
        let vars = nixl::design::render::RenderVars::new(&["10.0.1.11", "10.0.1.12", "10.0.1.13"], "/here")
            .with_model(campaign.design.model.as_ref());
        for p in campaign.design.patterns.iter().filter(|p| p.category == nixl::design::Category::E2e) {
            let c = nixl::design::commands::for_pattern(&loaded.check.model, campaign, p, &vars).expect("renders");
            for s in &c.scripts {
                for line in s.body.lines().filter(|l| l.contains("vllm serve ") || l.contains("vllm bench serve ")) {
                    // The stop script's `pkill -f "vllm serve"` is not a vLLM command.
                    if line.trim_start().starts_with("pkill") || line.contains("pgrep") {
                        continue;
                    }
                    if seen.insert(line.to_string()) {
                        out.push((format!("{}:{}:{}", campaign.name(), p.id, s.role), line.to_string()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_vllm_command_rendered_for_phases_1_to_3_and_xpyd_parses_with_vllms_own_parser() {
    let Some(venv) = venv() else { return };
    let mut lines = rendered_vllm_lines("phase1.nixl");
    lines.extend(rendered_vllm_lines("phase2.nixl"));
    let rates: Vec<(String, String)> = rendered_vllm_lines("phase3-slo.nixl");
    assert!(
        rates.iter().any(|(_, l)| l.contains("--request-rate 2 "))
            && rates.iter().any(|(_, l)| l.contains("--request-rate inf "))
    );
    lines.extend(rates);
    // xPyD: per-role TP reaches each role's own command line.
    let xpyd = rendered_vllm_lines("xpyd.nixl");
    let with = |role: &str, flag: &str| xpyd.iter().any(|(id, l)| id.ends_with(role) && l.contains(flag));
    assert!(with(":prefill", "--tensor-parallel-size 2 ") && with(":decode", "--tensor-parallel-size 2 "), "{xpyd:#?}");
    assert!(with(":prefill", "--port 8101 ") && with(":decode", "--port 8201 "), "second servers of a role: {xpyd:#?}");
    assert!(with(":unified", "--tensor-parallel-size 4 "), "{xpyd:#?}");
    lines.extend(xpyd);
    let serve = lines.iter().filter(|(_, l)| l.contains("vllm serve ")).count();
    let bench = lines.len() - serve;
    eprintln!("{serve} distinct vllm serve and {bench} distinct vllm bench serve commands");
    assert!(serve >= 10 && bench >= 30, "too few commands: {serve} serve, {bench} bench");
    let bad: Vec<_> = parse_with_vllm(&venv, &lines).into_iter().filter(|(_, ok, _)| !ok).collect();
    assert!(bad.is_empty(), "vLLM 0.16.0 rejects: {bad:#?}");
}

#[test]
fn vllms_parser_rejects_a_misspelt_flag_and_a_bad_kv_transfer_config() {
    let Some(venv) = venv() else { return };
    let (_, good) = rendered_vllm_lines("phase2.nixl").into_iter().find(|(id, _)| id.ends_with(":prefill")).unwrap();
    let lines = vec![
        ("good".to_string(), good.clone()),
        ("misspelt".to_string(), good.replace("--max-model-len", "--max-model-lenn")),
        ("kv-role".to_string(), good.replace("kv_producer", "kv_prodcer")),
    ];
    let r = parse_with_vllm(&venv, &lines);
    assert!(r[0].1, "{r:?}");
    assert!(!r[1].1 && r[1].2.contains("--max-model-lenn"), "{r:?}");
    assert!(!r[2].1, "{r:?}");
}

/// A file setting every attribute of std/vllm's `args` table to a value other than its default.
const EVERY_ARG: &str = r#"
import "std/models"
import "std/vllm"

experiment every {
  model  = qwen2_5_7b
  server = vllm {
    tp = 2, max_model_len = 4096, gpu_memory_utilization = 0.85, max_num_batched_tokens = 2048,
    max_num_seqs = 99, enforce_eager = false, enable_chunked_prefill = false,
    enable_prefix_caching = true, block_size = 32, kv_cache_dtype = "fp8", dtype = "bfloat16",
    swap_space = 8, seed = 7,
  }
  bench = vllm_bench { warmup = 3, iterations = 5, max_tokens = 64, temperature = 0.5 }

  factor prompt      = [1K]
  factor concurrency = [4]

  layer "U" {
    mode = unified
    id   = "every-{prompt}"
  }
}
"#;

#[test]
fn every_attribute_of_std_vllm_reaches_its_flag_and_vllm_accepts_it() {
    let dir = scratch("vllm-every-arg");
    let file = dir.join("every.nixl");
    std::fs::write(&file, EVERY_ARG).unwrap();
    let out = nixl().args(["show", file.to_str().unwrap(), "every-1k", "--commands"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    let serve = shown.lines().find(|l| l.contains("vllm serve ")).expect("a vllm serve line").to_string();
    for flag in [
        "--tensor-parallel-size 2",
        "--max-model-len 4096",
        "--gpu-memory-utilization 0.85",
        "--max-num-batched-tokens 2048",
        "--max-num-seqs 99",
        "--no-enforce-eager",
        "--no-enable-chunked-prefill",
        "--enable-prefix-caching",
        "--block-size 32",
        "--kv-cache-dtype fp8",
        "--dtype bfloat16",
        "--swap-space 8",
        "--seed 7",
    ] {
        assert!(serve.contains(&format!("{flag} ")) || serve.contains(&format!("{flag}>")), "{flag} missing: {serve}");
    }
    let bench = shown.lines().find(|l| l.contains("vllm bench serve ")).expect("a bench line").to_string();
    for flag in ["--num-warmups 3", "--num-prompts 20", "--random-output-len 64", "--temperature 0.5", "--max-concurrency 4"] {
        assert!(bench.contains(flag), "{flag} missing: {bench}");
    }
    // An attribute std/vllm does not pass is an error with its span, not a silent no-op.
    std::fs::write(&file, EVERY_ARG.replace("swap_space = 8", "swap_spaces = 8")).unwrap();
    let out = nixl().args(["check", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("E0602") && text(&out).contains("`swap_spaces` reaches no command"), "{}", text(&out));
    let Some(venv) = venv() else { return };
    let r = parse_with_vllm(&venv, &[("serve".into(), serve), ("bench".into(), bench)]);
    assert!(r.iter().all(|(_, ok, _)| *ok), "{r:#?}");
}

/// The word-level tokenizer the real client uses here, made once per run.
fn tokenizer(venv: &Path) -> PathBuf {
    let dir = root().join("target/test-scratch/vllm-world-tokenizer");
    if !dir.join("tokenizer.json").is_file() {
        let out = Command::new(venv.join("bin/python")).arg(world().join("make_tokenizer.py")).arg(&dir).output().unwrap();
        assert!(out.status.success(), "make_tokenizer.py: {}", text(&out));
    }
    dir
}

pub(crate) const CAMPAIGN: &str = r#"
# std/vllm's own commands on this machine: `vllm serve` is the engine emulator,
# `vllm bench serve` the real vLLM 0.16.0 client (tests/support/vllm_world).
import "std/aws"
import "std/models"
import "std/vllm"

stack "world" {
  region        = "us-east-1"
  zones         = ["us-east-1a"]
  instance_type = "g6e.12xlarge"
  node "node1" {}
  node "node2" {}
}

experiment world {
  prefix = "w"
  model  = qwen2_5_7b
  server = vllm {
    tp = 1, max_model_len = 1024, port = 18170, prefill_port = 18170, decode_port = 18171,
    proxy_port = 18172, health_timeout = 60s, hf_home = "HF_HOME_DIR",
  }
  bench = vllm_bench { warmup = 1, iterations = 2, max_tokens = 16 }

  factor prompt      = [64, 512]
  factor concurrency = [2]

  restart_on = [mode, transport]
  duration   = 20s
  startup    = 5s

  layer "U" {
    mode = unified
    id   = "w-u-{prompt}"
  }
  layer "TCP" {
    mode      = disaggregated
    transport = tcp
    id        = "w-tcp-{prompt}"
  }
}
"#;

pub(crate) fn world_apply(dir: &Path, venv: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let path =
        format!("{}:{}:{}", world().join("bin").display(), venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let mut c = nixl();
    c.current_dir(dir)
        .args(["apply", "world.nixl", "--provider", "local", "--auto-approve"])
        .env("PATH", path)
        .env("NIXL_VLLM_VENV", venv)
        .env("NIXL_TEST_TOKENIZER", tokenizer(venv));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn a_local_campaign_runs_std_vllm_against_the_emulator_with_the_real_client() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("vllm-world-campaign");
    let hf = dir.join("hf");
    std::fs::write(dir.join("world.nixl"), CAMPAIGN.replace("HF_HOME_DIR", hf.to_str().unwrap())).unwrap();

    // A prompt that does not fit is caught by check, before any server starts.
    let too_long = CAMPAIGN.replace("max_model_len = 1024", "max_model_len = 500").replace("HF_HOME_DIR", hf.to_str().unwrap());
    std::fs::write(dir.join("world.nixl"), &too_long).unwrap();
    let out = world_apply(&dir, &venv, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("E0601") && text(&out).contains("needs 528 tokens"), "{}", text(&out));
    assert!(!dir.join(".nixl/world/local/nodes/node1/vllm-unified.log").exists(), "a server started");

    std::fs::write(dir.join("world.nixl"), CAMPAIGN.replace("HF_HOME_DIR", hf.to_str().unwrap())).unwrap();
    let out = world_apply(&dir, &venv, &[]);
    let log = std::fs::read_to_string(dir.join(".nixl/world/local/nodes/node2/vllm-decode.log")).unwrap_or_default();
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    // The stored raw results are vLLM's own JSON: 4 requests (2 rounds of 2), none failed.
    let results = dir.join(".nixl/results/world");
    let raws: Vec<PathBuf> = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".raw."))
        .collect();
    assert_eq!(raws.len(), 4, "{raws:?}");
    for r in &raws {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(r).unwrap()).unwrap();
        assert_eq!(
            (v["completed"].as_u64(), v["failed"].as_u64(), v["num_prompts"].as_u64()),
            (Some(4), Some(0), Some(4)),
            "{r:?}"
        );
        assert_eq!(v["ttfts"].as_array().map(Vec::len), Some(4), "per-request samples kept: {r:?}");
        assert!(v["input_lens"].as_array().unwrap().iter().all(|n| n.as_u64() == Some(64) || n.as_u64() == Some(512)));
    }
    // The decode server received the flags std/vllm declares (the emulator logs its argv as
    // vLLM's "non-default args" line): the consumer role, the context length, caching off.
    let args = log.lines().find(|l| l.contains("non-default args:")).unwrap_or_else(|| panic!("{log}"));
    for want in ["kv_consumer", "'max_model_len': 1024", "'enable_prefix_caching': False", "'enforce_eager': True"] {
        assert!(args.contains(want), "{want} not in {args}");
    }
}

#[test]
fn a_server_crash_aborts_its_launch_in_seconds_with_the_log_tail() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("vllm-world-crash");
    let hf = dir.join("hf");
    let file = CAMPAIGN.replace("HF_HOME_DIR", hf.to_str().unwrap()).replace("health_timeout = 60s", "health_timeout = 10min");
    std::fs::write(dir.join("world.nixl"), file).unwrap();
    let out = world_apply(
        &dir,
        &venv,
        &[("NIXL_EMULATOR_START_DELAY", "30"), ("NIXL_EMULATOR_CRASH_AFTER", "1"), ("NIXL_EMULATOR_CRASH_KIND", "oom")],
    );
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("failed while starting") && t.contains("CUDA out of memory"), "{t}");
    // The watch saw the death or the fatal line; it did not wait out the 10-minute timeout.
    assert!(!t.contains("not healthy after"), "{t}");
    let state = std::fs::read_to_string(dir.join(".nixl/world/state.json")).unwrap();
    assert!(state.contains("CUDA out of memory"), "the log tail is kept in the state: {state}");
}

/// The readiness watch, run on genuine vLLM logs (fixtures/tool-outputs/vllm-logs):
/// each fatal one stops the wait with its telling line, a healthy start does not.
#[test]
fn the_readiness_watch_stops_at_the_fatal_line_of_each_genuine_vllm_log() {
    let logs = crate::support::fixture("vllm-logs");
    let cases = [
        ("v1-cuda-oom-enginecore-dp0-torch-compile-excerpt.txt", "CUDA out of memory"),
        ("no-kv-cache-memory-v0.25.1-cpu.log", "EngineCore failed to start"),
        ("nixl-handshake-setup-failed-traceback-vllm41863-excerpt.txt", "NIXL transfer failure"),
        ("nixl-handshake-engine-id-mismatch-dp-vllm27083.txt", "engine ID mismatch"),
        ("unrecognized-argument-v0.25.1.log", "unrecognized arguments"),
        ("max-model-len-exceeds-derived-v0.25.1-cpu.log", "ValidationError"),
        ("v1-kv-too-small-message-quoted-in-results-readme.txt", "larger than the available KV cache memory"),
    ];
    for (file, want) in cases {
        let dir = scratch("watch");
        std::fs::write(dir.join(".nixl-launch"), "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::copy(logs.join(file), dir.join("vllm-unified.log")).unwrap();
        let body = nixl::design::commands::watch_script("false", 30);
        let out = Command::new("bash").arg("-c").arg(&body).current_dir(&dir).output().unwrap();
        let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
        assert_eq!(out.status.code(), Some(4), "{file}: {}", text(&out));
        assert!(first.starts_with("NIXL_FATAL") && first.contains(want), "{file}: {first}");
    }
    // A healthy server: the health check passes and the wait ends at once.
    let dir = scratch("watch-ok");
    std::fs::write(dir.join(".nixl-launch"), "").unwrap();
    let out =
        Command::new("bash").arg("-c").arg(nixl::design::commands::watch_script("true", 30)).current_dir(&dir).output().unwrap();
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).trim()), (Some(0), "NIXL_READY"));
}

#[test]
fn phase1_with_the_native_context_length_for_32k_prompts_fails_check_naming_32896_tokens() {
    let dir = crate::local::copy_examples("vllm-phase1-32768");
    let p1 = std::fs::read_to_string(dir.join("phase1.nixl")).unwrap();
    let p1 = p1.replace("set max_model_len  = long ? 133120 : 34816", "set max_model_len  = long ? 133120 : 32768");
    assert!(p1.contains(": 32768\n"), "the example changed: update this test");
    std::fs::write(dir.join("phase1.nixl"), p1).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "phase1.nixl"]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("E0601") && t.contains("needs 32896 tokens (32768 prompt + 128 output) but max_model_len is 32768"),
        "{t}"
    );
    assert!(t.contains("phase1.nixl:") && t.contains("raise max_model_len to at least 32896"), "{t}");
}

#[test]
fn show_commands_prints_what_apply_sends_for_a_pattern_and_a_tool() {
    let out = nixl().args(["show", "examples/phase2.nixl", "p2-efa-12k-c1", "--commands"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    for want in [
        "## decode on node2",
        "## prefill on node1",
        "## proxy on node1",
        "## ready on node1",
        "## bench on node1",
        "## stop on node2",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    assert!(t.contains("\"kv_role\": \"kv_consumer\"") && t.contains("\"kv_role\": \"kv_producer\""), "{t}");
    assert!(t.contains("--no-enable-prefix-caching") && t.contains("--num-prompts 30 "), "{t}");
    let out = nixl().args(["show", "examples/phase2.nixl", "p2-ll-nixlbench-ucx-12k-c1", "--commands"]).output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("# Installed by setup step 25-build-nixlbench"), "{t}");
    assert!(t.contains("# Needs service etcd"), "{t}");
    // nixlbench prints statistics on rank 0 only: the first node's output is read.
    assert!(t.contains("# The result is read from node1."), "{t}");
    assert!(t.contains("## server on node1") && t.contains("## client on node2"), "{t}");
}

#[test]
fn a_pattern_with_other_server_flags_gets_its_own_launch_started_with_them() {
    let dir = crate::local::copy_examples("vllm-own-launch");
    let p2 = std::fs::read_to_string(dir.join("phase2.nixl")).unwrap();
    let extra = "  pattern \"p2-efa-12k-c1-graphs\" in \"L2-EFA\" {\n    prompt                 = 12K\n    concurrency            = 1\n    enforce_eager          = false\n    gpu_memory_utilization = 0.5\n  }\n\n  # The seed's four";
    std::fs::write(dir.join("phase2.nixl"), p2.replacen("  # The seed's four", extra, 1)).unwrap();
    let out = nixl().current_dir(&dir).args(["show", "phase2.nixl", "p2-efa-12k-c1-graphs", "--commands"]).output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    let serve = t.lines().find(|l| l.contains("vllm serve ")).unwrap();
    assert!(serve.contains("--no-enforce-eager") && serve.contains("--gpu-memory-utilization 0.5"), "{serve}");
    let plan = nixl().current_dir(&dir).args(["plan", "phase2.nixl"]).output().unwrap();
    let p = String::from_utf8_lossy(&plan.stdout);
    assert!(p.contains("7 launches"), "the pattern runs on a server of its own:\n{p}");
    assert!(p.contains("enforce_eager") && p.contains("gpu_memory_utilization=0.5"), "{p}");
}

#[test]
fn genuine_vllm_result_files_read_with_their_failures() {
    // All 8 requests failed (vLLM 0.25.1): a failed run, never "TTFT 0 ms".
    let raw = std::fs::read(crate::support::fixture("vllm-bench/bench-serve-all-failed-v0.25.1.json")).unwrap();
    let e = nixl::results::vllm::parse(&raw, 0).unwrap_err();
    assert_eq!(e.to_string(), "8 of 8 requests failed (max_failed_requests = 0)");
    assert!(nixl::results::vllm::parse(&raw, 8).is_err(), "none completed: still not a result");
    // A `vllm bench sweep serve` run: the figures SOURCES.md gives.
    let raw = std::fs::read(crate::support::fixture("vllm-bench/sweep-serve-run0-v0.25.1-cpu.json")).unwrap();
    let r = nixl::results::vllm::parse(&raw, 0).unwrap();
    let m = &r.metrics;
    assert_eq!((r.completed, r.failed), (8, 0));
    let close = |k: &str, want: f64| assert!((m[k] - want).abs() < 0.01, "{k} = {} (want {want})", m[k]);
    close("duration_s", 1.3654);
    close("request_throughput_rps", 5.859);
    close("throughput_tps", 93.748);
    close("ttft_mean", 217.27);
    close("ttft_p50", 44.92);
    close("ttft_p99", 762.49);
    close("tpot_mean", 8.205);
    close("itl_mean", 8.205);
    close("e2e_latency_mean", 340.34);
}

#[test]
fn failed_requests_fail_the_pattern_unless_allowed_and_never_become_samples() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("vllm-world-failures");
    let hf = dir.join("hf");
    // 15 rounds of 2 requests = 30 requests; every 5th fails: 6 of 30.
    let file = CAMPAIGN
        .replace("HF_HOME_DIR", hf.to_str().unwrap())
        .replace("warmup = 1, iterations = 2, max_tokens = 16", "warmup = 0, iterations = 15, max_tokens = 8")
        .replace("factor prompt      = [64, 512]", "factor prompt      = [64]")
        .replace(
            "  layer \"TCP\" {\n    mode      = disaggregated\n    transport = tcp\n    id        = \"w-tcp-{prompt}\"\n  }\n",
            "",
        );
    std::fs::write(dir.join("world.nixl"), &file).unwrap();
    let env = [("NIXL_EMULATOR_FAIL_EVERY", "5")];
    let out = world_apply(&dir, &venv, &env);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("6 of 30 requests failed (max_failed_requests = 0)"), "{}", text(&out));
    assert!(!dir.join(".nixl/results/world/w-u-64.json").exists(), "a failed run is not a result");
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();

    let allowed = file.replace("warmup = 0, iterations = 15,", "warmup = 0, iterations = 15, max_failed_requests = 6,");
    std::fs::write(dir.join("world.nixl"), &allowed).unwrap();
    let out = world_apply(&dir, &venv, &env);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world/w-u-64.json")).unwrap()).unwrap();
    assert_eq!((rec["metrics"]["completed"].as_f64(), rec["metrics"]["failed"].as_f64()), (Some(24.0), Some(6.0)));
    let ttfts: Vec<f64> = rec["samples"]["ttft_ms"].as_array().unwrap().iter().filter_map(|x| x.as_f64()).collect();
    assert_eq!(ttfts.len(), 24, "the failed requests' zeros are not samples");
    assert!(ttfts.iter().all(|t| *t > 0.0), "{ttfts:?}");
    assert_eq!(rec["units"]["ttft_mean"], "ms");
    // The dip test is not fooled: the successful TTFTs are one mode.
    let (dip, p) = nixl::results::stats::dip_test(&ttfts, 2000);
    assert!(p > 0.05, "dip {dip}, p {p}: {ttfts:?}");
}

#[test]
fn an_analysis_runs_the_method_it_declares_not_one_whose_name_ends_its_id() {
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::local::copy_examples("analysis-by-name");
    let demo = std::fs::read_to_string(dir.join("local-demo.nixl")).unwrap();
    // `vs-unified` is declared first and its name ends `efa-vs-unified`'s id.
    let demo = demo.replacen(
        "    analysis \"efa-vs-unified\" {",
        "    analysis \"vs-unified\" {\n      inputs = [\"L2-EFA\"]\n      method = dip_test(ttft)\n    }\n    analysis \"efa-vs-unified\" {",
        1,
    );
    std::fs::write(dir.join("local-demo.nixl"), demo).unwrap();
    let out =
        nixl().current_dir(&dir).args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output().unwrap();
    let _ = nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let read = |id: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(format!(".nixl/results/demo/{id}.json"))).unwrap()).unwrap()
    };
    let compare = read("demo-analysis-efa-vs-unified");
    let dip = read("demo-analysis-vs-unified");
    assert!(compare["metrics"].as_object().unwrap().keys().any(|k| k.contains("diff")), "{compare}");
    assert!(compare["metrics"].get("bimodal").is_none(), "{compare}");
    assert!(dip["metrics"].get("bimodal").is_some(), "{dip}");
    assert_eq!(compare["settings"]["analysis"], "efa-vs-unified");
}

/// The two-node world both layout campaigns below start with: the stack, std/vllm on the
/// emulator's ports, one prompt and one concurrency; `world_with` appends the rest of the experiment and its `}`.
const TWO_NODE_WORLD: &str = r#"
import "std/aws"
import "std/models"
import "std/vllm"

stack "world" {
  region        = "us-east-1"
  zones         = ["us-east-1a"]
  instance_type = "g6e.12xlarge"
  node "node1" {}
  node "node2" {}
}

experiment world {
  prefix = "w"
  model  = qwen2_5_7b
  server = vllm {
    tp = 1, max_model_len = 1024, port = 18170, prefill_port = 18170, decode_port = 18175,
    proxy_port = 18179, health_timeout = 60s, hf_home = "HF_HOME_DIR",
  }
  bench = vllm_bench { warmup = 1, iterations = 2, max_tokens = 16 }

  factor prompt      = [64]
  factor concurrency = [2]
"#;

fn world_with(body: &str) -> String {
    format!("{TWO_NODE_WORLD}{body}")
}

/// xPyD on this machine: three local nodes (the stack declares two, nixl adds the third
/// for the largest launch), std/vllm's templates, the emulator and the real client.
const XPYD: &str = r#"
  duration = 20s
  startup  = 5s

  layer "U2" {
    mode     = unified
    replicas = 2
    id       = "w-u2-{prompt}"
  }
  layer "2P1D" {
    mode          = disaggregated
    transport     = tcp
    prefill_nodes = 2
    id            = "w-2p1d-{prompt}"
  }
  layer "1P2D" {
    mode         = disaggregated
    transport    = tcp
    decode_nodes = 2
    id           = "w-1p2d-{prompt}"
  }
}
"#;

/// Completions a server's log shows it answered (uvicorn's access lines).
fn completions_served(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.contains("POST /v1/completions")).count()
}

#[test]
fn a_local_xpyd_campaign_fans_requests_out_over_every_prefill_decode_and_replica_server() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("vllm-world-xpyd");
    let hf = dir.join("hf");
    std::fs::write(dir.join("world.nixl"), world_with(XPYD).replace("HF_HOME_DIR", hf.to_str().unwrap())).unwrap();
    let plan = nixl().current_dir(&dir).args(["plan", "world.nixl"]).output().unwrap();
    let p = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(p.contains("+ nodes node1, node2, node3") && p.contains("2P:1D, TP 1/1 on 3 nodes, 3 GPUs"), "{p}");
    let out = world_apply(&dir, &venv, &[]);
    let nodes = dir.join(".nixl/world/local/nodes");
    // Served per server, read before destroy removes the node directories. Each launch's
    // logs are overwritten by the next launch that starts the same role on the node.
    let served = |node: &str, log: &str| completions_served(&nodes.join(node).join(log));
    let after = (served("node1", "vllm-prefill.log"), served("node2", "vllm-decode.log"), served("node3", "vllm-decode.log"));
    // Logs no later launch overwrote: U2's two replicas, 2P:1D's second prefill server.
    let replicas = (served("node1", "vllm-unified.log"), served("node2", "vllm-unified.log"));
    let second_prefill = served("node2", "vllm-prefill.log");
    eprintln!("served: last launch {after:?}, replicas {replicas:?}, second prefill {second_prefill}");
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let results = dir.join(".nixl/results/world");
    let raws: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".raw."))
        .collect();
    for id in ["w-u2-64", "w-2p1d-64", "w-1p2d-64"] {
        assert!(raws.iter().any(|n| n.starts_with(&format!("{id}."))), "{id} has no result: {raws:?}");
    }
    // The last launch (1P:2D): the one prefill server took every request, the two decode
    // servers shared them round-robin (1 warm-up + 4 measured, plus the client's ready check).
    let (prefill, decode_a, decode_b) = after;
    assert!(prefill >= 5, "prefill served {prefill}");
    assert!(decode_a >= 2 && decode_b >= 2, "decode servers served {decode_a} and {decode_b}");
    assert!((decode_a as i64 - decode_b as i64).abs() <= 1, "not round-robin: {decode_a} and {decode_b}");
    assert!(replicas.0 >= 2 && replicas.1 >= 2, "unified replicas served {replicas:?}");
    assert!(second_prefill >= 2, "2P:1D's second prefill server served {second_prefill}");
}

/// 1P:1D with decode TP as a factor: the second launch changes only the decode servers.
const DECODE_TP: &str = r#"  factor decode_tp   = [1, 2]

  duration = 20s
  startup  = 5s

  layer "TCP" {
    mode      = disaggregated
    transport = tcp
    id        = "w-dtp{decode_tp}-{prompt}"
  }
}
"#;

/// Lines of a server log that start its API server (one per process the log belongs to).
fn api_server_starts(log: &str) -> usize {
    log.lines().filter(|l| l.contains("Starting vLLM API server")).count()
}

#[test]
fn a_decode_tp_change_restarts_only_the_decode_server_and_the_prefill_server_survives() {
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("vllm-world-decode-tp");
    let hf = dir.join("hf");
    std::fs::write(dir.join("world.nixl"), world_with(DECODE_TP).replace("HF_HOME_DIR", hf.to_str().unwrap())).unwrap();
    let plan = nixl().current_dir(&dir).args(["plan", "world.nixl"]).output().unwrap();
    let p = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(p.contains("restarts decode (decode_tp 1 -> 2); prefill, proxy keep running"), "{p}");
    let out = world_apply(&dir, &venv, &[]);
    let nodes = dir.join(".nixl/world/local/nodes");
    let read = |node: &str, log: &str| std::fs::read_to_string(nodes.join(node).join(log)).unwrap_or_default();
    let (prefill, decode) = (read("node1", "vllm-prefill.log"), read("node2", "vllm-decode.log"));
    let served = |node: &str, log: &str| completions_served(&nodes.join(node).join(log));
    let (by_prefill, by_decode) = (served("node1", "vllm-prefill.log"), served("node2", "vllm-decode.log"));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/world/state.json")).unwrap_or_default()).unwrap_or_default();
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    let o = text(&out);
    assert!(out.status.success(), "{o}");
    assert!(o.contains("kept running for the next launch: prefill, proxy"), "{o}");
    assert!(o.contains("kept from the launch before, healthy: prefill, proxy"), "{o}");
    // One prefill process served both launches; the decode log is the second launch's own.
    assert_eq!(api_server_starts(&prefill), 1, "the prefill server was restarted:\n{prefill}");
    assert_eq!(api_server_starts(&decode), 1, "{decode}");
    let args = decode.lines().find(|l| l.contains("non-default args:")).unwrap_or_default();
    assert!(args.contains("'tensor_parallel_size': 2"), "the decode server was not restarted with TP 2: {args}");
    assert!(by_prefill >= 2 * by_decode.saturating_sub(1) && by_decode >= 5, "prefill {by_prefill}, decode {by_decode}");
    assert!(by_prefill > by_decode + 3, "the prefill server served only one launch: {by_prefill} vs {by_decode}");
    // Every server stopped at the end: nothing is recorded as kept.
    assert!(state.get("kept_servers").is_none(), "{state}");
    let raws: Vec<String> = std::fs::read_dir(dir.join(".nixl/results/world"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".raw."))
        .collect();
    for id in ["w-dtp1-64", "w-dtp2-64"] {
        let raw = raws.iter().find(|n| n.starts_with(&format!("{id}."))).unwrap_or_else(|| panic!("{id}: {raws:?}"));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world").join(raw)).unwrap()).unwrap();
        assert_eq!((v["completed"].as_u64(), v["failed"].as_u64()), (Some(4), Some(0)), "{raw}");
    }
}

/// `nixl apply` on world.nixl as `world_apply` runs it, spawned with its output piped.
fn world_apply_spawn(dir: &Path, venv: &Path, extra: &[&str]) -> std::process::Child {
    let path =
        format!("{}:{}:{}", world().join("bin").display(), venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let mut c = nixl();
    c.current_dir(dir)
        .args(["apply", "world.nixl", "--provider", "local", "--auto-approve"])
        .args(extra)
        .env("PATH", path)
        .env("NIXL_VLLM_VENV", venv)
        .env("NIXL_TEST_TOKENIZER", tokenizer(venv))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

#[test]
fn servers_kept_across_an_interruption_are_checked_on_resume_and_started_again_when_down() {
    use std::io::BufRead;
    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("vllm-world-kept-resume");
    let hf = dir.join("hf");
    std::fs::write(dir.join("world.nixl"), world_with(DECODE_TP).replace("HF_HOME_DIR", hf.to_str().unwrap())).unwrap();
    let state_path = dir.join(".nixl/world/state.json");
    let read_state = || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap() };
    let nodes = dir.join(".nixl/world/local/nodes");
    let prefill_log = || std::fs::read_to_string(nodes.join("node1/vllm-prefill.log")).unwrap_or_default();

    // Ctrl-C while the first launch's stop runs: the walk ends before the second launch.
    let mut child = world_apply_spawn(&dir, &venv, &[]);
    // The walk's progress is on stderr; the plan (which lists the stop too) on stdout.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = vec![];
    for line in lines.by_ref() {
        let line = line.unwrap();
        let stopping = line.starts_with('[') && line.contains("stop server, verify GPU memory is free");
        seen.push(line);
        if stopping {
            assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
            break;
        }
    }
    seen.extend(lines.map_while(Result::ok));
    let first = child.wait_with_output().unwrap();
    let first_text = format!("{}\n{}", String::from_utf8_lossy(&first.stdout), seen.join("\n"));
    let kept = read_state()["kept_servers"].clone();
    let roles: Vec<&str> =
        kept["servers"].as_array().map(|s| s.iter().filter_map(|x| x[0].as_str()).collect()).unwrap_or_default();

    // Resume: the kept prefill server and proxy are healthy and kept; decode starts with TP 2.
    let resumed = world_apply(&dir, &venv, &[]);
    let starts_after_resume = api_server_starts(&prefill_log());
    let resumed_state = read_state();

    // The record of kept servers written back, with those servers gone: a resume that
    // finds them down starts them again (the second launch's pattern run once more).
    std::fs::write(&state_path, {
        let mut s = resumed_state.clone();
        s["kept_servers"] = kept.clone();
        serde_json::to_vec_pretty(&s).unwrap()
    })
    .unwrap();
    let replaced = {
        let path = format!(
            "{}:{}:{}",
            world().join("bin").display(),
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        nixl()
            .current_dir(&dir)
            .args(["apply", "world.nixl", "--provider", "local", "--auto-approve", "--replace", "w-dtp2-64"])
            .env("PATH", path)
            .env("NIXL_VLLM_VENV", &venv)
            .env("NIXL_TEST_TOKENIZER", tokenizer(&venv))
            .output()
            .unwrap()
    };
    let starts_after_replace = api_server_starts(&prefill_log());
    let final_state = read_state();
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();

    assert!(first_text.contains("Apply interrupted"), "{first_text}");
    assert!(first_text.contains("kept running for the next launch: prefill, proxy"), "{first_text}");
    assert_eq!(roles, ["prefill", "proxy"], "the state records the kept servers: {kept}");
    let r = text(&resumed);
    assert!(resumed.status.success(), "{r}");
    assert!(r.contains("kept from the launch before, healthy: prefill, proxy"), "{r}");
    assert_eq!(starts_after_resume, 1, "the kept prefill server was started again on resume");
    assert!(resumed_state.get("kept_servers").is_none(), "{resumed_state}");
    let t = text(&replaced);
    assert!(replaced.status.success(), "{t}");
    assert!(t.contains("a kept prefill server is not healthy: starting it again"), "{t}");
    assert!(t.contains("a kept proxy server is not healthy: starting it again"), "{t}");
    assert_eq!(starts_after_replace, 1, "a fresh prefill log: the server was started again");
    assert!(final_state.get("kept_servers").is_none(), "{final_state}");
    for id in ["w-dtp1-64", "w-dtp2-64"] {
        assert_eq!(final_state["actions"][id]["status"], "done", "{id}: {final_state}");
    }
}
