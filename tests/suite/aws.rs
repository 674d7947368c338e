//! The AWS provider through the real SDK, against moto on 127.0.0.1 behind the
//! fault-injecting proxy in `moto.rs`: create, converge, fail over across
//! zones, survive throttling and SIGKILL, lock, destroy, and the SSM path.

use crate::moto::{Moto, Proxy, AMI, PLACEMENT_GROUP};
use crate::support::{nixl, scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const STACK: &str = "nixl-test";

pub fn campaign(name: &str, zones: &[&str]) -> PathBuf {
    let dir = scratch(name);
    let zones: Vec<String> = zones.iter().map(|z| format!("\"{z}\"")).collect();
    let text = format!(
        r#"import "std/aws"
import "std/models"
import "std/vllm"

setup env {{
  step "01-hello" {{
    name = "Say hello"
    run  = "echo hello"
  }}
  step "02-marker" {{
    name = "Write a marker"
    run  = "touch /tmp/nixl-marker"
    skip_if = "test -f /tmp/nixl-marker"
  }}
}}

stack "{STACK}" {{
  region         = "us-east-1"
  zones          = [{}]
  instance_type  = "g6e.12xlarge"
  ami            = "{AMI}"
  setup          = env
  retry_interval = 2s

  node "node1" {{ role = "prefill" }}
  node "node2" {{ role = "decode" }}
  bucket "scripts" {{}}
}}

experiment smoke {{
  prefix = "sm"
  model  = qwen2_5_7b
  server = vllm {{ tp = 4, max_model_len = 2048 }}
  bench  = vllm_bench {{ iterations = 5 }}

  factor prompt      = [1K]
  factor concurrency = [1]

  layer "unified" {{
    mode = unified
    id   = "{{prefix}}-u-{{prompt}}-c{{concurrency}}"
  }}
}}
"#,
        zones.join(", ")
    );
    std::fs::write(dir.join("aws.nixl"), text).unwrap();
    dir
}

pub fn aws_cmd(dir: &Path, proxy: &Proxy, args: &[&str]) -> Command {
    let mut c = nixl();
    c.current_dir(dir)
        .args(args)
        .env("AWS_ENDPOINT_URL", proxy.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env("NIXL_AWS_POLL_MS", "20");
    c
}

pub fn run(dir: &Path, proxy: &Proxy, args: &[&str]) -> Output {
    aws_cmd(dir, proxy, args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub const APPLY_NODES: &[&str] = &["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "nodes"];
pub const DESTROY: &[&str] = &["destroy", "aws.nixl", "--provider", "aws", "--auto-approve"];

/// What moto holds, asked directly (not through the proxy).
pub struct World {
    pub stacks: Vec<String>,
    pub running: Vec<(String, String)>,
    pub buckets: usize,
}

pub fn world(moto: &Moto) -> World {
    world_in(moto, "us-east-1")
}

/// What moto holds in `region` (moto keeps each region apart, by the signature's region).
pub fn world_in(moto: &Moto, region: &str) -> World {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(format!("http://127.0.0.1:{}", moto.port))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        let cfn = aws_sdk_cloudformation::Client::new(&conf);
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build());
        let stacks = cfn.describe_stacks().send().await.unwrap();
        let stacks = stacks
            .stacks()
            .iter()
            .filter(|s| s.stack_status().map(|x| x.as_str()) != Some("DELETE_COMPLETE"))
            .map(|s| s.stack_name().unwrap_or_default().to_string())
            .collect();
        let inst = ec2.describe_instances().send().await.unwrap();
        let running = inst
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| matches!(i.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("running" | "pending")))
            .map(|i| {
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    i.placement().and_then(|p| p.availability_zone()).unwrap_or_default().to_string(),
                )
            })
            .collect();
        let buckets = s3.list_buckets().send().await.unwrap().buckets().len();
        World { stacks, running, buckets }
    })
}

pub fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(".nixl/smoke/state.json")).unwrap()).unwrap()
}

#[test]
fn apply_creates_the_stack_and_two_nodes_a_second_apply_does_nothing_and_destroy_removes_everything() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-basic", &["us-east-1a", "us-east-1b"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let st = state(&dir);
    let n1 = st["resources"]["node.node1"]["id"].as_str().unwrap().to_string();
    let n2 = st["resources"]["node.node2"]["id"].as_str().unwrap().to_string();
    assert!(n1.starts_with("i-") && n2.starts_with("i-") && n1 != n2);
    assert!(st["resources"]["stack"]["attributes"]["bucket"].as_str().is_some_and(|b| !b.is_empty()));
    let w = world(&moto);
    assert_eq!(w.stacks, vec![STACK.to_string()]);
    assert_eq!(w.running.len(), 2);
    assert_eq!(w.buckets, 1);
    // RunInstances asked for both nodes at once, with EFA, IMDSv2 and the stack tag.
    let runs = proxy.calls("RunInstances");
    assert_eq!(runs.len(), 1);
    let body = &runs[0].body;
    for want in [
        "MinCount=2",
        "MaxCount=2",
        "InterfaceType=efa",
        "HttpTokens=required",
        "Value=nixl-test",
        &format!("ImageId={AMI}"),
        &format!("Placement.GroupName={PLACEMENT_GROUP}"),
    ] {
        assert!(body.contains(want), "RunInstances lacks {want}: {body}");
    }

    // A second apply finds everything and creates nothing.
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(proxy.calls("RunInstances").len(), 1);
    assert_eq!(proxy.calls("CreateStack").len(), 1);
    assert_eq!(world(&moto).running.len(), 2);

    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let w = world(&moto);
    assert!(w.stacks.is_empty(), "stacks left: {:?}", w.stacks);
    assert!(w.running.is_empty(), "instances left: {:?}", w.running);
    assert_eq!(w.buckets, 0, "a bucket was left behind");
    // Destroy again: nothing to remove, still fine.
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn capacity_errors_in_two_zones_land_the_nodes_in_the_third() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-capacity", &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]);
    proxy.faults.lock().unwrap().capacity_zones = ["us-east-1a", "us-east-1b"].iter().map(|s| s.to_string()).collect();
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("landed in us-east-1c after 2 failed attempt(s)"), "{t}");
    let st = state(&dir);
    assert_eq!(st["resources"]["node.node1"]["attributes"]["zone"], "us-east-1c");
    let w = world(&moto);
    assert_eq!(w.running.len(), 2);
    assert!(w.running.iter().all(|(_, z)| z == "us-east-1c"), "{:?}", w.running);
    // The tool's own time from a capacity error to the next attempt.
    let runs = proxy.calls("RunInstances");
    assert_eq!(runs.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), vec!["capacity", "capacity", "forwarded"]);
    let gap = runs[1].at.duration_since(runs[0].at);
    eprintln!("capacity error to next attempt: {} ms", gap.as_millis());
    assert!(gap < Duration::from_secs(5), "failover took {gap:?}");
}

