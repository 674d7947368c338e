//! Topologies as factors (issue 17 items 1 and 2), through the commands a user runs:
//! `nixl plan examples/xpyd.nixl` (node count, launches, the roles each restarts, GPU
//! counts), `nixl show --commands` (the proxy over two prefill servers), `nixl check`
//! on layouts the stack cannot run.

use crate::local::text;
use crate::support::{golden, nixl, root, scratch};

fn stdout(args: &[&str]) -> String {
    let out = nixl().args(args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_xpyd_plan_shows_three_nodes_each_launchs_layout_and_the_roles_it_restarts() {
    let plan = stdout(&["plan", "examples/xpyd.nixl"]);
    golden(&root().join("tests/golden/plan/xpyd.txt"), &plan);
    // The stack declares two nodes; the 1P:2D and 2P:1D launches need three.
    assert!(plan.contains("+ nodes node1, node2, node3") && plan.contains("3 x g6e.12xlarge"), "{plan}");
    assert!(plan.contains("2 replicas, TP 4 on 2 nodes, 8 GPUs; starts unified, proxy"), "{plan}");
    assert!(plan.contains("1P:1D, TP 4/2 on 2 nodes, 6 GPUs; restarts decode (decode_tp 4 -> 2); prefill, proxy keep running"));
    assert!(
        plan.contains("1P:2D, TP 4/2 on 3 nodes, 8 GPUs; restarts decode, proxy (decode_nodes 1 -> 2); prefill keeps running")
    );
    assert!(plan.contains("2P:1D, TP 2/4 on 3 nodes, 8 GPUs; restarts prefill, decode, proxy"), "{plan}");
}

#[test]
fn the_xpyd_plan_json_gives_each_launch_its_layout() {
    let json: serde_json::Value = serde_json::from_str(&stdout(&["plan", "examples/xpyd.nixl", "--json"])).unwrap();
    assert_eq!(json["estimate"]["nodes"], 3);
    let groups = json["groups"].as_array().unwrap();
    let layouts: Vec<(String, f64, String, String)> = groups
        .iter()
        .map(|g| {
            let l = &g["layout"];
            let roles = |k: &str| l[k].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect::<Vec<_>>().join(",");
            (l["servers"].as_str().unwrap().to_string(), l["gpus"].as_f64().unwrap(), roles("restarts"), roles("keeps"))
        })
        .collect();
    let want = [
        ("2 replicas, TP 4", 8.0, "unified,proxy", ""),
        ("1P:1D, TP 4/4", 8.0, "prefill,decode,proxy", ""),
        ("1P:1D, TP 4/2", 6.0, "decode", "prefill,proxy"),
        ("1P:2D, TP 4/2", 8.0, "decode,proxy", "prefill"),
        ("2P:1D, TP 2/4", 8.0, "prefill,decode,proxy", ""),
    ];
    let want: Vec<(String, f64, String, String)> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), *b, c.to_string(), d.to_string())).collect();
    assert_eq!(layouts, want);
}

#[test]
fn show_commands_configures_the_proxy_for_two_prefill_servers() {
    let t = stdout(&["show", "examples/xpyd.nixl", "xp-2p1d-4k-c16", "--commands"]);
    for want in ["## decode on node3", "## prefill on node1", "## prefill on node2", "## proxy on node1", "## stop on node3"] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    let proxy = t.lines().find(|l| l.starts_with("nohup python3 nixl_proxy.py")).expect("the proxy's command line");
    assert!(
        proxy.contains(
            "--prefiller-hosts 10.0.0.1 10.0.0.2 --prefiller-ports 8100 8101 --decoder-hosts 10.0.0.3 --decoder-ports 8200 --port 8000"
        ),
        "{proxy}"
    );
    let serves: Vec<&str> = t.lines().filter(|l| l.starts_with("nohup vllm serve")).collect();
    assert_eq!(serves.len(), 3, "{t}");
    let tp = |port: &str| {
        serves.iter().find(|l| l.contains(&format!("--port {port} "))).map(|l| l.contains("--tensor-parallel-size 2 "))
    };
    assert_eq!((tp("8100"), tp("8101"), tp("8200")), (Some(true), Some(true), Some(false)), "{serves:#?}");
    assert!(t.contains("(10.0.0.1, 10.0.0.2, 10.0.0.3)"), "three placeholder addresses");
}

