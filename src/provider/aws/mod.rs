//! The AWS provider: base resources in one CloudFormation stack, nodes with
//! EC2 RunInstances (zone and type fallback in `nodes`), commands through SSM
//! (`ssm`), objects in the stack's S3 bucket. Credentials and region come from
//! the standard chain; `AWS_ENDPOINT_URL` points every client at an emulator.

/// Progress lines go through apply's view, so they scroll above its status line.
/// A progress line through the provider's sink: `say!(provider, "...", args)`.
macro_rules! say {
    ($p:expr, $($t:tt)*) => { $p.sink.line(&format!($($t)*)) };
}

mod errors;
pub mod iam;
mod instance_states;
mod node_sets;
mod nodes;
pub mod secrets;
mod ssm;
mod stacks;
pub mod template;

pub use errors::{classify_code, classify_reason, ec2_quota, suggested_zones, Ec2Quota};

use super::{CommandOutput, Leftover, NodeInfo, Provider, ProviderError, StackInfo};
use crate::check::model::Stack;
use stacks::outputs_of;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How apply behaves when capacity is short, how often it polls, how long it waits.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// Start a new round over every zone after `retry_interval` when all failed.
    pub retry_until_up: bool,
    /// Pause between polls of a stack, an instance or a command.
    pub poll: Duration,
    /// How long a new node may take to show up in SSM.
    pub ssm_online_timeout: Duration,
    /// Limits on every SDK call, so an endpoint that never answers ends in an error.
    pub timeouts: Timeouts,
    /// Set by Ctrl-C: retry loops stop at once and launch nothing more.
    pub interrupted: Arc<AtomicBool>,
}

/// The SDK clients' timeouts (`[aws]` in nixl.toml, in seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// Between two reads of an answer.
    pub read: Duration,
    /// One call from sending to the answer's headers (nixl's own retries come after it).
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(10), read: Duration::from_secs(60), call: Duration::from_secs(120) }
    }
}