#[test]
fn a_zone_suggested_by_the_error_message_is_tried_first() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-suggest", &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]);
    {
        let mut f = proxy.faults.lock().unwrap();
        f.capacity_zones = ["us-east-1a".to_string()].into_iter().collect();
        f.suggest = vec!["us-east-1d".into()];
    }
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(state(&dir)["resources"]["node.node1"]["attributes"]["zone"], "us-east-1d");
    assert_eq!(proxy.calls("RunInstances").len(), 2);
}

#[test]
fn all_zones_failing_is_a_clear_error_and_leaves_nothing_running() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    let dir = campaign("aws-nocap", &zones);
    proxy.faults.lock().unwrap().capacity_zones = zones.iter().map(|s| s.to_string()).collect();
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("no capacity in any zone for g6e.12xlarge"), "{t}");
    // The failure is a diagnostic on the `zones` attribute, the one to change.
    let at = position_of(&dir.join("aws.nixl"), "[\"us-east-1a\"");
    assert!(t.contains(&format!("aws.nixl:{at}: error[nixl::E0501]: no capacity in any zone")), "{t}");
    assert!(t.contains("add zones or instance types"), "{t}");
    for z in zones {
        assert!(t.contains(&format!("  {z:<16} g6e.12xlarge"),), "attempt table lacks {z}: {t}");
    }
    assert!(world(&moto).running.is_empty());
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    assert!(world(&moto).stacks.is_empty());
}

/// `line:col` of the first occurrence of `needle` in a file, as diagnostics print it.
fn position_of(file: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle} not in {}", file.display()));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{line}:{col}")
}

#[test]
fn no_capacity_and_a_quota_point_at_the_attribute_to_change_in_json_too() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-diag-json", &["us-east-1a", "us-east-1b"]);
    let file = dir.join("aws.nixl");
    proxy.faults.lock().unwrap().capacity_zones = ["us-east-1a", "us-east-1b"].iter().map(|s| s.to_string()).collect();
    let mut args = APPLY_NODES.to_vec();
    args.extend(["--format", "json"]);
    let out = run(&dir, &proxy, &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json = |out: &Output| -> serde_json::Value {
        let err = String::from_utf8_lossy(&out.stderr);
        let start = err.rfind("\n[").map(|i| i + 1).unwrap_or_else(|| panic!("no JSON diagnostics in {err}"));
        serde_json::from_str(&err[start..]).unwrap_or_else(|e| panic!("{e}: {err}"))
    };
    let v = json(&out);
    let zones_at = position_of(&file, "[\"us-east-1a\"");
    assert_eq!(v[0]["code"], "nixl::E0501", "{v}");
    assert_eq!(format!("{}:{}", v[0]["line"], v[0]["column"]), zones_at, "{v}");
    // A vCPU quota is not a capacity problem: E0502 on `instance_type`, and no zone is retried.
    {
        let mut f = proxy.faults.lock().unwrap();
        f.capacity_zones.clear();
        f.vcpu_limit = true;
    }
    let before = proxy.calls("RunInstances").len();
    let started = Instant::now();
    let out = run(&dir, &proxy, &args);
    let took = started.elapsed();
    eprintln!("quota: apply (stack already up) exits after {} ms", took.as_millis());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v[0]["code"], "nixl::E0502", "{v}");
    assert_eq!(format!("{}:{}", v[0]["line"], v[0]["column"]), position_of(&file, "\"g6e.12xlarge\""), "{v}");
    let help = v[0]["help"].as_str().unwrap_or("");
    assert!(help.contains("Running On-Demand G and VT instances") && help.contains("--quota-code L-DB2E81BA"), "{v}");
    assert_eq!(proxy.calls("RunInstances").len() - before, 1, "a quota error is not retried in another zone");
    // The same in the graphical and plain renderings.
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert!(t.contains("nixl::E0502"), "{t}");
    assert!(world(&moto).running.is_empty());
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn throttling_on_the_first_five_calls_does_not_stop_apply() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-throttle", &["us-east-1a"]);
    proxy.faults.lock().unwrap().throttle = 5;
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let log = proxy.log.lock().unwrap().clone();
    let throttled: Vec<_> = log.iter().filter(|l| l.outcome == "throttled").collect();
    assert_eq!(throttled.len(), 5);
    assert!(throttled.iter().all(|l| l.service == "cloudformation" || l.service == "ec2" || l.service == "ssm"), "{throttled:?}");
    assert_eq!(world(&moto).running.len(), 2);
}

