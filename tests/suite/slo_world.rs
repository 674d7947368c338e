//! Load as factors and goodput under an SLO, end to end: a local campaign with a request
//! rate factor runs the real `vllm bench serve` against the engine emulator, and the
//! goodput and SLO attainment nixl records match a hand computation from the client's
//! own per-request JSON.

use crate::local::{text, PORTS};
use crate::support::{nixl, scratch};
use crate::vllm_world::{parse_with_vllm, venv, world_apply, CAMPAIGN};
use std::path::Path;

/// The world campaign with a rate factor, bursty arrivals and an SLO on each layer: loose
/// on the unified layer (every request good), and a TTFT bound no request can meet on the
/// disaggregated one.
fn campaign(hf: &Path) -> String {
    CAMPAIGN
        .replace("HF_HOME_DIR", hf.to_str().unwrap())
        .replace("factor concurrency = [2]", "factor concurrency = [2]\n  factor request_rate = [50, inf]")
        .replace("bench = vllm_bench { warmup = 1, iterations = 2, max_tokens = 16 }", "bench = vllm_bench { warmup = 1, iterations = 2, max_tokens = 16, burstiness = 0.5 }\n  slo = { ttft_p99 = 5s, tpot_p99 = 1s }")
        .replace("id   = \"w-u-{prompt}\"", "id   = \"w-u-{prompt}-r{request_rate}\"")
        .replace("id        = \"w-tcp-{prompt}\"", "id        = \"w-tcp-{prompt}-r{request_rate}\"\n    slo       = { ttft = 1us }")
}

/// Every stored result record (not raw outputs) of the world campaign.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    let results = dir.join(".nixl/results/world");
    std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().contains(".raw."))
        .filter_map(|p| serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).unwrap()).ok())
        .filter(|v| v.get("metrics").is_some())
        .collect()
}

/// Goodput by hand from vLLM's JSON: a request is good when its TTFT and its TPOT (mean
/// inter-token latency) are within the bounds, in seconds.
fn by_hand(raw: &serde_json::Value, ttft_max: f64, tpot_max: f64) -> (f64, f64) {
    let ttfts = raw["ttfts"].as_array().unwrap();
    let itls = raw["itls"].as_array().unwrap();
    let errors = raw["errors"].as_array().unwrap();
    let mut good = 0.0;
    for i in 0..ttfts.len() {
        if !errors[i].as_str().unwrap_or_default().is_empty() {
            continue;
        }
        let r: Vec<f64> = itls[i].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let tpot = if r.is_empty() { 0.0 } else { r.iter().sum::<f64>() / r.len() as f64 };
        if ttfts[i].as_f64().unwrap() <= ttft_max && tpot <= tpot_max {
            good += 1.0;
        }
    }
    let sent = ttfts.len() as f64;
    (good / raw["duration"].as_f64().unwrap(), good / sent)
}

#[test]
fn a_request_rate_factor_reaches_the_real_client_and_goodput_matches_a_hand_count() {
    let Some(venv) = venv() else { return };
    let dir = scratch("slo-world");
    let file = campaign(&dir.join("hf"));
    std::fs::write(dir.join("world.nixl"), &file).unwrap();

    // The rendered client commands carry the rate and the burstiness, and vLLM's own parser takes them.
    let out = nixl().current_dir(&dir).args(["show", "world.nixl", "w-u-64-r50", "--commands"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    let bench = shown.lines().find(|l| l.contains("vllm bench serve ")).expect("a bench line").to_string();
    assert!(bench.contains("--request-rate 50 --burstiness 0.5"), "{bench}");
    let out = nixl().current_dir(&dir).args(["show", "world.nixl", "w-u-64-rinf", "--commands"]).output().unwrap();
    let unlimited = String::from_utf8_lossy(&out.stdout).lines().find(|l| l.contains("vllm bench serve ")).unwrap().to_string();
    assert!(unlimited.contains("--request-rate inf"), "{unlimited}");
    let parsed = parse_with_vllm(&venv, &[("rate".into(), bench), ("inf".into(), unlimited)]);
    assert!(parsed.iter().all(|(_, ok, _)| *ok), "{parsed:#?}");

    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = world_apply(&dir, &venv, &[]);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));

    let records = records(&dir);
    assert_eq!(records.len(), 8, "2 layers x 2 prompts x 2 rates");
    for r in &records {
        let id = r["id"].as_str().unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/world").join(r["raw"].as_str().unwrap())).unwrap())
                .unwrap();
        // The client ran at the pattern's rate (vLLM writes "inf" as a string).
        let rate = &raw["request_rate"];
        if id.ends_with("-rinf") {
            assert_eq!(rate, "inf", "{id}");
        } else {
            assert_eq!(rate.as_f64(), Some(50.0), "{id}");
            assert_eq!(raw["burstiness"].as_f64(), Some(0.5), "{id}");
        }
        let m = &r["metrics"];
        let (goodput, attainment) = if id.starts_with("w-u-") { by_hand(&raw, 5.0, 1.0) } else { by_hand(&raw, 1e-6, 1.0) };
        assert!((m["goodput_rps"].as_f64().unwrap() - goodput).abs() < 1e-9, "{id}: {m} vs {goodput}");
        assert!((m["slo_attainment"].as_f64().unwrap() - attainment).abs() < 1e-12, "{id}: {m}");
        if id.starts_with("w-u-") {
            assert_eq!((m["slo_attainment"].as_f64(), m["slo_met"].as_f64()), (Some(1.0), Some(1.0)), "{id}: {m}");
            assert!(goodput > 0.0);
        } else {
            // The layer's own SLO replaced the experiment's: no request has a TTFT of 1 us.
            assert_eq!((m["goodput_rps"].as_f64(), m["slo_met"].as_f64()), (Some(0.0), Some(0.0)), "{id}: {m}");
        }
        assert_eq!(r["units"]["slo_attainment"], "fraction", "{id}");
    }
}

#[test]
fn a_bad_slo_is_an_error_at_its_key_before_anything_runs() {
    let dir = scratch("slo-bad");
    let file = campaign(&dir.join("hf")).replace("ttft_p99 = 5s", "ttft_p42 = 5s");
    std::fs::write(dir.join("world.nixl"), &file).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "world.nixl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("E0206") && t.contains("`ttft_p42` is not a latency"), "{t}");
    let line = file.lines().position(|l| l.contains("ttft_p42")).unwrap() + 1;
    assert!(t.contains(&format!("world.nixl:{line}:")), "the span points at the key: {t}");
}
