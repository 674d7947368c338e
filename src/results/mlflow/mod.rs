//! Logging results to an MLflow tracking server over its REST API (no Python).
//! One MLflow experiment per experiment block, one run per result, keyed by the
//! result's id and content hash (`describe.rs` names what a run holds).
//!
//! Logging is idempotent, also when two pushes (or an apply and a push) run at
//! once. MLflow has no unique constraint, so a run's key is enforced twice:
//! - one machine: a lock beside the results (`lock.rs`) is held while a result's
//!   run is found or created and written; the second logger then finds it complete;
//! - several machines (or copies of the results): after creating a run, the
//!   logger searches the key again and keeps one run of those it finds (a
//!   finished one first, then the least run id: every logger picks the same),
//!   deleting the others. A logger whose write fails (its run deleted under it,
//!   or the same params written by another at the same moment) starts over from
//!   the search and writes into the survivor; logging the same params and
//!   metrics again is a no-op in MLflow.
//!
//! Where requests go and how they are authenticated (token, basic, SigV4 for
//! SageMaker) is `endpoint.rs`.

mod describe;
mod endpoint;
mod lock;

pub use describe::{describe, run_times, Described, TAG_HASH, TAG_PATTERN};
pub use endpoint::{TrackingServerArn, ARN_HEADER, CUSTOM_ENDPOINT_ENV, SIGV4_SERVICE};

use super::{ResultRecord, Store};
use crate::check::value::Value;
use endpoint::Endpoint;
use reqwest::Method;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// MLflow's `error_code` for a name or id it does not know.
const RESOURCE_DOES_NOT_EXIST: &str = "RESOURCE_DOES_NOT_EXIST";
/// MLflow's `error_code` for a name taken (an experiment another logger just created).
const RESOURCE_ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";
/// How much of an error body a message quotes.
const BODY_CHARS: usize = 300;
/// How many times a result's run is written, when racing loggers get in the way.
const ATTEMPTS: usize = 3;
/// The pause before the next attempt, times the attempts so far.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// What one log-batch call takes at most (MLflow's limits).
const BATCH_METRICS: usize = 1000;
const BATCH_PARAMS: usize = 100;
const BATCH_TAGS: usize = 100;
/// The artifact store MLflow's server proxies (`mlflow server --serve-artifacts`, the default).
const PROXIED_ARTIFACTS: &str = "mlflow-artifacts:";

/// Why a call to the MLflow server failed. Display is the message apply and `results --push` print.
#[derive(Debug)]
pub enum MlflowError {
    /// The tracking URI is neither HTTP(S) nor a SageMaker ARN (a `file:` store, `databricks`...).
    Unsupported { uri: String },
    /// The tracking URI starts with `arn:` but is not a tracking server ARN nixl can use.
    BadArn { arn: String, why: &'static str },
    /// The AWS credential chain found no credentials to sign with.
    Credentials(aws_credential_types::provider::error::CredentialsError),
    /// SigV4 could not sign the request.
    Sign(aws_sigv4::http_request::SigningError),
    /// SigV4 returned a header that is not valid HTTP.
    SignedHeader { name: String },
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
    /// The lock beside the results could not be taken.
    Lock { path: PathBuf, source: std::io::Error },
}

impl MlflowError {
    /// MLflow does not know the name or id asked for (an experiment not created yet).
    pub fn is_missing(&self) -> bool {
        self.has_code(RESOURCE_DOES_NOT_EXIST)
    }

    fn has_code(&self, code: &str) -> bool {
        matches!(self, MlflowError::Http { error_code: Some(c), .. } if c == code)
    }
}

impl fmt::Display for MlflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlflowError::Unsupported { uri } => {
                write!(f, "MLflow tracking URI `{uri}`: nixl logs over HTTP(S) or to a SageMaker tracking server ARN only")
            }
            MlflowError::BadArn { arn, why } => write!(f, "MLflow tracking URI `{arn}`: {why}"),
            MlflowError::Credentials(e) => {
                write!(f, "MLflow on SageMaker: no AWS credentials to sign with ({e}); set AWS_PROFILE or AWS_ACCESS_KEY_ID")
            }
            MlflowError::Sign(e) => write!(f, "MLflow on SageMaker: cannot sign the request: {e}"),
            MlflowError::SignedHeader { name } => write!(f, "MLflow on SageMaker: the signed header `{name}` is not valid"),
            MlflowError::Client(e) => write!(f, "{e}"),
            MlflowError::Connect { path, source } => write!(f, "MLflow {path}: {source}"),
            MlflowError::Http { path, status, body, .. } => write!(f, "MLflow {path}: HTTP {status}: {body}"),
            MlflowError::NotJson { path, source } => write!(f, "MLflow {path}: not JSON: {source}"),
            MlflowError::NoExperimentId { uri, experiment } => {
                write!(f, "MLflow at {uri} returned no experiment id for `{experiment}`")
            }
            MlflowError::NoRunId => write!(f, "MLflow created a run without an id"),
            MlflowError::Lock { path, source } => write!(f, "cannot lock `{}` for logging to MLflow: {source}", path.display()),
        }
    }
}