#[test]
fn a_dropped_connection_is_retried() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-drop", &["us-east-1a"]);
    proxy.faults.lock().unwrap().drop = 2;
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(world(&moto).running.len(), 2);
}

#[test]
fn sigkill_at_random_points_converges_to_one_stack_and_one_pair_of_nodes() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-kill", &["us-east-1a", "us-east-1b"]);
    // A fixed pseudo-random sequence, so a failure can be replayed.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(50 + seed % 900);
        let mut child = aws_cmd(&dir, &proxy, APPLY_NODES).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let out = run(&dir, &proxy, APPLY_NODES);
        assert!(out.status.success(), "round {round} (killed after {delay:?}): {}", text(&out));
        let w = world(&moto);
        assert_eq!(w.stacks.len(), 1, "round {round}: {:?}", w.stacks);
        assert_eq!(w.running.len(), 2, "round {round}: {:?}", w.running);
        let st = state(&dir);
        let mut ids = vec![
            st["resources"]["node.node1"]["id"].as_str().unwrap().to_string(),
            st["resources"]["node.node2"]["id"].as_str().unwrap().to_string(),
        ];
        let mut live: Vec<String> = w.running.iter().map(|(i, _)| i.clone()).collect();
        ids.sort();
        live.sort();
        assert_eq!(ids, live, "round {round}: the state does not name the running nodes");
        // Every third round starts from nothing, so kills also land inside creation.
        if round % 3 == 2 {
            let out = run(&dir, &proxy, DESTROY);
            assert!(out.status.success(), "{}", text(&out));
        }
    }
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let w = world(&moto);
    assert!(w.stacks.is_empty() && w.running.is_empty() && w.buckets == 0, "left: {:?} {:?} {}", w.stacks, w.running, w.buckets);
}

#[test]
fn a_second_concurrent_apply_stops_with_a_lock_error_naming_the_holder() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-lock", &["us-east-1a"]);
    // The first apply waits for capacity forever.
    proxy.faults.lock().unwrap().capacity_zones = ["us-east-1a".to_string()].into_iter().collect();
    let mut args = APPLY_NODES.to_vec();
    args.push("--retry-until-up");
    let mut first = aws_cmd(&dir, &proxy, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.calls("RunInstances").is_empty() {
        assert!(Instant::now() < deadline, "the first apply never tried to launch");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("locked") && t.contains(&format!("pid {}", first.id())), "{t}");
}

#[test]
fn setup_goes_through_ssm_to_both_nodes_with_each_script_uploaded_once() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-ssm", &["us-east-1a"]);
    let args = [
        "apply",
        "aws.nixl",
        "--provider",
        "aws",
        "--auto-approve",
        "--target",
        "setup.node1.02-marker",
        "--target",
        "setup.node2.02-marker",
    ];
    let out = run(&dir, &proxy, &args);
    assert!(out.status.success(), "{}", text(&out));
    let st = state(&dir);
    let ids = [st["resources"]["node.node1"]["id"].as_str().unwrap(), st["resources"]["node.node2"]["id"].as_str().unwrap()];
    let sends = proxy.calls("SendCommand");
    assert_eq!(sends.len(), 2, "one command per setup step, to both nodes at once");
    let mut keys = vec![];
    for s in &sends {
        let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
        assert_eq!(v["DocumentName"], "AWS-RunShellScript");
        let mut sent: Vec<&str> = v["InstanceIds"].as_array().unwrap().iter().filter_map(|x| x.as_str()).collect();
        sent.sort();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(sent, want);
        let cmds: Vec<&str> = v["Parameters"]["commands"].as_array().unwrap().iter().filter_map(|x| x.as_str()).collect();
        let cp = cmds.iter().find(|c| c.contains("aws s3 cp")).expect("the node fetches the script from the bucket");
        let key = cp.split("nixl/scripts/").nth(1).unwrap().split(['\'', ' ']).next().unwrap().to_string();
        // The node checks the script's SHA-256 (of the bytes in the bucket) before it runs it.
        let bucket = v["OutputS3BucketName"].as_str().unwrap();
        let body = object(&moto, bucket, &format!("nixl/scripts/{key}"));
        let sha = sha256_hex(&body);
        let check = cmds.iter().position(|c| c.contains("sha256sum --check")).expect("a hash check");
        assert!(cmds[check].contains(&format!("{sha}  ")), "the check names the uploaded script's hash: {cmds:?}");
        let exec = cmds.iter().position(|c| c.starts_with("exec bash")).unwrap();
        assert!(check < exec && cmds[exec].contains(&sha), "the checked file is the one run: {cmds:?}");
        assert!(cmds.iter().any(|c| c.contains("chmod 0700")), "into a private directory: {cmds:?}");
        assert!(!cmds.iter().any(|c| c.contains("/tmp/")), "not the shared /tmp: {cmds:?}");
        keys.push(key);
        assert!(v["Parameters"]["executionTimeout"].is_array());
    }
    assert_ne!(keys[0], keys[1]);
    // Each script went to the bucket exactly once.
    let log = proxy.log.lock().unwrap().clone();
    for k in &keys {
        let puts =
            log.iter().filter(|l| l.action.starts_with("PUT ") && l.action.ends_with(&format!("nixl/scripts/{k}"))).count();
        assert_eq!(puts, 1, "{k} uploaded {puts} times");
    }
    for step in ["setup.node1.01-hello", "setup.node2.01-hello", "setup.node1.02-marker", "setup.node2.02-marker"] {
        assert_eq!(st["actions"][step]["status"], "done", "{step}: {}", st["actions"][step]);
    }
    // Re-running the same targets sends nothing: the outcomes are recorded.
    let out = run(&dir, &proxy, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(proxy.calls("SendCommand").len(), 2);
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}

