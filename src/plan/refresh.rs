//! `nixl plan --refresh`: what the provider found of the recorded nodes, kept in the plan as
//! data, and the state the plan is made against. A node gone or running as another machine is
//! forgotten with its pair and their setup, so the plan launches and sets up new ones (`+ nodes`);
//! a stopped one is reported. The state on disk is not touched: apply checks the nodes again.

use crate::state::State;
use serde::{Deserialize, Serialize};

/// What a refresh asked and found.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Refresh {
    /// The provider asked (`aws`, `local`).
    pub provider: String,
    /// How many recorded nodes it was asked about.
    pub checked: usize,
    /// The nodes that do not run as recorded; the others do.
    pub findings: Vec<NodeFinding>,
}

/// A recorded node that does not run as recorded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeFinding {
    pub node: String,
    /// Its instance id (the working directory on the local provider).
    pub id: String,
    #[serde(flatten)]
    pub found: Found,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "found", rename_all = "kebab-case")]
pub enum Found {
    /// Terminated, or unknown to the provider.
    Gone,
    /// Stopped or stopping: its disks are there, its GPUs are not.
    Stopped,
    /// Running, but not as the machine recorded (what differs).
    Changed { detail: String },
}

impl std::fmt::Display for NodeFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}) ", self.node, self.id)?;
        match &self.found {
            Found::Gone => write!(f, "no longer exists (terminated outside nixl)"),
            Found::Stopped => {
                write!(f, "is stopped (outside nixl): apply stops until it is started again, or destroy replaces it")
            }
            Found::Changed { detail } => write!(f, "changed outside nixl: {detail}"),
        }
    }
}

impl NodeFinding {
    /// Whether the nodes must be launched again: a stopped node keeps its disks and is left to the user.
    pub fn replaces(&self) -> bool {
        !matches!(self.found, Found::Stopped)
    }
}

impl Refresh {
    /// Whether anything found means new nodes.
    pub fn replaces_nodes(&self) -> bool {
        self.findings.iter().any(NodeFinding::replaces)
    }

    /// The state as the provider found it: with a node gone or changed, the nodes and their setup
    /// are forgotten (apply terminates the rest of the pair before it launches new ones).
    pub fn state_after(&self, state: &State) -> State {
        let mut seen = state.clone();
        if self.replaces_nodes() {
            seen.forget_nodes();
        }
        seen
    }
}
