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
mod nodes;
mod ssm;
pub mod template;

pub use errors::{classify_code, classify_reason, suggested_zones};

use super::{CommandOutput, NodeInfo, Provider, ProviderError, StackInfo};
use crate::check::model::Stack;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, StackStatus, Tag};
use errors::{classify, with_retry};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// How apply behaves when capacity is short, and how often it polls.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// Start a new round over every zone after `retry_interval` when all failed.
    pub retry_until_up: bool,
    /// Pause between polls of a stack, an instance or a command.
    pub poll: Duration,
    /// How long a new node may take to show up in SSM.
    pub ssm_online_timeout: Duration,
}

impl Default for AwsOptions {
    fn default() -> Self {
        // NIXL_AWS_POLL_MS lets the emulator tests poll fast; AWS itself needs no faster than 5 s.
        let poll = std::env::var("NIXL_AWS_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
        AwsOptions { retry_until_up: false, poll: Duration::from_millis(poll), ssm_online_timeout: Duration::from_secs(900) }
    }
}

pub struct AwsProvider {
    cfn: aws_sdk_cloudformation::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
    opts: AwsOptions,
    /// The stack's outputs, once known (from `ensure_stack` or the state).
    info: Mutex<Option<StackInfo>>,
    /// Keys known to be in the bucket, so each artifact is uploaded once.
    uploaded: Mutex<HashSet<String>>,
    /// Where progress lines go (the CLI's terminal view).
    sink: std::sync::Arc<dyn crate::progress::Sink>,
}

impl AwsProvider {
    pub async fn new(region: &str, opts: AwsOptions, sink: std::sync::Arc<dyn crate::progress::Sink>) -> AwsProvider {
        use aws_config::{retry::RetryConfig, BehaviorVersion, Region};
        // No retries inside the SDK: a capacity error is a 5xx that it would
        // repeat in the same zone; transient errors are retried by `with_retry`.
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .load()
            .await;
        // An emulator on 127.0.0.1 has no virtual-host bucket names.
        let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3conf = aws_sdk_s3::config::Builder::from(&conf).force_path_style(path_style).build();
        AwsProvider {
            cfn: aws_sdk_cloudformation::Client::new(&conf),
            ec2: aws_sdk_ec2::Client::new(&conf),
            ssm: aws_sdk_ssm::Client::new(&conf),
            s3: aws_sdk_s3::Client::from_conf(s3conf),
            opts,
            info: Mutex::new(None),
            uploaded: Mutex::new(HashSet::new()),
            sink,
        }
    }

    fn bucket(&self) -> Result<String, ProviderError> {
        self.info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|i| i.bucket.clone())
            .ok_or_else(|| ProviderError::Other("the stack's bucket is not known yet: apply the stack first".into()))
    }

