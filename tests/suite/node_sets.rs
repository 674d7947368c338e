//! `parallel = k` applied on the local provider, through the binary: k node sets run their
//! launches at once and finish sooner than one set; a set whose nodes cannot be created
//! leaves its launches to the others; SIGKILL at random points with sets half done, then
//! apply again, keeps every result exactly once and runs nothing again that had one.
//!
//! The campaign is the local demo with a third launch (TCP) and stand-ins of fixed
//! durations: each server takes 1.5 s to come up, each benchmark run 1 s more than its
//! client needs. Three launches of three patterns and one baseline step.

use crate::local::{copy_examples, text, PORTS};
use crate::support::nixl;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every result the campaign keeps: 9 E2E patterns, the baseline step, the analysis.
const RESULTS: usize = 11;

/// The demo on `parallel` node sets, in a fresh copy of the examples.
fn campaign(name: &str, parallel: u32) -> PathBuf {
    let dir = copy_examples(name);
    let file = dir.join("local-demo.nixl");
    let demo = std::fs::read_to_string(&file).unwrap();
    let tcp = "  layer \"L3-TCP\" {\n    mode      = disaggregated\n    transport = tcp\n    id        = \"{prefix}-tcp-{prompt}-c{concurrency}\"\n  }\n";
    let changed = demo
        .replace("  prefix = \"demo\"\n", &format!("  prefix   = \"demo\"\n  parallel = {parallel}\n"))
        .replace("--delay 0.4", "--delay 1.5")
        .replace(
            "run        = \"python3 {here}/local-demo/standin_bench.py",
            "run        = \"sleep 1 && python3 {here}/local-demo/standin_bench.py",
        )
        .replace("  layer \"L4-Analysis\" {", &format!("{tcp}  layer \"L4-Analysis\" {{"));
    assert_eq!(changed.matches("parallel = ").count(), 1, "the demo's prefix line moved");
    assert!(changed.contains("sleep 1 &&") && changed.contains("--delay 1.5") && changed.contains("L3-TCP"));
    std::fs::write(&file, changed).unwrap();
    dir
}

fn apply(dir: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let out =
        nixl().current_dir(dir).args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output().unwrap();
    (out, started.elapsed())
}

fn destroy(dir: &Path) {
    let _ = nixl().current_dir(dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(".nixl/demo/state.json")).unwrap()).unwrap()
}

/// Result files by pattern id: (records `<id>.json`, raw outputs `<id>.raw.<hash>`).
fn result_files(dir: &Path) -> BTreeMap<String, (usize, usize)> {
    let mut by_id: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let names = std::fs::read_dir(dir.join(".nixl/results/demo")).into_iter().flatten().flatten();
    for name in names.map(|e| e.file_name().to_string_lossy().to_string()) {
        if let Some(id) = name.strip_suffix(".json") {
            by_id.entry(id.to_string()).or_default().0 += 1;
        } else if let Some((id, _)) = name.split_once(".raw.") {
            by_id.entry(id.to_string()).or_default().1 += 1;
        }
    }
    by_id
}

/// Done patterns, steps and analyses in the state (0 before there is one).
fn done_results(dir: &Path) -> usize {
    let Ok(bytes) = std::fs::read(dir.join(".nixl/demo/state.json")) else { return 0 };
    let Ok(s) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return 0 };
    let actions = s["actions"].as_object().cloned().unwrap_or_default();
    actions.iter().filter(|(id, r)| id.starts_with("demo-") && r["status"] == "done").count()
}

/// The node set each recorded action ran on.
fn sets_of(dir: &Path) -> BTreeMap<String, u64> {
    let s = state(dir);
    let actions = s["actions"].as_object().unwrap();
    actions.iter().filter_map(|(id, r)| Some((id.clone(), r["set"].as_u64()?))).collect()
}