impl std::error::Error for MlflowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MlflowError::Client(e) | MlflowError::Connect { source: e, .. } => Some(e),
            MlflowError::NotJson { source, .. } => Some(source),
            MlflowError::Credentials(e) => Some(e),
            MlflowError::Sign(e) => Some(e),
            MlflowError::Lock { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where to log: the server, the MLflow experiment name, and the lock beside
/// the results that serialises this machine's logs (None: no lock, for tests).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub uri: String,
    pub experiment: String,
    pub lock: Option<PathBuf>,
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
    Some(Target { uri: uri.trim().trim_end_matches('/').to_string(), experiment: name, lock: Some(lock::path_in(results_dir)) })
}

pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    lock: Option<PathBuf>,
    pub experiment_id: String,
}

/// What logging a result did.
#[derive(Debug, PartialEq)]
pub enum Logged {
    /// This call wrote the run: created it, or completed one left unfinished.
    Written { run: String, artifacts: Artifacts },
    /// The result's run was already complete.
    Existing(String),
}

/// Where a run's files went.
#[derive(Debug, PartialEq)]
pub enum Artifacts {
    /// Uploaded through the server's artifact proxy, by name.
    Uploaded(Vec<String>),
    /// The server keeps artifacts where nixl does not upload (its `artifact_uri`:
    /// a local path or an S3 bucket, when it runs without `--serve-artifacts`).
    NotProxied { artifact_uri: String },
}

/// A run of a result's key, as runs/search or runs/create describe it.
#[derive(Clone, Debug, PartialEq)]
struct Found {
    run_id: String,
    finished: bool,
    artifact_uri: String,
}

impl Found {
    fn of(run: &Json) -> Found {
        let info = &run["info"];
        Found {
            run_id: info["run_id"].as_str().unwrap_or_default().to_string(),
            finished: info["status"] == "FINISHED",
            artifact_uri: info["artifact_uri"].as_str().unwrap_or_default().to_string(),
        }
    }
}