    /// The stack as CloudFormation reports it, or None when it does not exist.
    async fn describe(&self, name: &str) -> Result<Option<aws_sdk_cloudformation::types::Stack>, ProviderError> {
        let r = with_retry(&*self.sink, "DescribeStacks", || async {
            match self.cfn.describe_stacks().stack_name(name).send().await {
                Ok(o) => Ok(o.stacks().first().cloned()),
                Err(e) => {
                    let c = classify(&e, "", "");
                    // A missing stack is a ValidationError saying so.
                    match &c {
                        ProviderError::Other(m) if m.contains("does not exist") => Ok(None),
                        _ => Err(c),
                    }
                }
            }
        })
        .await?;
        Ok(r.filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete)))
    }

    /// Polls until the stack leaves every *_IN_PROGRESS status, printing new events as they come.
    async fn wait_stack(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
    ) -> Result<Option<aws_sdk_cloudformation::types::Stack>, ProviderError> {
        loop {
            self.print_events(name, seen).await;
            let s = self.describe(name).await?;
            let Some(st) = s else { return Ok(None) };
            let status = st.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
            if !status.ends_with("_IN_PROGRESS") {
                self.print_events(name, seen).await;
                return Ok(Some(st));
            }
            tokio::time::sleep(self.opts.poll).await;
        }
    }

    async fn print_events(&self, name: &str, seen: &mut HashSet<String>) {
        let Ok(out) = self.cfn.describe_stack_events().stack_name(name).send().await else { return };
        // Events come newest first.
        for ev in out.stack_events().iter().rev() {
            let id = ev.event_id().unwrap_or_default().to_string();
            if !seen.insert(id) {
                continue;
            }
            say!(
                self,
                "  [cloudformation] {} {}{}",
                ev.logical_resource_id().unwrap_or("?"),
                ev.resource_status().map(|s| s.as_str()).unwrap_or("?"),
                ev.resource_status_reason().map(|r| format!(": {r}")).unwrap_or_default()
            );
        }
    }

    /// The first failure reason among the stack's events, classified.
    async fn failure(&self, name: &str, status: &str) -> ProviderError {
        let mut reasons = vec![];
        if let Ok(out) = self.cfn.describe_stack_events().stack_name(name).send().await {
            for ev in out.stack_events().iter().rev() {
                let failed = ev.resource_status().is_some_and(|s| s.as_str().ends_with("_FAILED"));
                if let (true, Some(r)) = (failed, ev.resource_status_reason()) {
                    reasons.push(format!("{}: {r}", ev.logical_resource_id().unwrap_or("?")));
                }
            }
        }
        for r in &reasons {
            if let Some(e) = classify_reason(r, "", "") {
                return e;
            }
        }
        ProviderError::Other(format!(
            "stack `{name}` ended in {status}: {}",
            if reasons.is_empty() { "no reason given".into() } else { reasons.join("; ") }
        ))
    }

    async fn create_stack(&self, stack: &Stack, body: &str) -> Result<(), ProviderError> {
        say!(self, "  creating CloudFormation stack `{}` in {}", stack.name, stack.region);
        with_retry(&*self.sink, "CreateStack", || async {
            self.cfn
                .create_stack()
                .stack_name(&stack.name)
                .template_body(body)
                .capabilities(Capability::CapabilityIam)
                .tags(Tag::builder().key(template::STACK_TAG).value(&stack.name).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| match classify(&e, "", "") {
                    ProviderError::Other(m) if m.contains("already exists") => ProviderError::Transient(m),
                    c => c,
                })
        })
        .await
    }

    /// Applies a changed template through a change set, so the change is reviewable and atomic.
    async fn update_stack(&self, stack: &Stack, body: &str) -> Result<(), ProviderError> {
        let cs = format!("nixl-{}", &crate::state::content_hash(&body)[..12]);
        say!(self, "  updating stack `{}` through change set {cs}", stack.name);
        with_retry(&*self.sink, "CreateChangeSet", || async {
            self.cfn
                .create_change_set()
                .stack_name(&stack.name)
                .change_set_name(&cs)
                .change_set_type(ChangeSetType::Update)
                .template_body(body)
                .capabilities(Capability::CapabilityIam)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, "", ""))
        })
        .await?;
        loop {
            let d = self.cfn.describe_change_set().stack_name(&stack.name).change_set_name(&cs).send().await;
            let d = d.map_err(|e| classify(&e, "", ""))?;
            let status = d.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            if status == "FAILED" {
                let reason = d.status_reason().unwrap_or("").to_string();
                let _ = self.cfn.delete_change_set().stack_name(&stack.name).change_set_name(&cs).send().await;
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(());
                }
                return Err(ProviderError::Other(format!("change set {cs} failed: {reason}")));
            }
            if status == "CREATE_COMPLETE" {
                break;
            }
            tokio::time::sleep(self.opts.poll).await;
        }
        self.cfn
            .execute_change_set()
            .stack_name(&stack.name)
            .change_set_name(&cs)
            .send()
            .await
            .map_err(|e| classify(&e, "", ""))?;
        Ok(())
    }

    async fn template_differs(&self, name: &str, body: &str) -> bool {
        let Ok(t) = self.cfn.get_template().stack_name(name).send().await else { return true };
        let old: Option<serde_json::Value> = t.template_body().and_then(|b| serde_json::from_str(b).ok());
        let new: Option<serde_json::Value> = serde_json::from_str(body).ok();
        old != new
    }

    async fn delete_stack(&self, name: &str) -> Result<(), ProviderError> {
        with_retry(&*self.sink, "DeleteStack", || async {
            self.cfn.delete_stack().stack_name(name).send().await.map(|_| ()).map_err(|e| classify(&e, "", ""))
        })
        .await?;
        let mut seen = HashSet::new();
        match self.wait_stack(name, &mut seen).await? {
            None => Ok(()),
            Some(st) => {
                let status = st.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
                Err(self.failure(name, &status).await)
            }
        }
    }

    /// Deletes every version of every object, as DeleteStack needs an empty bucket.
    async fn empty_bucket(&self, bucket: &str) -> Result<usize, ProviderError> {
        let mut removed = 0;
        loop {
            let out = match self.s3.list_object_versions().bucket(bucket).send().await {
                Ok(o) => o,
                Err(e) => {
                    let c = classify(&e, "", "");
                    return match c {
                        ProviderError::Other(m) if m.contains("NoSuchBucket") => Ok(removed),
                        c => Err(c),
                    };
                }
            };
            let mut batch: Vec<(String, Option<String>)> = vec![];
            for v in out.versions() {
                batch.push((v.key().unwrap_or_default().into(), v.version_id().map(String::from)));
            }
            for m in out.delete_markers() {
                batch.push((m.key().unwrap_or_default().into(), m.version_id().map(String::from)));
            }
            if batch.is_empty() {
                // Emulators may list only unversioned objects through ListObjectsV2.
                let plain = self.s3.list_objects_v2().bucket(bucket).send().await.map_err(|e| classify(&e, "", ""))?;
                for o in plain.contents() {
                    batch.push((o.key().unwrap_or_default().into(), None));
                }
            }
            if batch.is_empty() {
                return Ok(removed);
            }
            for (key, version) in batch {
                let mut req = self.s3.delete_object().bucket(bucket).key(&key);
                if let Some(v) = version.filter(|v| v != "null") {
                    req = req.version_id(v);
                }
                req.send().await.map_err(|e| classify(&e, "", ""))?;
                removed += 1;
            }
        }
    }
}

