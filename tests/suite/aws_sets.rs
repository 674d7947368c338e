//! `parallel = k` on AWS, through the binary and the real SDK against moto behind the fault
//! proxy, with the SSM agent stand-in (`ssm_agent.rs`) running every command: each node set
//! launches its own nodes with its own capacity fallback, the campaign's results from every
//! set land in one store and one state, and destroy removes every set's resources.
//!
//! The campaign is the local demo (stand-in servers and benchmark) on an AWS stack: a
//! baseline step, two launches of three patterns each, an analysis.

use crate::aws::{aws_cmd, text, world};
use crate::local::{copy_examples, PORTS};
use crate::moto::{Moto, Proxy, AMI};
use crate::ssm_agent::Agent;
use crate::support::nixl;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The demo's patterns, baseline step and analysis: what a finished campaign keeps.
pub const RESULTS: usize = 8;

/// The local demo on an AWS stack in `zones`, spread over `parallel` node sets; every port a
/// server listens on is raised by the agent's NODE_PORT_OFFSET (all instances share 127.0.0.1),
/// and each node's readiness check asks its own servers.
pub fn campaign(name: &str, zones: &[&str], parallel: u32) -> PathBuf {
    let dir = copy_examples(name);
    let file = dir.join("local-demo.nixl");
    let mut s = std::fs::read_to_string(&file).unwrap();
    let zones: Vec<String> = zones.iter().map(|z| format!("\"{z}\"")).collect();
    s = s.replace(
        "  zones         = [\"us-east-1a\"]\n",
        &format!("  zones         = [{}]\n  ami           = \"{AMI}\"\n", zones.join(", ")),
    );
    s = s
        .replace("  node \"node2\" { role = \"decode\" }\n", "  node \"node2\" { role = \"decode\" }\n  bucket \"scripts\" {}\n");
    s = s.replace("  prefix = \"demo\"\n", &format!("  prefix   = \"demo\"\n  parallel = {parallel}\n"));
    for port in ["port", "prefill_port", "decode_port", "proxy_port"] {
        s = s.replace(&format!("--port {{{port}}}"), &format!("--port $(({{{port}}} + NODE_PORT_OFFSET))"));
    }
    let at = "127.0.0.1:{mode == unified ? port : proxy_port}";
    let shifted = "127.0.0.1:$(({mode == unified ? port : proxy_port} + NODE_PORT_OFFSET))";
    s = s.replace(&format!("--url http://{at}"), &format!("--url http://{shifted}"));
    let health = s.lines().find(|l| l.trim_start().starts_with("health ")).unwrap().to_string();
    // A node checks the servers on its own 127.0.0.1: node2 (decode only) checks its decode server.
    let decode = "127.0.0.1:$(({decode_port} + NODE_PORT_OFFSET))";
    s = s
        .replace(&health, &format!("  health         = \"curl -sf http://{shifted}/health || curl -sf http://{decode}/health\""));
    for want in ["ami ", "bucket \"scripts\"", "parallel = ", "--port $(({proxy_port}", "curl -sf", "--url http://127.0.0.1:$(("]
    {
        assert!(s.contains(want), "the demo changed: {want} not placed");
    }
    std::fs::write(&file, s).unwrap();
    dir
}

pub fn run(dir: &Path, proxy: &Proxy, args: &[&str]) -> Output {
    aws_cmd(dir, proxy, args).output().unwrap()
}

pub const APPLY: &[&str] = &["apply", "local-demo.nixl", "--provider", "aws", "--auto-approve"];
pub const DESTROY: &[&str] = &["destroy", "local-demo.nixl", "--provider", "aws", "--auto-approve"];

pub fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(".nixl/demo/state.json")).unwrap()).unwrap()
}

