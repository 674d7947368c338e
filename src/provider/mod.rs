//! Providers: where the stack lives and how commands reach the nodes. The
//! executor knows only this trait; `aws` maps it to CloudFormation, EC2, SSM
//! and S3, `local` to directories and processes on this machine.

pub mod aws;
pub mod local;

use crate::check::model::Stack;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// A node as the provider created it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    /// Instance id, or the working directory for the local provider.
    pub id: String,
    pub private_ip: String,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    /// The machine image it was launched from (the AMI id on AWS).
    #[serde(default)]
    pub image: Option<String>,
}

/// The base resources' outputs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StackInfo {
    pub id: String,
    pub bucket: Option<String>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CommandOutput {
    pub node: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// The last lines of output, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.stdout.lines().chain(self.stderr.lines()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A secret a setup step reads from its environment: the provider hands it to the step's process
/// (the local one through the process's environment, AWS through an SSM SecureString the node
/// reads when the command starts), never through the script or the command line.
#[derive(Clone, Debug)]
pub struct SecretEnv {
    /// The variable the script reads.
    pub var: String,
    /// Where the provider may keep it for the nodes, below the stack's own prefix (`env/HF_TOKEN`).
    pub key: String,
    pub value: SecretValue,
}

/// A secret's value: `***` in any debug output, readable only on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One try of a zone and instance type that did not give nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub zone: String,
    pub instance_type: String,
    pub reason: String,
}

/// The attempts as an aligned table, for messages.
pub fn attempt_table(attempts: &[Attempt]) -> String {
    let mut s = format!("  {:<16} {:<16} {}\n", "zone", "instance type", "reason");
    for a in attempts {
        s.push_str(&format!("  {:<16} {:<16} {}\n", a.zone, a.instance_type, a.reason));
    }
    s
}

/// Why a provider call failed, classified so the executor knows what to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderError {
    /// No capacity for the instance type in a zone: try the next candidate.
    Capacity { zone: String, instance_type: String, message: String },
    /// Every zone and type the stack allows was tried, and none gave nodes.
    NoCapacity { instance_types: Vec<String>, attempts: Vec<Attempt>, retry_offered: bool },
    /// An account limit hit while asking for `instance_type`: stop and name the quota to raise.
    Quota { instance_type: String, message: String },
    /// Credentials or configuration: stop, no failover.
    Credentials(String),
    /// Throttling or a dropped connection: retry in place.
    Transient(String),
    /// The endpoint did not answer `call` within the client's timeouts (retried, then this).
    NoAnswer { call: String, detail: String },
    /// The resource named does not exist (any more): for removal, it is gone.
    NotFound(String),
    /// The resource to create exists already: the caller decides whether it is its own.
    AlreadyExists(String),
    /// Ctrl-C arrived: nothing more was launched.
    Interrupted,
    /// Destroy ended with resources it could not remove, each with why.
    NotRemoved(Vec<Leftover>),
    /// A command ran past its limit.
    Timeout { node: String, seconds: u64 },
    /// Anything else, with the raw message.
    Other(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Capacity { zone, instance_type, message } => {
                write!(f, "no {instance_type} capacity in {zone}: {message}")
            }
            ProviderError::NoCapacity { instance_types, attempts, retry_offered } => {
                let offered = attempts.iter().any(|a| a.reason != NOT_OFFERED);
                if offered {
                    write!(f, "no capacity in any zone for {}", instance_types.join(" or "))?;
                    if *retry_offered {
                        write!(f, " (pass --retry-until-up to keep trying)")?;
                    }
                } else {
                    write!(f, "no zone of the stack offers {}", instance_types.join(" or "))?;
                }
                write!(f, "\n{}", attempt_table(attempts))
            }
            ProviderError::Quota { instance_type, message } => {
                write!(f, "account limit reached for {instance_type}: {message}")
            }
            ProviderError::Credentials(m) => write!(f, "credentials or configuration: {m}"),
            ProviderError::Transient(m) => write!(f, "transient error: {m}"),
            ProviderError::NoAnswer { call, detail } => write!(
                f,
                "no answer from AWS to {call} ({detail}); check the network or AWS_ENDPOINT_URL (timeouts: [aws] in nixl.toml)"
            ),
            ProviderError::NotFound(m) => write!(f, "not found: {m}"),
            ProviderError::AlreadyExists(m) => write!(f, "already exists: {m}"),
            ProviderError::Interrupted => write!(f, "interrupted: nothing more was launched"),
            ProviderError::NotRemoved(left) => {
                write!(f, "destroy could not remove {} resource(s); run destroy again, or remove them by hand:", left.len())?;
                for l in left {
                    write!(f, "\n  {:<40} {}", l.what, l.reason)?;
                }
                Ok(())
            }
            ProviderError::Timeout { node, seconds } => write!(f, "command on {node} ran past its limit of {seconds}s"),
            ProviderError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ProviderError {}

/// A resource destroy could not remove: what it is (`instance i-0abc`, `stack nixl-test`) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Leftover {
    pub what: String,
    pub reason: String,
}

