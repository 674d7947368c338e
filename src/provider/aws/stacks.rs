//! The CloudFormation stack of the base resources: create, update by change set, wait with
//! its events printed, delete, and empty its bucket first. The provider's trait methods in
//! `mod.rs` call these.

use super::errors::{self, classify, classify_reason, with_retry};
use super::{template, AwsProvider, Waiting, STACK_WAIT};
use crate::check::model::Stack;
use crate::provider::ProviderError;
use aws_sdk_cloudformation::types::{Capability, ChangeSetType, StackStatus, Tag};
use std::collections::{BTreeMap, HashSet};

impl AwsProvider {
    /// The stack as CloudFormation reports it, or None when it does not exist.
    pub(super) async fn describe(&self, name: &str) -> Result<Option<aws_sdk_cloudformation::types::Stack>, ProviderError> {
        let r = with_retry(&*self.sink, "DescribeStacks", || async {
            match self.cfn().describe_stacks().stack_name(name).send().await {
                Ok(o) => Ok(o.stacks().first().cloned()),
                Err(e) => match classify(&e, "", "") {
                    ProviderError::NotFound(_) => Ok(None),
                    c => Err(c),
                },
            }
        })
        .await?;
        Ok(r.filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete)))
    }

    /// Polls until the stack leaves every *_IN_PROGRESS status, printing new events as they come.
    pub(super) async fn wait_stack(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
    ) -> Result<Option<aws_sdk_cloudformation::types::Stack>, ProviderError> {
        let mut waiting = Waiting::new(format!("CloudFormation stack `{name}` to settle"), STACK_WAIT);
        loop {
            self.print_events(name, seen).await;
            let s = self.describe(name).await?;
            let Some(st) = s else { return Ok(None) };
            let status = st.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
            if !status.ends_with("_IN_PROGRESS") {
                self.print_events(name, seen).await;
                return Ok(Some(st));
            }
            if waiting.expired() {
                return Err(ProviderError::Other(format!(
                    "stack `{name}` is still {status} after {}s; see its events in the CloudFormation console",
                    STACK_WAIT.as_secs()
                )));
            }
            waiting.tick(&*self.sink);
            tokio::time::sleep(self.opts.poll).await;
        }
    }

    pub(super) async fn print_events(&self, name: &str, seen: &mut HashSet<String>) {
        let Ok(out) = self.cfn().describe_stack_events().stack_name(name).send().await else { return };
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
    pub(super) async fn failure(&self, name: &str, status: &str) -> ProviderError {
        let mut reasons = vec![];
        if let Ok(out) = self.cfn().describe_stack_events().stack_name(name).send().await {
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

    /// Creates the stack with an idempotency token; when the answer is lost and the retry
    /// hears "already exists", the stack is ours if it carries our tag (describe, then decide).
    pub(super) async fn create_stack(&self, stack: &Stack, body: &str) -> Result<(), ProviderError> {
        say!(self, "  creating CloudFormation stack `{}` in {}", stack.name, stack.region);
        let token = format!("nixl-{}", &crate::state::content_hash(&(&stack.name, body, errors::jitter(u64::MAX)))[..32]);
        let created = with_retry(&*self.sink, "CreateStack", || async {
            self.cfn()
                .create_stack()
                .stack_name(&stack.name)
                .template_body(body)
                .capabilities(Capability::CapabilityIam)
                .client_request_token(&token)
                .tags(Tag::builder().key(template::STACK_TAG).value(&stack.name).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, "", ""))
        })
        .await;
        match created {
            Err(ProviderError::AlreadyExists(m)) => match self.describe(&stack.name).await? {
                Some(st) if is_ours(&st, &stack.name) => {
                    say!(self, "  stack `{}` exists already with nixl's tag (an earlier answer was lost); using it", stack.name);
                    Ok(())
                }
                _ => Err(ProviderError::Other(format!(
                    "{m}: a stack named `{}` exists without the tag {}={}, so nixl did not create it; choose another stack name or delete that stack",
                    stack.name,
                    template::STACK_TAG,
                    stack.name
                ))),
            },
            other => other,
        }
    }

    /// Applies a changed template through a change set, so the change is reviewable and atomic.
    pub(super) async fn update_stack(&self, stack: &Stack, body: &str) -> Result<(), ProviderError> {
        let cs = format!("nixl-{}", &crate::state::content_hash(&body)[..12]);
        say!(self, "  updating stack `{}` through change set {cs}", stack.name);
        with_retry(&*self.sink, "CreateChangeSet", || async {
            self.cfn()
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
        let mut waiting = Waiting::new(format!("change set {cs} to be ready"), STACK_WAIT);
        loop {
            let d = with_retry(&*self.sink, "DescribeChangeSet", || async {
                self.cfn()
                    .describe_change_set()
                    .stack_name(&stack.name)
                    .change_set_name(&cs)
                    .send()
                    .await
                    .map_err(|e| classify(&e, "", ""))
            })
            .await?;
            let status = d.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            if status == "FAILED" {
                let reason = d.status_reason().unwrap_or("").to_string();
                let _ = self.cfn().delete_change_set().stack_name(&stack.name).change_set_name(&cs).send().await;
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(());
                }
                return Err(ProviderError::Other(format!("change set {cs} failed: {reason}")));
            }
            if status == "CREATE_COMPLETE" {
                break;
            }
            if waiting.expired() {
                return Err(ProviderError::Other(format!("change set {cs} was not ready in {}s", STACK_WAIT.as_secs())));
            }
            waiting.tick(&*self.sink);
            tokio::time::sleep(self.opts.poll).await;
        }
        self.cfn()
            .execute_change_set()
            .stack_name(&stack.name)
            .change_set_name(&cs)
            .send()
            .await
            .map_err(|e| classify(&e, "", ""))?;
        Ok(())
    }

    pub(super) async fn template_differs(&self, name: &str, body: &str) -> bool {
        let Ok(t) = self.cfn().get_template().stack_name(name).send().await else { return true };
        let old: Option<serde_json::Value> = t.template_body().and_then(|b| serde_json::from_str(b).ok());
        let new: Option<serde_json::Value> = serde_json::from_str(body).ok();
        old != new
    }

    pub(super) async fn delete_stack(&self, name: &str) -> Result<(), ProviderError> {
        with_retry(&*self.sink, "DeleteStack", || async {
            self.cfn().delete_stack().stack_name(name).send().await.map(|_| ()).map_err(|e| classify(&e, "", ""))
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
    pub(super) async fn empty_bucket(&self, bucket: &str) -> Result<usize, ProviderError> {
        let mut removed = 0;
        loop {
            let out = match self.s3().list_object_versions().bucket(bucket).send().await {
                Ok(o) => o,
                Err(e) => {
                    return match classify(&e, "", "") {
                        ProviderError::NotFound(_) => Ok(removed),
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
                let plain = self.s3().list_objects_v2().bucket(bucket).send().await.map_err(|e| classify(&e, "", ""))?;
                for o in plain.contents() {
                    batch.push((o.key().unwrap_or_default().into(), None));
                }
            }
            if batch.is_empty() {
                return Ok(removed);
            }
            for (key, version) in batch {
                let mut req = self.s3().delete_object().bucket(bucket).key(&key);
                if let Some(v) = version.filter(|v| v != "null") {
                    req = req.version_id(v);
                }
                req.send().await.map_err(|e| classify(&e, "", ""))?;
                removed += 1;
            }
        }
    }
}

/// Whether a stack carries the tag nixl puts on the stacks it creates.
pub(super) fn is_ours(st: &aws_sdk_cloudformation::types::Stack, name: &str) -> bool {
    st.tags().iter().any(|t| t.key() == Some(template::STACK_TAG) && t.value() == Some(name))
}

pub(super) fn outputs_of(st: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    st.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect()
}