fn outputs_of(st: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    st.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect()
}

impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn attach(&self, info: &StackInfo) {
        *self.info.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
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
        ssm::run(self, nodes, script, timeout).await
    }

    async fn fetch(&self, node: &NodeInfo, path: &str) -> Result<Vec<u8>, ProviderError> {
        ssm::fetch(self, node, path).await
    }

    async fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        ssm::put_once(self, key, bytes).await
    }

    async fn destroy_nodes(&self, stack: &Stack, known: &[NodeInfo]) -> Result<(), ProviderError> {
        // Tagged instances too, so a node the state never heard of is not left running.
        let mut ids: Vec<String> = nodes::find(self, &stack.name, None).await?.into_iter().map(|i| i.id).collect();
        for n in known {
            if n.id.starts_with("i-") && !ids.contains(&n.id) {
                ids.push(n.id.clone());
            }
        }
        if !ids.is_empty() {
            say!(self, "  terminating {}", ids.join(", "));
            nodes::terminate(self, &ids).await?;
        }
        Ok(())
    }

    async fn destroy(&self, stack: &Stack, info: Option<&StackInfo>, known: &[NodeInfo]) -> Result<(), ProviderError> {
        self.destroy_nodes(stack, known).await?;
        let current = self.describe(&stack.name).await?;
        let bucket = info
            .and_then(|i| i.bucket.clone())
            .or_else(|| current.as_ref().and_then(|s| outputs_of(s).get(template::OUT_BUCKET).cloned()));
        if let Some(b) = bucket {
            let n = self.empty_bucket(&b).await?;
            say!(self, "  emptied bucket {b} ({n} object versions)");
        }
        if current.is_some() {
            say!(self, "  deleting CloudFormation stack `{}`", stack.name);
            self.delete_stack(&stack.name).await?;
        }
        Ok(())
    }
}
