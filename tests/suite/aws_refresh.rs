//! `nixl plan --refresh` against moto through the real SDK: nodes terminated or resized
//! outside nixl are shown and planned again, the state is not written, and the saved refreshed
//! plan applies.

use crate::aws::{campaign, run, state, text, world};
use crate::moto::{Moto, Proxy};
use std::path::Path;

/// An SDK configuration that talks to moto directly (not through the proxy), as an operator's
/// console or CLI would act outside nixl.
pub async fn moto_conf(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{}", moto.port))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

/// Outside nixl: node `resized` stopped, given another instance type and started; node `gone` terminated.
fn resize_and_terminate(moto: &Moto, resized: &str, gone: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&moto_conf(moto).await);
        ec2.stop_instances().instance_ids(resized).send().await.unwrap();
        let bigger = aws_sdk_ec2::types::AttributeValue::builder().value("g6e.24xlarge").build();
        ec2.modify_instance_attribute().instance_id(resized).instance_type(bigger).send().await.unwrap();
        ec2.start_instances().instance_ids(resized).send().await.unwrap();
        ec2.terminate_instances().instance_ids(gone).send().await.unwrap();
    });
}

fn state_bytes(dir: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    let path = dir.join(".nixl/smoke/state.json");
    (std::fs::read(&path).unwrap(), std::fs::read(path.with_extension("json.backup")).ok())
}

#[test]
fn plan_refresh_shows_nodes_gone_changed_and_stopped_plans_new_ones_and_writes_no_state() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-refresh", &["us-east-1a"]);
    let setup = ["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "setup.node1.01-hello"];
    let out = run(&dir, &proxy, &setup);
    assert!(out.status.success(), "{}", text(&out));
    let st = state(&dir);
    let (n1, n2) = (st["resources"]["node.node1"]["id"].as_str().unwrap(), st["resources"]["node.node2"]["id"].as_str().unwrap());
    let (n1, n2) = (n1.to_string(), n2.to_string());
    // Without --refresh the plan knows only the state: nothing to do for the target.
    let plain = text(&run(&dir, &proxy, &["plan", "aws.nixl", "--target", "setup.node1.01-hello"]));
    assert!(!plain.contains("+ nodes") && !plain.contains("Refreshed"), "{plain}");

    resize_and_terminate(&moto, &n1, &n2);
    let before = state_bytes(&dir);
    let calls = proxy.log.lock().unwrap().len();
    let refreshed = ["plan", "aws.nixl", "--refresh", "--target", "setup.node1.01-hello"];
    let out = run(&dir, &proxy, &refreshed);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("node2 ({n2}) no longer exists (terminated outside nixl)")), "{t}");
    assert!(t.contains(&format!("node1 ({n1}) changed outside nixl: runs as g6e.24xlarge, recorded as g6e.12xlarge")), "{t}");
    assert!(t.contains("+ nodes node1, node2") && t.contains("+ setup on node1"), "{t}");
    // Read-only: one DescribeInstances, nothing created or terminated, the state untouched.
    let asked: Vec<String> = proxy.log.lock().unwrap()[calls..].iter().map(|l| l.action.clone()).collect();
    assert!(asked.contains(&"DescribeInstances".to_string()), "{asked:?}");
    assert!(!asked.iter().any(|a| a.starts_with("Run") || a.starts_with("Terminate") || a.starts_with("PUT")), "{asked:?}");
    assert_eq!(state_bytes(&dir), before, "plan --refresh wrote the state");

    // The same as JSON: what was found, with the plan's actions.
    let out = run(&dir, &proxy, &[&refreshed[..], &["--json"]].concat());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(plan["refresh"]["provider"], "aws");
    assert_eq!(plan["refresh"]["checked"], 2);
    let found: Vec<(String, String)> = plan["refresh"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["node"].as_str().unwrap().to_string(), f["found"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(found, [("node1".to_string(), "changed".to_string()), ("node2".to_string(), "gone".to_string())]);
    let nodes = plan["actions"].as_array().unwrap().iter().find(|a| a["id"] == "nodes").unwrap();
    assert_eq!(nodes["change"], "create");

    // The saved refreshed plan applies: the resized node goes, two new nodes are set up.
    let saved = dir.join("refreshed.plan");
    let out = run(&dir, &proxy, &[&refreshed[..], &["--out", saved.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&dir, &proxy, &["apply", saved.to_str().unwrap(), "--provider", "aws"]);
    assert!(out.status.success(), "{}", text(&out));
    let running: Vec<String> = world(&moto).running.into_iter().map(|(id, _)| id).collect();
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(!running.contains(&n1) && !running.contains(&n2), "{running:?}");
    let st = state(&dir);
    assert_eq!(st["actions"]["setup.node1.01-hello"]["status"], "done");
    assert!(running.contains(&st["resources"]["node.node1"]["id"].as_str().unwrap().to_string()));
    let again = text(&run(&dir, &proxy, &refreshed));
    assert!(again.contains("Refreshed: the 2 recorded node(s) run as recorded (asked aws)"), "{again}");
    // Stopped outside nixl: shown, and left alone (its disks are there): no new nodes planned.
    let stopped = st["resources"]["node.node2"]["id"].as_str().unwrap().to_string();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&moto_conf(&moto).await);
        ec2.stop_instances().instance_ids(&stopped).send().await.unwrap();
    });
    let t = text(&run(&dir, &proxy, &refreshed));
    assert!(t.contains(&format!("node2 ({stopped}) is stopped (outside nixl)")) && !t.contains("+ nodes"), "{t}");
    let out = run(&dir, &proxy, crate::aws::DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}
