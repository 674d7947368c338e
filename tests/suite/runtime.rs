//! The runtime as users meet it: an experiment resolved once (its stack, even
//! through `extends`), `nixl check` and the golden harness agreeing, rule work
//! recorded like planned work, closed pipes, terraform's habits, and a state
//! file written by the previous release.

use crate::local::{copy_examples, text, PORTS};
use crate::support::{diagnose, nixl, root, scratch};
use std::io::Read;
use std::process::Stdio;

/// Two stacks in two regions; the parent names the second, the child names none.
const TWO_STACKS: &str = r#"import "./local-demo.nixl"

stack "second" {
  region        = "us-west-2"
  zones         = ["us-west-2a"]
  instance_type = "g6e.12xlarge"
  setup         = demo_setup

  node "w1" { role = "prefill" }
  node "w2" { role = "decode" }
  bucket "west-scripts" {}
}

experiment base extends demo {
  prefix = "base"
  stack  = "second"
}

experiment child extends base {
  prefix = "child"
}
"#;

#[test]
fn a_child_experiment_runs_on_the_stack_its_parent_names_at_every_stage() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("two-stacks");
    std::fs::write(dir.join("two.nixl"), TWO_STACKS).unwrap();
    let file = dir.join("two.nixl");
    // Resolution: once, in the pipeline.
    let loaded = nixl::pipeline::load(&file);
    assert!(!loaded.check.has_errors(), "{:?}", loaded.check.diagnostics);
    let child = loaded.campaign(Some("child")).unwrap();
    assert_eq!(child.stack.as_ref().map(|s| s.name.as_str()), Some("second"));
    assert_eq!(child.stack.as_ref().map(|s| s.region.as_str()), Some("us-west-2"));
    // Plan.
    let out = nixl().current_dir(&dir).args(["plan", "two.nixl", "--experiment", "child", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["stack"], "second");
    assert!(plan["actions"].as_array().unwrap().iter().any(|a| a["id"] == "setup.w1.01-python"), "{plan}");
    // Export.
    let out = nixl().current_dir(&dir).args(["export-cfn", "two.nixl", "--experiment", "child"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("for stack second"), "{}", text(&out));
    // Apply (local provider): the nodes are the second stack's.
    let out = nixl()
        .current_dir(&dir)
        .args(["apply", "two.nixl", "--experiment", "child", "--provider", "local", "--auto-approve"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".nixl/child/state.json")).unwrap()).unwrap();
    let resources: Vec<&String> = state["resources"].as_object().unwrap().keys().collect();
    assert_eq!(resources, ["node.w1", "node.w2", "stack"], "{state}");
    assert!(state["resources"]["stack"]["attributes"]["bucket"].as_str().unwrap().ends_with("west-scripts"), "{state}");
    let _ = nixl()
        .current_dir(&dir)
        .args(["destroy", "two.nixl", "--experiment", "child", "--provider", "local", "--auto-approve"])
        .output();
}

#[test]
fn two_stacks_and_no_stack_named_is_an_error_at_check_time() {
    let dir = scratch("two-stacks-check");
    std::fs::copy(root().join("examples/local-demo.nixl"), dir.join("local-demo.nixl")).unwrap();
    // A file that declares two stacks and an experiment that names neither.
    let third = "stack \"third\" {\n  region        = \"us-east-2\"\n  zones         = [\"us-east-2a\"]\n  instance_type = \"g6e.12xlarge\"\n  node \"n1\" {}\n}\n";
    let text_two = format!("{}{third}", TWO_STACKS.replace("  stack  = \"second\"\n", ""));
    std::fs::write(dir.join("two.nixl"), text_two).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "two.nixl", "--format", "plain"]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("error[nixl::E0203]: experiment `base` does not say which of 2 stacks it runs on"), "{t}");
    assert!(t.contains("add `stack = \"second\"` (the stacks declared are: \"second\", \"third\")"), "{t}");
    // The experiment imported from a file with one stack keeps that one: no error about `demo`.
    assert!(!t.contains("experiment `demo`"), "{t}");
    // A misspelt stack is named with a suggestion.
    std::fs::write(dir.join("two.nixl"), TWO_STACKS.replace("stack  = \"second\"", "stack  = \"secnd\"")).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "two.nixl", "--format", "plain"]).output().unwrap();
    let t = text(&out);
    assert!(t.contains("error[nixl::E0208]: no stack `secnd`") && t.contains("did you mean `second`?"), "{t}");
}

