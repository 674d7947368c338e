//! Campaigns on the local provider, through the binary: the demo, resume after
//! SIGKILL, a failing setup step, changed patterns, status.

use crate::support::{golden, nixl, root, scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The stand-in servers listen on fixed ports: one local campaign at a time.
pub static PORTS: Mutex<()> = Mutex::new(());

pub fn copy_examples(name: &str) -> PathBuf {
    let dir = scratch(name);
    copy_examples_into(&dir);
    dir
}

fn copy_examples_into(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(root().join("examples")).unwrap().flatten() {
        let to = dir.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
            }
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

fn apply(dir: &Path, extra: &[&str]) -> Output {
    let mut c = nixl();
    c.current_dir(dir).args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"]).args(extra);
    c.output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(".nixl/demo/state.json")).unwrap()).unwrap()
}

fn destroy(dir: &Path) {
    let _ = nixl().current_dir(dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
}

#[test]
fn the_local_demo_runs_from_a_fresh_copy_and_then_has_nothing_to_do() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("demo");
    let out = apply(&dir, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("19 done, 0 failed, 0 skipped, 2 server launches"), "{t}");
    assert!(t.contains("node1: skipped (condition holds)"), "{t}");
    // 6 E2E patterns, one baseline step, one analysis: 8 results, each once.
    let out = nixl().current_dir(&dir).args(["results", "local-demo.nixl", "--format", "json"]).output().unwrap();
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), 8);
    assert!(results.iter().filter(|r| r["layer"] != "L4-Analysis" && r["layer"] != "L0-Baseline").all(|r| r["metrics"]
        ["ttft_mean"]
        .as_f64()
        .unwrap()
        > 0.0));
    let plan = nixl().current_dir(&dir).args(["plan", "local-demo.nixl", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let again = apply(&dir, &[]);
    assert!(text(&again).contains("Nothing to do."), "{}", text(&again));
    destroy(&dir);
    assert!(!dir.join(".nixl/demo/local").exists());
}

#[test]
fn changing_one_patterns_concurrency_reruns_exactly_that_pattern_and_the_analysis_reading_it() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("change");
    let file = dir.join("local-demo.nixl");
    let extra = "\nexperiment more extends demo {\n  pattern \"more-extra\" in \"L2-EFA\" {\n    prompt      = 1K\n    concurrency = 2\n  }\n}\n";
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + extra).unwrap();
    let run = |d: &Path| {
        nixl().current_dir(d).args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output().unwrap()
    };
    let first = run(&dir);
    assert!(first.status.success(), "{}", text(&first));
    let before: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(".nixl/more/state.json")).unwrap()).unwrap();
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("concurrency = 2", "concurrency = 3")).unwrap();
    let second = run(&dir);
    let t = text(&second);
    assert!(second.status.success(), "{t}");
    let ran: Vec<&str> = t.lines().filter(|l| l.starts_with('[') && (l.contains(" more-") || l.contains(" demo-"))).collect();
    assert_eq!(ran.len(), 2, "{t}");
    assert!(ran[0].contains("-/+ more-extra"), "{t}");
    // The analysis reads the EFA layer, whose pattern changed: it is computed again.
    assert!(ran[1].contains("-/+ more-analysis-efa-vs-unified"), "{t}");
    assert!(t.contains("1 server launches"), "{t}");
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(".nixl/more/state.json")).unwrap()).unwrap();
    for (id, rec) in before["actions"].as_object().unwrap() {
        if id != "more-extra" && id != "more-analysis-efa-vs-unified" {
            assert_eq!(rec["finished_at"], after["actions"][id]["finished_at"], "{id} ran again");
        }
    }
    assert_ne!(before["actions"]["more-extra"]["hash"], after["actions"]["more-extra"]["hash"]);
    let _ = nixl()
        .current_dir(&dir)
        .args(["destroy", "local-demo.nixl", "--experiment", "more", "--provider", "local", "--auto-approve"])
        .output();
}