impl Default for AwsOptions {
    fn default() -> Self {
        // NIXL_AWS_POLL_MS lets the emulator tests poll fast; AWS itself needs no faster than 5 s.
        let poll = std::env::var("NIXL_AWS_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
        AwsOptions {
            retry_until_up: false,
            poll: Duration::from_millis(poll),
            ssm_online_timeout: Duration::from_secs(900),
            timeouts: Timeouts::default(),
            interrupted: Arc::default(),
        }
    }
}

impl AwsOptions {
    /// The defaults with nixl.toml's `[aws]` limits applied.
    pub fn from_config(c: &crate::config::AwsConfig) -> AwsOptions {
        let d = AwsOptions::default();
        let secs = |v: Option<u64>, default: Duration| v.map(Duration::from_secs).unwrap_or(default);
        AwsOptions {
            ssm_online_timeout: secs(c.ssm_online_timeout, d.ssm_online_timeout),
            timeouts: Timeouts {
                connect: secs(c.connect_timeout, d.timeouts.connect),
                read: secs(c.read_timeout, d.timeouts.read),
                call: secs(c.call_timeout, d.timeouts.call),
            },
            ..d
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// A wait that says what it waits for once it has lasted 5 s, then every 30 s, with the
/// time waited and its bound, so no wait is silent.
struct Waiting {
    what: String,
    started: Instant,
    limit: Duration,
    next: Duration,
}

impl Waiting {
    fn new(what: impl Into<String>, limit: Duration) -> Waiting {
        Waiting { what: what.into(), started: Instant::now(), limit, next: Duration::from_secs(5) }
    }

    fn tick(&mut self, sink: &dyn crate::progress::Sink) {
        let waited = self.started.elapsed();
        if waited >= self.next {
            sink.line(&format!("  waiting for {} ({}s so far, at most {}s)", self.what, waited.as_secs(), self.limit.as_secs()));
            self.next = waited + Duration::from_secs(30);
        }
    }

    fn expired(&self) -> bool {
        self.started.elapsed() > self.limit
    }
}

/// Where the SDK looks for credentials, for the one line that says none were found.
fn credential_sources() -> String {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let imds = if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        "the EC2 instance metadata service (IMDS, disabled by AWS_EC2_METADATA_DISABLED)"
    } else {
        "the EC2 instance metadata service (IMDS)"
    };
    format!(
        "no AWS credentials found; looked in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), profile `{profile}` in ~/.aws/credentials and ~/.aws/config (keys, SSO, credential_process), web identity, the ECS container endpoint and {imds}: set one (e.g. `aws sso login`, or `profile` under [aws] in nixl.toml)"
    )
}

/// How long a stack may stay in an *_IN_PROGRESS status (CloudFormation's own limits are longer,
/// but nixl's stack creates in minutes).
/// One region's clients, made from one loaded configuration (credentials, timeouts).
struct Clients {
    conf: aws_config::SdkConfig,
    cfn: aws_sdk_cloudformation::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
}

impl Clients {
    fn new(conf: aws_config::SdkConfig) -> Clients {
        // An emulator on 127.0.0.1 has no virtual-host bucket names.
        let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3conf = aws_sdk_s3::config::Builder::from(&conf).force_path_style(path_style).build();
        Clients {
            cfn: aws_sdk_cloudformation::Client::new(&conf),
            ec2: aws_sdk_ec2::Client::new(&conf),
            ssm: aws_sdk_ssm::Client::new(&conf),
            s3: aws_sdk_s3::Client::from_conf(s3conf),
            conf,
        }
    }

    /// The same configuration in another region.
    fn in_region(&self, region: &str) -> Clients {
        Clients::new(self.conf.to_builder().region(aws_config::Region::new(region.to_string())).build())
    }
}

const STACK_WAIT: Duration = Duration::from_secs(1800);

pub struct AwsProvider {
    /// The clients of the region apply works in; `use_region` moves them (region fallback).
    clients: std::sync::RwLock<Arc<Clients>>,
    opts: AwsOptions,
    /// The stack's outputs, once known (from `ensure_stack` or the state).
    info: Mutex<Option<StackInfo>>,
    /// Keys known to be in the bucket, so each artifact is uploaded once.
    uploaded: Mutex<HashSet<String>>,
    /// Secret parameters put by this apply (name and the hash of the value), each once.
    stored: Mutex<HashSet<String>>,
    /// Where progress lines go (the CLI's terminal view).
    sink: std::sync::Arc<dyn crate::progress::Sink>,
    /// The node set these nodes belong to (`parallel = k`), 1-based (`node_sets`).
    set: u32,
}

impl AwsProvider {
    /// Clients for `region`, with their timeouts; fails at once, in one line, when no
    /// credentials can be found (waiting would not make them appear).
    pub async fn new(
        region: &str,
        opts: AwsOptions,
        sink: std::sync::Arc<dyn crate::progress::Sink>,
    ) -> Result<AwsProvider, ProviderError> {
        use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region};
        use aws_credential_types::provider::ProvideCredentials;
        let t = opts.timeouts;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(t.connect)
            .read_timeout(t.read)
            .operation_attempt_timeout(t.call)
            .operation_timeout(t.call)
            .build();
        // No retries inside the SDK: a capacity error is a 5xx that it would
        // repeat in the same zone; transient errors are retried by `with_retry`.
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(timeouts)
            .load()
            .await;
        let Some(creds) = conf.credentials_provider() else { return Err(ProviderError::Credentials(credential_sources())) };
        if creds.provide_credentials().await.is_err() {
            return Err(ProviderError::Credentials(credential_sources()));
        }
        Ok(AwsProvider {
            clients: std::sync::RwLock::new(Arc::new(Clients::new(conf))),
            opts,
            info: Mutex::new(None),
            uploaded: Mutex::new(HashSet::new()),
            stored: Mutex::new(HashSet::new()),
            sink,
            set: 1,
        })
    }

    /// The clients of the region in use.
    fn now(&self) -> Arc<Clients> {
        self.clients.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn cfn(&self) -> aws_sdk_cloudformation::Client {
        self.now().cfn.clone()
    }
    fn ec2(&self) -> aws_sdk_ec2::Client {
        self.now().ec2.clone()
    }
    fn ssm(&self) -> aws_sdk_ssm::Client {
        self.now().ssm.clone()
    }
    fn s3(&self) -> aws_sdk_s3::Client {
        self.now().s3.clone()
    }

    /// The region the clients call.
    pub fn region(&self) -> String {
        self.now().conf.region().map(|r| r.to_string()).unwrap_or_default()
    }

    fn bucket(&self) -> Result<String, ProviderError> {
        self.info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|i| i.bucket.clone())
            .ok_or_else(|| ProviderError::Other("the stack's bucket is not known yet: apply the stack first".into()))
    }
}

impl crate::provider::NodeSets for AwsProvider {
    /// The same clients for node set `set` (`parallel = k`): set 1's nodes are the campaign's
    /// own; set s > 1 launches its own nodes, tagged with its number, in its own placement group.
    fn node_set(&self, set: u32) -> AwsProvider {
        AwsProvider {
            clients: std::sync::RwLock::new(self.now()),
            opts: self.opts.clone(),
            info: Mutex::new(self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            uploaded: Mutex::new(HashSet::new()),
            stored: Mutex::new(HashSet::new()),
            sink: self.sink.clone(),
            set: set.max(1),
        }
    }
}

impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn attach(&self, info: &StackInfo) {
        *self.info.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
    }

