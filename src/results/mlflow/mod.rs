//! Logging results to an MLflow tracking server over its REST API (no Python).
//! One MLflow experiment per experiment block, one run per pattern; a run is
//! found again by its pattern id and content hash, so logging twice adds nothing.

use super::ResultRecord;
use crate::check::value::Value;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Tags that find a pattern's run again.
pub const TAG_PATTERN: &str = "nixl_pattern_id";
pub const TAG_HASH: &str = "nixl_hash";
/// MLflow's `error_code` for a name or id it does not know.
const RESOURCE_DOES_NOT_EXIST: &str = "RESOURCE_DOES_NOT_EXIST";
/// How much of an error body a message quotes.
const BODY_CHARS: usize = 300;

/// Why a call to the MLflow server failed. Display is the message apply and `results --push` print.
#[derive(Debug)]
pub enum MlflowError {
    /// The tracking URI is not HTTP(S) (a `file:` store, `databricks`...).
    Unsupported { uri: String },
    /// The HTTP client could not be built (TLS setup).
    Client(reqwest::Error),
    /// The request to `path` got no answer, or its body could not be read.
    Connect { path: String, source: reqwest::Error },
    /// The server answered `path` with an error status. `error_code` is MLflow's
    /// code from a JSON body; `body` is the body's first 300 characters.
    Http { path: String, status: reqwest::StatusCode, error_code: Option<String>, body: String },
    /// The server answered `path` with a body that is not JSON.
    NotJson { path: String, source: serde_json::Error },
    /// The experiment was found or created but the answer had no id.
    NoExperimentId { uri: String, experiment: String },
    /// runs/create answered without a run id.
    NoRunId,
    /// The artifact upload got no answer.
    ArtifactSend(reqwest::Error),
    /// The artifact proxy refused the upload.
    Artifact { status: reqwest::StatusCode },
}

impl MlflowError {
    /// MLflow does not know the name or id asked for (an experiment not created yet).
    pub fn is_missing(&self) -> bool {
        matches!(self, MlflowError::Http { error_code: Some(c), .. } if c == RESOURCE_DOES_NOT_EXIST)
    }
}

impl fmt::Display for MlflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlflowError::Unsupported { uri } => write!(f, "MLflow tracking URI `{uri}`: nixl logs over HTTP(S) only"),
            MlflowError::Client(e) | MlflowError::ArtifactSend(e) => write!(f, "{e}"),
            MlflowError::Connect { path, source } => write!(f, "MLflow {path}: {source}"),
            MlflowError::Http { path, status, body, .. } => write!(f, "MLflow {path}: HTTP {status}: {body}"),
            MlflowError::NotJson { path, source } => write!(f, "MLflow {path}: not JSON: {source}"),
            MlflowError::NoExperimentId { uri, experiment } => {
                write!(f, "MLflow at {uri} returned no experiment id for `{experiment}`")
            }
            MlflowError::NoRunId => write!(f, "MLflow created a run without an id"),
            MlflowError::Artifact { status } => write!(f, "artifact upload: HTTP {status}"),
        }
    }
}

impl std::error::Error for MlflowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MlflowError::Client(e) | MlflowError::ArtifactSend(e) | MlflowError::Connect { source: e, .. } => Some(e),
            MlflowError::NotJson { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where to log: the server and the MLflow experiment name.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub uri: String,
    pub experiment: String,
}

/// The target of an experiment: `MLFLOW_TRACKING_URI`, else the file's
/// `mlflow.tracking_uri`; None when neither is set (results stay local).
/// A timestamp suffix is chosen once and kept beside the results, so later
/// pushes log to the same MLflow experiment.
pub fn target(settings: &BTreeMap<String, Value>, experiment: &str, results_dir: &Path) -> Option<Target> {
    let uri = std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| settings.get("tracking_uri").map(Value::interpolated))?;
    let mut name = settings.get("experiment").map(Value::interpolated).unwrap_or_else(|| experiment.to_string());
    if settings.get("timestamp_suffix").and_then(Value::as_bool) == Some(true) {
        let keep = results_dir.join("mlflow-experiment.txt");
        match std::fs::read_to_string(&keep) {
            Ok(saved) if !saved.trim().is_empty() => name = saved.trim().to_string(),
            _ => {
                let stamp = crate::state::lock::now_rfc3339().replace([':', '-'], "");
                name = format!("{name}-{}", stamp.get(..15).unwrap_or(&stamp));
                let _ = std::fs::create_dir_all(results_dir);
                let _ = std::fs::write(&keep, &name);
            }
        }
    }
    Some(Target { uri: uri.trim_end_matches('/').to_string(), experiment: name })
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    pub experiment_id: String,
}

