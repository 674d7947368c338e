//! The secrets of an apply: read once, before anything is created, for the setup steps the plan
//! runs (an unset variable or a missing parameter stops apply there, naming each); handed to the
//! provider with the step that reads them; and taken out (`***`) of everything the provider
//! returns, through [`Redacting`], so no output nixl logs or stores holds one.

use super::ApplyError;
use crate::check::model::{SecretRef, SecretSource, SetupStep, Stack};
use crate::design::Campaign;
use crate::plan::{Kind, Plan};
use crate::provider::{CommandOutput, NodeInfo, NodeState, Provider, ProviderError, SecretEnv, SecretValue, StackInfo};
use std::collections::BTreeMap;
use std::time::Duration;

/// What stands in for a secret's value in everything nixl keeps.
pub const REDACTED: &str = "***";

/// The values of the secrets an apply hands to its setup steps.
#[derive(Debug, Default)]
pub struct Secrets {
    values: BTreeMap<SecretSource, SecretValue>,
}

/// A secret apply could not read, and why.
#[derive(Debug)]
pub struct Unreadable {
    pub secret: SecretRef,
    pub why: Why,
}

#[derive(Debug)]
pub enum Why {
    /// The environment variable is not set, or empty (an empty secret redacts nothing).
    EnvUnset(String),
    /// The provider could not give the parameter: missing (`NotFound`), denied, or no SSM here.
    Parameter(String, ProviderError),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.why {
            Why::EnvUnset(var) => write!(f, "{}: the environment variable {var} is not set (or empty)", self.secret),
            Why::Parameter(name, ProviderError::NotFound(_)) => {
                write!(f, "{}: the SSM parameter {name} does not exist", self.secret)
            }
            Why::Parameter(name, e) => write!(f, "{}: cannot read the SSM parameter {name}: {e}", self.secret),
        }
    }
}

impl Secrets {
    /// Reads every secret of the setup steps the plan runs; all that cannot be read, at once.
    pub async fn read<P: Provider>(provider: &P, campaign: &Campaign, plan: &Plan) -> Result<Secrets, ApplyError> {
        let mut wanted: BTreeMap<&SecretSource, &SecretRef> = BTreeMap::new();
        for step in steps_run(campaign, plan) {
            for (_, r) in step.secrets() {
                wanted.entry(&r.source).or_insert(r);
            }
        }
        let (mut values, mut unreadable) = (BTreeMap::new(), vec![]);
        for (source, r) in wanted {
            let read = match source {
                SecretSource::Env(var) => {
                    std::env::var(var).ok().filter(|v| !v.is_empty()).ok_or_else(|| Why::EnvUnset(var.clone()))
                }
                SecretSource::Ssm(name) => provider.read_parameter(name).await.map_err(|e| Why::Parameter(name.clone(), e)),
            };
            match read {
                Ok(v) => {
                    values.insert(source.clone(), SecretValue::new(v));
                }
                Err(why) => unreadable.push(Unreadable { secret: r.clone(), why }),
            }
        }
        if unreadable.is_empty() {
            Ok(Secrets { values })
        } else {
            Err(ApplyError::Secrets(unreadable))
        }
    }

    /// The secrets one step reads, as its provider receives them.
    pub fn for_step(&self, step: &SetupStep) -> Vec<SecretEnv> {
        step.secrets()
            .filter_map(|(var, r)| {
                let value = self.values.get(&r.source)?.clone();
                Some(SecretEnv { var: var.to_string(), key: r.source.key(), value })
            })
            .collect()
    }

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.values.values().fold(text.to_string(), |t, v| t.replace(v.expose(), REDACTED))
    }

    fn redact_bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        if self.values.is_empty() {
            return bytes;
        }
        match String::from_utf8(bytes) {
            Ok(text) => self.redact(&text).into_bytes(),
            Err(e) => {
                let mut bytes = e.into_bytes();
                for v in self.values.values().map(|v| v.expose().as_bytes()) {
                    while let Some(at) = bytes.windows(v.len()).position(|w| w == v) {
                        bytes.splice(at..at + v.len(), REDACTED.bytes());
                    }
                }
                bytes
            }
        }
    }

    fn redact_error(&self, e: ProviderError) -> ProviderError {
        let text = e.to_string();
        let clean = self.redact(&text);
        if clean == text {
            e
        } else {
            ProviderError::Other(clean)
        }
    }

    fn redact_outputs(&self, outs: Result<Vec<CommandOutput>, ProviderError>) -> Result<Vec<CommandOutput>, ProviderError> {
        match outs {
            Ok(outs) => Ok(outs
                .into_iter()
                .map(|o| CommandOutput { stdout: self.redact(&o.stdout), stderr: self.redact(&o.stderr), ..o })
                .collect()),
            Err(e) => Err(self.redact_error(e)),
        }
    }
}

