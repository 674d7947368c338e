//! `regions = [...]` on AWS, through the binary and the real SDK against moto behind the fault
//! proxy (moto keeps each region apart by the request's signing region), with the SSM agent
//! stand-in running every command: when every zone of the first region refuses capacity, apply
//! moves to the second, makes its stack there, and the campaign completes; destroy leaves
//! nothing in either region.

use crate::aws::{text, world_in};
use crate::aws_sets::{campaign, records, run, state, APPLY, DESTROY, RESULTS};
use crate::local::PORTS;
use crate::moto::{Moto, Proxy, AMI};
use crate::ssm_agent::Agent;
use std::path::PathBuf;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

/// The demo on a stack that tries us-east-1 (two zones), then us-west-2 (two zones); the AMI
/// is named by a public parameter, which resolves in whichever region apply is in.
fn two_region_campaign(name: &str) -> PathBuf {
    let dir = campaign(name, &["us-east-1a"], 1);
    let file = dir.join("local-demo.nixl");
    let s = std::fs::read_to_string(&file).unwrap();
    let single = format!("  region        = \"us-east-1\"\n  zones         = [\"us-east-1a\"]\n  ami           = \"{AMI}\"\n");
    assert!(s.contains(&single), "the demo changed: {s}");
    let regions = "  regions = [\n    { region = \"us-east-1\", zones = [\"us-east-1a\", \"us-east-1b\"] },\n    { region = \"us-west-2\", zones = [\"us-west-2a\", \"us-west-2b\"] },\n  ]\n  ami_parameter = \"/aws/service/deeplearning/ami/x86_64/base/latest/ami-id\"\n";
    std::fs::write(&file, s.replace(&single, regions)).unwrap();
    dir
}

#[test]
fn every_zone_of_the_first_region_refuses_capacity_and_the_nodes_land_in_the_second() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = two_region_campaign("aws-regions");
    let agent = Agent::new(&dir.join("instances"), moto.port);
    {
        let mut f = proxy.faults.lock().unwrap();
        f.capacity_regions = [EAST.to_string()].into();
        f.agent = Some(agent.clone());
    }

    // The plan shows the order apply will try.
    let plan = text(&run(&dir, &proxy, &["plan", "local-demo.nixl"]));
    assert!(plan.contains("in us-east-1, then us-west-2 (a stack in each region used)"), "{plan}");
    assert!(plan.contains("us-east-1: us-east-1a, then us-east-1b; then us-west-2: us-west-2a, then us-west-2b"), "{plan}");

    let out = run(&dir, &proxy, APPLY);
    let t = text(&out);
    agent.stop_servers();
    assert!(out.status.success(), "{t}");
    assert!(t.contains("Apply complete"), "{t}");
    assert!(t.contains("no zone of us-east-1 has capacity; falling back to us-west-2"), "{t}");

    // Both east zones were refused (signed for us-east-1); the launch went through in the west.
    let runs = proxy.calls("RunInstances");
    let tried: Vec<(&str, &str)> = runs.iter().map(|r| (r.region.as_str(), r.outcome.as_str())).collect();
    assert_eq!(tried, vec![(EAST, "capacity"), (EAST, "capacity"), (WEST, "forwarded")], "{tried:?}");
    assert!(runs[0].body.contains("Placement.AvailabilityZone=us-east-1a"), "{}", runs[0].body);
    assert!(runs[1].body.contains("Placement.AvailabilityZone=us-east-1b"), "{}", runs[1].body);
    assert!(runs[2].body.contains("Placement.AvailabilityZone=us-west-2a"), "{}", runs[2].body);
    // The AMI was resolved in each region it launched in.
    let params: Vec<String> = proxy.calls("GetParameter").iter().map(|c| c.region.clone()).collect();
    assert!(params.contains(&WEST.to_string()), "{params:?}");

    // One stack per region used: the east one (which never held a node) is gone.
    let (east, west) = (world_in(&moto, EAST), world_in(&moto, WEST));
    assert!(east.stacks.is_empty(), "{:?}", east.stacks);
    assert!(east.running.is_empty(), "{:?}", east.running);
    assert_eq!(west.stacks, vec!["local-demo".to_string()]);
    assert_eq!(west.running.len(), 2, "{:?}", west.running);
    assert!(west.running.iter().all(|(_, z)| z == "us-west-2a"), "{:?}", west.running);
    assert_eq!(agent.instances().len(), 2, "{:?}", agent.instances());

    // The state says where each resource is; every result is there once.
    let st = state(&dir);
    let res = &st["resources"];
    assert_eq!(res["stack"]["attributes"]["stack_region"], WEST, "{res}");
    assert_eq!(res["node.node1"]["attributes"]["region"], WEST, "{res}");
    assert_eq!(res["node.node2"]["attributes"]["region"], WEST, "{res}");
    let found = records(&dir);
    assert_eq!(found.len(), RESULTS, "{found:?}");
    assert!(found.values().all(|&n| n == 1), "{found:?}");

    // A second apply starts in the recorded region, has nothing to do and launches nothing.
    let out = run(&dir, &proxy, APPLY);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(proxy.calls("RunInstances").len(), runs.len());
    let creates: Vec<String> = proxy.calls("CreateStack").iter().map(|c| c.region.clone()).collect();
    assert_eq!(creates, vec![EAST.to_string(), WEST.to_string()]);

    // A later apply that runs commands reaches the nodes in the west, through the west bucket.
    let sent = proxy.calls("SendCommand").len();
    let again = [APPLY, &["--replace", "demo-efa-4k-c4"]].concat();
    let out = run(&dir, &proxy, &again);
    agent.stop_servers();
    assert!(out.status.success(), "{}", text(&out));
    let sends = proxy.calls("SendCommand");
    assert!(sends.len() > sent, "no command was sent");
    assert!(sends[sent..].iter().all(|c| c.region == WEST), "{:?}", sends.iter().map(|c| &c.region).collect::<Vec<_>>());
    assert_eq!(proxy.calls("RunInstances").len(), runs.len(), "the replaced pattern launched nodes");
    assert!(records(&dir).values().all(|&n| n == 1), "{:?}", records(&dir));

    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    for region in [EAST, WEST] {
        let w = world_in(&moto, region);
        assert!(w.running.is_empty(), "instances left in {region}: {:?}", w.running);
        assert!(w.stacks.is_empty(), "stacks left in {region}: {:?}", w.stacks);
    }
    assert!(proxy.groups.lock().unwrap().is_empty(), "a placement group was left");
    let res = &state(&dir)["resources"];
    assert!(res.as_object().is_none_or(|m| m.is_empty()), "{res}");
}
