//! Replicates: `replicates = N` gives each point N results in one server launch, in an
//! order shuffled with a recorded seed, and `until = ci(METRIC) < FRACTION` stops early when
//! the runs agree, run against the engine emulator with the real vLLM client.

use crate::local::{text, PORTS};
use crate::results::{chromium_renders, element};
use crate::support::{nixl, scratch};
use crate::vllm_world::{venv, world_apply, CAMPAIGN};
use std::path::Path;

const TCP_LAYER: &str = r#"  layer "TCP" {
    mode      = disaggregated
    transport = tcp
    id        = "w-tcp-{prompt}"
  }
"#;

/// The world campaign with one unified layer replicated `n` times (and `extra` lines in it).
fn campaign(hf: &Path, prompts: &str, n: u32, extra: &str) -> String {
    assert!(CAMPAIGN.contains(TCP_LAYER));
    CAMPAIGN
        .replace("HF_HOME_DIR", hf.to_str().unwrap())
        .replace(TCP_LAYER, "")
        .replace("factor prompt      = [64, 512]", &format!("factor prompt      = {prompts}"))
        .replace("iterations = 2", "iterations = 4")
        .replace("    id   = \"w-u-{prompt}\"", &format!("    id   = \"w-u-{{prompt}}\"\n    replicates = {n}\n{extra}"))
}

