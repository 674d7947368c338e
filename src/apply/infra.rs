//! The executor's infrastructure actions: the stack, the nodes (and what an
//! earlier apply recorded of them), and setup steps run on every node at once.

use super::{ActionError, ApplyError, Exec};
use crate::design::render::{self as script, RenderVars};
use crate::plan::Action;
use crate::provider::{NodeInfo, Provider, ProviderError, StackInfo};
use crate::state::{NodeRecord, StackRecord};
use std::time::{Duration, Instant};

impl<P: Provider> Exec<'_, P> {
    /// Reads stack and node details recorded by an earlier apply: later actions reach the nodes through them.
    pub(super) fn restore_infra(&mut self) {
        if let Some(r) = &self.state.infra.stack {
            let info = StackInfo { id: r.id.clone(), bucket: r.bucket().map(str::to_string), outputs: r.outputs.clone() };
            self.provider.attach(&info);
            self.stack_info = Some(info);
        }
        let mut nodes: Vec<NodeInfo> = self.state.infra.nodes.iter().map(node_info).collect();
        if let Some(st) = &self.campaign.stack {
            let order = |n: &NodeInfo| st.nodes.iter().position(|o| o.name == n.name).unwrap_or(usize::MAX);
            nodes.sort_by_key(order);
        }
        self.set_nodes(nodes);
    }

    pub(super) fn set_nodes(&mut self, nodes: Vec<NodeInfo>) {
        let ips: Vec<&str> = nodes.iter().map(|n| n.private_ip.as_str()).collect();
        self.vars = RenderVars::new(&ips, &self.opts.here.display().to_string()).with_model(self.campaign.design.model.as_ref());
        self.nodes = nodes;
    }

    pub(super) fn stack_decl(&self) -> Result<crate::check::model::Stack, ActionError> {
        self.campaign.stack.clone().ok_or_else(|| ActionError::NoNode("the experiment has no stack to run on".into()))
    }

    pub(super) async fn stack(&mut self, a: &Action) -> Result<(), ActionError> {
        let st = self.active_stack()?;
        let info = self.provider.ensure_stack(&st).await?;
        let mut outputs = info.outputs.clone();
        if let Some(b) = &info.bucket {
            outputs.insert("bucket".into(), b.clone());
        }
        self.state.infra.stack = Some(StackRecord {
            id: info.id.clone(),
            hash: a.hash.to_string(),
            outputs,
            name: Some(st.name.clone()),
            region: Some(st.region.clone()),
        });
        self.stack_info = Some(info);
        Ok(())
    }

    pub(super) async fn ensure_nodes(&mut self, a: &Action) -> Result<(), ActionError> {
        let declared = self.stack_decl()?;
        let mut st = self.active_stack()?;
        if a.change == crate::plan::Change::Replace && !self.nodes.is_empty() {
            // Other machines than the running ones: those go first, with what was set up on them.
            let why = crate::plan::node_replacement(&self.state, Some(&st))
                .map_or_else(|| "--replace names them".to_string(), |w| w.to_string());
            self.log(&format!("       replacing {} node(s): {why}", self.nodes.len()));
            self.provider.destroy_nodes(&st, &self.nodes).await?;
            self.state.infra.nodes.clear();
            self.state.actions.retain(|id, _| !matches!(id, crate::address::ActionId::Setup(_)));
            self.set_nodes(vec![]);
        }
        let nodes = loop {
            let info = self.stack_info.clone().unwrap_or_default();
            match self.provider.ensure_nodes(&st, &info, &self.nodes).await {
                Err(ProviderError::NoCapacity { attempts, .. }) if self.region_after(&st.region).is_some() => {
                    let next = self.region_after(&st.region).unwrap_or_else(|| unreachable!("checked in the guard"));
                    self.log(&format!("       {} attempt(s) in {} found no capacity", attempts.len(), st.region));
                    st = self.fall_back(&st, &next).await?;
                }
                found => break found?,
            }
        };
        // The spec is the declared stack's, as the plan computes it; the region is where they run.
        self.state.infra.nodes = node_records(&nodes, &a.hash.to_string(), &declared, &st.region);
        self.set_nodes(nodes);
        Ok(())
    }

    pub(super) fn node(&self, name: &str) -> Result<NodeInfo, ActionError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .ok_or_else(|| ActionError::NoNode(format!("node `{name}` is not known; run apply without --target first")))
    }

    pub(super) fn nth_node(&self, k: usize) -> Result<NodeInfo, ActionError> {
        self.nodes.get(k).cloned().ok_or_else(|| ActionError::NoNode(format!("the stack needs at least {} nodes", k + 1)))
    }

    /// One setup step on several nodes at once (one provider call), each node's outcome settled on its own.
    pub(super) async fn setup(&mut self, batch: &[&Action]) -> Result<(), ApplyError> {
        let Some(step_id) = batch.first().and_then(|a| a.id.setup_step()) else { return Ok(()) };
        let names: Vec<String> = batch.iter().filter_map(|a| a.node.as_deref().map(str::to_string)).collect();
        let n = self.number(batch.len());
        self.log(&format!("{n} setup {step_id} on {}", names.join(", ")));
        let step = self.campaign.setup.as_ref().and_then(|s| s.steps.iter().find(|x| x.id == step_id)).cloned();
        let started = Instant::now();
        let results: Vec<Result<bool, ActionError>> = match step {
            None => batch.iter().map(|a| Err(ActionError::NotDeclared(a.id.clone()))).collect(),
            Some(step) => {
                let body = script::setup_script(&step);
                let key = format!("scripts/{}.sh", crate::state::content_hash(&body));
                // The upload is an optimisation (SSM fetches scripts from the bucket); a failure shows in the run.
                let _ = self.provider.put_object(&key, body.as_bytes()).await;
                let nodes: Vec<Result<NodeInfo, ActionError>> = names.iter().map(|n| self.node(n)).collect();
                let reachable: Vec<NodeInfo> = nodes.iter().filter_map(|n| n.as_ref().ok().cloned()).collect();
                let timeout = Duration::from_secs_f64(step.timeout.max(1.0));
                let secrets = self.secrets.for_step(&step);
                let outs = match (self.active_stack().ok(), secrets.is_empty()) {
                    (Some(st), false) => self.provider.run_with_secrets(&st, &reachable, &body, timeout, &secrets).await,
                    _ => self.provider.run(&reachable, &body, timeout).await,
                };
                nodes
                    .into_iter()
                    .map(|node| {
                        let node = node?;
                        let outs = outs.as_ref().map_err(|e| ActionError::Provider(e.clone()))?;
                        let o = outs.iter().find(|o| o.node == node.name).ok_or(ActionError::NoOutput { node: node.name })?;
                        if o.exit_code != 0 {
                            return Err(ActionError::Command { node: o.node.clone(), exit_code: o.exit_code, tail: o.tail(20) });
                        }
                        Ok(o.stdout.contains("NIXL_SKIPPED"))
                    })
                    .collect()
            }
        };
        for (a, result) in batch.iter().zip(results) {
            let node = a.node.as_deref().unwrap_or_default().to_string();
            match &result {
                Ok(true) => self.log(&format!("       {node}: skipped (condition holds)")),
                Ok(false) => {}
                Err(e) => self.log(&format!("       {node}: failed: {e}")),
            }
            self.settle(a, started, result.map(|_| ()))?;
        }
        Ok(())
    }
}