/// The golden harness is `nixl check`: for every invalid input, the same lines and exit code.
#[test]
fn nixl_check_prints_exactly_what_the_golden_harness_expects() {
    let dir = root().join("tests/golden/invalid");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".nixl"))
        .map(|n| format!("tests/golden/invalid/{n}"))
        .collect();
    files.sort();
    assert!(files.len() >= 40);
    for f in &files {
        let out = nixl().args(["check", "--format", "plain", f]).output().unwrap();
        let cli = format!("{}exit: {}\n", String::from_utf8_lossy(&out.stderr), out.status.code().unwrap_or(-1));
        assert_eq!(cli, diagnose(f), "{f}");
    }
    let w = "tests/golden/invalid/w0402_pinned_order_costs_launches.nixl";
    let out = nixl().args(["check", "--format", "plain", w]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning[nixl::W0402]"), "{}", text(&out));
    assert!(out.status.success(), "a warning alone exits 0");
}

#[test]
fn a_rule_fired_pattern_whose_server_fails_to_start_is_recorded_as_failed() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("rules-bad-server");
    // The probe's layer points the proxy at a port nothing can listen on, and gives up fast.
    crate::results::write_probe(&dir, "    proxy_port = 70000\n    health_timeout = 1s\n");
    let out = nixl()
        .current_dir(&dir)
        .args(["apply", "probe.nixl", "--provider", "local", "--auto-approve"])
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("launch 3 for what rules added: probe-tcp-12k-c4"), "{t}");
    assert!(t.contains("failed probe-tcp-12k-c4: its server (launch 3) did not start"), "{t}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".nixl/probe/state.json")).unwrap()).unwrap();
    let rec = &state["actions"]["probe-tcp-12k-c4"];
    assert_eq!(rec["status"], "failed", "{state}");
    assert!(rec["error"].as_str().unwrap().contains("not healthy after 1s"), "{rec}");
    // `status` shows it among the last errors.
    let out = nixl().current_dir(&dir).args(["status", "probe.nixl"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("probe-tcp-12k-c4: its server (launch 3) did not start"),
        "{}",
        text(&out)
    );
    let _ = nixl().current_dir(&dir).args(["destroy", "probe.nixl", "--provider", "local", "--auto-approve"]).output();
}

/// Every command that prints, with its reader gone before it writes: exit 0, no panic.
#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let dir = scratch("closed-pipe");
    let saved = dir.join("p.plan");
    let out = nixl().args(["plan", "examples/phase1.nixl", "--out"]).arg(&saved).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let state = dir.join("state.json");
    let s = state.to_string_lossy().to_string();
    let p = saved.to_string_lossy().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["plan", "examples/phase1.nixl", "--json", "--state", &s],
        vec!["plan", "examples/phase1.nixl", "--state", &s],
        vec!["graph", "examples/phase1.nixl", "--state", &s],
        vec!["check", "--format", "json", "examples/phase1.nixl", "tests/golden/invalid/e0103_unknown_name.nixl"],
        vec!["show", "examples/phase2.nixl"],
        vec!["show", "examples/phase2.nixl", "p2-efa-64k-c1"],
        vec!["show", &p],
        vec!["export-cfn", "examples/phase1.nixl"],
        vec!["status", "examples/phase1.nixl", "--state", &s],
        vec!["results", "examples/phase1.nixl", "--format", "json"],
        vec!["fmt", "--check", "examples/phase1.nixl"],
        vec!["version"],
        vec!["--help"],
        vec!["plan", "--help"],
    ];
    for args in commands {
        for _ in 0..3 {
            let mut child = nixl().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            drop(child.stdout.take());
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            let status = child.wait().unwrap();
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(matches!(status.code(), Some(0) | Some(1)), "{args:?}: {status:?} {err}");
            if !args.contains(&"tests/golden/invalid/e0103_unknown_name.nixl") {
                assert_eq!(status.code(), Some(0), "{args:?}: {err}");
            }
        }
    }
}