#[test]
fn unified_replicas_are_served_through_the_round_robin_proxy() {
    let t = stdout(&["show", "examples/xpyd.nixl", "xp-u2-4k-c4", "--commands"]);
    assert!(t.contains("## unified on node1") && t.contains("## unified on node2"), "{t}");
    let proxy = t.lines().find(|l| l.starts_with("nohup python3 nixl_proxy.py")).expect("a proxy for the replicas");
    assert!(proxy.contains("--replica-hosts 10.0.0.1 10.0.0.2 --replica-ports 8100 8101 --port 8000"), "{proxy}");
    let bench = t.lines().find(|l| l.contains("vllm bench serve")).unwrap();
    assert!(bench.contains("--base-url http://127.0.0.1:8000 "), "the bench goes through the proxy: {bench}");
}

/// Replicas with a server that has no proxy command are E0607; a prefill count of 0 is
/// refused too (the layer's schema says a positive whole number), naming the setting.
#[test]
fn layouts_the_server_or_the_stack_cannot_run_are_e0607_on_the_setting() {
    let dir = scratch("topology-e0607");
    let demo = std::fs::read_to_string(root().join("examples/local-demo.nixl")).unwrap();
    let no_proxy: String = demo.lines().filter(|l| !l.trim_start().starts_with("start_proxy")).collect::<Vec<_>>().join("\n");
    let file = no_proxy.replacen("    mode = unified\n", "    mode     = unified\n    replicas = 2\n", 1);
    assert_ne!(file, no_proxy, "the example changed: update this test");
    std::fs::write(dir.join("replicas.nixl"), file).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "replicas.nixl"]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("E0607") && t.contains("2 unified replicas need a proxy") && t.contains("replicas.nixl:"), "{t}");
    let file = demo.replacen("    mode      = disaggregated\n", "    mode          = disaggregated\n    prefill_nodes = 0\n", 1);
    std::fs::write(dir.join("zero.nixl"), file).unwrap();
    let out = nixl().current_dir(&dir).args(["check", "zero.nixl"]).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("prefill_nodes"), "{t}");
}

#[test]
fn show_commands_lists_the_telemetry_reads_around_the_benchmark() {
    let t = stdout(&["show", "examples/xpyd.nixl", "xp-1p1d-4k-c4", "--commands"]);
    let at = |heading: &str| t.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no `## {heading}` in:\n{t}"));
    let order = [
        at("ready on node2"),
        at("metrics of decode (before the benchmark) on node2"),
        at("transport_counters of decode (before the benchmark) on node2"),
        at("metrics of prefill (before the benchmark) on node1"),
        at("transport_counters of prefill (before the benchmark) on node1"),
        at("bench on node1"),
        at("metrics of decode (after the benchmark) on node2"),
        at("transport_counters of decode (after the benchmark) on node2"),
        at("metrics of prefill (after the benchmark) on node1"),
        at("transport_counters of prefill (after the benchmark) on node1"),
        at("gpu_memory (after the benchmark) on node2"),
        at("stop on node1"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order {order:?}:\n{t}");
    // Each server's read on its own port: the decode server's, and the prefill server's,
    // keeping the prefill side's counters (KV released unread, finished requests).
    let read = |heading: &str| t[at(heading)..].lines().nth(3).unwrap_or_default().to_string();
    let decode = read("metrics of decode (before the benchmark) on node2");
    let prefill = read("metrics of prefill (before the benchmark) on node1");
    assert!(decode.starts_with("curl -sf http://127.0.0.1:8200/metrics"), "the decode server's own port:\n{t}");
    assert!(prefill.starts_with("curl -sf http://127.0.0.1:8100/metrics"), "the prefill server's own port:\n{t}");
    assert!(prefill.contains("kv_expired_reqs") && prefill.contains("request_success_total"), "{prefill}");
    // A unified pattern has no KV transfer to read; its GPU memory is read on its server's node.
    let u = stdout(&["show", "examples/xpyd.nixl", "xp-u2-4k-c4", "--commands"]);
    assert!(!u.contains("## metrics") && u.contains("## gpu_memory (after the benchmark) on node1"), "{u}");
}