impl<P: Provider> Exec<'_, P> {
    /// A node set beyond the first (`parallel`): creates its own nodes and runs every setup
    /// step on them. Nothing of it is recorded: the state's nodes and setup are set 1's, and
    /// steps that skip when their condition holds make a second run on the same nodes cheap.
    pub(super) async fn prepare_own_nodes(&mut self) -> Result<(), ActionError> {
        let st = self.active_stack()?;
        let info = self.stack_info.clone().unwrap_or_default();
        let nodes = self.provider.ensure_nodes(&st, &info, &[]).await?;
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        self.log(&format!("created its nodes {}", names.join(", ")));
        self.set_nodes(nodes);
        let steps = self.campaign.setup.iter().flat_map(|s| &s.steps);
        for step in steps {
            let on: Vec<NodeInfo> =
                self.nodes.iter().filter(|n| step.nodes.is_empty() || step.nodes.contains(&n.name)).cloned().collect();
            let body = script::setup_script(step);
            let timeout = Duration::from_secs_f64(step.timeout.max(1.0));
            let secrets = self.secrets.for_step(step);
            let outs = match secrets.is_empty() {
                false => self.provider.run_with_secrets(&st, &on, &body, timeout, &secrets).await?,
                true => self.provider.run(&on, &body, timeout).await?,
            };
            if let Some(o) = outs.iter().find(|o| o.exit_code != 0) {
                return Err(ActionError::Command { node: o.node.clone(), exit_code: o.exit_code, tail: o.tail(20) });
            }
            self.log(&format!("setup {} on {}", step.id, on.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")));
        }
        Ok(())
    }
}

pub(super) fn node_info(r: &NodeRecord) -> NodeInfo {
    NodeInfo {
        name: r.name.clone(),
        id: r.id.clone(),
        private_ip: r.private_ip.clone(),
        zone: r.zone.clone(),
        instance_type: r.instance_type.clone(),
        image: r.image.clone(),
    }
}

/// The state's records of nodes the stack `st` launched in `region` (the nodes action's hash, the machine spec).
pub(super) fn node_records(nodes: &[NodeInfo], hash: &str, st: &crate::check::model::Stack, region: &str) -> Vec<NodeRecord> {
    let spec = crate::plan::machine_spec(st);
    let region = Some(region.to_string());
    nodes.iter().map(|n| NodeRecord { spec: Some(spec.clone()), region: region.clone(), ..node_record(n, hash) }).collect()
}

fn node_record(n: &NodeInfo, hash: &str) -> NodeRecord {
    NodeRecord {
        name: n.name.clone(),
        id: n.id.clone(),
        hash: hash.to_string(),
        private_ip: n.private_ip.clone(),
        zone: n.zone.clone(),
        region: None,
        instance_type: n.instance_type.clone(),
        image: n.image.clone(),
        spec: None,
    }
}

/// The nodes a state records, as the provider knows them (for `destroy`).
pub fn recorded_nodes(state: &crate::state::State) -> Vec<NodeInfo> {
    state.infra.nodes.iter().map(node_info).collect()
}

/// The stack a state records, as the provider knows it (for `destroy`).
pub fn recorded_stack(state: &crate::state::State) -> Option<StackInfo> {
    state.infra.stack.as_ref().map(|r| StackInfo {
        id: r.id.clone(),
        bucket: r.bucket().map(str::to_string),
        outputs: r.outputs.clone(),
    })
}