/// The setup steps the plan runs.
fn steps_run<'c>(campaign: &'c Campaign, plan: &Plan) -> Vec<&'c SetupStep> {
    let runs = |step: &SetupStep| {
        plan.actions
            .iter()
            .filter(|a| a.kind == Kind::Setup && crate::plan::target::runs(a))
            .any(|a| a.id.setup_step() == Some(step.id.as_str()))
    };
    campaign.setup.iter().flat_map(|s| &s.steps).filter(|step| runs(step)).collect()
}

/// A provider whose every output (command output, fetched files, error messages) has the
/// apply's secrets taken out: what apply logs, records and stores comes through it.
pub struct Redacting<'a, P> {
    pub inner: &'a P,
    pub secrets: &'a Secrets,
}

impl<P: Provider> Provider for Redacting<'_, P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn port_shift(&self) -> u32 {
        self.inner.port_shift()
    }

    fn attach(&self, info: &StackInfo) {
        self.inner.attach(info)
    }

    async fn ensure_stack(&self, stack: &Stack) -> Result<StackInfo, ProviderError> {
        self.inner.ensure_stack(stack).await
    }

    async fn ensure_nodes(&self, stack: &Stack, info: &StackInfo, existing: &[NodeInfo]) -> Result<Vec<NodeInfo>, ProviderError> {
        self.inner.ensure_nodes(stack, info, existing).await
    }

    async fn run(&self, nodes: &[NodeInfo], script: &str, timeout: Duration) -> Result<Vec<CommandOutput>, ProviderError> {
        self.secrets.redact_outputs(self.inner.run(nodes, script, timeout).await)
    }

    async fn run_with_secrets(
        &self,
        stack: &Stack,
        nodes: &[NodeInfo],
        script: &str,
        timeout: Duration,
        secrets: &[SecretEnv],
    ) -> Result<Vec<CommandOutput>, ProviderError> {
        self.secrets.redact_outputs(self.inner.run_with_secrets(stack, nodes, script, timeout, secrets).await)
    }

    async fn read_parameter(&self, name: &str) -> Result<String, ProviderError> {
        self.inner.read_parameter(name).await
    }

    async fn fetch(&self, node: &NodeInfo, path: &str) -> Result<Vec<u8>, ProviderError> {
        match self.inner.fetch(node, path).await {
            Ok(bytes) => Ok(self.secrets.redact_bytes(bytes)),
            Err(e) => Err(self.secrets.redact_error(e)),
        }
    }

    async fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        self.inner.put_object(key, bytes).await
    }

    async fn node_states(&self, nodes: &[NodeInfo]) -> Result<Vec<NodeState>, ProviderError> {
        self.inner.node_states(nodes).await
    }

    async fn use_region(&self, region: &str) -> Result<(), ProviderError> {
        self.inner.use_region(region).await
    }

    async fn destroy_nodes(&self, stack: &Stack, nodes: &[NodeInfo]) -> Result<(), ProviderError> {
        self.inner.destroy_nodes(stack, nodes).await
    }

    async fn destroy(&self, stack: &Stack, info: Option<&StackInfo>, nodes: &[NodeInfo]) -> Result<(), ProviderError> {
        self.inner.destroy(stack, info, nodes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_of_every_value_is_redacted_in_text_and_bytes() {
        let mut s = Secrets::default();
        s.values.insert(SecretSource::Env("A".into()), SecretValue::new("tok-123".into()));
        s.values.insert(SecretSource::Ssm("/b".into()), SecretValue::new("pa$$".into()));
        assert_eq!(s.redact("x tok-123 y tok-123pa$$"), "x *** y ******");
        let bytes = [b"\xff tok-123 \xfe".as_slice()].concat();
        assert_eq!(s.redact_bytes(bytes), [b"\xff *** \xfe".as_slice()].concat());
        let e = s.redact_error(ProviderError::Other("exit 1: tok-123".into()));
        assert_eq!(e.to_string(), "exit 1: ***");
        assert_eq!(format!("{:?}", s.values.values().next().unwrap()), "***");
    }
}