#[derive(Debug, PartialEq)]
pub enum Logged {
    Created(String),
    /// The pattern's run with this hash was already complete.
    Existing(String),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Client {
    /// Finds or creates the MLflow experiment.
    pub async fn connect(t: &Target) -> Result<Client, MlflowError> {
        if !t.uri.starts_with("http://") && !t.uri.starts_with("https://") {
            return Err(MlflowError::Unsupported { uri: t.uri.clone() });
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(MlflowError::Client)?;
        let mut c = Client { http, base: format!("{}/api/2.0/mlflow", t.uri), experiment_id: String::new() };
        let found = c.get("experiments/get-by-name", &[("experiment_name", t.experiment.as_str())]).await;
        c.experiment_id = match found {
            Ok(v) => v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string(),
            Err(e) if e.is_missing() => {
                let v = c.post("experiments/create", &json!({ "name": t.experiment })).await?;
                v["experiment_id"].as_str().unwrap_or_default().to_string()
            }
            Err(e) => return Err(e),
        };
        if c.experiment_id.is_empty() {
            return Err(MlflowError::NoExperimentId { uri: t.uri.clone(), experiment: t.experiment.clone() });
        }
        Ok(c)
    }

    async fn get(&self, path: &str, q: &[(&str, &str)]) -> Result<Json, MlflowError> {
        let r = self.http.get(format!("{}/{path}", self.base)).query(q).send().await;
        answer(path, r).await
    }

    async fn post(&self, path: &str, body: &Json) -> Result<Json, MlflowError> {
        let r = self.http.post(format!("{}/{path}", self.base)).json(body).send().await;
        answer(path, r).await
    }

    /// The run of a pattern with this hash, if any: (run id, finished).
    pub async fn find(&self, id: &str, hash: &str) -> Result<Option<(String, bool)>, MlflowError> {
        let filter = format!("tags.{TAG_PATTERN} = '{}' and tags.{TAG_HASH} = '{}'", quote(id), quote(hash));
        let v = self
            .post("runs/search", &json!({ "experiment_ids": [self.experiment_id], "filter": filter, "max_results": 10 }))
            .await?;
        let runs = v["runs"].as_array().cloned().unwrap_or_default();
        let best = runs.iter().find(|r| r["info"]["status"] == "FINISHED").or(runs.first());
        Ok(best.map(|r| (r["info"]["run_id"].as_str().unwrap_or_default().to_string(), r["info"]["status"] == "FINISHED")))
    }

    /// Logs one result as a run, unless its run is already complete.
    pub async fn log(&self, rec: &ResultRecord) -> Result<Logged, MlflowError> {
        let run_id = match self.find(&rec.id, &rec.hash).await? {
            Some((run, true)) => return Ok(Logged::Existing(run)),
            // A run left unfinished by an interrupted log is completed, not duplicated.
            Some((run, false)) => run,
            None => {
                let v = self
                    .post(
                        "runs/create",
                        &json!({
                            "experiment_id": self.experiment_id,
                            "run_name": rec.id,
                            "start_time": now_ms(),
                            "tags": [{ "key": TAG_PATTERN, "value": rec.id }, { "key": TAG_HASH, "value": rec.hash }],
                        }),
                    )
                    .await?;
                v["run"]["info"]["run_id"].as_str().ok_or(MlflowError::NoRunId)?.to_string()
            }
        };
        let (params, tags, metrics) = describe(rec);
        let ts = now_ms();
        let metrics: Vec<Json> =
            metrics.iter().map(|(k, v)| json!({ "key": k, "value": v, "timestamp": ts, "step": 0 })).collect();
        let params: Vec<Json> = params.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
        let tags: Vec<Json> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
        // log-batch takes at most 1000 metrics, 100 params and 100 tags per call.
        for (i, chunk) in metrics.chunks(1000).enumerate() {
            let (p, t) =
                if i == 0 { (&params[..params.len().min(100)], &tags[..tags.len().min(100)]) } else { (&[][..], &[][..]) };
            self.post("runs/log-batch", &json!({ "run_id": run_id, "metrics": chunk, "params": p, "tags": t })).await?;
        }
        if metrics.is_empty() {
            self.post("runs/log-batch", &json!({ "run_id": run_id, "metrics": [], "params": params, "tags": tags })).await?;
        }
        if !rec.samples.is_empty() {
            // Artifacts are optional: a server without an artifact store still gets the run.
            let _ = self.artifact(&run_id, "samples.json", &serde_json::to_vec(&rec.samples).unwrap_or_default()).await;
        }
        self.post("runs/update", &json!({ "run_id": run_id, "status": "FINISHED", "end_time": now_ms() })).await?;
        Ok(Logged::Created(run_id))
    }

    /// Uploads a file through the server's artifact proxy (`mlflow server --serve-artifacts`, the default).
    async fn artifact(&self, run_id: &str, name: &str, body: &[u8]) -> Result<(), MlflowError> {
        let root = self.base.trim_end_matches("/api/2.0/mlflow");
        let url = format!("{root}/api/2.0/mlflow-artifacts/artifacts/{}/{run_id}/artifacts/{name}", self.experiment_id);
        let r = self.http.put(url).body(body.to_vec()).send().await.map_err(MlflowError::ArtifactSend)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(MlflowError::Artifact { status: r.status() })
        }
    }
}

async fn answer(path: &str, r: Result<reqwest::Response, reqwest::Error>) -> Result<Json, MlflowError> {
    let connect = |source| MlflowError::Connect { path: path.to_string(), source };
    let r = r.map_err(connect)?;
    let status = r.status();
    let text = r.text().await.map_err(connect)?;
    decode(path, status, &text)
}

/// The JSON of an answer, or the error it reports with MLflow's `error_code` kept.
fn decode(path: &str, status: reqwest::StatusCode, text: &str) -> Result<Json, MlflowError> {
    if !status.is_success() {
        let error_code =
            serde_json::from_str::<Json>(text).ok().and_then(|v| v.get("error_code").and_then(Json::as_str).map(String::from));
        let body = text.chars().take(BODY_CHARS).collect();
        return Err(MlflowError::Http { path: path.to_string(), status, error_code, body });
    }
    serde_json::from_str(text).map_err(|source| MlflowError::NotJson { path: path.to_string(), source })
}

/// MLflow's filter strings quote with single quotes.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The seed's layer tag of each low-level tool (seed 002, section 5.2).
fn seed_tool_layer(tool: &str) -> Option<&'static str> {
    match tool {
        "fi_pingpong" | "fi_rma_pingpong" | "fi_rdm_pingpong" => Some("L0"),
        "nixlbench" => Some("L1"),
        "kvbench" => Some("L2"),
        "ucx_perftest" => Some("L3"),
        _ => None,
    }
}