#[test]
fn a_killed_apply_resumes_without_rerunning_or_losing_results() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("kill");
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut finished: std::collections::BTreeMap<String, String> = Default::default();
    for round in 0..20 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = 80 + (seed >> 33) % 900;
        let mut child = Command::new(env!("CARGO_BIN_EXE_nixl"))
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .args(["apply", "local-demo.nixl", "--provider", "local", "--auto-approve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(wait));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !dir.join(".nixl/demo/state.json").exists() {
            continue;
        }
        // What was finished stays finished: never run again after a kill.
        let s = state(&dir);
        for (id, rec) in s["actions"].as_object().unwrap() {
            if rec["status"] == "done" {
                let at = rec["finished_at"].as_str().unwrap().to_string();
                if let Some(prev) = finished.get(id) {
                    assert_eq!(prev, &at, "round {round}: {id} was run again");
                }
                finished.insert(id.clone(), at);
            }
        }
    }
    let out = apply(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let s = state(&dir);
    for (id, at) in &finished {
        assert_eq!(s["actions"][id]["finished_at"].as_str().unwrap(), at, "{id} was run again by the final apply");
    }
    // Every pattern's result exists exactly once.
    let results = dir.join(".nixl/results/demo");
    let names: Vec<String> =
        std::fs::read_dir(&results).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    let records = names.iter().filter(|n| n.ends_with(".json")).count();
    let raws = names.iter().filter(|n| n.contains(".raw.")).count();
    assert_eq!((records, raws), (8, 8), "{names:?}");
    destroy(&dir);
}

#[test]
fn a_failing_setup_step_stops_its_dependants_and_the_next_apply_retries_it() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("setupfail");
    let file = dir.join("local-demo.nixl");
    let step = "  step \"03-gate\" {\n    name = \"Wait for the go-ahead\"\n    run  = [\"echo checking the go-ahead on $NIXL_NODE\", \"test -f go-ahead\"]\n  }\n}\n\ntool clock_check";
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replacen("}\n\ntool clock_check", step, 1)).unwrap();
    let out = apply(&dir, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("checking the go-ahead on node1"), "the node's output is reported: {t}");
    assert!(t.contains("skip demo-unified-1k-c4"), "{t}");
    assert!(!dir.join(".nixl/results/demo/demo-unified-1k-c4.json").exists());
    for n in ["node1", "node2"] {
        std::fs::write(dir.join(".nixl/demo/local/nodes").join(n).join("go-ahead"), "").unwrap();
    }
    let out = apply(&dir, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("setup 03-gate"), "{t}");
    assert!(!t.contains("setup 01-python"), "finished steps are not run again: {t}");
    destroy(&dir);
}

#[test]
fn status_of_a_partly_done_campaign_matches_its_golden() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("status");
    let out = apply(&dir, &["--target", "L1-Unified"]);
    assert!(out.status.success(), "{}", text(&out));
    let st = nixl().current_dir(&dir).args(["status", "local-demo.nixl"]).output().unwrap();
    let t = String::from_utf8_lossy(&st.stdout).to_string();
    // The last line has timings, which vary.
    let stable: String = t.lines().filter(|l| !l.starts_with("Infrastructure:")).map(|l| format!("{l}\n")).collect();
    golden(&root().join("tests/golden/status/local-demo-partial.txt"), &stable);
    assert!(t.contains("Infrastructure: up"), "{t}");
    destroy(&dir);
}