    /// Moves every client to `region`: the stack, bucket, uploads and secrets known so far
    /// belong to the region left.
    async fn use_region(&self, region: &str) -> Result<(), ProviderError> {
        if self.region() == region {
            return Ok(());
        }
        let moved = Arc::new(self.now().in_region(region));
        *self.clients.write().unwrap_or_else(|e| e.into_inner()) = moved;
        *self.info.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.uploaded.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.stored.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }

    async fn ensure_stack(&self, stack: &Stack) -> Result<StackInfo, ProviderError> {
        let body = template::template_body(stack);
        let mut seen = HashSet::new();
        // Bounded: create, or repair a failed one once, or update.
        for _ in 0..4 {
            let Some(st) = self.describe(&stack.name).await? else {
                self.create_stack(stack, &body).await?;
                let st = self.wait_stack(&stack.name, &mut seen).await?;
                let status = st.as_ref().and_then(|s| s.stack_status()).map(|s| s.as_str().to_string()).unwrap_or_default();
                if status != "CREATE_COMPLETE" {
                    let err = self.failure(&stack.name, &status).await;
                    // Leave nothing half-made behind: a failed create is deleted now.
                    let _ = self.delete_stack(&stack.name).await;
                    return Err(err);
                }
                continue;
            };
            let status = st.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
            match status.as_str() {
                s if s.ends_with("_IN_PROGRESS") => {
                    say!(self, "  stack `{}` is {s}; waiting", stack.name);
                    self.wait_stack(&stack.name, &mut seen).await?;
                }
                "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "DELETE_FAILED" => {
                    say!(self, "  stack `{}` is {status} from an earlier attempt; deleting it to start over", stack.name);
                    if let Some(id) = outputs_of(&st).get(template::OUT_BUCKET) {
                        self.empty_bucket(id).await?;
                    }
                    self.delete_stack(&stack.name).await?;
                }
                _ => {
                    if self.template_differs(&stack.name, &body).await {
                        self.update_stack(stack, &body).await?;
                        let st = self.wait_stack(&stack.name, &mut seen).await?;
                        let status =
                            st.as_ref().and_then(|s| s.stack_status()).map(|s| s.as_str().to_string()).unwrap_or_default();
                        if status != "UPDATE_COMPLETE" && status != "CREATE_COMPLETE" {
                            return Err(self.failure(&stack.name, &status).await);
                        }
                        continue;
                    }
                    let mut outputs = outputs_of(&st);
                    for (k, h) in template::resource_hashes(stack) {
                        outputs.insert(format!("{}{k}", template::RESOURCE_HASH_PREFIX), h);
                    }
                    let info = StackInfo {
                        id: st.stack_id().unwrap_or(&stack.name).to_string(),
                        bucket: outputs.get(template::OUT_BUCKET).cloned(),
                        outputs,
                    };
                    self.attach(&info);
                    return Ok(info);
                }
            }
        }
        Err(ProviderError::Other(format!("stack `{}` did not settle; see its events in the CloudFormation console", stack.name)))
    }

    async fn ensure_nodes(&self, stack: &Stack, info: &StackInfo, existing: &[NodeInfo]) -> Result<Vec<NodeInfo>, ProviderError> {
        self.attach(info);
        nodes::ensure(self, stack, info, existing).await
    }

    async fn run(&self, nodes: &[NodeInfo], script: &str, timeout: Duration) -> Result<Vec<CommandOutput>, ProviderError> {
        ssm::run(self, nodes, script, timeout, &[]).await
    }

    async fn run_with_secrets(
        &self,
        stack: &Stack,
        nodes: &[NodeInfo],
        script: &str,
        timeout: Duration,
        secrets: &[crate::provider::SecretEnv],
    ) -> Result<Vec<CommandOutput>, ProviderError> {
        let params = secrets::ensure(self, stack, secrets).await?;
        let env = secrets::exports(&stack.region, &params);
        ssm::run(self, nodes, script, timeout, &env).await
    }