#[test]
fn terraform_habits_work() {
    let dir = scratch("habits");
    let state = dir.join("state.json");
    // validate is check; version prints the version.
    let out = nixl().args(["validate", "examples/phase2.nixl"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = nixl().arg("version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("nixl {}\n", env!("CARGO_PKG_VERSION")));
    // A single-dash long flag is read as the long flag, with a note.
    let out = nixl().args(["plan", "examples/phase2.nixl", "-detailed-exitcode", "-state"]).arg(&state).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("note: `-detailed-exitcode` is read as `--detailed-exitcode`"));
    // One launch number everywhere: plan text, JSON, show and --target group:N.
    let out = nixl().args(["plan", "examples/phase2.nixl", "--json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let third = &plan["groups"][2];
    assert_eq!(third["launch"], 3);
    let start = plan["actions"].as_array().unwrap().iter().find(|a| a["id"] == "server.3.start").unwrap();
    assert_eq!(start["launch"], 3);
    let pattern = plan["actions"].as_array().unwrap().iter().find(|a| a["launch"] == 3 && a["kind"] == "pattern").unwrap();
    let id = pattern["id"].as_str().unwrap();
    let out = nixl().args(["show", "examples/phase2.nixl", id]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("launch      3 of 6"), "{}", text(&out));
    let out = nixl().args(["plan", "examples/phase2.nixl", "--target", "group:3", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let targeted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let launches: Vec<&serde_json::Value> =
        targeted["actions"].as_array().unwrap().iter().filter_map(|a| a.get("launch")).collect();
    assert!(!launches.is_empty() && launches.iter().all(|l| *l == 3), "{targeted}");
    assert_eq!(targeted["summary"]["launches"], 1);
    let text_plan = String::from_utf8_lossy(&nixl().args(["plan", "examples/phase2.nixl"]).output().unwrap().stdout).to_string();
    assert!(text_plan.contains(&format!("   3. {}", third["key"].as_str().unwrap())), "{text_plan}");
    // A target that names nothing is an error with a suggestion, not an empty plan.
    let out = nixl().args(["plan", "examples/phase2.nixl", "--target", "p2-efa-64k-c2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `p2-efa-64k-c1`?"), "{}", text(&out));
    let out = nixl().args(["plan", "examples/phase2.nixl", "--target", "group:99"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("numbered 1 to 6"), "{}", text(&out));
    // --replace on plan: a done pattern runs again.
    // show PLANFILE prints a saved plan, as JSON too.
    let saved = dir.join("p.plan");
    let out = nixl().args(["plan", "examples/phase2.nixl", "--out"]).arg(&saved).output().unwrap();
    assert!(out.status.success());
    let out = nixl().arg("show").arg(&saved).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nixl will perform these actions for experiment phase2"),
        "{}",
        text(&out)
    );
    let out = nixl().arg("show").arg(&saved).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["experiment"], "phase2");
    // Closed sets and names: a format or layer or experiment that does not exist is an error.
    let out = nixl().args(["results", "examples/phase2.nixl", "--format", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: table, csv, json"), "{}", text(&out));
    let out = nixl().args(["results", "examples/phase2.nixl", "--layer", "L9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no layer `L9`"), "{}", text(&out));
    let out = nixl().args(["destroy", "examples/phase2.nixl", "--experiment", "phase3", "--auto-approve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no experiment `phase3`; the file declares phase1, phase2") && err.contains("did you mean"), "{err}");
}

#[test]
fn replace_on_plan_and_destroy_target_nodes_on_the_local_provider() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("replace-destroy");
    let run = |args: &[&str]| nixl().current_dir(&dir).args(args).env_remove("MLFLOW_TRACKING_URI").output().unwrap();
    let out = run(&["apply", "local-demo.nixl", "--provider", "local", "-auto-approve"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("note: `-auto-approve` is read as `--auto-approve`"), "{t}");
    // Progress numbers every action once, in order, with no gap: a setup step on
    // two nodes is one line numbered "[a-b/total]".
    let mut next = 1;
    for line in t.lines().filter(|l| l.starts_with('[')) {
        let n = &line[1..line.find('/').unwrap()];
        let (first, last) = n.split_once('-').unwrap_or((n, n));
        assert_eq!(first.parse::<usize>().unwrap(), next, "{t}");
        next = last.parse::<usize>().unwrap() + 1;
    }
    let out = run(&["plan", "local-demo.nixl", "--replace", "demo-unified-4k-c4", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changed: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["change"] != "no-op")
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    // The analysis reading the replaced pattern is computed again from its new result.
    assert_eq!(
        changed,
        ["upload", "server.1.start", "demo-unified-4k-c4", "server.1.stop", "demo-analysis-efa-vs-unified"],
        "{plan}"
    );
    // destroy --target nodes keeps the stack. With every result there, nothing needs nodes:
    // the plan creates none (infrastructure only for work). Asked for, they come back alone.
    let out = run(&["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve", "--target", "nodes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["plan", "local-demo.nixl", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["plan", "local-demo.nixl", "--json", "--target", "nodes"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["change"] != "no-op")
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"stack") && kinds.contains(&"nodes"), "{plan}");
    assert!(!kinds.contains(&"pattern"), "results are kept: {plan}");
    let _ = run(&["destroy", "local-demo.nixl", "--provider", "local", "--auto-approve"]);
}

/// A state written by the release before typed addresses and records: read, and written back in the same shape.
#[test]
fn the_previous_releases_state_file_is_read() {
    let path = root().join("tests/golden/state/previous-release.json");
    let state = nixl::state::State::load(&path).unwrap();
    use nixl::address::ActionId;
    assert!(state.actions.contains_key(&ActionId::Stack));
    assert!(state.actions.contains_key(&ActionId::setup("node1", "05-nixl")));
    assert!(state.actions.contains_key(&ActionId::Pattern("p2-efa-12k-c1".into())));
    let stack = state.infra.stack.as_ref().unwrap();
    assert_eq!(stack.bucket(), Some("nixl-phase2-bucket-1a2b3c"));
    let names: Vec<&str> = state.infra.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node1", "node2"]);
    assert_eq!(state.infra.nodes[1].private_ip, "10.0.1.12");
    assert_eq!(state.infra.nodes[1].zone.as_deref(), Some("us-east-1b"));
    // Written back, it has the same JSON shape as before.
    let dir = scratch("previous-state");
    let copy = dir.join("state.json");
    let mut s = state.clone();
    s.save(&copy).unwrap();
    let before: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    assert_eq!(before["resources"], after["resources"]);
    assert_eq!(before["actions"], after["actions"]);
    assert_eq!(after["serial"], before["serial"].as_u64().unwrap() + 1);
    // And `nixl plan` reads it; its nodes, recorded before nixl recorded volume encryption, are replaced.
    let out = nixl().args(["plan", "examples/phase2.nixl", "--json", "--state"]).arg(&copy).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let change = |id: &str| plan["actions"].as_array().unwrap().iter().find(|a| a["id"] == id).map(|a| a["change"].clone());
    assert_eq!(change("nodes"), Some("replace".into()));
}

/// Every `--json` output is exactly one JSON document, warnings or not (they go to stderr).
#[test]
fn every_json_output_is_one_document_even_with_warnings() {
    let warned = "tests/golden/invalid/w0402_pinned_order_costs_launches.nixl";
    let dir = scratch("json-docs");
    let state = dir.join("state.json");
    let s = state.to_string_lossy().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["plan", warned, "--json", "--state", &s],
        vec!["plan", "examples/phase2.nixl", "--json", "--state", &s],
        vec!["status", warned, "--json", "--state", &s],
        vec!["show", warned, "--json"],
        vec!["show", "examples/phase2.nixl", "p2-efa-64k-c1", "--json"],
        vec!["results", "examples/phase2.nixl", "--format", "json"],
        vec!["check", "--format", "json", warned, "examples/phase2.nixl"],
    ];
    for args in commands {
        let out = nixl().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        // serde_json refuses trailing content: a second document fails here.
        let v: Result<serde_json::Value, _> = serde_json::from_slice(&out.stdout);
        assert!(v.is_ok(), "{args:?}: {v:?}\n{}", String::from_utf8_lossy(&out.stdout));
    }
    let out = nixl().args(["plan", warned, "--json", "--state", &s]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nixl::W0402"), "the warning is on stderr: {}", text(&out));
}