#[test]
fn results_say_where_they_came_from_and_a_local_state_is_not_taken_for_aws() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("provenance");
    let out = apply(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/demo/demo-efa-1k-c4.json")).unwrap()).unwrap();
    let p = &rec["provenance"];
    assert_eq!((p["provider"].as_str(), p["synthetic"].as_bool()), (Some("local"), Some(true)), "{p}");
    assert_eq!((p["stack"].as_str(), p["model"].as_str()), (Some("local-demo"), Some("Qwen/Qwen2.5-7B-Instruct")), "{p}");
    assert_eq!(p["nixl_cli"], env!("CARGO_PKG_VERSION"));
    assert_eq!(state(&dir)["provider"], "local");
    // The local run's results are not AWS's: apply and destroy on AWS refuse this state.
    for cmd in ["apply", "destroy"] {
        let out =
            nixl().current_dir(&dir).args([cmd, "local-demo.nixl", "--provider", "aws", "--auto-approve"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("holds what `--provider local` created and measured"), "{}", text(&out));
        assert!(!text(&out).contains("Nothing to do"), "{}", text(&out));
    }
    let out =
        nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_new_prune_reruns_the_analyses_and_results_leave_the_pruned_patterns_out() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("prune-reruns-analysis");
    assert!(apply(&dir, &[]).status.success());
    let demo = std::fs::read_to_string(dir.join("local-demo.nixl")).unwrap();
    let demo = demo.replacen(
        "  restart_on = [mode, transport]",
        "  prune prompt == 12K because \"enough\"\n  restart_on = [mode, transport]",
        1,
    );
    std::fs::write(dir.join("local-demo.nixl"), demo).unwrap();
    let plan = nixl().current_dir(&dir).args(["plan", "local-demo.nixl"]).output().unwrap();
    let p = text(&plan);
    // The analysis reads other inputs now: it runs again.
    assert!(p.contains("-/+ demo-analysis-efa-vs-unified"), "{p}");
    let out = nixl().current_dir(&dir).args(["results", "local-demo.nixl", "--format", "json"]).output().unwrap();
    let ids: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.iter().any(|i| i.contains("12k")), "{ids:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("left out (--all shows them)"));
    let all = nixl().current_dir(&dir).args(["results", "local-demo.nixl", "--format", "json", "--all"]).output().unwrap();
    assert!(String::from_utf8_lossy(&all.stdout).contains("demo-efa-12k-c4"));
    let _ = nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
}

#[test]
fn replace_reruns_a_done_pattern_on_its_server_and_keeps_the_earlier_result() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("replace-keeps");
    assert!(apply(&dir, &[]).status.success());
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".nixl/results/demo/demo-efa-4k-c4.json")).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // another finished_at
    let out = apply(&dir, &["--replace", "demo-efa-4k-c4"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("start server") && t.contains("1 server launches"), "{t}");
    let store = nixl::results::Store::new(&dir.join(".nixl/results/demo"));
    // The pattern's earlier record, and the analysis that read it (it ran again on the new one).
    let old: Vec<_> = store.superseded().into_iter().filter(|r| r.id == "demo-efa-4k-c4").collect();
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(store.superseded().iter().any(|r| r.id == "demo-analysis-efa-vs-unified"));
    assert_eq!(old[0].finished_at, first["finished_at"].as_str().unwrap());
    assert_ne!(store.get("demo-efa-4k-c4").unwrap().finished_at, old[0].finished_at);
    assert_eq!(state(&dir)["actions"]["demo-efa-4k-c4"]["status"], "done");
    let _ = nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
}

#[test]
fn other_machines_replace_the_nodes_and_their_setup_and_a_zone_change_does_not() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("drift");
    assert!(apply(&dir, &[]).status.success());
    let file = dir.join("local-demo.nixl");
    let source = std::fs::read_to_string(&file).unwrap();
    let plan = |d: &Path| text_of(nixl().current_dir(d).args(["plan", "local-demo.nixl"]).output().unwrap());
    // More zones to fall back across: the running nodes stay.
    std::fs::write(&file, source.replace("zones         = [\"us-east-1a\"]", "zones         = [\"us-east-1a\", \"us-east-1b\"]"))
        .unwrap();
    let p = plan(&dir);
    assert!(p.contains("~ nodes") && !p.contains("-/+ nodes") && !p.contains("-/+ 01-python"), "{p}");
    // Another instance type: new machines, set up again.
    std::fs::write(&file, source.replace("instance_type = \"g6e.12xlarge\"", "instance_type = \"g6e.24xlarge\"")).unwrap();
    let p = plan(&dir);
    assert!(p.contains("-/+ nodes") && p.contains("replaced: the machines the file asks for changed"), "{p}");
    assert!(p.contains("-/+ setup on node1") || p.contains("-/+ 01-python"), "{p}");
    let out = apply(&dir, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("replacing 2 node(s)"), "{t}");
    assert!(t.contains("setup 01-python") || t.contains("01-python"), "{t}");
    let p = plan(&dir);
    assert!(p.contains("No changes"), "{p}");
    let _ = nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
}

fn text_of(o: Output) -> String {
    text(&o)
}