impl Artifacts {
    /// Why artifacts were not uploaded, said after the artifact URI.
    pub const NOT_UPLOADED: &'static str =
        "samples and raw outputs were not uploaded (nixl uploads through MLflow's artifact proxy: `mlflow server --serve-artifacts`)";
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Client {
    /// Finds or creates the MLflow experiment.
    pub async fn connect(t: &Target) -> Result<Client, MlflowError> {
        let endpoint = Endpoint::of(&t.uri).await?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(MlflowError::Client)?;
        let mut c = Client { http, endpoint, lock: t.lock.clone(), experiment_id: String::new() };
        c.experiment_id = c.experiment(&t.experiment).await?;
        if c.experiment_id.is_empty() {
            return Err(MlflowError::NoExperimentId { uri: t.uri.clone(), experiment: t.experiment.clone() });
        }
        Ok(c)
    }

    /// The experiment's id, created if missing (found again if another logger created it meanwhile).
    async fn experiment(&self, name: &str) -> Result<String, MlflowError> {
        let query = [("experiment_name", name)];
        let get = || self.get("experiments/get-by-name", &query);
        let id = |v: &Json| v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string();
        match get().await {
            Ok(v) => Ok(id(&v)),
            Err(e) if e.is_missing() => match self.post("experiments/create", &json!({ "name": name })).await {
                Ok(v) => Ok(v["experiment_id"].as_str().unwrap_or_default().to_string()),
                Err(e) if e.has_code(RESOURCE_ALREADY_EXISTS) => Ok(id(&get().await?)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn send(&self, path: &str, req: Result<reqwest::Request, MlflowError>) -> Result<Json, MlflowError> {
        let r = self.http.execute(req?).await;
        answer(path, r).await
    }

    async fn get(&self, path: &str, q: &[(&str, &str)]) -> Result<Json, MlflowError> {
        let req = self.endpoint.request(&self.http, Method::GET, &format!("api/2.0/mlflow/{path}"), q, None).await;
        self.send(path, req).await
    }

    async fn post(&self, path: &str, body: &Json) -> Result<Json, MlflowError> {
        let bytes = serde_json::to_vec(body).expect("JSON serialises");
        let body = Some((bytes, "application/json"));
        let req = self.endpoint.request(&self.http, Method::POST, &format!("api/2.0/mlflow/{path}"), &[], body).await;
        self.send(path, req).await
    }

    /// The active runs of a result's key, the one to keep first: a finished one, then the least run id.
    async fn find_all(&self, rec: &ResultRecord) -> Result<Vec<Found>, MlflowError> {
        let filter = format!("tags.{TAG_PATTERN} = '{}' and tags.{TAG_HASH} = '{}'", quote(&rec.id), quote(&rec.hash));
        let v = self
            .post("runs/search", &json!({ "experiment_ids": [self.experiment_id], "filter": filter, "max_results": 100 }))
            .await?;
        let mut runs: Vec<Found> = v["runs"].as_array().into_iter().flatten().map(Found::of).collect();
        runs.sort_by(|a, b| b.finished.cmp(&a.finished).then_with(|| a.run_id.cmp(&b.run_id)));
        Ok(runs)
    }

    /// The run of a pattern with this hash, if any: (run id, finished).
    pub async fn find(&self, rec: &ResultRecord) -> Result<Option<(String, bool)>, MlflowError> {
        Ok(self.find_all(rec).await?.into_iter().next().map(|f| (f.run_id, f.finished)))
    }

    /// Logs one result as a run, unless its run is already complete.
    pub async fn log(&self, rec: &ResultRecord, raw: Option<&[u8]>) -> Result<Logged, MlflowError> {
        let _held = match &self.lock {
            Some(path) => Some(lock::acquire(path).await.map_err(|source| MlflowError::Lock { path: path.clone(), source })?),
            None => None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let run = self.the_run(rec).await?;
            if run.finished {
                return Ok(Logged::Existing(run.run_id));
            }
            match self.write(&run, rec, raw).await {
                Ok(artifacts) => return Ok(Logged::Written { run: run.run_id, artifacts }),
                Err(e) if attempt >= ATTEMPTS => return Err(e),
                // Racing loggers: the run was deleted as a duplicate, or the same params
                // were written at the same moment (MLflow's duplicate check is not atomic).
                // Start over from the search; a run finished meanwhile is then found complete.
                Err(_) => tokio::time::sleep(RETRY_PAUSE * attempt as u32).await,
            }
        }
    }

    /// The one run of a result: found, or created; duplicates (of racing loggers) deleted.
    async fn the_run(&self, rec: &ResultRecord) -> Result<Found, MlflowError> {
        let mut runs = self.find_all(rec).await?;
        if runs.is_empty() {
            let created = self.create(rec).await?;
            runs = self.find_all(rec).await?;
            if runs.is_empty() {
                runs.push(created);
            }
        }
        for dup in &runs[1..] {
            if let Err(e) = self.post("runs/delete", &json!({ "run_id": dup.run_id })).await {
                if !e.is_missing() {
                    return Err(e);
                }
            }
        }
        Ok(runs.swap_remove(0))
    }

    async fn create(&self, rec: &ResultRecord) -> Result<Found, MlflowError> {
        let start = run_times(rec).map_or_else(now_ms, |(start, _)| start);
        let key = [json!({ "key": TAG_PATTERN, "value": rec.id }), json!({ "key": TAG_HASH, "value": rec.hash })];
        let body = json!({ "experiment_id": self.experiment_id, "run_name": rec.id, "start_time": start, "tags": key });
        let v = self.post("runs/create", &body).await?;
        let found = Found::of(&v["run"]);
        if found.run_id.is_empty() {
            return Err(MlflowError::NoRunId);
        }
        Ok(found)
    }

    /// Params, tags, metrics and files of a result into its run, then the run marked finished.
    async fn write(&self, run: &Found, rec: &ResultRecord, raw: Option<&[u8]>) -> Result<Artifacts, MlflowError> {
        let times = run_times(rec);
        self.log_batch(&run.run_id, &describe(rec), times.map_or_else(now_ms, |(_, end)| end)).await?;
        let artifacts = self.upload(run, rec, raw).await?;
        let end = times.map_or_else(now_ms, |(_, end)| end);
        self.post("runs/update", &json!({ "run_id": run.run_id, "status": "FINISHED", "end_time": end })).await?;
        Ok(artifacts)
    }

    /// log-batch in calls within MLflow's limits; metrics are stamped with the
    /// measurement's end, so logging them again adds nothing.
    async fn log_batch(&self, run_id: &str, d: &Described, timestamp: i64) -> Result<(), MlflowError> {
        let pair = |(k, v): &(String, String)| json!({ "key": k, "value": v });
        let metrics: Vec<Json> =
            d.metrics.iter().map(|(k, v)| json!({ "key": k, "value": v, "timestamp": timestamp, "step": 0 })).collect();
        let params: Vec<Json> = d.params.iter().map(pair).collect();
        let tags: Vec<Json> = d.tags.iter().map(pair).collect();
        let calls = [metrics.len().div_ceil(BATCH_METRICS), params.len().div_ceil(BATCH_PARAMS), tags.len().div_ceil(BATCH_TAGS)];
        for i in 0..calls.into_iter().max().unwrap_or(0).max(1) {
            let part = |all: &[Json], n: usize| all.iter().skip(i * n).take(n).cloned().collect::<Vec<_>>();
            let body = json!({
                "run_id": run_id,
                "metrics": part(&metrics, BATCH_METRICS),
                "params": part(&params, BATCH_PARAMS),
                "tags": part(&tags, BATCH_TAGS),
            });
            self.post("runs/log-batch", &body).await?;
        }
        Ok(())
    }

    /// The per-request samples (`samples.json`) and the raw output (under its
    /// name in the results) through the server's artifact proxy.
    async fn upload(&self, run: &Found, rec: &ResultRecord, raw: Option<&[u8]>) -> Result<Artifacts, MlflowError> {
        let Some(dir) = run.artifact_uri.strip_prefix(PROXIED_ARTIFACTS) else {
            return Ok(Artifacts::NotProxied { artifact_uri: run.artifact_uri.clone() });
        };
        // `mlflow-artifacts://host:port/path` names the server; nixl's requests go to the tracking URI's.
        let dir = match dir.strip_prefix("//") {
            Some(rest) => rest.split_once('/').map_or("", |(_, path)| path),
            None => dir,
        }
        .trim_matches('/');
        let mut files = vec![];
        if !rec.samples.is_empty() {
            files.push(("samples.json".to_string(), serde_json::to_vec(&rec.samples).expect("samples serialise")));
        }
        if let Some(raw) = raw.filter(|_| !rec.raw.is_empty()) {
            files.push((rec.raw.clone(), raw.to_vec()));
        }
        let mut names = vec![];
        for (name, bytes) in files {
            let path = format!("api/2.0/mlflow-artifacts/artifacts/{dir}/{name}");
            let req =
                self.endpoint.request(&self.http, Method::PUT, &path, &[], Some((bytes, "application/octet-stream"))).await?;
            // The proxy answers an upload with an empty body.
            let r = self.http.execute(req).await.map_err(|source| MlflowError::Connect { path: path.clone(), source })?;
            if !r.status().is_success() {
                answer(&path, Ok(r)).await?;
            }
            names.push(name);
        }
        Ok(Artifacts::Uploaded(names))
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

/// What a push did: runs written, runs already there, failures as (result id, error),
/// and where the server keeps artifacts when nixl could not upload them.
#[derive(Debug, Default)]
pub struct Pushed {
    pub written: usize,
    pub existing: usize,
    pub failed: Vec<(String, MlflowError)>,
    pub artifacts_elsewhere: Option<String>,
}

/// Logs many results with one connection, each with its raw output from the store.
pub async fn push(t: &Target, store: &Store, recs: &[ResultRecord]) -> Result<Pushed, MlflowError> {
    let c = Client::connect(t).await?;
    let mut out = Pushed::default();
    for r in recs {
        match c.log(r, store.raw(r).as_deref()).await {
            Ok(Logged::Written { artifacts, .. }) => {
                out.written += 1;
                if let Artifacts::NotProxied { artifact_uri } = artifacts {
                    out.artifacts_elsewhere = Some(artifact_uri);
                }
            }
            Ok(Logged::Existing(_)) => out.existing += 1,
            Err(e) => out.failed.push((r.id.clone(), e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = Target { uri: "file:///tmp/mlruns".into(), experiment: "e".into(), lock: None };
        let Err(e) = Client::connect(&t).await else { panic!("connected to a file: URI") };
        assert!(matches!(&e, MlflowError::Unsupported { uri } if uri == "file:///tmp/mlruns"), "{e:?}");
        assert_eq!(
            e.to_string(),
            "MLflow tracking URI `file:///tmp/mlruns`: nixl logs over HTTP(S) or to a SageMaker tracking server ARN only"
        );
    }

    #[test]
    fn filter_strings_quote_single_quotes() {
        assert_eq!(quote("a'b"), "a\\'b");
    }
}