/// The reason recorded for a zone that does not offer an instance type.
pub const NOT_OFFERED: &str = "not offered in this zone";

/// A recorded node as the provider finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// Stopped or stopping: its disks are there, its GPUs are not.
    Stopped,
    /// Terminated, or unknown to the provider.
    Gone,
    /// Running, but not as the machine recorded (another instance type): what differs.
    Changed(String),
}

/// A provider that can stand for one node set of `parallel = k` (1-based): set 1's nodes
/// are the campaign's own, each further set has nodes of its own.
pub trait NodeSets: Provider + Sized {
    fn node_set(&self, set: u32) -> Self;
}

/// What the executor needs from a place to run a campaign.
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;

    /// How many ports up this node set's servers listen: 0 where each set has its own
    /// machines; the local provider's sets share one machine, so each gets its own range.
    fn port_shift(&self) -> u32 {
        0
    }

    /// Tells the provider the stack's outputs recorded by an earlier apply.
    fn attach(&self, _info: &StackInfo) {}

    /// Creates the base resources (or finds them) and returns their outputs.
    fn ensure_stack(&self, stack: &Stack) -> impl Future<Output = Result<StackInfo, ProviderError>> + Send;

    /// Creates the nodes, or returns the ones in `existing` that still run.
    fn ensure_nodes(
        &self,
        stack: &Stack,
        info: &StackInfo,
        existing: &[NodeInfo],
    ) -> impl Future<Output = Result<Vec<NodeInfo>, ProviderError>> + Send;

    /// Runs one shell script on several nodes at once; one output per node, in order.
    fn run(
        &self,
        nodes: &[NodeInfo],
        script: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<CommandOutput>, ProviderError>> + Send;

    /// Runs one shell script like `run`, with `secrets` in its environment (none of them in the
    /// script): a setup step's `env` entries that are `secret(...)`.
    fn run_with_secrets(
        &self,
        stack: &Stack,
        nodes: &[NodeInfo],
        script: &str,
        timeout: Duration,
        secrets: &[SecretEnv],
    ) -> impl Future<Output = Result<Vec<CommandOutput>, ProviderError>> + Send;

    /// The decrypted value of an SSM SecureString parameter, for `secret("ssm:...")`; a missing
    /// one is `NotFound`.
    fn read_parameter(&self, name: &str) -> impl Future<Output = Result<String, ProviderError>> + Send;

    /// Reads a file a command wrote on a node.
    fn fetch(&self, node: &NodeInfo, path: &str) -> impl Future<Output = Result<Vec<u8>, ProviderError>> + Send;

    /// Stores an object (a generated script) under a key, once per content hash.
    fn put_object(&self, key: &str, bytes: &[u8]) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Whether each node still runs, in order: apply checks the recorded nodes before it
    /// acts, so a node terminated or stopped outside nixl is not taken for a live one.
    fn node_states(&self, nodes: &[NodeInfo]) -> impl Future<Output = Result<Vec<NodeState>, ProviderError>> + Send;

    /// Moves to another region of the stack (`regions = [...]`, after every zone of one refused
    /// capacity); providers with no regions have nothing to do.
    fn use_region(&self, _region: &str) -> impl Future<Output = Result<(), ProviderError>> + Send {
        async { Ok(()) }
    }

    /// Removes the nodes (and whatever runs on them), keeping the base resources.
    fn destroy_nodes(&self, stack: &Stack, nodes: &[NodeInfo]) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Removes the nodes and the base resources.
    fn destroy(
        &self,
        stack: &Stack,
        info: Option<&StackInfo>,
        nodes: &[NodeInfo],
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
}