/// One S3 object, read from moto directly.
pub fn object(moto: &Moto, bucket: &str, key: &str) -> Vec<u8> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{}", moto.port))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build());
        let o = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn export_cfn(dir: &Path) -> serde_json::Value {
    let out = nixl().current_dir(dir).args(["export-cfn", "aws.nixl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A policy statement's resources as text: `Fn::GetAtt` of the bucket's ARN reads `${Bucket.Arn}`.
fn resources(statement: &serde_json::Value) -> Vec<String> {
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(parts) => parts.iter().map(text).collect(),
            serde_json::Value::Object(o) if o.contains_key("Fn::GetAtt") => {
                format!("${{{}}}", o["Fn::GetAtt"][0].as_str().unwrap().to_string() + ".Arn")
            }
            serde_json::Value::Object(o) if o.contains_key("Fn::Sub") => o["Fn::Sub"].as_str().unwrap().to_string(),
            serde_json::Value::Object(o) if o.contains_key("Fn::Join") => {
                o["Fn::Join"][1].as_array().unwrap().iter().map(text).collect::<Vec<_>>().join(o["Fn::Join"][0].as_str().unwrap())
            }
            other => panic!("unexpected resource {other}"),
        }
    }
    match &statement["Resource"] {
        serde_json::Value::Array(items) => items.iter().map(text).collect(),
        one => vec![text(one)],
    }
}

#[test]
fn export_cfn_prints_the_base_resources() {
    let dir = campaign("aws-cfn", &["us-east-1a"]);
    let t = export_cfn(&dir);
    let r = &t["Resources"];
    assert_eq!(r["SecurityGroup"]["Type"], "AWS::EC2::SecurityGroup");
    assert_eq!(r["SelfIngress"]["Properties"]["IpProtocol"], "-1");
    assert!(r.get("SshIngress").is_none(), "no SSH ingress unless a CIDR is given");
    assert_eq!(r["Bucket"]["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicAcls"], true);
    assert_eq!(r["PlacementGroup"]["Properties"]["Strategy"], "cluster");
}

/// The node role reads the scripts and writes its output prefixes only; the SSM agent's
/// permissions come without reads of the account's parameters, but for the stack's own secrets.
#[test]
fn export_cfn_shows_the_narrowed_node_role() {
    let dir = campaign("aws-cfn-role", &["us-east-1a"]);
    let role = &export_cfn(&dir)["Resources"]["Role"]["Properties"];
    assert!(role.get("ManagedPolicyArns").is_none(), "no AmazonSSMManagedInstanceCore: {role}");
    let statements: Vec<&serde_json::Value> =
        role["Policies"].as_array().unwrap().iter().flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap()).collect();
    let actions = |st: &serde_json::Value| -> Vec<String> {
        match &st["Action"] {
            serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            one => vec![one.as_str().unwrap().to_string()],
        }
    };
    let all: Vec<String> = statements.iter().flat_map(|s| actions(s)).collect();
    for needed in ["ssm:UpdateInstanceInformation", "ec2messages:GetMessages", "ssmmessages:OpenControlChannel"] {
        assert!(all.iter().any(|a| a == needed), "the SSM agent needs {needed}: {all:?}");
    }
    for banned in ["ssm:GetParameters", "ssm:GetParametersByPath", "ssm:*", "s3:*", "*"] {
        assert!(!all.iter().any(|a| a == banned), "{banned} granted: {all:?}");
    }
    // One parameter read, of the stack's own secrets.
    let reads_parameters: Vec<&&serde_json::Value> =
        statements.iter().filter(|s| actions(s).iter().any(|a| a == "ssm:GetParameter")).collect();
    assert_eq!(reads_parameters.len(), 1, "{reads_parameters:?}");
    assert_eq!(actions(reads_parameters[0]), ["ssm:GetParameter"]);
    assert_eq!(
        resources(reads_parameters[0]),
        ["arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/nixl/nixl-test/secrets/*"]
    );
    let mut reads = vec![];
    let mut writes = vec![];
    for st in &statements {
        assert_eq!(st["Effect"], "Allow");
        let res = resources(st);
        for a in actions(st).iter().filter(|a| a.starts_with("s3:")) {
            assert!(res.iter().all(|r| r.starts_with("${Bucket.Arn}")), "{a} on {res:?}: only the stack's bucket");
            match a.as_str() {
                "s3:GetObject" => reads.extend(res.clone()),
                "s3:PutObject" | "s3:PutObjectAcl" => writes.extend(res.clone()),
                "s3:GetBucketLocation" | "s3:GetEncryptionConfiguration" => assert_eq!(res, ["${Bucket.Arn}"]),
                other => panic!("the node role grants {other}"),
            }
        }
    }
    assert_eq!(reads, ["${Bucket.Arn}/nixl/scripts/*"]);
    writes.sort();
    writes.dedup();
    assert_eq!(writes, ["${Bucket.Arn}/nixl/fetch/*", "${Bucket.Arn}/nixl/ssm-output/*"]);
}

