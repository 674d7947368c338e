//! `market = [spot, on_demand]` on AWS, through the binary and the real SDK against moto behind
//! the fault proxy, with the SSM agent stand-in running the commands: spot is asked for first
//! and on demand when spot has no capacity; a node terminated while its launch runs (as EC2
//! takes back a spot node) is found before the next pattern, the nodes are re-provisioned and
//! set up, the launch starts again, and only its remaining patterns run.

use crate::aws::{text, world};
use crate::aws_refresh::moto_conf;
use crate::aws_sets::{campaign, records, state, APPLY, DESTROY, RESULTS};
use crate::local::PORTS;
use crate::moto::{Moto, Proxy};
use crate::ssm_agent::Agent;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The demo on one set of spot nodes (on demand when spot has none), each benchmark run 2 s long.
fn spot_campaign(name: &str) -> PathBuf {
    let dir = campaign(name, &["us-east-1a", "us-east-1b"], 1);
    let file = dir.join("local-demo.nixl");
    let s = std::fs::read_to_string(&file).unwrap();
    let s = s
        .replace(
            "  instance_type = \"g6e.12xlarge\"\n",
            "  instance_type = \"g6e.12xlarge\"\n  market        = [spot, on_demand]\n",
        )
        .replace(
            "run        = \"python3 {here}/local-demo/standin_bench.py",
            "run        = \"sleep 2 && python3 {here}/local-demo/standin_bench.py",
        );
    assert!(s.contains("market        = [spot") && s.contains("sleep 2 &&"), "the demo changed");
    std::fs::write(&file, s).unwrap();
    dir
}

/// The instance ids a state records for the nodes.
fn node_ids(dir: &Path) -> Vec<String> {
    let st = state(dir);
    let nodes = st["resources"].as_object().unwrap();
    nodes.iter().filter(|(k, _)| k.starts_with("node.")).filter_map(|(_, v)| v["id"].as_str().map(String::from)).collect()
}

/// Pattern ids whose result file a node's working directory holds.
fn measured_on(agent: &Agent, instance: &str) -> Vec<String> {
    let dir = agent.work_dir(instance).join("results");
    let names = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().to_string());
    // The benchmark writes `results/<pattern id>.<hash>.out`.
    let mut ids: Vec<String> = names.filter_map(|n| n.split_once('.').map(|(id, _)| id.to_string())).collect();
    ids.sort();
    ids
}

#[test]
fn a_spot_node_terminated_mid_launch_is_replaced_and_only_the_launchs_remaining_patterns_run() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = spot_campaign("aws-spot");
    let agent = Agent::new(&dir.join("instances"), moto.port);
    proxy.faults.lock().unwrap().agent = Some(agent.clone());
    // The output goes to files: a pipe nobody reads while apply runs could fill and block it.
    let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
    let child = crate::aws::aws_cmd(&dir, &proxy, APPLY).stdout(log("apply.out")).stderr(log("apply.err")).spawn().unwrap();
    // Once the unified launch's first pattern is recorded, EC2 takes node1 back: the node that
    // serves and benchmarks, so the pattern running there dies with it.
    let deadline = Instant::now() + Duration::from_secs(300);
    let first = loop {
        assert!(Instant::now() < deadline, "no unified pattern finished");
        let done = std::fs::read(dir.join(".nixl/demo/state.json")).ok().and_then(|b| {
            let s: serde_json::Value = serde_json::from_slice(&b).ok()?;
            let actions = s["actions"].as_object()?.clone();
            actions.iter().find(|(id, r)| id.starts_with("demo-unified-") && r["status"] == "done").map(|(id, _)| id.clone())
        });
        if let Some(id) = done {
            break id;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let before = node_ids(&dir);
    let node1 = state(&dir)["resources"]["node.node1"]["id"].as_str().unwrap().to_string();
    // Through the proxy, so the agent stand-in knows the machine is gone (what ran there dies).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let conf = moto_conf(&moto).await.into_builder().endpoint_url(proxy.url()).build();
        aws_sdk_ec2::Client::new(&conf).terminate_instances().instance_ids(&node1).send().await.unwrap();
    });
    let status = child.wait_with_output().unwrap().status;
    let t = std::fs::read_to_string(dir.join("apply.out")).unwrap() + &std::fs::read_to_string(dir.join("apply.err")).unwrap();
    agent.stop_servers();
    assert!(status.success(), "{t}");
    assert!(t.contains(&format!("spot interruption: node1 ({node1}) no longer run(s)")), "{t}");
    assert!(t.contains("starting launch 1 again on the new nodes"), "{t}");

    // Spot was asked for, twice: the first pair, then the pair that replaced it.
    let runs = proxy.calls("RunInstances");
    assert_eq!(runs.len(), 2, "{:?}", runs.iter().map(|r| &r.outcome).collect::<Vec<_>>());
    assert!(runs.iter().all(|r| r.body.contains("InstanceMarketOptions.MarketType=spot")), "spot requested");
    assert!(runs.iter().all(|r| r.body.contains("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior=terminate")));
    let after = node_ids(&dir);
    assert!(after.iter().all(|id| !before.contains(id)), "the state records the new pair: {before:?} -> {after:?}");
    assert_eq!(world(&moto).running.len(), 2, "the old pair is gone, the new one runs");

    // Every result once; what finished before the interruption ran on the old node1 only, the
    // launch's remaining patterns on the new node1 only.
    let found = records(&dir);
    assert_eq!(found.len(), RESULTS, "{found:?}");
    assert!(found.values().all(|&n| n == 1), "{found:?}");
    let (old, new) = (measured_on(&agent, &node1), measured_on(&agent, &after[0]));
    println!("measured on the interrupted pair: {old:?}; on the new pair: {new:?}");
    assert!(old.contains(&first), "{old:?}");
    assert!(old.iter().all(|id| !new.contains(id)), "a pattern ran twice: {old:?} / {new:?}");
    let unified_new = new.iter().filter(|id| id.starts_with("demo-unified-")).count();
    assert!(unified_new >= 1, "the unified launch resumed on the new nodes: {new:?}");
    assert_eq!(old.iter().filter(|id| id.starts_with("demo-unified-")).count() + unified_new, 3);

    let out = crate::aws_sets::run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    assert!(world(&moto).running.is_empty());
}

