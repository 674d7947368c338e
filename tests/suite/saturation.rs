//! The saturation search end to end: `design = saturation(...)` plans a bound on probes per
//! point, and a local run against the engine emulator with a known capacity (it admits at
//! most 20 requests/s) finds the knee within the stated tolerance, inside one server launch,
//! with the real vLLM client sending each probe's rate.

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

/// One unified point searched from 5 to 80 requests/s; 64 requests per probe arriving at an
/// almost constant pace (burstiness 1000), so a rate above the capacity queues at once.
fn campaign(hf: &Path) -> String {
    CAMPAIGN
        .replace("HF_HOME_DIR", hf.to_str().unwrap())
        .replace(TCP_LAYER, "")
        .replace("factor prompt      = [64, 512]", "factor prompt      = [64]")
        .replace("factor concurrency = [2]", "factor concurrency = [64]")
        .replace(
            "bench = vllm_bench { warmup = 1, iterations = 2, max_tokens = 16 }",
            "bench = vllm_bench { warmup = 1, iterations = 1, max_tokens = 16, burstiness = 1000 }\n  slo = { ttft_p90 = 50ms }",
        )
        .replace(
            "    id   = \"w-u-{prompt}\"",
            "    id   = \"w-u-{prompt}\"\n    design = saturation(from = 5, to = 80, tolerance = 0.05)",
        )
}