fn plan_order(dir: &Path) -> (Vec<String>, serde_json::Value) {
    let out = nixl().current_dir(dir).args(["plan", "world.nixl", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let order = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "pattern")
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    (order, plan)
}

fn results(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join(".nixl/results/world"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    ids.retain(|n| n.ends_with(".json") && !n.contains(".raw."));
    ids.sort();
    ids
}

#[test]
fn replicates_shuffle_inside_one_launch_and_the_seed_reproduces_the_order() {
    let dir = scratch("replicates-order");
    let hf = dir.join("hf");
    std::fs::write(dir.join("world.nixl"), campaign(&hf, "[64, 128, 256, 512]", 3, "")).unwrap();
    let (a, plan) = plan_order(&dir);
    assert_eq!(a.len(), 12, "4 points x 3 replicates: {a:?}");
    assert_eq!(plan["shuffle_seed"], 1, "replicates shuffle with seed 1 unless told");
    assert_eq!(plan["groups"].as_array().unwrap().len(), 1, "replicates add no launch");
    let (b, _) = plan_order(&dir);
    assert_eq!(a, b, "the same seed gives the same order");
    let policy: Vec<String> = [64, 128, 256, 512].iter().flat_map(|p| (1..=3).map(move |r| format!("w-u-{p}-rep{r}"))).collect();
    assert_ne!(a, policy, "shuffled, not the policy order");
    let text_plan = nixl().current_dir(&dir).args(["plan", "world.nixl"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text_plan.stdout).contains("shuffled with seed 1"));

    let seeded = campaign(&hf, "[64, 128, 256, 512]", 3, "").replace("  prefix = \"w\"", "  prefix = \"w\"\n  shuffle = 2");
    std::fs::write(dir.join("world.nixl"), seeded).unwrap();
    let (c, plan) = plan_order(&dir);
    assert_eq!(plan["shuffle_seed"], 2);
    assert_ne!(a, c, "another seed, another order");
    let (mut x, mut y) = (a.clone(), c.clone());
    x.sort();
    y.sort();
    assert_eq!(x, y, "the same patterns");

    // Three results per point, run in the planned order.
    let Some(venv) = venv() else { return };
    std::fs::write(dir.join("world.nixl"), campaign(&hf, "[64]", 3, "")).unwrap();
    let (planned, _) = plan_order(&dir);
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = world_apply(&dir, &venv, &[]);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(results(&dir), ["w-u-64-rep1.json", "w-u-64-rep2.json", "w-u-64-rep3.json"]);
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    let ran: Vec<&str> = planned.iter().map(|id| id.as_str()).filter(|id| log.contains(&format!("+ {id} "))).collect();
    let positions: Vec<usize> = ran.iter().map(|id| log.find(&format!("+ {id} ")).unwrap()).collect();
    assert_eq!(ran.len(), 3, "{log}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "run in the planned order {planned:?}: {log}");
    report_shows_the_replicates_interval(&dir);
}

/// `nixl report` gives the point's mean TTFT p50 over its three replicates with the 95 %
/// Student-t interval, computed here by hand from the stored records (t(0.975, 2) = 4.302653).
fn report_shows_the_replicates_interval(dir: &Path) {
    let store = nixl::results::Store::new(&dir.join(".nixl/results/world"));
    let v: Vec<f64> = (1..=3).map(|k| store.get(&format!("w-u-64-rep{k}")).unwrap().metrics["ttft_p50"]).collect();
    let mean = (v[0] + v[1] + v[2]) / 3.0;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let half = 4.302652729911275 * sd / 3f64.sqrt();
    let out_dir = dir.join("out");
    let out = nixl().current_dir(dir).args(["report", "world.nixl", "--out"]).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dom = chromium_renders(&out_dir.join("report.html"), dir);
    let table = element(&dom, "replicate-intervals", "</table>");
    let row = table.split("<tr").find(|r| r.contains(">ttft_p50<")).unwrap_or_else(|| panic!("no ttft_p50 row: {table}"));
    assert!(row.contains(">U, prompt = 64, concurrency = 2<"), "{row}");
    for want in ["3".to_string(), format!("{mean:.3}"), format!("{:.3}", mean - half), format!("{:.3}", mean + half)] {
        assert!(row.contains(&format!(">{want}<")), "{want} missing: {row}");
    }
    let charts = element(&dom, "replicates", "</table>");
    assert!(charts.contains("n = 3, Student t") && charts.contains("class=\"interval\""), "{charts}");
}

#[test]
fn until_stops_replicating_when_runs_agree_and_runs_to_the_maximum_when_they_do_not() {
    let Some(venv) = venv() else { return };
    let until = "    until = ci(e2e_latency_mean) < 0.3\n";
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut counts = vec![];
    for (name, jitter) in [("replicates-steady", "0"), ("replicates-noisy", "1.5")] {
        let dir = scratch(name);
        std::fs::write(dir.join("world.nixl"), campaign(&dir.join("hf"), "[64]", 5, until)).unwrap();
        let out = world_apply(&dir, &venv, &[("NIXL_EMULATOR_JITTER", jitter)]);
        let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
        assert!(out.status.success(), "{}", text(&out));
        let log = text(&out);
        counts.push((results(&dir).len(), log.matches("the 95 % interval of e2e_latency_mean").count(), log));
    }
    let (steady, noisy) = (&counts[0], &counts[1]);
    assert_eq!((steady.0, steady.1), (3, 2), "steady runs stop after three: {}", steady.2);
    assert!(steady.2.contains("2 skipped"), "{}", steady.2);
    assert_eq!((noisy.0, noisy.1), (5, 0), "noisy runs go to the maximum: {}", noisy.2);
}

#[test]
fn until_without_replicates_or_on_an_unknown_metric_is_an_error_at_its_span() {
    let dir = scratch("replicates-bad-until");
    let file = campaign(&dir.join("hf"), "[64]", 1, "    until = ci(ttft_p50) < 0.05\n");
    std::fs::write(dir.join("world.nixl"), &file).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "world.nixl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the layer has none"), "{}", text(&out));
    let file = campaign(&dir.join("hf"), "[64]", 3, "    until = ci(ttft_p51) < 0.05\n");
    std::fs::write(dir.join("world.nixl"), &file).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "world.nixl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let line = file.lines().position(|l| l.contains("ttft_p51")).unwrap() + 1;
    assert!(
        text(&out).contains(&format!("world.nixl:{line}:")) && text(&out).contains("`ttft_p51` is not a metric"),
        "{}",
        text(&out)
    );
}

#[test]
fn discard_first_run_runs_the_first_pattern_of_a_launch_once_more_and_keeps_no_result_of_it() {
    let Some(venv) = venv() else { return };
    let dir = scratch("replicates-warm-up");
    let file =
        campaign(&dir.join("hf"), "[64, 512]", 1, "").replace("  prefix = \"w\"", "  prefix = \"w\"\n  discard_first_run = true");
    std::fs::write(dir.join("world.nixl"), file).unwrap();
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = world_apply(&dir, &venv, &[]);
    // The warm-up's output stays on the node (read before destroy removes the node).
    let warm = std::fs::read(dir.join(".nixl/world/local/nodes/node1/results/w-u-64.warmup.out"));
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert_eq!(log.matches("on the new server: done, discarded").count(), 1, "one launch, one warm-up: {log}");
    assert!(log.contains("warm-up run of w-u-64 on the new server"), "the launch's first pattern: {log}");
    assert_eq!(results(&dir), ["w-u-512.json", "w-u-64.json"], "the warm-up is no result");
    let warm: serde_json::Value = serde_json::from_slice(&warm.expect("the warm-up's output on node1")).unwrap();
    assert_eq!(warm["completed"].as_u64(), Some(8), "the real client ran the pattern's requests: {warm}");
}