/// Result records in the store, by pattern id.
pub fn records(dir: &Path) -> BTreeMap<String, usize> {
    let mut by_id = BTreeMap::new();
    for e in std::fs::read_dir(dir.join(".nixl/results/demo")).into_iter().flatten().flatten() {
        if let Some(id) = e.file_name().to_string_lossy().strip_suffix(".json") {
            *by_id.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    by_id
}

/// Two node sets, capacity refused in the first zone: each set falls back on its own and both
/// land in the second; the campaign completes with every result once, each launch on the set
/// the plan gave it; destroy terminates all four instances and set 2's placement group.
#[test]
fn two_node_sets_with_capacity_refused_in_one_zone_both_land_and_the_campaign_completes() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-sets", &["us-east-1a", "us-east-1b"], 2);
    let agent = Agent::new(&dir.join("instances"), moto.port);
    {
        let mut f = proxy.faults.lock().unwrap();
        f.capacity_zones = ["us-east-1a".to_string()].into();
        f.agent = Some(agent.clone());
    }
    let out = run(&dir, &proxy, APPLY);
    let t = text(&out);
    agent.stop_servers();
    assert!(out.status.success(), "{t}");
    assert!(t.contains("Apply complete"), "{t}");

    // Each set tried the refused zone, then landed in the other, on its own.
    let runs = proxy.calls("RunInstances");
    let outcomes: Vec<&str> = runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "capacity").count(), 2, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "forwarded").count(), 2, "{outcomes:?}");
    assert!(t.contains("launching 2 x g6e.12xlarge in us-east-1a for node set 2"), "{t}");
    assert!(t.contains("launching 2 x g6e.12xlarge in us-east-1b for node set 2"), "{t}");
    let set2: Vec<_> = runs.iter().filter(|r| r.body.contains("Key=nixl:set")).collect();
    assert_eq!(set2.len(), 2, "set 2's launches carry its tag");
    assert!(set2.iter().all(|r| r.body.contains("Placement.GroupName=local-demo-set2")), "set 2 in its own group");
    let w = world(&moto);
    assert_eq!(w.running.len(), 4, "{:?}", w.running);
    assert!(w.running.iter().all(|(_, z)| z == "us-east-1b"), "{:?}", w.running);
    // Commands ran on all four instances: both sets measured.
    assert_eq!(agent.instances().len(), 4, "{:?}", agent.instances());

    // One state, one store: every result once, from both sets.
    let found = records(&dir);
    assert_eq!(found.len(), RESULTS, "{found:?}");
    assert!(found.values().all(|&n| n == 1), "{found:?}");
    let st = state(&dir);
    let sets: BTreeMap<String, u64> =
        st["actions"].as_object().unwrap().iter().filter_map(|(id, r)| Some((id.clone(), r["set"].as_u64()?))).collect();
    assert!(sets.values().any(|&s| s == 1) && sets.values().any(|&s| s == 2), "{sets:?}");
    let status = text(&nixl().current_dir(&dir).args(["status", "local-demo.nixl"]).output().unwrap());
    assert!(status.contains("Node sets: set 1 ran"), "{status}");

    // A second apply has nothing to do and launches nothing.
    let out = run(&dir, &proxy, APPLY);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(proxy.calls("RunInstances").len(), runs.len());

    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let w = world(&moto);
    assert!(w.running.is_empty(), "instances left: {:?}", w.running);
    assert!(w.stacks.is_empty(), "stacks left: {:?}", w.stacks);
    assert!(proxy.groups.lock().unwrap().is_empty(), "set 2's placement group was left");
}

/// Capacity runs out after set 1's launch: set 2 tries both zones, gets no nodes, and leaves its
/// launch to set 1, which runs it after its own; the campaign completes on set 1 alone.
#[test]
fn a_node_set_that_gets_no_capacity_leaves_its_launch_to_the_other_set() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-sets-handover", &["us-east-1a", "us-east-1b"], 2);
    let agent = Agent::new(&dir.join("instances"), moto.port);
    {
        let mut f = proxy.faults.lock().unwrap();
        f.capacity_after = Some(1);
        f.agent = Some(agent.clone());
    }
    let out = run(&dir, &proxy, APPLY);
    let t = text(&out);
    agent.stop_servers();
    assert!(out.status.success(), "{t}");
    assert!(t.contains("set 2: cannot create its nodes (no capacity in any zone"), "{t}");
    assert!(t.contains("set 1: takes over launch"), "{t}");
    let outcomes: Vec<String> = proxy.calls("RunInstances").iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(outcomes, ["forwarded", "capacity", "capacity"], "set 1 launched once, set 2 tried both zones");
    assert_eq!(world(&moto).running.len(), 2);
    let found = records(&dir);
    assert_eq!(found.len(), RESULTS, "{found:?}");
    assert!(found.values().all(|&n| n == 1), "{found:?}");
    let st = state(&dir);
    let sets: Vec<u64> = st["actions"].as_object().unwrap().values().filter_map(|r| r["set"].as_u64()).collect();
    assert!(!sets.is_empty() && sets.iter().all(|&s| s == 1), "{sets:?}");
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    assert!(world(&moto).running.is_empty());
}

/// Apply killed (SIGKILL) once set 2 has recorded a result: the next apply finds both sets'
/// nodes by their tags and keeps them (no new launch), runs only what has no result, and every
/// result is kept exactly once.
#[test]
fn after_a_sigkill_with_sets_half_done_apply_keeps_both_sets_nodes_and_every_result_once() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-sets-resume", &["us-east-1a"], 2);
    let agent = Agent::new(&dir.join("instances"), moto.port);
    proxy.faults.lock().unwrap().agent = Some(agent.clone());
    let mut child = crate::aws::aws_cmd(&dir, &proxy, APPLY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let set2_done = || -> bool {
        let Ok(b) = std::fs::read(dir.join(".nixl/demo/state.json")) else { return false };
        let s: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        s["actions"].as_object().is_some_and(|a| a.values().any(|r| r["set"] == 2 && r["status"] == "done"))
    };
    while !set2_done() {
        assert!(std::time::Instant::now() < deadline, "set 2 recorded nothing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = records(&dir).len();
    assert!(before < RESULTS, "killed after the campaign ended: {before} results");
    assert_eq!(proxy.calls("RunInstances").len(), 2);

    let out = run(&dir, &proxy, APPLY);
    let t = text(&out);
    agent.stop_servers();
    assert!(out.status.success(), "{t}");
    assert_eq!(proxy.calls("RunInstances").len(), 2, "both sets kept their nodes: {t}");
    assert_eq!(world(&moto).running.len(), 4);
    let found = records(&dir);
    assert_eq!(found.len(), RESULTS, "{found:?}");
    assert!(found.values().all(|&n| n == 1), "{found:?}");
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    assert!(world(&moto).running.is_empty());
}
