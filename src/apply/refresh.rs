//! The recorded nodes against the provider: whether each still runs as recorded. Apply asks
//! before it sends the nodes anything; `nixl plan --refresh` asks the same (read-only) question
//! through [`observe`] and plans from the answer without writing the state.

use super::{ApplyError, Exec};
use crate::plan::refresh::{Found, NodeFinding, Refresh};
use crate::plan::{Change, Kind, Plan};
use crate::provider::{NodeInfo, NodeState, Provider, ProviderError};

/// Asks the provider about the recorded nodes; changes nothing.
pub async fn observe<P: Provider>(provider: &P, nodes: &[NodeInfo]) -> Result<Refresh, ProviderError> {
    let states = if nodes.is_empty() { vec![] } else { provider.node_states(nodes).await? };
    let findings = nodes
        .iter()
        .zip(states)
        .filter_map(|(n, s)| {
            let found = match s {
                NodeState::Running => return None,
                NodeState::Gone => Found::Gone,
                NodeState::Stopped => Found::Stopped,
                NodeState::Changed(detail) => Found::Changed { detail },
            };
            Some(NodeFinding { node: n.name.clone(), id: n.id.clone(), found })
        })
        .collect();
    Ok(Refresh { provider: provider.name().to_string(), checked: nodes.len(), findings })
}

impl<P: Provider> Exec<'_, P> {
    /// Before acting on recorded nodes, asks the provider whether they still run as recorded.
    /// A node gone or changed is forgotten with its pair and their setup, the rest of the pair
    /// terminated (they are launched, placed and set up together); a stopped one is reported.
    /// A plan that launches nodes (made with `--refresh`, or replacing them) goes on with new
    /// ones; any other stops before sending the nodes anything, and the next plan replaces them.
    pub(super) async fn refresh_nodes(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let runs = |a: &&crate::plan::Action| crate::plan::target::runs(a);
        let uses_nodes = plan
            .actions
            .iter()
            .filter(runs)
            .any(|a| matches!(a.kind, Kind::Setup | Kind::Service | Kind::ServerStart | Kind::Pattern | Kind::Step));
        if self.nodes.is_empty() || !uses_nodes {
            return Ok(());
        }
        let refresh = observe(self.provider, &self.nodes).await.map_err(ApplyError::Refresh)?;
        if refresh.findings.is_empty() {
            return Ok(());
        }
        let labels =
            |want: fn(&Found) -> bool| -> Vec<String> { refresh.findings.iter().filter(|f| want(&f.found)).map(label).collect() };
        let gone = labels(|f| matches!(f, Found::Gone));
        let changed = labels(|f| matches!(f, Found::Changed { .. }));
        if !refresh.replaces_nodes() {
            let stopped = labels(|f| matches!(f, Found::Stopped));
            return Err(ApplyError::NodesChanged { gone, changed, stopped, also_terminated: vec![] });
        }
        let also_terminated = self.forget_lost_pair(&refresh).await?;
        let launches = plan
            .actions
            .iter()
            .filter(runs)
            .any(|a| a.kind == Kind::Nodes && matches!(a.change, Change::Create | Change::Replace));
        if launches {
            for f in refresh.findings.iter().filter(|f| f.replaces()) {
                self.log(&format!("  {f}: the plan launches new nodes"));
            }
            return Ok(());
        }
        // A stopped node of the pair is among those terminated.
        Err(ApplyError::NodesChanged { gone, changed, stopped: vec![], also_terminated })
    }

    /// Terminates what is left of a pair with a node gone or changed, forgets the nodes and their
    /// setup in the state (saved), and returns the nodes terminated.
    async fn forget_lost_pair(&mut self, refresh: &Refresh) -> Result<Vec<String>, ApplyError> {
        let gone = |n: &NodeInfo| refresh.findings.iter().any(|f| f.id == n.id && f.found == Found::Gone);
        let rest: Vec<NodeInfo> = self.nodes.iter().filter(|n| !gone(n)).cloned().collect();
        if let (Some(st), false) = (self.campaign.stack.clone(), rest.is_empty()) {
            self.provider.destroy_nodes(&st, &rest).await.map_err(ApplyError::Refresh)?;
        }
        // A changed node is named as such; the others (running or stopped) went for the pair's sake.
        let changed = |n: &NodeInfo| refresh.findings.iter().any(|f| f.id == n.id && matches!(f.found, Found::Changed { .. }));
        let also = rest.iter().filter(|n| !changed(n)).map(|n| format!("{} ({})", n.name, n.id)).collect();
        self.state.forget_nodes();
        self.state.save(&self.opts.state_path)?;
        self.set_nodes(vec![]);
        Ok(also)
    }
}

fn label(f: &NodeFinding) -> String {
    match &f.found {
        Found::Changed { detail } => format!("{} ({}: {detail})", f.node, f.id),
        _ => format!("{} ({})", f.node, f.id),
    }
}