type Pairs = Vec<(String, String)>;

/// Params (the pattern's settings), tags and metrics of a result, named as the seed named them.
pub fn describe(rec: &ResultRecord) -> (Pairs, Pairs, Vec<(String, f64)>) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut params: Pairs = vec![("pattern_id".into(), rec.id.clone())];
    for (k, v) in &rec.settings {
        // MLflow keeps params of at most 500 characters in older servers.
        params.push((k.clone(), text(v).chars().take(500).collect()));
    }
    let setting = |k: &str| rec.settings.get(k).map(text).filter(|s| !s.is_empty() && s != "none");
    let tool = setting("tool");
    let mut tags: Pairs = vec![
        ("layer".into(), rec.layer.clone()),
        ("kind".into(), rec.kind.as_str().to_string()),
        (TAG_PATTERN.into(), rec.id.clone()),
        (TAG_HASH.into(), rec.hash.clone()),
    ];
    for k in ["mode", "transport"] {
        if let Some(v) = setting(k) {
            tags.push((k.into(), v));
        }
    }
    if let Some(t) = &tool {
        tags.push(("tool".into(), t.clone()));
        if let Some(l) = seed_tool_layer(t) {
            tags.push(("tool_layer".into(), l.into()));
        }
        if t == "nixlbench" {
            if let Some(tok) = setting("tokens") {
                tags.push(("kv_cache_equivalent_tokens".into(), tok));
            }
        }
    }
    let pingpong = tool.as_deref().is_some_and(|t| t.contains("pingpong"));
    let size = setting("size").map(|s| s.to_lowercase());
    let mut metrics = vec![];
    for (k, v) in &rec.metrics {
        if !v.is_finite() {
            continue;
        }
        match (pingpong, size.as_deref(), k.as_str()) {
            // fi_pingpong's figures carry the message size in their names (latency_us_64b).
            (true, Some(s), "latency_us") => metrics.push((format!("latency_us_{s}"), *v)),
            (true, Some(s), "bandwidth_gb_s") => metrics.push((format!("bandwidth_mbps_{s}"), v * 1000.0)),
            _ => metrics.push((k.clone(), *v)),
        }
    }
    (params, tags, metrics)
}

