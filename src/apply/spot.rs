//! Spot interruptions (`market = spot`): EC2 may take a spot node back at any time. Before each
//! pattern and tool step on spot-capable nodes, and after one failed, apply asks the provider
//! whether the walk's nodes still run; when one is gone or stopped, the set's nodes are
//! re-provisioned (the rest terminated, new ones launched through the same market and zone
//! fallback, every setup step run on them), the current launch's servers started again, and
//! the walk goes on with the launch's remaining patterns. What finished is recorded already and
//! is not run again.

use super::{ActionError, ApplyError, Exec};
use crate::check::model::Market;
use crate::plan::{Action, Kind};
use crate::provider::{NodeInfo, NodeState, Provider};

impl<P: Provider> Exec<'_, P> {
    /// Whether the stack may run on spot nodes, so apply watches for interruptions.
    fn on_spot(&self) -> bool {
        self.campaign.stack.as_ref().is_some_and(|s| s.markets.contains(&Market::Spot))
    }

    /// The walk's nodes that no longer run (a spot interruption terminates or stops them).
    async fn interrupted_nodes(&self) -> Vec<NodeInfo> {
        if !self.on_spot() || self.nodes.is_empty() {
            return vec![];
        }
        // A failed look is no interruption found: the action that needs the nodes says why.
        let Ok(states) = self.provider.node_states(&self.nodes).await else { return vec![] };
        let lost = self.nodes.iter().zip(states).filter(|(_, s)| matches!(s, NodeState::Gone | NodeState::Stopped));
        lost.map(|(n, _)| n.clone()).collect()
    }

    /// Before `a` (a pattern or step) runs, and after it failed: when a node was interrupted,
    /// re-provisions the set's nodes and starts `a`'s launch again. Returns whether it did.
    pub(super) async fn recover_interruption(&mut self, actions: &[Action], a: &Action) -> Result<bool, ApplyError> {
        let lost = self.interrupted_nodes().await;
        if lost.is_empty() {
            return Ok(false);
        }
        let names: Vec<String> = lost.iter().map(|n| format!("{} ({})", n.name, n.id)).collect();
        self.log(&format!("spot interruption: {} no longer run(s); re-provisioning this set's nodes", names.join(", ")));
        if let Err(e) = self.reprovision().await {
            self.log(&format!("re-provisioning failed: {e}"));
            return Ok(false);
        }
        self.record_new_nodes()?;
        let start =
            a.launch.get().and_then(|n| actions.iter().find(|s| s.kind == Kind::ServerStart && s.launch.get() == Some(n)));
        if let Some(start) = start {
            self.log(&format!("starting launch {} again on the new nodes", start.launch.get().unwrap_or(0)));
            if let Err(e) = self.server_start(start).await {
                self.log(&format!("its servers did not start again: {e}"));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Terminates what is left of the set's nodes (the interrupted ones are gone, or stopped and
    /// terminated with the rest: a set's nodes launch together), launches and sets up new ones.
    async fn reprovision(&mut self) -> Result<(), ActionError> {
        let st = self.active_stack()?;
        self.provider.destroy_nodes(&st, &self.nodes).await?;
        self.set_nodes(vec![]);
        // Servers recorded as kept ran on the nodes that are gone.
        self.state.kept_servers = None;
        self.prepare_own_nodes().await
    }

    /// The new nodes in the state, where it keeps this set's nodes (set 1's, or the only set's).
    fn record_new_nodes(&mut self) -> Result<(), ApplyError> {
        let (Some(st), true) = (&self.campaign.stack, self.set.is_none_or(|s| s == 1)) else { return Ok(()) };
        let hash = self.state.infra.nodes.first().map(|r| r.hash.clone()).unwrap_or_default();
        let region = super::regions::active(&self.state, st).region;
        let records = super::infra::node_records(&self.nodes, &hash, st, &region);
        self.state.infra.nodes = records.clone();
        match self.ledger {
            Some(ledger) => ledger.replace_nodes(&self.opts.state_path, records)?,
            None => self.state.save(&self.opts.state_path)?,
        }
        Ok(())
    }
}