#[test]
fn the_plan_bounds_the_probes_and_the_search_finds_the_emulators_capacity_within_the_tolerance() {
    let dir = scratch("saturation");
    std::fs::write(dir.join("world.nixl"), campaign(&dir.join("hf"))).unwrap();
    let out = nixl().current_dir(&dir).args(["plan", "world.nixl"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(t.contains("Saturation search in U on slo_met: 1 point(s), request rates 5 to 80 req/s within 5 %: at most 10 probes each (5 doubling, 5 bisecting), in one launch."), "{t}");
    let out = nixl().current_dir(&dir).args(["plan", "world.nixl", "--json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["saturation"][0]["max_probes"], 10);
    let probes: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "pattern")
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(probes.len(), 10);
    assert_eq!((probes[0], probes[9]), ("w-u-64-probe01", "w-u-64-probe10"), "probes run in order");
    assert_eq!(plan["groups"].as_array().unwrap().len(), 1, "one launch for the whole search");

    let Some(venv) = venv() else { return };
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = world_apply(&dir, &venv, &[("NIXL_EMULATOR_CAPACITY_RPS", "20")]);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(log.contains("the search for w-u-64 is done"), "{log}");

    // The probes' own records: the rate each ran at and whether it met the SLO.
    let mut runs: Vec<(f64, f64)> = vec![];
    for e in std::fs::read_dir(dir.join(".nixl/results/world")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.contains(".raw.") {
            continue;
        }
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let rate: f64 = rec["settings"]["request_rate"].as_str().unwrap().parse().unwrap();
        runs.push((rate, rec["metrics"]["slo_met"].as_f64().unwrap()));
    }
    assert!((3..=10).contains(&runs.len()), "{runs:?}");
    let knee = runs.iter().filter(|r| r.1 == 1.0).map(|r| r.0).fold(0.0, f64::max);
    let first_miss = runs.iter().filter(|r| r.1 == 0.0).map(|r| r.0).fold(f64::INFINITY, f64::min);
    // The true capacity is 20 requests/s: the knee is within the 5 % tolerance below it (a
    // rate a little above 20 may still pass: 64 requests queue only a few ms there).
    assert!((19.0..=20.6).contains(&knee), "knee {knee}: {runs:?}");
    assert!((first_miss - knee) / first_miss <= 0.05 + 1e-9, "the bracket is within the tolerance: {runs:?}");
    report_shows_the_curve_and_the_knee(&dir, runs.len(), knee, first_miss);
}

/// A rate as the report prints it, by hand: three decimals, trailing zeros dropped.
fn rate(v: f64) -> String {
    format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `nixl report` draws the probes' curve with the knee bracket shaded, says the bracket the
/// records give (computed above by hand), and lists every probe with its rate, goodput and
/// verdict, the two at the knee marked; rendered in headless Chromium.
fn report_shows_the_curve_and_the_knee(dir: &Path, probes: usize, knee: f64, first_miss: f64) {
    let out_dir = dir.join("out");
    let out = nixl().current_dir(dir).args(["report", "world.nixl", "--out"]).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dom = chromium_renders(&out_dir.join("report.html"), dir);
    let said = element(&dom, "knee-0", "</p>");
    let want = format!("the SLO holds up to {} req/s and fails at {} req/s ({probes} probes)", rate(knee), rate(first_miss));
    assert!(said.contains(&want), "{want} not in {said}");
    let chart = element(&dom, "saturation-chart-0", "</svg>");
    assert_eq!(chart.matches("<rect class=\"band\"").count(), 1, "the knee bracket is shaded: {chart}");
    assert!(chart.contains(">goodput, SLO met<") && chart.contains(">goodput, SLO missed<"), "{chart}");
    let store = nixl::results::Store::new(&dir.join(".nixl/results/world"));
    let mut marked = 0;
    for k in 1..=probes {
        let id = format!("w-u-64-probe{k:02}");
        let rec = store.get(&id).unwrap_or_else(|| panic!("{id}"));
        let r: f64 = rec.settings["request_rate"].as_str().unwrap().parse().unwrap();
        let met = rec.metrics["slo_met"] == 1.0;
        let row = element(&dom, &format!("probe-{id}"), "</tr>");
        let cells = [rate(r), format!("{:.3}", rec.metrics["goodput_rps"]), (if met { "met" } else { "missed" }).to_string()];
        for want in cells {
            assert!(row.contains(&format!(">{want}<")), "{want} missing for {id}: {row}");
        }
        if r == knee || r == first_miss {
            assert!(row.contains("class=\"knee\""), "{id} is at the knee: {row}");
            marked += 1;
        }
    }
    assert_eq!(marked, 2, "the last pass and the first miss are marked");
}

/// `metric = goodput`: a probe passes when its goodput keeps up with the offered rate (within
/// the tolerance), and the search over the same emulator (capacity 20 requests/s) finds the
/// same knee; every probe's recorded verdict is the hand computation from its own figures.
#[test]
fn a_search_on_goodput_finds_the_emulators_capacity_and_records_each_verdict() {
    let Some(venv) = venv() else { return };
    let dir = scratch("saturation-goodput");
    let file = campaign(&dir.join("hf")).replace("tolerance = 0.05)", "tolerance = 0.05, metric = goodput)");
    std::fs::write(dir.join("world.nixl"), file).unwrap();
    let plan = nixl().current_dir(&dir).args(["plan", "world.nixl"]).output().unwrap();
    assert!(String::from_utf8_lossy(&plan.stdout).contains("Saturation search in U on goodput: 1 point(s)"), "{}", text(&plan));
    let _ports = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = world_apply(&dir, &venv, &[("NIXL_EMULATOR_CAPACITY_RPS", "20")]);
    let _ = nixl().current_dir(&dir).args(["destroy", "world.nixl", "--provider", "local", "--auto-approve"]).output();
    assert!(out.status.success(), "{}", text(&out));
    let store = nixl::results::Store::new(&dir.join(".nixl/results/world"));
    let mut runs: Vec<(f64, bool)> = vec![];
    for rec in store.all() {
        let rate: f64 = rec.settings["request_rate"].as_str().unwrap().parse().unwrap();
        let keeps_up = rec.metrics["goodput_rps"] >= 0.95 * rate;
        assert_eq!(rec.metrics["probe_passed"], f64::from(u8::from(keeps_up)), "{}: {:?}", rec.id, rec.metrics);
        runs.push((rate, keeps_up));
    }
    let knee = runs.iter().filter(|r| r.1).map(|r| r.0).fold(0.0, f64::max);
    let first_miss = runs.iter().filter(|r| !r.1).map(|r| r.0).fold(f64::INFINITY, f64::min);
    assert!((19.0..=20.6).contains(&knee), "knee {knee}: {runs:?}");
    assert!((first_miss - knee) / first_miss <= 0.05 + 1e-9, "the bracket is within the tolerance: {runs:?}");
}