#[test]
fn three_node_sets_run_their_launches_at_once_and_finish_sooner_than_one() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let one = campaign("sets-one", 1);
    let (out, wall_one) = apply(&one);
    assert!(out.status.success(), "{}", text(&out));
    destroy(&one);
    let three = campaign("sets-three", 3);
    let (out, wall_three) = apply(&three);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    println!(
        "wall time on the same design: parallel = 1 {:.1}s, parallel = 3 {:.1}s",
        wall_one.as_secs_f64(),
        wall_three.as_secs_f64()
    );
    assert!(wall_three < wall_one, "3 sets took {wall_three:?}, one set {wall_one:?}");
    // The plan gave each set one launch; each set's lines say what it ran.
    for (set, launch) in [(1, "mode=unified"), (2, "transport=efa"), (3, "transport=tcp")] {
        assert!(t.lines().any(|l| l.starts_with(&format!("set {set}: ")) && l.contains(launch)), "set {set}: {t}");
    }
    assert!(t.contains("set 2: created its nodes node1, node2"), "{t}");
    let sets = sets_of(&three);
    assert_eq!(sets.get("demo-efa-1k-c4"), Some(&2), "{sets:?}");
    assert_eq!(sets.get("demo-tcp-12k-c4"), Some(&3), "{sets:?}");
    assert_eq!(sets.get("demo-unified-4k-c4"), Some(&1), "{sets:?}");
    // Every result from every set in the one store, once.
    let files = result_files(&three);
    assert_eq!(files.len(), RESULTS, "{files:?}");
    assert!(files.values().all(|&n| n == (1, 1)), "{files:?}");
    let status = nixl().current_dir(&three).args(["status", "local-demo.nixl"]).output().unwrap();
    let st = text(&status);
    assert!(st.contains("Node sets: set 1 ran 4, set 2 ran 3, set 3 ran 3"), "{st}");
    destroy(&three);
    assert!(!three.join(".nixl/demo/local").exists());
}

#[test]
fn a_set_whose_nodes_cannot_be_created_leaves_its_launch_to_the_others() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = campaign("sets-refused", 3);
    // A file where set 3's node directories go: creating its nodes fails, as a refused set would.
    let sets = dir.join(".nixl/demo/local/sets");
    std::fs::create_dir_all(&sets).unwrap();
    std::fs::write(sets.join("3"), "not a directory").unwrap();
    let (out, _) = apply(&dir);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("set 3: cannot create its nodes"), "{t}");
    let taker = t.lines().find(|l| l.contains("takes over launch 3 from set 3")).unwrap_or_else(|| panic!("{t}"));
    let by: u64 = taker.trim_start_matches("set ").split(':').next().unwrap().parse().unwrap();
    assert!(by == 1 || by == 2, "{taker}");
    let sets = sets_of(&dir);
    for id in ["demo-tcp-1k-c4", "demo-tcp-4k-c4", "demo-tcp-12k-c4"] {
        assert_eq!(sets.get(id), Some(&by), "{id} ran on the set that took it: {sets:?}");
    }
    let files = result_files(&dir);
    assert_eq!(files.len(), RESULTS, "{files:?}");
    assert!(files.values().all(|&n| n == (1, 1)), "{files:?}");
    destroy(&dir);
}

