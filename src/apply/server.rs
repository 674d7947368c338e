//! The executor's server actions: start a launch's servers (unified, or
//! prefill, decode and proxy), wait for health, stop them; start a service a tool needs.

use super::script;
use super::{ActionError, Exec};
use crate::check::model::Mode;
use crate::check::value::Value;
use crate::plan::Action;
use crate::provider::{CommandOutput, NodeInfo, Provider};
use std::collections::BTreeMap;
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

    /// The settings of a launch's first pattern: what its server commands are rendered with.
    fn launch_settings(&self, group: Option<u32>) -> BTreeMap<String, Value> {
        self.campaign.design.patterns.iter().find(|p| p.group == group).map(|p| self.resolver.settings(p)).unwrap_or_default()
    }

    pub(super) async fn server_start(&mut self, a: &Action) -> Result<(), ActionError> {
        let settings = self.launch_settings(a.group);
        let scope = script::scope(&settings, self.model, &self.vars.vars);
        let t = &self.campaign.server;
        let kv = self.kv;
        let get = |k: &'static str| -> Result<String, ActionError> {
            let e = t.get(k).ok_or(ActionError::MissingCommand { definition: "server", command: k })?;
            Ok(script::template(e, &scope, kv)?)
        };
        let mode = settings.get("mode").and_then(Value::as_str).and_then(Mode::from_symbol);
        let disaggregated = mode == Some(Mode::Disaggregated);
        let n1 = self.nth_node(0)?;
        let short = Duration::from_secs(120);
        if disaggregated {
            let n2 = self.nth_node(1)?;
            let (decode, prefill) = (get("start_decode")?, get("start_prefill")?);
            self.run_on(&n2, &decode, short).await?;
            self.run_on(&n1, &prefill, short).await?;
            if t.contains_key("start_proxy") {
                self.run_on(&n1, &get("start_proxy")?, short).await?;
            }
        } else {
            self.run_on(&n1, &get("start_unified")?, short).await?;
        }
        let health = get("health")?;
        let limit = settings.get("health_timeout").and_then(Value::as_f64).unwrap_or(600.0);
        let started = Instant::now();
        loop {
            let outs = self.provider.run(std::slice::from_ref(&n1), &health, Duration::from_secs(30)).await;
            if outs.is_ok_and(|o| o.first().is_some_and(|x| x.exit_code == 0)) {
                return Ok(());
            }
            if started.elapsed().as_secs_f64() > limit {
                return Err(ActionError::Unhealthy { seconds: limit });
            }
            if self.interrupted() {
                return Err(ActionError::Interrupted);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops every server on every node and checks GPU memory is free (the `stop` command).
    pub(super) async fn stop_servers(&mut self) -> Result<(), ActionError> {
        let Some(stop) = self.campaign.server.get("stop") else { return Ok(()) };
        let scope = script::scope(&BTreeMap::new(), self.model, &self.vars.vars);
        let body = script::template(stop, &scope, self.kv)?;
        let outs = self.provider.run(&self.nodes, &body, Duration::from_secs(180)).await?;
        match outs.iter().find(|o| o.exit_code != 0) {
            Some(o) => Err(ActionError::Command { node: o.node.clone(), exit_code: o.exit_code, tail: o.tail(10) }),
            None => Ok(()),
        }
    }

    pub(super) async fn service(&mut self, a: &Action) -> Result<(), ActionError> {
        let crate::address::ActionId::Service(name) = &a.id else { return Err(ActionError::NotDeclared(a.id.clone())) };
        let s = self.model.services.get(name).ok_or_else(|| ActionError::NotDeclared(a.id.clone()))?.clone();
        let n1 = self.nth_node(0)?;
        self.run_on(&n1, &s.run.join("\n"), Duration::from_secs(300)).await?;
        if let Some(h) = &s.health {
            let started = Instant::now();
            while self.run_on(&n1, h, Duration::from_secs(30)).await.is_err() {
                if started.elapsed() > Duration::from_secs(SERVICE_HEALTH_SECONDS) {
                    return Err(ActionError::ServiceUnhealthy { name: name.clone(), seconds: SERVICE_HEALTH_SECONDS });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }
}
