//! Logging to a real `mlflow server` (started here on a loopback port):
//! concurrent pushes make one run per result, and the authentication nixl sends
//! (SigV4 for SageMaker, bearer token, basic auth) passes a gateway that checks
//! it before forwarding to the server (`auth_proxy.rs`).

use crate::auth_proxy::{self, Check};
use crate::local::{copy_examples, text};
use crate::support::nixl;
use nixl::results::{Provenance, ResultKind, ResultRecord, Store};
use std::path::Path;
use std::process::{Command, Stdio};

/// A real `mlflow server` on a free loopback port with a SQLite store, stopped on drop.
pub struct MlflowServer {
    child: std::process::Child,
    pub uri: String,
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // SIGTERM to the server alone, which stops its workers; signalling the whole
        // process group was seen to take unrelated processes of this sandbox down.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..60 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

pub fn mlflow_post(uri: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    block(async {
        let r = reqwest::Client::new().post(format!("{uri}/api/2.0/mlflow/{path}")).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    })
}

pub fn start_mlflow(dir: &Path) -> Option<MlflowServer> {
    if std::env::var("NIXL_SKIP_MLFLOW_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping the MLflow test: NIXL_SKIP_MLFLOW_TESTS=1");
        return None;
    }
    assert!(
        Command::new("mlflow").arg("--version").output().is_ok_and(|o| o.status.success()),
        "mlflow is not installed (python3 -m pip install mlflow), or set NIXL_SKIP_MLFLOW_TESTS=1"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("mlflow.log")).unwrap();
    let child = Command::new("mlflow")
        .args(["server", "--host", "127.0.0.1", "--port", &port.to_string(), "--workers", "1"])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .current_dir(dir)
        // Tracking needs no job runner; its periodic workers kill process groups when they think they are orphaned.
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = MlflowServer { child, uri: format!("http://127.0.0.1:{port}") };
    let started = std::time::Instant::now();
    let up = || block(async { reqwest::get(format!("{}/health", server.uri)).await.is_ok_and(|r| r.status().is_success()) });
    while !up() {
        assert!(
            started.elapsed().as_secs() < 120,
            "mlflow server did not come up in 120 s:\n{}",
            std::fs::read_to_string(dir.join("mlflow.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Some(server)
}

pub fn runs(uri: &str, experiment: &str) -> Vec<serde_json::Value> {
    let e = block(async {
        reqwest::get(format!("{uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    let id = e["experiment"]["experiment_id"].as_str().expect("the experiment exists in MLflow").to_string();
    let v = mlflow_post(uri, "runs/search", serde_json::json!({ "experiment_ids": [id], "max_results": 1000 }));
    v["runs"].as_array().cloned().unwrap_or_default()
}

pub fn pairs(run: &serde_json::Value, what: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
    run["data"][what]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p["value"].clone()))
        .collect()
}

/// How many results the concurrency test pushes (the campaign the issue saw make 53 runs).
const RESULTS: usize = 41;

/// `n` results of the demo experiment stored as apply stores them, raw output
/// beside each record; `salt` makes their content hashes (so their runs) new.
fn store_results(dir: &Path, n: usize, salt: &str) -> Store {
    let store = Store::new(&dir.join(".nixl/results/demo"));
    let _ = std::fs::remove_dir_all(store.dir());
    for i in 0..n {
        let hash = format!("{salt}{i:04}{}", "0".repeat(28 - salt.len()));
        let rec = ResultRecord {
            id: format!("demo-r{i:02}"),
            hash: hash.clone(),
            layer: "L2-EFA".into(),
            kind: ResultKind::Pattern,
            finished_at: format!("2026-03-02T10:{:02}:{:02}Z", i / 60, i % 60),
            seconds: 12.5,
            settings: [("prompt", "12K"), ("concurrency", "4")]
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect(),
            metrics: [("ttft_mean".to_string(), 100.0 + i as f64)].into(),
            samples: [("ttft_ms".to_string(), vec![99.0, 101.0 + i as f64])].into(),
            units: [("ttft_mean".to_string(), "ms".to_string())].into(),
            raw: format!("demo-r{i:02}.raw.{}", &hash[..8]),
            provenance: Some(Provenance {
                provider: "local".into(),
                synthetic: true,
                model: Some("Qwen/Qwen2.5-7B-Instruct".into()),
                nixl_cli: "0.1.0".into(),
                ..Provenance::default()
            }),
            intervals: vec![],
            tests: vec![],
            front: vec![],
            launch: None,
        };
        store.save(&rec, format!("{{\"completed\": 30, \"failed\": 0, \"i\": {i}}}").as_bytes()).unwrap();
    }
    store
}

/// `nixl results local-demo.nixl --push --all` (the made-up ids are no patterns of the demo) started in `dir`, with the environment given (and no other MLflow or AWS settings).
fn spawn_push(dir: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let mut c = nixl();
    c.current_dir(dir).args(["results", "local-demo.nixl", "--push", "--all"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    for k in
        ["MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_PROFILE"]
    {
        c.env_remove(k);
    }
    c.envs(env.iter().copied()).spawn().unwrap()
}

/// (runs logged, already there) from a push's summary line; the push must have succeeded.
fn pushed(child: std::process::Child) -> (usize, usize) {
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = t.lines().find(|l| l.contains("run(s) logged")).unwrap_or_else(|| panic!("no summary: {t}"));
    let num = |after: &str| -> usize {
        let head = line.split(after).next().unwrap();
        head.rsplit(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap()
    };
    assert!(line.ends_with(", 0 failed."), "{t}");
    (num(" run(s) logged"), num(" already there"))
}

/// The runs of results whose hash starts with `salt`: active, and deleted (duplicates removed).
fn runs_of(uri: &str, salt: &str) -> (Vec<serde_json::Value>, usize) {
    let active: Vec<_> =
        runs(uri, "demo").into_iter().filter(|r| pairs(r, "tags")["nixl_hash"].as_str().unwrap().starts_with(salt)).collect();
    let id = active.first().map(|r| r["info"]["experiment_id"].clone()).unwrap_or_default();
    let deleted = mlflow_post(
        uri,
        "runs/search",
        serde_json::json!({ "experiment_ids": [id], "run_view_type": "DELETED_ONLY", "max_results": 1000 }),
    );
    let deleted = deleted["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| pairs(r, "tags")["nixl_hash"].as_str().unwrap().starts_with(salt))
        .count();
    (active, deleted)
}

fn one_run_per_result(active: &[serde_json::Value]) {
    let mut keys: Vec<String> =
        active.iter().map(|r| pairs(r, "tags")["nixl_pattern_id"].as_str().unwrap().to_string()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), RESULTS, "one run per result");
    assert_eq!(active.len(), RESULTS, "no result has two runs");
    assert!(active.iter().all(|r| r["info"]["status"] == "FINISHED"));
}

#[test]
fn concurrent_pushes_of_41_results_make_41_runs() {
    let dir = copy_examples("mlflow-concurrent");
    let Some(server) = start_mlflow(&dir) else { return };
    let uri = server.uri.clone();
    // Two pushes of one project at once: the lock beside the results serialises them.
    store_results(&dir, RESULTS, "a");
    let env = [("MLFLOW_TRACKING_URI", uri.as_str())];
    let (first, second) = (spawn_push(&dir, &env), spawn_push(&dir, &env));
    let ((w1, e1), (w2, e2)) = (pushed(first), pushed(second));
    assert_eq!((w1 + w2, e1 + e2), (RESULTS, RESULTS), "each result logged once, found once");
    let (active, deleted) = runs_of(&uri, "a");
    one_run_per_result(&active);
    assert_eq!(deleted, 0, "the lock left nothing to deduplicate");
    // Three copies of the results pushing at once share no lock (as on three
    // machines): the search after each create keeps one run per result.
    let copies: Vec<_> = (0..3)
        .map(|k| {
            let d = copy_examples(&format!("mlflow-concurrent-copy{k}"));
            store_results(&d, RESULTS, "b");
            d
        })
        .collect();
    let children: Vec<_> = copies.iter().map(|d| spawn_push(d, &env)).collect();
    let written: usize = children.into_iter().map(|c| pushed(c).0).sum();
    let (active, deleted) = runs_of(&uri, "b");
    one_run_per_result(&active);
    eprintln!(
        "3 unlocked concurrent pushes of {RESULTS} results: {} runs, {written} writes, {deleted} duplicates deleted",
        active.len()
    );
    drop(server);
}

fn aws_env<'a>(arn: &'a str, endpoint: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MLFLOW_TRACKING_URI", arn),
        ("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIDNIXLTEST"),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_SESSION_TOKEN", "nixl-session-token"),
        // Nothing but the environment's key: no profile files, no instance metadata.
        ("AWS_CONFIG_FILE", "/nonexistent/nixl-test"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/nixl-test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

#[test]
fn sigv4_token_and_basic_auth_pass_a_checking_gateway_to_a_real_server() {
    let dir = copy_examples("mlflow-auth");
    let Some(server) = start_mlflow(&dir) else { return };
    // SageMaker: the ARN as tracking URI, requests signed for `sagemaker-mlflow` in the ARN's region.
    let arn = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/nixl";
    let secret = "nixl/test/SECRETKEY+example";
    let check = Check::SigV4 {
        key_id: "AKIDNIXLTEST".into(),
        secret: secret.into(),
        session_token: Some("nixl-session-token".into()),
        region: "us-west-2".into(),
        service: "sagemaker-mlflow".into(),
        arn: arn.into(),
    };
    let gw = auth_proxy::start(&server.uri, check);
    store_results(&dir, 3, "s");
    assert_eq!(pushed(spawn_push(&dir, &aws_env(arn, &gw.uri, secret))), (3, 0));
    {
        let seen = gw.seen.lock().unwrap();
        assert!(seen.refused.is_empty(), "{:?}", seen.refused);
        for call in ["GET /api/2.0/mlflow/experiments/get-by-name?experiment_name=demo", "POST /api/2.0/mlflow/runs/create"] {
            assert!(seen.forwarded.iter().any(|f| f == call), "{call} not among {:?}", seen.forwarded);
        }
        let artifacts = seen.forwarded.iter().filter(|f| f.starts_with("PUT /api/2.0/mlflow-artifacts/artifacts/")).count();
        assert_eq!(artifacts, 6, "samples and raw output of 3 results: {:?}", seen.forwarded);
    }
    assert_eq!(runs_of(&server.uri, "s").0.len(), 3);
    // A wrong key is refused by the gateway, and the push says so.
    store_results(&dir, 1, "x");
    let out = spawn_push(&dir, &aws_env(arn, &gw.uri, "not-the-secret")).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("HTTP 403"), "{}", text(&out));
    assert!(gw.seen.lock().unwrap().refused.iter().all(|r| r.contains("signature")));

    // A bearer token, and basic auth (which MLflow's client prefers when both are set).
    let bearer = auth_proxy::start(&server.uri, Check::Authorization("Bearer nixl-token".into()));
    store_results(&dir, 2, "t");
    let env = [("MLFLOW_TRACKING_URI", bearer.uri.as_str()), ("MLFLOW_TRACKING_TOKEN", "nixl-token")];
    assert_eq!(pushed(spawn_push(&dir, &env)), (2, 0));
    // `printf nixl:s3cret | base64`
    let basic = auth_proxy::start(&server.uri, Check::Authorization("Basic bml4bDpzM2NyZXQ=".into()));
    store_results(&dir, 2, "u");
    let env = [
        ("MLFLOW_TRACKING_URI", basic.uri.as_str()),
        ("MLFLOW_TRACKING_USERNAME", "nixl"),
        ("MLFLOW_TRACKING_PASSWORD", "s3cret"),
        ("MLFLOW_TRACKING_TOKEN", "nixl-token"),
    ];
    assert_eq!(pushed(spawn_push(&dir, &env)), (2, 0));
    for gw in [&bearer, &basic] {
        let seen = gw.seen.lock().unwrap();
        assert!(seen.refused.is_empty(), "{:?}", seen.refused);
        assert!(seen.forwarded.iter().any(|f| f.starts_with("PUT /api/2.0/mlflow-artifacts/")), "{:?}", seen.forwarded);
    }
    assert_eq!((runs_of(&server.uri, "t").0.len(), runs_of(&server.uri, "u").0.len()), (2, 2));
}
