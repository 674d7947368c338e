//! What can go wrong while applying, kept typed until the command line: an
//! action that failed ([`ActionError`], recorded in the state and the
//! outcome, apply goes on with what does not need it) and a failure that stops
//! apply at once ([`ApplyError`]: the state cannot be written). [`diagnostic`]
//! is the one place that turns a failure into a [`Diagnostic`], pointing at the
//! attribute of the file that caused it.

use crate::address::ActionId;
use crate::check::model::Stack;
use crate::design::Campaign;
use crate::diagnostics::{Code, Diagnostic};
use crate::provider::ProviderError;
use crate::results::tools::ParseError;
use crate::state::StateError;
use std::fmt;

/// Why one action failed.
#[derive(Debug)]
pub enum ActionError {
    /// The provider could not do what was asked (classified: capacity, quota, credentials, ...).
    Provider(ProviderError),
    /// A command ran and exited non-zero; the last lines of its output.
    Command { node: String, exit_code: i32, tail: String },
    /// A command produced no output record for a node.
    NoOutput { node: String },
    /// A template did not render (the evaluator's diagnostic, with its span).
    Template(Box<Diagnostic>),
    /// The server or bench definition lacks a command this action needs.
    MissingCommand { definition: &'static str, command: &'static str },
    /// The campaign needs more nodes than the stack has, or a node apply has not seen.
    NoNode(String),
    /// The server did not pass its health check in time.
    Unhealthy { seconds: f64, tail: String },
    /// A server process died or its log showed a fatal line while starting.
    ServerFailed { node: String, reason: String, tail: String },
    /// A service (etcd) did not become healthy.
    ServiceUnhealthy { name: String, seconds: u64 },
    /// The benchmark's result is not one: too many failed requests, or not vLLM's JSON.
    Bench(crate::results::vllm::BenchError),
    /// A disaggregated run whose server counters say it was not one (no KV moved, the
    /// decode server prefilled itself, transfers failed, the KV crossed TCP where EFA was
    /// declared): each reason.
    Guard(Vec<String>),
    /// The node's `gpu_memory` command printed something that is not nvidia-smi's csv.
    GpuMemory { node: String, error: crate::results::gpu_memory::Unreadable },
    /// The benchmark wrote no result apply can read.
    NoResult { path: String },
    /// A tool step's output is no result: see [`ToolOutputError`].
    ToolOutput { tool: String, node: String, path: String, error: Box<ToolOutputError> },
    /// The analysis could not be computed from the results there are.
    Analysis(crate::results::analysis::AnalysisError),
    /// The result could not be written to the results directory.
    Store(std::io::Error),
    /// Ctrl-C arrived while the action waited.
    Interrupted,
    /// A launch's server did not start, so its patterns did not run; the first line of why.
    ServerDidNotStart { launch: u32, reason: String },
    /// The action is no longer in the campaign (a saved plan older than the file).
    NotDeclared(ActionId),
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::Provider(e) => write!(f, "{e}"),
            ActionError::Command { node, exit_code, tail } => {
                write!(f, "exit code {exit_code} on {node}:")?;
                for l in tail.lines() {
                    write!(f, "\n         | {l}")?;
                }
                Ok(())
            }
            ActionError::NoOutput { node } => write!(f, "no output from {node}"),
            ActionError::Template(d) => write!(f, "a command template did not render: {}", d.message),
            ActionError::MissingCommand { definition, command } => {
                write!(f, "the experiment's {definition} has no `{command}` command")
            }
            ActionError::NoNode(what) => write!(f, "{what}"),
            ActionError::Unhealthy { seconds, tail } => {
                write!(f, "the server was not healthy after {seconds:.0}s (health_timeout)\n{tail}")
            }
            ActionError::ServerFailed { node, reason, tail } => {
                write!(f, "the server on {node} failed while starting: {reason}\n{tail}")
            }
            ActionError::ServiceUnhealthy { name, seconds } => {
                write!(f, "service `{name}` did not become healthy in {seconds}s")
            }
            ActionError::Bench(e) => write!(f, "{e}"),
            ActionError::Guard(why) => write!(f, "not a disaggregated measurement: {}", why.join("; ")),
            ActionError::GpuMemory { node, error } => write!(f, "the GPU memory read on {node} is no figure: {error}"),
            ActionError::NoResult { path } => write!(f, "the benchmark wrote no vLLM result JSON to {path}"),
            ActionError::ToolOutput { tool, node, path, error } => {
                write!(f, "the output of `{tool}` ({path} on {node}) is no result: {error}")?;
                for l in error.tail().lines() {
                    write!(f, "\n         | {l}")?;
                }
                Ok(())
            }
            ActionError::Analysis(e) => write!(f, "{e}"),
            ActionError::Store(e) => write!(f, "cannot store the result: {e}"),
            ActionError::Interrupted => write!(f, "interrupted while waiting"),
            ActionError::ServerDidNotStart { launch, reason } => {
                write!(f, "its server (launch {launch}) did not start: {reason}")
            }
            ActionError::NotDeclared(id) => write!(f, "`{id}` is no longer in the campaign; run `nixl plan` again"),
        }
    }
}