/// Logs many results with one connection: (created, already there, failures as (result id, error)).
pub async fn push(t: &Target, recs: &[ResultRecord]) -> Result<(usize, usize, Vec<(String, MlflowError)>), MlflowError> {
    let c = Client::connect(t).await?;
    let (mut created, mut existing, mut failed) = (0, 0, vec![]);
    for r in recs {
        match c.log(r).await {
            Ok(Logged::Created(_)) => created += 1,
            Ok(Logged::Existing(_)) => existing += 1,
            Err(e) => failed.push((r.id.clone(), e)),
        }
    }
    Ok((created, existing, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tool: &str, size: &str) -> ResultRecord {
        let mut settings = BTreeMap::new();
        settings.insert("tool".into(), json!(tool));
        settings.insert("size".into(), json!(size));
        ResultRecord {
            id: "p-ll".into(),
            hash: "h".into(),
            layer: "L5".into(),
            kind: crate::results::ResultKind::Step,
            finished_at: String::new(),
            seconds: 1.0,
            settings,
            metrics: [("latency_us".to_string(), 12.0), ("bandwidth_gb_s".to_string(), 1.5)].into(),
            samples: BTreeMap::new(),
            units: BTreeMap::new(),
            raw: String::new(),
            provenance: None,
        }
    }

    #[test]
    fn pingpong_metrics_carry_the_message_size_as_in_the_seed() {
        let (_, tags, m) = describe(&rec("fi_pingpong", "64B"));
        assert!(m.contains(&("latency_us_64b".to_string(), 12.0)), "{m:?}");
        assert!(m.contains(&("bandwidth_mbps_64b".to_string(), 1500.0)), "{m:?}");
        assert!(tags.contains(&("tool_layer".to_string(), "L0".to_string())));
        let (_, _, m) = describe(&rec("ucx_perftest", "1MiB"));
        assert!(m.contains(&("latency_us".to_string(), 12.0)));
    }

    #[test]
    fn an_unknown_experiment_keeps_mlflows_error_code() {
        let body = r#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find experiment with name 'e'"}"#;
        let e = decode("experiments/get-by-name", reqwest::StatusCode::NOT_FOUND, body).unwrap_err();
        match &e {
            MlflowError::Http { path, status, error_code, body: b } => {
                assert_eq!(path, "experiments/get-by-name");
                assert_eq!(*status, reqwest::StatusCode::NOT_FOUND);
                assert_eq!(error_code.as_deref(), Some(RESOURCE_DOES_NOT_EXIST));
                assert_eq!(b, body);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_missing());
        assert_eq!(e.to_string(), format!("MLflow experiments/get-by-name: HTTP 404 Not Found: {body}"));
    }

    #[test]
    fn other_failures_are_not_a_missing_experiment() {
        let html = "<html>".to_string() + &"x".repeat(400);
        let e = decode("runs/search", reqwest::StatusCode::BAD_GATEWAY, &html).unwrap_err();
        assert!(matches!(&e, MlflowError::Http { error_code: None, .. }), "{e:?}");
        assert!(!e.is_missing());
        assert_eq!(e.to_string(), format!("MLflow runs/search: HTTP 502 Bad Gateway: {}", &html[..300]));
        let e = decode("runs/create", reqwest::StatusCode::OK, "oops").unwrap_err();
        assert!(matches!(e, MlflowError::NotJson { .. }), "{e:?}");
        assert!(e.to_string().starts_with("MLflow runs/create: not JSON: "), "{e}");
        assert_eq!(decode("runs/create", reqwest::StatusCode::OK, "{}").unwrap(), json!({}));
    }

    #[tokio::test]
    async fn a_tracking_uri_that_is_not_http_is_refused_before_connecting() {
        let t = Target { uri: "file:///tmp/mlruns".into(), experiment: "e".into() };
        let Err(e) = Client::connect(&t).await else { panic!("connected to a file: URI") };
        assert!(matches!(&e, MlflowError::Unsupported { uri } if uri == "file:///tmp/mlruns"), "{e:?}");
        assert_eq!(e.to_string(), "MLflow tracking URI `file:///tmp/mlruns`: nixl logs over HTTP(S) only");
    }

    #[test]
    fn filter_strings_quote_single_quotes() {
        assert_eq!(quote("a'b"), "a\\'b");
    }
}