#[test]
fn a_node_gone_outside_nixl_is_found_before_anything_is_sent_and_replaced_next() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("node-gone");
    assert!(apply(&dir, &[]).status.success());
    // node2 disappears outside nixl (for the local provider, its directory).
    std::fs::remove_dir_all(dir.join(".nixl/demo/local/nodes/node2")).unwrap();
    let out = apply(&dir, &["--replace", "demo-efa-4k-c4"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("node2 (") && t.contains("no longer exist(s)") && t.contains("node1 (") && t.contains("terminated too"),
        "{t}"
    );
    let st = state(&dir);
    assert!(st["resources"].get("node.node1").is_none() && st["actions"].get("setup.node1.02-workdir").is_none(), "{st}");
    // The next apply launches the pair again, sets it up and runs the pattern.
    let out = apply(&dir, &["--replace", "demo-efa-4k-c4"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("nodes node1, node2") && t.contains("02-workdir"), "{t}");
    let _ = nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output();
}

#[test]
fn a_finished_campaign_whose_nodes_are_gone_plans_no_infrastructure() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("idle-infra");
    assert!(apply(&dir, &[]).status.success());
    let out =
        nixl().current_dir(&dir).args(["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Every result is there: no stack, no nodes, no setup to pay for.
    let plan = nixl().current_dir(&dir).args(["plan", "local-demo.nixl", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    // Work brings them back; so does naming them.
    let plan = text(&nixl().current_dir(&dir).args(["plan", "local-demo.nixl", "--replace", "demo-efa-4k-c4"]).output().unwrap());
    assert!(plan.contains("+ nodes node1, node2") && plan.contains("+ setup on node1"), "{plan}");
    let plan = text(&nixl().current_dir(&dir).args(["plan", "local-demo.nixl", "--target", "nodes"]).output().unwrap());
    assert!(plan.contains("+ nodes node1, node2"), "{plan}");
}

/// `nixl plan --refresh` asks the local provider about the recorded nodes: a node directory gone
/// outside nixl is shown, the nodes and their setup are planned again, the state is not written;
/// the saved refreshed plan applies.
#[test]
fn plan_refresh_shows_a_node_gone_plans_new_nodes_and_writes_no_state() {
    let dir = copy_examples("refresh");
    let target = ["--target", "setup.node2.02-workdir"];
    assert!(apply(&dir, &target).status.success());
    std::fs::remove_dir_all(dir.join(".nixl/demo/local/nodes/node2")).unwrap();
    let path = dir.join(".nixl/demo/state.json");
    let backup = dir.join(".nixl/demo/state.json.backup");
    let before = (std::fs::read(&path).unwrap(), std::fs::read(&backup).ok());
    let plan = |extra: &[&str]| nixl().current_dir(&dir).args(["plan", "local-demo.nixl"]).args(extra).output().unwrap();
    let p = text(&plan(&["--refresh"]));
    assert!(p.contains("Refreshed: asked local about the 2 recorded node(s)"), "{p}");
    assert!(p.contains("node2 (") && p.contains("no longer exists (terminated outside nixl)"), "{p}");
    assert!(p.contains("+ nodes node1, node2") && p.contains("+ setup on node1") && p.contains("+ setup on node2"), "{p}");
    assert_eq!((std::fs::read(&path).unwrap(), std::fs::read(&backup).ok()), before, "plan --refresh wrote the state");
    // From the state alone, the nodes are still there.
    let p = text(&plan(&target));
    assert!(!p.contains("+ nodes") && !p.contains("Refreshed"), "{p}");
    let saved = dir.join("refreshed.plan");
    let out = plan(&[&["--refresh", "--out", saved.to_str().unwrap()], &target[..]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let out = nixl().current_dir(&dir).args(["apply", saved.to_str().unwrap(), "--provider", "local"]).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("no longer exists (terminated outside nixl): the plan launches new nodes"), "{t}");
    assert!(dir.join(".nixl/demo/local/nodes/node2").is_dir());
    assert_eq!(state(&dir)["actions"]["setup.node2.02-workdir"]["status"], "done");
    destroy(&dir);
}

/// The demo from a folder whose name has a space, quotes, `$(...)` and backticks: `{here}` reaches
/// the stand-in commands quoted, so the campaign runs (a space once broke it with a misleading
/// health timeout) and the name runs nothing.
#[test]
fn the_local_demo_runs_from_a_folder_named_with_shell_syntax() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let outer = scratch("odd-folder");
    let dir = outer.join("my demo's \"$(touch PWNED)\" `touch PWNED`");
    copy_examples_into(&dir);
    let out = apply(&dir, &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("19 done, 0 failed, 0 skipped, 2 server launches"), "{t}");
    let canaries: Vec<_> = walk(&outer).into_iter().filter(|p| p.file_name().is_some_and(|n| n == "PWNED")).collect();
    assert!(canaries.is_empty(), "the folder name ran a command: {canaries:?}");
    destroy(&dir);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