#[test]
fn sigkill_at_ten_random_points_with_sets_half_done_keeps_every_result_once() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = campaign("sets-kill", 3);
    let mut seed: u64 = 17;
    // Done actions and the result records written so far: neither may change again.
    let mut finished: BTreeMap<String, String> = BTreeMap::new();
    let mut kept: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut points = vec![];
    for round in 0..10 {
        // A random point: after 0 or 1 more results are recorded, then 0 to 1.5 s more.
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let (more, wait) = ((seed >> 33) % 2, (seed >> 40) % 1500);
        let before = done_results(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_nixl"))
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while done_results(&dir) < before + more as usize
            && child.try_wait().unwrap().is_none()
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(wait));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        points.push(format!("{:.1}s/{}", started.elapsed().as_secs_f64(), done_results(&dir)));
        if !dir.join(".nixl/demo/state.json").exists() {
            continue;
        }
        for (id, rec) in state(&dir)["actions"].as_object().unwrap() {
            if rec["status"] == "done" {
                let at = rec["finished_at"].as_str().unwrap().to_string();
                if let Some(prev) = finished.insert(id.clone(), at.clone()) {
                    assert_eq!(prev, at, "round {round}: {id} was run again");
                }
            }
        }
        for (id, &(records, raws)) in &result_files(&dir) {
            assert!(records <= 1 && raws <= 1, "round {round}: {id} has {records} records, {raws} raw outputs");
            let Ok(bytes) = std::fs::read(dir.join(format!(".nixl/results/demo/{id}.json"))) else { continue };
            if let Some(before) = kept.insert(id.clone(), bytes.clone()) {
                assert_eq!(before, bytes, "round {round}: the result of {id} was written again");
            }
        }
    }
    println!("killed at (seconds in / results done): {points:?}; {} results kept before the last apply", kept.len());
    let (out, _) = apply(&dir);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let s = state(&dir);
    for (id, at) in &finished {
        assert_eq!(s["actions"][id]["finished_at"].as_str().unwrap(), at, "{id} was run again by the final apply");
    }
    let files = result_files(&dir);
    assert_eq!(files.len(), RESULTS, "{files:?}");
    assert!(files.values().all(|&n| n == (1, 1)), "every result exactly once: {files:?}");
    for (id, bytes) in &kept {
        assert_eq!(&std::fs::read(dir.join(format!(".nixl/results/demo/{id}.json"))).unwrap(), bytes, "{id} changed");
    }
    let again = apply(&dir).0;
    assert!(text(&again).contains("Nothing to do."), "{}", text(&again));
    destroy(&dir);
    // Destroy stops what the killed applies left running on every set's nodes.
    let left = || standins_of(&dir);
    let started = Instant::now();
    while !left().is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left(), Vec::<String>::new(), "stand-ins still running after destroy");
}

/// Processes started from this campaign's directory (the stand-in servers), by command line.
fn standins_of(dir: &Path) -> Vec<String> {
    let mine = dir.display().to_string();
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    let lines = procs.filter_map(|p| std::fs::read(p.path().join("cmdline")).ok());
    let lines = lines.map(|c| String::from_utf8_lossy(&c).replace('\0', " "));
    lines.filter(|l| l.contains(&mine) && l.contains("standin_server")).collect()
}

/// The window a SIGKILL can hit on every set: the result saved, the action not yet recorded.
/// The next apply keeps that result instead of measuring again (and replacing it).
#[test]
fn a_result_saved_before_its_action_was_recorded_is_kept_not_measured_again() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = campaign("saved-unrecorded", 1);
    let (out, _) = apply(&dir);
    assert!(out.status.success(), "{}", text(&out));
    let id = "demo-tcp-4k-c4";
    let result = dir.join(format!(".nixl/results/demo/{id}.json"));
    let bytes = std::fs::read(&result).unwrap();
    // As a kill between the two writes leaves it: the result, but no record of the action.
    let path = dir.join(".nixl/demo/state.json");
    let mut s = state(&dir);
    s["actions"].as_object_mut().unwrap().remove(id).expect("the pattern was recorded");
    std::fs::write(&path, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
    let (again, _) = apply(&dir);
    let t = text(&again);
    assert!(again.status.success(), "{t}");
    assert!(t.contains("its result was saved before an interruption: kept, not run again"), "{t}");
    assert_eq!(std::fs::read(&result).unwrap(), bytes, "the result was measured again");
    assert_eq!(state(&dir)["actions"][id]["status"], "done");
    assert!(!dir.join(".nixl/results/demo/superseded").exists(), "nothing was superseded");
    destroy(&dir);
}