impl std::error::Error for ActionError {}

/// Why a tool step's output gave no result. Each keeps the last lines of the
/// output when there was one, so the failure says what the tool printed.
#[derive(Debug)]
pub enum ToolOutputError {
    /// The output file could not be read from the node.
    Fetch(ProviderError),
    /// The tool's parser found nothing to read, or the tool reported a failure.
    Parse(ParseError),
    /// Figures were read, but not every metric the tool declares.
    MissingMetrics { missing: Vec<String>, tail: String },
}

impl ToolOutputError {
    /// The last lines of the output ("" when there was none).
    pub fn tail(&self) -> &str {
        match self {
            ToolOutputError::Fetch(_) => "",
            ToolOutputError::Parse(e) => e.tail(),
            ToolOutputError::MissingMetrics { tail, .. } => tail,
        }
    }
}

impl fmt::Display for ToolOutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolOutputError::Fetch(e) => write!(f, "it could not be fetched: {e}"),
            ToolOutputError::Parse(e) => write!(f, "{e}"),
            ToolOutputError::MissingMetrics { missing, .. } => {
                write!(f, "it lacks the declared metric{} {}", if missing.len() == 1 { "" } else { "s" }, missing.join(", "))
            }
        }
    }
}

impl From<ProviderError> for ActionError {
    fn from(e: ProviderError) -> Self {
        ActionError::Provider(e)
    }
}

impl From<Box<Diagnostic>> for ActionError {
    fn from(d: Box<Diagnostic>) -> Self {
        ActionError::Template(d)
    }
}