    async fn read_parameter(&self, name: &str) -> Result<String, ProviderError> {
        secrets::read(self, name).await
    }

    async fn fetch(&self, node: &NodeInfo, path: &str) -> Result<Vec<u8>, ProviderError> {
        ssm::fetch(self, node, path).await
    }

    async fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        ssm::put_once(self, key, bytes).await
    }

    async fn node_states(&self, known: &[NodeInfo]) -> Result<Vec<super::NodeState>, ProviderError> {
        instance_states::states(self, known).await
    }

    async fn destroy_nodes(&self, stack: &Stack, known: &[NodeInfo]) -> Result<(), ProviderError> {
        let left = self.remove_nodes(stack, known, node_sets::Sets::One(self.set)).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(ProviderError::NotRemoved(left))
        }
    }

    /// Best effort, in order (nodes, bucket, secrets, stack): a step that fails is listed and the next
    /// is still tried; "not found" counts as gone. What is left is the error.
    async fn destroy(&self, stack: &Stack, info: Option<&StackInfo>, known: &[NodeInfo]) -> Result<(), ProviderError> {
        let mut left = self.remove_nodes(stack, known, node_sets::Sets::All).await;
        match node_sets::delete_groups(self, stack).await {
            Ok(names) if !names.is_empty() => say!(self, "  deleted the node sets' placement groups {}", names.join(", ")),
            Ok(_) => {}
            Err(e) => left.push(Leftover { what: "placement groups of the node sets".into(), reason: e.to_string() }),
        }
        let current = match self.describe(&stack.name).await {
            Ok(c) => c,
            Err(e) => {
                left.push(Leftover { what: format!("stack {}", stack.name), reason: format!("cannot describe it: {e}") });
                return Err(ProviderError::NotRemoved(left));
            }
        };
        let bucket = info
            .and_then(|i| i.bucket.clone())
            .or_else(|| current.as_ref().and_then(|s| outputs_of(s).get(template::OUT_BUCKET).cloned()));
        if let Some(b) = bucket {
            match self.empty_bucket(&b).await {
                Ok(n) => say!(self, "  emptied bucket {b} ({n} object versions)"),
                Err(e) => left.push(Leftover { what: format!("bucket {b}"), reason: e.to_string() }),
            }
        }
        match secrets::delete_all(self, &stack.name).await {
            Ok(0) => {}
            Ok(n) => say!(self, "  deleted {n} secret parameter(s) under {}", secrets::prefix(&stack.name)),
            Err(e) => {
                left.push(Leftover { what: format!("parameters under {}", secrets::prefix(&stack.name)), reason: e.to_string() })
            }
        }
        if current.is_some() {
            say!(self, "  deleting CloudFormation stack `{}`", stack.name);
            if let Err(e) = self.delete_stack(&stack.name).await {
                left.push(Leftover { what: format!("stack {}", stack.name), reason: e.to_string() });
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(ProviderError::NotRemoved(left))
        }
    }
}

impl AwsProvider {
    /// Terminates the nodes of the stack's node sets `sets`: those tagged with its name (whether
    /// the state lists them or not) and those the state lists (whether tagged or not); ids EC2 no
    /// longer knows are gone already. Returns what could not be terminated.
    async fn remove_nodes(&self, stack: &Stack, known: &[NodeInfo], sets: node_sets::Sets) -> Vec<Leftover> {
        let mut left = vec![];
        let mut ids: Vec<String> = match nodes::find_in(self, &stack.name, None, sets).await {
            Ok(found) => found.into_iter().map(|i| i.id).collect(),
            Err(e) => {
                let what = format!("instances tagged {}={}", template::STACK_TAG, stack.name);
                left.push(Leftover { what, reason: format!("cannot list them: {e}") });
                vec![]
            }
        };
        for n in known {
            if n.id.starts_with("i-") && !ids.contains(&n.id) {
                ids.push(n.id.clone());
            }
        }
        if ids.is_empty() {
            return left;
        }
        say!(self, "  terminating {}", ids.join(", "));
        if let Err(e) = instance_states::terminate(self, &ids).await {
            let still = instance_states::alive(self, &ids).await.unwrap_or_else(|_| ids.clone());
            left.extend(still.into_iter().map(|id| Leftover { what: format!("instance {id}"), reason: e.to_string() }));
        }
        left
    }
}
