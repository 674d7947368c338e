//! Servers kept running between launches: a launch whose restart key changes only
//! settings of some roles (`decode_tp`) stops and starts only those roles' servers
//! (`design::topology::roles_to_start`); the others keep running, recorded in the state
//! (`KeptServers`), and are checked healthy before the next launch's first pattern. After
//! an interruption the next apply reads that record and starts again any kept server that is down.

use super::{ActionError, Exec};
use crate::design::commands;
use crate::design::topology::{self, Role, Topology};
use crate::provider::Provider;
use crate::state::KeptServers;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const HEALTH_CHECK_SECONDS: u64 = 30;

impl<P: Provider> Exec<'_, P> {
    /// The roles of the running launch (`group`) that the launch of `next` keeps running.
    fn roles_kept_for(&self, group: Option<u32>, next: Option<u32>) -> BTreeSet<Role> {
        let groups = &self.campaign.design.groups;
        let (Some(key_now), Some(key_next)) =
            (group.and_then(|g| groups.get(g as usize)), next.and_then(|g| groups.get(g as usize)))
        else {
            return BTreeSet::new();
        };
        let present_now = topology::roles_present(self.campaign, &Topology::of(&self.launch_settings(group)));
        let present_next = topology::roles_present(self.campaign, &Topology::of(&self.launch_settings(next)));
        let reads = topology::start_reads(&self.campaign.server);
        let starts = topology::roles_to_start(&topology::key_values(key_now), key_next, &reads, &present_next);
        present_now.intersection(&present_next).filter(|r| !starts.contains(r)).copied().collect()
    }

    /// Stops a launch's servers, keeping those of the roles the next launch (`next`, a group)
    /// keeps; the kept ones are recorded in the state. A launch whose start failed keeps nothing.
    ///
    /// A walk on one of several node sets keeps nothing: the state has one record of kept
    /// servers, and a set's next launch is not the plan's.
    pub(super) async fn stop_launch(&mut self, group: Option<u32>, next: Option<u32>) -> Result<(), ActionError> {
        let keep = match self.launch.is_some() && self.set.is_none() {
            true => self.roles_kept_for(group, next),
            false => BTreeSet::new(),
        };
        if keep.is_empty() {
            self.state.kept_servers = None;
            return self.stop_servers().await;
        }
        let settings = self.launch_settings(group);
        let servers = Topology::of(&settings).servers(self.campaign.server.contains_key("start_proxy"));
        for s in servers.iter().filter(|s| !keep.contains(&s.role)) {
            self.stop_role(s.role, s.node).await?;
        }
        let key = group.and_then(|g| self.campaign.design.groups.get(g as usize)).map(|k| k.values.clone()).unwrap_or_default();
        let kept = servers.iter().filter(|s| keep.contains(&s.role)).map(|s| (s.role, s.node)).collect();
        self.state.kept_servers = Some(KeptServers { servers: kept, key });
        self.log(&format!("       kept running for the next launch: {}", names(&keep)));
        Ok(())
    }

    /// Stops the servers of one role on one node (the `stop` command with that `node_role`).
    async fn stop_role(&self, role: Role, node: usize) -> Result<(), ActionError> {
        let Some(body) = commands::server_stop(self.model, self.campaign, &self.vars, Some(role))? else { return Ok(()) };
        let node = self.nth_node(node)?;
        self.run_on(&node, &body, Duration::from_secs(180)).await.map(|_| ())
    }

    /// The roles of the launch about to start (`group`, with `settings`) whose servers are
    /// already up and healthy from the launch before: the rest are to be started. Kept
    /// servers this launch cannot keep, or that are down, are stopped first.
    pub(super) async fn roles_already_up(
        &mut self,
        group: Option<u32>,
        settings: &BTreeMap<String, crate::check::value::Value>,
    ) -> Result<BTreeSet<Role>, ActionError> {
        let Some(kept) = self.state.kept_servers.take() else { return Ok(BTreeSet::new()) };
        let Some(key) = group.and_then(|g| self.campaign.design.groups.get(g as usize)) else { return Ok(BTreeSet::new()) };
        let present = topology::roles_present(self.campaign, &Topology::of(settings));
        let reads = topology::start_reads(&self.campaign.server);
        let starts = topology::roles_to_start(&kept.key.iter().cloned().collect(), key, &reads, &present);
        // A role is kept only where this launch puts its servers on the same nodes.
        let wanted: Vec<(Role, usize)> = Topology::of(settings)
            .servers(self.campaign.server.contains_key("start_proxy"))
            .iter()
            .map(|s| (s.role, s.node))
            .collect();
        let same_nodes = |r: &Role| {
            let of = |list: &[(Role, usize)]| list.iter().filter(|(x, _)| x == r).map(|(_, n)| *n).collect::<Vec<_>>();
            of(&kept.servers) == of(&wanted)
        };
        let kept_roles: BTreeSet<Role> = kept.servers.iter().map(|(r, _)| *r).collect();
        let keepable: BTreeSet<Role> =
            kept_roles.iter().filter(|r| present.contains(r) && !starts.contains(r) && same_nodes(r)).copied().collect();
        let healthy = self.healthy_roles(settings, &keepable).await?;
        for (role, node) in kept.servers.iter().filter(|(r, _)| !healthy.contains(r)) {
            if keepable.contains(role) {
                self.log(&format!("       a kept {} server is not healthy: starting it again", role.as_str()));
            }
            self.stop_role(*role, *node).await?;
        }
        if !healthy.is_empty() {
            self.log(&format!("       kept from the launch before, healthy: {}", names(&healthy)));
        }
        Ok(healthy)
    }

    /// The roles among `roles` every server of which answers its `health` check now.
    async fn healthy_roles(
        &self,
        settings: &BTreeMap<String, crate::check::value::Value>,
        roles: &BTreeSet<Role>,
    ) -> Result<BTreeSet<Role>, ActionError> {
        let checks = commands::server_health(self.model, self.campaign, settings, &self.vars, roles)?;
        let mut down = BTreeSet::new();
        for (role, script) in &checks {
            let node = self.nth_node(script.node)?;
            let outs =
                self.provider.run(std::slice::from_ref(&node), &script.body, Duration::from_secs(HEALTH_CHECK_SECONDS)).await?;
            if outs.first().is_none_or(|o| o.exit_code != 0) {
                down.insert(*role);
            }
        }
        Ok(roles.difference(&down).copied().collect())
    }
}

/// "decode, proxy".
fn names(roles: &BTreeSet<Role>) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}