/// TLS only, public access blocked, versioned when a bucket says so, command output expiring.
#[test]
fn export_cfn_shows_the_bucket_policy_versioning_and_lifecycle() {
    let dir = campaign("aws-cfn-bucket", &["us-east-1a"]);
    let t = export_cfn(&dir);
    let policy = &t["Resources"]["BucketPolicy"];
    assert_eq!(policy["Type"], "AWS::S3::BucketPolicy");
    assert_eq!(policy["Properties"]["Bucket"]["Ref"], "Bucket");
    let deny = &policy["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    assert_eq!(deny["Action"], "s3:*");
    assert_eq!(deny["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(resources(deny), ["${Bucket.Arn}", "${Bucket.Arn}/*"]);
    let bucket = &t["Resources"]["Bucket"]["Properties"];
    let block = &bucket["PublicAccessBlockConfiguration"];
    for k in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(block[k], true, "{k}");
    }
    assert!(bucket.get("VersioningConfiguration").is_none(), "not versioned unless asked");
    let rules = bucket["LifecycleConfiguration"]["Rules"].as_array().unwrap();
    let output = rules.iter().find(|r| r["Prefix"] == "nixl/ssm-output/").expect("command output expires");
    assert_eq!(output["Status"], "Enabled");
    assert!(output["ExpirationInDays"].as_u64().unwrap() > 0);
    assert!(!rules.iter().any(|r| r["Prefix"] == "nixl/scripts/" || r.get("Prefix").is_some_and(|p| p == "")));

    let file = dir.join("aws.nixl");
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, source.replace("bucket \"scripts\" {}", "bucket \"scripts\" { versioned = true }")).unwrap();
    let bucket = export_cfn(&dir)["Resources"]["Bucket"]["Properties"].clone();
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let rules = bucket["LifecycleConfiguration"]["Rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["NoncurrentVersionExpiration"]["NoncurrentDays"].as_u64().is_some()), "{rules:?}");
}

/// An IPv6 block is an IPv6 rule, and a world-open one carries the reason given for it.
#[test]
fn export_cfn_renders_an_ipv6_ssh_cidr_as_an_ipv6_rule() {
    let dir = campaign("aws-cfn-ipv6", &["us-east-1a"]);
    let file = dir.join("aws.nixl");
    let source = std::fs::read_to_string(&file).unwrap();
    let open = "  retry_interval = 2s\n  ssh_cidr = \"::/0\"\n  ssh_reason = \"workshop laptops\"\n";
    std::fs::write(&file, source.replace("  retry_interval = 2s\n", open)).unwrap();
    let ssh = export_cfn(&dir)["Resources"]["SshIngress"].clone();
    assert_eq!(ssh["Properties"]["CidrIpv6"], "::/0");
    assert!(ssh["Properties"].get("CidrIp").is_none());
    assert_eq!(ssh["Metadata"]["nixl:ssh_reason"], "workshop laptops");
}

/// Root volumes are encrypted, with the stack's KMS key when it names one.
#[test]
fn run_instances_asks_for_encrypted_volumes_with_the_stacks_kms_key() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-ebs", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let body = proxy.calls("RunInstances")[0].body.clone();
    assert!(body.contains("BlockDeviceMapping.1.Ebs.Encrypted=true"), "{body}");
    assert!(!body.contains("KmsKeyId"), "the account's default key unless one is named: {body}");
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));

    let file = dir.join("aws.nixl");
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, source.replace("  retry_interval = 2s\n", &format!("  retry_interval = 2s\n  kms_key = \"{key}\"\n")))
        .unwrap();
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let body = proxy.calls("RunInstances").last().unwrap().body.clone();
    assert!(body.contains("BlockDeviceMapping.1.Ebs.Encrypted=true"), "{body}");
    assert!(body.contains(&format!("BlockDeviceMapping.1.Ebs.KmsKeyId={key}")), "{body}");
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_changed_stack_block_is_updated_through_a_change_set() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-update", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let file = dir.join("aws.nixl");
    let text0 = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text0.replace("  retry_interval = 2s\n", "  retry_interval = 2s\n  ssh_cidr       = \"10.0.0.0/16\"\n"),
    )
    .unwrap();
    let plan = run(&dir, &proxy, &["plan", "aws.nixl"]);
    let p = text(&plan);
    assert!(p.contains("~ stack"), "the plan shows the stack as updated in place: {p}");
    assert!(p.contains("CloudFormation change set: + SshIngress"), "the plan names what the change set adds: {p}");
    let out = run(&dir, &proxy, &["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "stack"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(proxy.calls("CreateChangeSet").len(), 1);
    assert_eq!(proxy.calls("ExecuteChangeSet").len(), 1);
    assert_eq!(proxy.calls("CreateStack").len(), 1);
    // The nodes were not touched.
    assert_eq!(proxy.calls("RunInstances").len(), 1);
    assert_eq!(world(&moto).running.len(), 2);
}

#[test]
fn a_failing_command_shows_its_exit_code_and_the_end_of_output_past_the_inline_limit() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-long-output", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    proxy.faults.lock().unwrap().long_output = Some("THE-REAL-LAST-LINE".into());
    let out =
        run(&dir, &proxy, &["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "setup.node1.01-hello"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("exit code 3 on node1"), "{t}");
    // The last line is only in the S3 copy: SSM's inline output stops at 24,000 characters.
    assert!(t.contains("THE-REAL-LAST-LINE"), "{t}");
    let st = state(&dir);
    assert_eq!(st["actions"]["setup.node1.01-hello"]["status"], "failed");
    assert!(st["actions"]["setup.node1.01-hello"]["error"].as_str().unwrap().contains("THE-REAL-LAST-LINE"));
}

/// Renaming a live stack (or moving its region) would create a second one and leave the
/// first running, unseen: plan and apply refuse, and destroy removes what the state created.
#[test]
fn a_renamed_stack_is_refused_and_destroy_still_removes_the_recorded_one() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-renamed", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let file = dir.join("aws.nixl");
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, source.replace(&format!("stack \"{STACK}\""), "stack \"nixl-test-renamed\"")).unwrap();
    for args in [&["plan", "aws.nixl"][..], APPLY_NODES] {
        let out = run(&dir, &proxy, args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("this state's stack is \"nixl-test\" in us-east-1"), "{}", text(&out));
    }
    assert_eq!(proxy.calls("CreateStack").len(), 1, "no second stack");
    let moved = source
        .replace("region         = \"us-east-1\"", "region         = \"us-west-2\"")
        .replace("\"us-east-1a\"", "\"us-west-2a\"");
    std::fs::write(&file, moved).unwrap();
    let out = run(&dir, &proxy, &["plan", "aws.nixl"]);
    assert!(text(&out).contains("now declares \"nixl-test\" in us-west-2"), "{}", text(&out));
    // Destroy with the changed file removes the recorded stack and its nodes.
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let w = world(&moto);
    assert!(w.stacks.is_empty() && w.running.is_empty() && w.buckets == 0, "left behind: {:?} {:?}", w.stacks, w.running);
}

/// A moto instance id for an instance EC2 does not know (any more).
const VANISHED: &str = "i-0123456789abcdef0";

fn tagged_running(moto: &Moto) -> usize {
    world(moto).running.len()
}

#[test]
fn destroy_with_a_vanished_instance_finishes_and_removes_the_rest() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-vanished", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    // The state names an instance EC2 has forgotten (as AWS does an hour after termination);
    // the real node1 is then known only by its tag.
    let path = dir.join(".nixl/smoke/state.json");
    let n1 = state(&dir)["resources"]["node.node1"]["id"].as_str().unwrap().to_string();
    let raw = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, raw.replace(&n1, VANISHED)).unwrap();
    let out = run(&dir, &proxy, DESTROY);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("Destroy complete."), "{t}");
    let w = world(&moto);
    assert!(w.stacks.is_empty() && w.running.is_empty() && w.buckets == 0, "left: {:?} {:?} {}", w.stacks, w.running, w.buckets);
    // Nothing asked EC2 about the vanished id by InstanceIds (which fails the whole call).
    assert!(
        proxy.calls("TerminateInstances").iter().all(|c| !c.body.contains(VANISHED)),
        "{:?}",
        proxy.calls("TerminateInstances")
    );
}

#[test]
fn a_destroy_that_cannot_remove_everything_lists_what_is_left_and_a_second_one_finishes() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-leftovers", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    // The operator may not terminate instances: the nodes stay, the rest goes, and what stays is listed.
    proxy.faults.lock().unwrap().deny = ["TerminateInstances".to_string()].into_iter().collect();
    let st = state(&dir);
    let ids = [st["resources"]["node.node1"]["id"].as_str().unwrap(), st["resources"]["node.node2"]["id"].as_str().unwrap()];
    let out = run(&dir, &proxy, DESTROY);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("destroy could not remove 2 resource(s)"), "{t}");
    for id in ids {
        assert!(t.contains(&format!("instance {id}")) && t.contains("UnauthorizedOperation"), "{id}: {t}");
    }
    assert!(!t.contains("Destroy complete."), "{t}");
    assert_eq!(world(&moto).running.len(), 2);
    proxy.faults.lock().unwrap().deny.clear();
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let w = world(&moto);
    assert!(w.stacks.is_empty() && w.running.is_empty() && w.buckets == 0, "left: {:?} {:?} {}", w.stacks, w.running, w.buckets);
}

#[test]
fn a_destroy_killed_while_terminating_then_run_again_finishes() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-destroy-kill", &["us-east-1a"]);
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let mut child = aws_cmd(&dir, &proxy, DESTROY).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.calls("TerminateInstances").is_empty() {
        assert!(Instant::now() < deadline, "destroy never terminated");
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let w = world(&moto);
    assert!(w.stacks.is_empty() && w.running.is_empty() && w.buckets == 0, "left: {:?} {:?} {}", w.stacks, w.running, w.buckets);
}

#[test]
fn missing_credentials_fail_at_once_in_one_line_saying_where_they_were_looked_for() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-no-creds", &["us-east-1a"]);
    let started = Instant::now();
    let out = aws_cmd(&dir, &proxy, APPLY_NODES)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .output()
        .unwrap();
    let took = started.elapsed();
    let t = text(&out);
    eprintln!("missing credentials: exit after {} ms", took.as_millis());
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("credentials")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for want in ["no AWS credentials found", "AWS_ACCESS_KEY_ID", "profile `default`", "IMDS"] {
        assert!(lines[0].contains(want), "{want}: {err}");
    }
    assert!(proxy.log.lock().unwrap().is_empty(), "nothing is sent without credentials");
}

#[test]
fn refused_credentials_fail_at_once_without_retries() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-bad-creds", &["us-east-1a"]);
    proxy.faults.lock().unwrap().bad_credentials = true;
    let started = Instant::now();
    let out = run(&dir, &proxy, APPLY_NODES);
    let took = started.elapsed();
    let t = text(&out);
    eprintln!("refused credentials: exit after {} ms", took.as_millis());
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(t.contains("credentials or configuration: InvalidClientTokenId"), "{t}");
    assert!(!t.contains("retrying"), "{t}");
    assert_eq!(proxy.log.lock().unwrap().len(), 1, "one call, no retries");
}

#[test]
fn throttled_run_instances_is_retried_with_the_same_client_token() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-throttle-run", &["us-east-1a"]);
    proxy.faults.lock().unwrap().throttle_action = [("RunInstances".to_string(), 2)].into_iter().collect();
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let runs = proxy.calls("RunInstances");
    assert_eq!(runs.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), vec!["throttled", "throttled", "forwarded"]);
    let token = |b: &str| b.split('&').find_map(|kv| kv.strip_prefix("ClientToken=")).map(String::from);
    let tokens: Vec<Option<String>> = runs.iter().map(|r| token(&r.body)).collect();
    assert!(tokens[0].is_some(), "RunInstances carries a ClientToken: {}", runs[0].body);
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    assert_eq!(tagged_running(&moto), 2);
}

#[test]
fn a_lost_create_stack_answer_is_not_an_error_when_the_stack_is_ours() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-lost-stack", &["us-east-1a"]);
    proxy.faults.lock().unwrap().lose = [("CreateStack".to_string(), 1)].into_iter().collect();
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("exists already with nixl's tag"), "{t}");
    assert_eq!(proxy.calls("CreateStack").iter().map(|c| c.outcome.as_str()).collect::<Vec<_>>(), vec!["lost", "forwarded"]);
    assert_eq!(world(&moto).stacks, vec![STACK.to_string()]);
    assert_eq!(tagged_running(&moto), 2);
}

#[test]
fn a_lost_run_instances_answer_leaves_exactly_two_tagged_nodes() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-lost-run", &["us-east-1a"]);
    proxy.faults.lock().unwrap().lose = [("RunInstances".to_string(), 1)].into_iter().collect();
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("the answer was lost but the 2 nodes are up; adopting"), "{t}");
    assert_eq!(tagged_running(&moto), 2);
    // The next apply finds the same two.
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tagged_running(&moto), 2);
    assert_eq!(proxy.calls("RunInstances").len(), 1, "the lost launch was adopted, not repeated");
    let st = state(&dir);
    let mut ids =
        vec![st["resources"]["node.node1"]["id"].as_str().unwrap(), st["resources"]["node.node2"]["id"].as_str().unwrap()];
    ids.sort();
    let w = world(&moto);
    let mut live: Vec<&str> = w.running.iter().map(|(i, _)| i.as_str()).collect();
    live.sort();
    assert_eq!(ids, live);
}

#[test]
fn an_endpoint_that_never_answers_ends_with_a_timeout_naming_the_call() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-hang", &["us-east-1a"]);
    std::fs::write(dir.join("nixl.toml"), "[aws]\ncall_timeout = 1\nconnect_timeout = 1\nread_timeout = 1\n").unwrap();
    proxy.faults.lock().unwrap().hang = true;
    let started = Instant::now();
    let out = run(&dir, &proxy, APPLY_NODES);
    let took = started.elapsed();
    let t = text(&out);
    eprintln!("endpoint that never answers: exit after {} ms", took.as_millis());
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("no answer from AWS to DescribeStacks"), "{t}");
    assert!(t.contains("3 attempts"), "{t}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn an_ssm_agent_that_never_comes_online_is_waited_for_within_a_stated_bound() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-ssm-offline", &["us-east-1a"]);
    std::fs::write(dir.join("nixl.toml"), "[aws]\nssm_online_timeout = 6\n").unwrap();
    proxy.faults.lock().unwrap().ssm_offline = true;
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("waiting up to 6s for the SSM agent of"), "{t}");
    // A wait past 5 s says what it waits for.
    assert!(t.contains("waiting for the SSM agent of") && t.contains("s so far, at most 6s)"), "{t}");
    assert!(t.contains("did not come online in 6s"), "{t}");
    assert!(t.contains("AmazonSSMManagedInstanceCore") && t.contains("ssm.<region>.amazonaws.com"), "{t}");
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn ctrl_c_stops_retry_until_up_at_once_and_nothing_is_launched_after_it() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-ctrl-c", &["us-east-1a"]);
    proxy.faults.lock().unwrap().capacity_zones = ["us-east-1a".to_string()].into_iter().collect();
    let mut args = APPLY_NODES.to_vec();
    args.push("--retry-until-up");
    let child = aws_cmd(&dir, &proxy, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.calls("RunInstances").is_empty() {
        assert!(Instant::now() < deadline, "the apply never tried to launch");
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Instant::now();
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    // Capacity appears right after Ctrl-C: nothing may use it.
    proxy.faults.lock().unwrap().capacity_zones.clear();
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    let t = text(&out);
    eprintln!("Ctrl-C to exit during --retry-until-up: {} ms", took.as_millis());
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(took < Duration::from_secs(5), "{took:?}: {t}");
    assert!(t.contains("interrupted"), "{t}");
    assert!(proxy.calls("RunInstances").iter().all(|r| r.outcome == "capacity"), "{:?}", proxy.calls("RunInstances"));
    assert!(world(&moto).running.is_empty());
}

#[test]
fn a_missing_placement_group_is_an_error_not_a_launch_without_one() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-no-pg", &["us-east-1a"]);
    let out = run(&dir, &proxy, &["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "stack"]);
    assert!(out.status.success(), "{}", text(&out));
    proxy.faults.lock().unwrap().placement_group_missing = true;
    let out = run(&dir, &proxy, APPLY_NODES);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("placement group `{PLACEMENT_GROUP}` of stack `nixl-test` does not exist")), "{t}");
    assert!(proxy.calls("RunInstances").is_empty(), "nothing is launched without the group");
    assert!(world(&moto).running.is_empty());
    // With the group back, the nodes launch into it.
    proxy.faults.lock().unwrap().placement_group_missing = false;
    let out = run(&dir, &proxy, APPLY_NODES);
    assert!(out.status.success(), "{}", text(&out));
    let runs = proxy.calls("RunInstances");
    assert!(runs.iter().all(|r| r.body.contains(&format!("Placement.GroupName={PLACEMENT_GROUP}"))), "{runs:?}");
}

pub fn iam_policy(dir: &Path) -> serde_json::Value {
    let out = nixl().current_dir(dir).args(["iam-policy", "aws.nixl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the policy is JSON")
}

pub fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

/// IAM's wildcard match (`*` any run of characters, `?` one), as for actions and resources.
pub fn iam_match(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.to_lowercase().chars().collect(), s.to_lowercase().chars().collect());
    let mut m = vec![vec![false; t.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        m[i][0] = m[i - 1][0] && p[i - 1] == '*';
        for j in 1..=t.len() {
            m[i][j] = match p[i - 1] {
                '*' => m[i - 1][j] || m[i][j - 1],
                '?' => m[i - 1][j - 1],
                c => m[i - 1][j - 1] && c == t[j - 1],
            };
        }
    }
    m[p.len()][t.len()]
}

#[test]
fn iam_policy_names_the_stack_and_passes_only_the_node_role() {
    let dir = campaign("aws-iam", &["us-east-1a"]);
    let p = iam_policy(&dir);
    assert_eq!(p["Version"], "2012-10-17");
    let statements = p["Statement"].as_array().unwrap();
    let on = |action: &str| -> Vec<&serde_json::Value> {
        statements.iter().filter(|s| strings(&s["Action"]).iter().any(|a| iam_match(a, action))).collect()
    };
    for st in statements {
        assert_eq!(st["Effect"], "Allow");
        assert!(!strings(&st["Action"]).iter().any(|a| a == "*" || a.ends_with(":*")), "a wildcard action: {st}");
    }
    let cfn = on("cloudformation:CreateStack");
    assert_eq!(cfn.len(), 1);
    assert!(strings(&cfn[0]["Resource"]).contains(&"arn:aws:cloudformation:us-east-1:*:stack/nixl-test/*".to_string()));
    let pass = on("iam:PassRole");
    assert_eq!(pass.len(), 1, "one statement passes a role");
    assert_eq!(strings(&pass[0]["Resource"]), ["arn:aws:iam::*:role/nixl-test-Role-*"]);
    assert_eq!(pass[0]["Condition"]["StringEquals"]["iam:PassedToService"], "ec2.amazonaws.com");
    for action in ["ec2:TerminateInstances", "ec2:StartInstances"] {
        for st in on(action) {
            assert_eq!(st["Condition"]["StringEquals"]["ec2:ResourceTag/nixl:stack"], "nixl-test", "{action}: {st}");
        }
    }
    for st in on("ec2:RunInstances").iter().filter(|s| strings(&s["Resource"]).iter().any(|r| r.contains(":instance/"))) {
        assert_eq!(st["Condition"]["StringEquals"]["aws:RequestTag/nixl:stack"], "nixl-test");
    }
    for st in on("s3:PutObject").iter().chain(&on("s3:DeleteBucket")) {
        assert!(strings(&st["Resource"]).iter().all(|r| r.starts_with("arn:aws:s3:::nixl-test-bucket-")), "{st}");
    }
    // A KMS key adds the grants EBS needs, on that key.
    let file = dir.join("aws.nixl");
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, source.replace("  retry_interval = 2s\n", &format!("  retry_interval = 2s\n  kms_key = \"{key}\"\n")))
        .unwrap();
    let p = iam_policy(&dir);
    let grant = p["Statement"].as_array().unwrap().iter().find(|s| strings(&s["Action"]).contains(&"kms:CreateGrant".into()));
    assert_eq!(strings(&grant.expect("a KMS statement")["Resource"]), [key]);
}

/// Every EC2, CloudFormation and SSM call an apply and a destroy make is one the policy allows.
#[test]
fn iam_policy_allows_every_call_apply_and_destroy_make() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-iam-calls", &["us-east-1a"]);
    let args = ["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "setup.node1.01-hello"];
    let out = run(&dir, &proxy, &args);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&dir, &proxy, DESTROY);
    assert!(out.status.success(), "{}", text(&out));
    let p = iam_policy(&dir);
    let allowed: Vec<String> = p["Statement"].as_array().unwrap().iter().flat_map(|s| strings(&s["Action"])).collect();
    let mut calls: Vec<String> = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| matches!(l.service.as_str(), "ec2" | "cloudformation" | "ssm"))
        .map(|l| format!("{}:{}", l.service, l.action))
        .collect();
    calls.sort();
    calls.dedup();
    assert!(calls.len() > 10, "{calls:?}");
    let missing: Vec<&String> = calls.iter().filter(|c| !allowed.iter().any(|a| iam_match(a, c))).collect();
    assert!(missing.is_empty(), "calls the policy does not allow: {missing:?}");
}

/// A node terminated outside nixl is found before apply sends it anything: the state
/// forgets the pair and its setup, and the next apply launches and sets up new nodes.
#[test]
fn a_node_terminated_outside_nixl_is_found_and_replaced_on_the_next_apply() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let dir = campaign("aws-node-gone", &["us-east-1a"]);
    let setup = ["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--target", "setup.node1.01-hello"];
    let out = run(&dir, &proxy, &setup);
    assert!(out.status.success(), "{}", text(&out));
    let gone = state(&dir)["resources"]["node.node2"]["id"].as_str().unwrap().to_string();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{}", moto.port))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;
        aws_sdk_ec2::Client::new(&conf).terminate_instances().instance_ids(&gone).send().await.unwrap();
    });
    let again = ["apply", "aws.nixl", "--provider", "aws", "--auto-approve", "--replace", "setup.node1.01-hello"];
    let out = run(&dir, &proxy, &again);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("node2 ({gone})")) && t.contains("no longer exist(s)"), "{t}");
    assert!(world(&moto).running.is_empty(), "the rest of the pair is terminated too");
    let out = run(&dir, &proxy, &setup);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(world(&moto).running.len(), 2);
    assert_ne!(state(&dir)["resources"]["node.node2"]["id"].as_str().unwrap(), gone);
}