/// A failure that stops apply: nothing more is run, because its outcome could not be kept.
#[derive(Debug)]
pub enum ApplyError {
    State(StateError),
    /// Recorded nodes are not running: changed outside nixl. What is gone is forgotten
    /// (the next plan launches and sets up new ones); what is stopped is left to the user.
    NodesChanged {
        gone: Vec<String>,
        /// Running as another machine than recorded (terminated, as a machine nobody set up).
        changed: Vec<String>,
        stopped: Vec<String>,
        also_terminated: Vec<String>,
    },
    /// The provider could not say whether the recorded nodes still run.
    Refresh(crate::provider::ProviderError),
    /// Secrets the plan's setup steps read that apply could not read: nothing was created.
    Secrets(Vec<super::secrets::Unreadable>),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::State(e) => write!(f, "{e}; apply stopped so that no outcome goes unrecorded"),
            ApplyError::NodesChanged { gone, changed, stopped, also_terminated } => {
                if !gone.is_empty() || !changed.is_empty() {
                    let mut lost = vec![];
                    if !gone.is_empty() {
                        lost.push(format!("{} no longer exist(s) (terminated outside nixl)", gone.join(", ")));
                    }
                    if !changed.is_empty() {
                        lost.push(format!("{} changed outside nixl and was terminated", changed.join(", ")));
                    }
                    write!(
                        f,
                        "{}; the state no longer counts them or their setup. \
                         Run apply again: the plan will launch new nodes and set them up",
                        lost.join("; ")
                    )?;
                    if !also_terminated.is_empty() {
                        write!(f, " (the pair is launched again together: {} was terminated too)", also_terminated.join(", "))?;
                    }
                }
                if !stopped.is_empty() {
                    if !gone.is_empty() || !changed.is_empty() {
                        write!(f, "; ")?;
                    }
                    write!(
                        f,
                        "{} is/are stopped outside nixl: start them again, or `nixl destroy --target nodes` to replace them",
                        stopped.join(", ")
                    )?;
                }
                Ok(())
            }
            ApplyError::Refresh(e) => write!(f, "cannot check the recorded nodes: {e}"),
            ApplyError::Secrets(all) => {
                write!(f, "apply stopped before creating anything: {} secret(s) cannot be read", all.len())?;
                for u in all {
                    write!(f, "\n  {u}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<StateError> for ApplyError {
    fn from(e: StateError) -> Self {
        ApplyError::State(e)
    }
}

/// A failed action as a diagnostic, when the file is what to change.
/// Infrastructure failures point at the stack attribute to change (`zones` for
/// capacity, `instance_type` for a quota, `region` for credentials); a template
/// that did not render at its own span. A command that failed on a node is not
/// the file's fault: it stays a line of the apply summary (None here).
pub fn diagnostic(id: &ActionId, error: &ActionError, campaign: &Campaign) -> Option<Diagnostic> {
    let first = error.to_string().lines().next().unwrap_or("").to_string();
    match (error, &campaign.stack, id) {
        (ActionError::Template(d), _, _) => Some((**d).clone()),
        (ActionError::Provider(e), Some(st), ActionId::Stack | ActionId::Nodes) => Some(provider_diagnostic(e, st, first)),
        _ => None,
    }
}

/// Secrets apply could not read, each a diagnostic on its `secret(...)` (E0503) saying what to
/// set or create; empty for any other failure.
pub fn secret_diagnostics(e: &ApplyError) -> Vec<Diagnostic> {
    use super::secrets::Why;
    let ApplyError::Secrets(all) = e else { return vec![] };
    all.iter()
        .map(|u| {
            let help = match &u.why {
                Why::EnvUnset(var) => format!("set it where apply runs (`export {var}=...`), or keep it in SSM: secret(\"ssm:/path/name\")"),
                Why::Parameter(name, ProviderError::NotFound(_)) => format!(
                    "create it in the stack's region: `aws ssm put-parameter --type SecureString --name {name} --value ...`"
                ),
                Why::Parameter(..) => "check that the credentials apply runs with may read it (ssm:GetParameter, and kms:Decrypt for a customer key); `nixl iam-policy FILE` lists it".into(),
            };
            Diagnostic::error(Code::SecretUnreadable, u.secret.span, u.to_string())
                .label("read when apply starts, before anything is created")
                .help(help)
        })
        .collect()
}

/// What to raise for a quota: the Service Quotas code of the instance family, when known.
fn quota_help(instance_type: &str, region: &str) -> String {
    match crate::provider::aws::ec2_quota(instance_type) {
        Some(q) => format!(
            "request a higher quota in {region}: Service Quotas, EC2, \"{}\" ({}): `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {} --desired-value N`; or use fewer or smaller nodes",
            q.name, q.code, q.code
        ),
        None => format!("request a higher quota in {region} (Service Quotas, EC2, the \"Running On-Demand\" quota of the {instance_type} family) or use fewer or smaller nodes"),
    }
}

fn provider_diagnostic(e: &ProviderError, st: &Stack, message: String) -> Diagnostic {
    let on = |attr: &str, code: Code, label: String, help: &str| {
        Diagnostic::error(code, st.span_of(attr), message.clone()).label(label).help(help)
    };
    match e {
        ProviderError::NoCapacity { retry_offered, .. } => on(
            "zones",
            Code::NoCapacity,
            format!("no zone here had capacity for the stack's {} nodes", st.nodes.len()),
            if *retry_offered {
                "add zones or instance types with the same GPUs to `zones` and `instance_type`, or run apply with --retry-until-up"
            } else {
                "add zones or instance types with the same GPUs to `zones` and `instance_type`"
            },
        ),
        ProviderError::Capacity { zone, .. } => on(
            "zones",
            Code::NoCapacity,
            format!("no capacity in {zone}"),
            "add zones or instance types with the same GPUs to `zones` and `instance_type`, or run apply with --retry-until-up",
        ),
        ProviderError::Quota { instance_type, .. } => on(
            "instance_type",
            Code::CloudRefused,
            format!("the account's quota does not allow {} x {instance_type}", st.nodes.len()),
            &quota_help(instance_type, &st.region),
        ),
        ProviderError::Credentials(_) => on(
            "region",
            Code::CloudRefused,
            format!("AWS refused the request in {}", st.region),
            "check the AWS credentials (AWS_PROFILE, `aws sso login`) and that the region and subnet exist",
        ),
        _ => Diagnostic::error(Code::CloudRefused, st.span, message).label(format!("stack \"{}\" declared here", st.name)).help(
            "the message above is AWS's own; fix the stack block or the account, then run apply again: finished work is kept",
        ),
    }
}
