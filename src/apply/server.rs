//! The executor's server actions: start a launch's servers (unified, or
//! prefill, decode and proxy; only those not kept from the launch before, `kept.rs`), wait
//! for health, stop them; start a service a tool needs.

use super::{ActionError, Exec};
use crate::check::value::Value;
use crate::design::commands;
use crate::design::topology::Role;
use crate::plan::Action;
use crate::provider::{CommandOutput, NodeInfo, Provider};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

const SERVICE_HEALTH_SECONDS: u64 = 120;

impl<P: Provider> Exec<'_, P> {
    /// Runs a script on one node; a non-zero exit is an error with the output's end.
    pub(super) async fn run_on(&self, node: &NodeInfo, body: &str, timeout: Duration) -> Result<CommandOutput, ActionError> {
        let mut outs = self.provider.run(std::slice::from_ref(node), body, timeout).await?;
        let o = outs.pop().ok_or_else(|| ActionError::NoOutput { node: node.name.clone() })?;
        if o.exit_code != 0 {
            return Err(ActionError::Command { node: o.node.clone(), exit_code: o.exit_code, tail: o.tail(20) });
        }
        Ok(o)
    }

    /// The settings of a launch's first pattern: what its server commands are rendered with
    /// (on this node set's ports).
    pub(super) fn launch_settings(&self, group: Option<u32>) -> BTreeMap<String, Value> {
        let first = self.campaign.design.patterns.iter().find(|p| p.group == group);
        first.map(|p| self.on_this_set(&self.resolver.settings(p))).unwrap_or_default()
    }

    /// Settings as this node set's commands use them: every server port moved up by the
    /// provider's `port_shift` (local node sets share one machine); unchanged elsewhere.
    pub(super) fn on_this_set(&self, settings: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        let shift = self.provider.port_shift();
        let mut here = settings.clone();
        if shift == 0 {
            return here;
        }
        for name in commands::PORT_SETTINGS {
            if let Some(p) = here.get(name).and_then(Value::as_f64) {
                here.insert(name.to_string(), Value::num(p + f64::from(shift)));
            }
        }
        here
    }

    pub(super) async fn server_start(&mut self, a: &Action) -> Result<(), ActionError> {
        let settings = self.launch_settings(a.group.get());
        let (model, campaign) = (self.model, self.campaign);
        // Servers kept from the launch before and healthy are not started again.
        let up = self.roles_already_up(a.group.get(), &settings).await?;
        let roles: BTreeSet<Role> = commands::all_roles().difference(&up).copied().collect();
        for script in commands::server_start_of(model, campaign, &settings, &self.vars, &roles)? {
            let node = self.nth_node(script.node)?;
            self.run_on(&node, &script.body, Duration::from_secs(120)).await?;
        }
        // One command per server node waits on the node itself: health, live processes,
        // fatal log lines. The first to fail ends the launch with its log tail.
        let ready = commands::server_ready_of(model, campaign, &settings, &self.vars, &roles)?;
        let limit = settings.get("health_timeout").and_then(Value::as_f64).unwrap_or(600.0);
        let wait = Duration::from_secs_f64(limit + 60.0);
        let this = &*self;
        let watch = |i: usize| {
            let script = ready.get(i).cloned();
            async move {
                let Some(script) = script else { return Ok(()) };
                let node = this.nth_node(script.node)?;
                let mut outs = this.provider.run(std::slice::from_ref(&node), &script.body, wait).await?;
                let out = outs.pop().ok_or_else(|| ActionError::NoOutput { node: node.name.clone() })?;
                // The watch prints one status line (NIXL_DIED, NIXL_FATAL, NIXL_TIMEOUT), then the log tail.
                let text = out.tail(45);
                let (status, tail) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                let reason = status.split_once(": ").map_or(status, |(_, r)| r).to_string();
                match out.exit_code {
                    0 => Ok(()),
                    5 => Err(ActionError::Unhealthy { seconds: limit, tail: tail.to_string() }),
                    _ => Err(ActionError::ServerFailed { node: node.name.clone(), reason, tail: tail.to_string() }),
                }
            }
        };
        // The first failure ends the wait; a healthy node waits for the others.
        let mut pending: Vec<_> = (0..ready.len()).map(|i| Box::pin(watch(i))).collect();
        std::future::poll_fn(|cx| {
            let mut i = 0;
            while i < pending.len() {
                match pending[i].as_mut().poll(cx) {
                    std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Ready(Ok(())) => drop(pending.swap_remove(i)),
                    std::task::Poll::Pending => i += 1,
                }
            }
            match pending.is_empty() {
                true => std::task::Poll::Ready(Ok(())),
                false => std::task::Poll::Pending,
            }
        })
        .await?;
        if self.interrupted() {
            return Err(ActionError::Interrupted);
        }
        Ok(())
    }

    /// Stops every server on every node and checks GPU memory is free (the `stop` command).
    pub(super) async fn stop_servers(&mut self) -> Result<(), ActionError> {
        self.state.kept_servers = None;
        let Some(body) = commands::server_stop(self.model, self.campaign, &self.vars, None)? else { return Ok(()) };
        let outs = self.provider.run(&self.nodes, &body, Duration::from_secs(180)).await?;
        match outs.iter().find(|o| o.exit_code != 0) {
            Some(o) => Err(ActionError::Command { node: o.node.clone(), exit_code: o.exit_code, tail: o.tail(10) }),
            None => Ok(()),
        }
    }

    pub(super) async fn service(&mut self, a: &Action) -> Result<(), ActionError> {
        let crate::address::ActionId::Service(name) = &a.id else { return Err(ActionError::NotDeclared(a.id.clone())) };
        let s = self.model.services.get(&**name).ok_or_else(|| ActionError::NotDeclared(a.id.clone()))?.clone();
        let n1 = self.nth_node(0)?;
        self.run_on(&n1, &s.run.join("\n"), Duration::from_secs(300)).await?;
        if let Some(h) = &s.health {
            let started = Instant::now();
            while self.run_on(&n1, h, Duration::from_secs(30)).await.is_err() {
                if started.elapsed() > Duration::from_secs(SERVICE_HEALTH_SECONDS) {
                    return Err(ActionError::ServiceUnhealthy { name: name.to_string(), seconds: SERVICE_HEALTH_SECONDS });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }
}