/// No spot capacity in any zone: the stack's next market, on demand, launches the nodes.
#[test]
fn without_spot_capacity_the_nodes_launch_on_demand_as_the_stack_lists_next() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = spot_campaign("aws-spot-fallback");
    proxy.faults.lock().unwrap().no_spot = true;
    let args = ["apply", "local-demo.nixl", "--provider", "aws", "--auto-approve", "--target", "nodes"];
    let out = crate::aws_sets::run(&dir, &proxy, &args);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let runs = proxy.calls("RunInstances");
    let asked: Vec<(bool, &str)> =
        runs.iter().map(|r| (r.body.contains("InstanceMarketOptions.MarketType=spot"), r.outcome.as_str())).collect();
    assert_eq!(asked, [(true, "capacity"), (true, "capacity"), (false, "forwarded")], "spot in both zones, then on demand");
    assert!(t.contains("launching 2 x g6e.12xlarge (on demand) in us-east-1a"), "{t}");
    assert_eq!(world(&moto).running.len(), 2);
    // The plan's estimate prices spot nodes at the catalogue's on-demand price: it states no spot price.
    let plan = text(&crate::aws_sets::run(&dir, &proxy, &["plan", "local-demo.nixl"]));
    assert!(plan.contains("(on-demand price: the catalogue states no `spot_price` for this type)"), "{plan}");
    let out = crate::aws_sets::run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}

/// A stack that prefers spot is estimated at the catalogue's `spot_price` for its type, and the
/// plan says which price it used.
#[test]
fn the_estimate_prices_spot_nodes_at_the_catalogues_spot_price() {
    let dir = crate::local::copy_examples("spot-estimate");
    let file = dir.join("local-demo.nixl");
    let lab = "instance \"g6e.12xlarge-lab\" {\n  gpu        = \"NVIDIA L40S\"\n  gpus       = 4\n  gpu_memory = 48GB\n  efa        = true\n  price      = $10.49\n  spot_price = $4.20\n  volume     = 200GB\n}\n\nstack \"local-demo\" {";
    let s = std::fs::read_to_string(&file).unwrap().replace("stack \"local-demo\" {", lab).replace(
        "  instance_type = \"g6e.12xlarge\"\n",
        "  instance_type = \"g6e.12xlarge-lab\"\n  market        = [spot, on_demand]\n",
    );
    std::fs::write(&file, &s).unwrap();
    let out = crate::support::nixl().current_dir(&dir).args(["plan", "local-demo.nixl"]).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let estimate = t.lines().find(|l| l.starts_with("Estimate:")).unwrap_or_default();
    assert!(estimate.contains("at $4.20/h per node") && estimate.ends_with("(spot price from the catalogue)."), "{t}");
    let out = crate::support::nixl().current_dir(&dir).args(["plan", "local-demo.nixl", "--json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["estimate"]["price_basis"], "spot");
    assert_eq!(plan["estimate"]["price_per_node_hour"], 4.2);
}
