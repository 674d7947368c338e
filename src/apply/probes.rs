//! The reads of the nodes around one E2E pattern: every decode and every prefill server's
//! Prometheus metrics and every decode and prefill node's transport counters before and
//! after the benchmark (disaggregated patterns, summed per role), the server nodes' GPU
//! memory after it, and what they become: telemetry metrics, compared with the catalogue,
//! and the guards' reasons when the run was not the disaggregated measurement declared.

use super::{ActionError, Exec};
use crate::check::model::Transport;
use crate::check::value::Value;
use crate::design::commands::{self, Script};
use crate::design::topology::{Role, Topology};
use crate::provider::Provider;
use crate::results::{gpu_memory, telemetry, transport};
use std::collections::BTreeMap;
use std::time::Duration;

/// The read commands a pattern's settings call for (None: the server definition has none,
/// or the mode needs none).
pub(super) struct Probes {
    /// One per decode server (node): their outputs are read as one, each name summed.
    metrics: Vec<Script>,
    counters: Vec<Script>,
    /// The same reads, one per prefill server (node).
    prefill_metrics: Vec<Script>,
    prefill_counters: Vec<Script>,
    gpu: Option<Script>,
    /// Each prefill and decode server node's GPU memory, summed per role.
    role_gpu: Vec<(Role, Script)>,
}

/// The outputs of the reads taken at one moment.
#[derive(Default)]
pub(super) struct Snapshot {
    metrics: Option<String>,
    counters: Option<String>,
    prefill_metrics: Option<String>,
    prefill_counters: Option<String>,
}

impl<P: Provider> Exec<'_, P> {
    pub(super) fn probes(&self, settings: &BTreeMap<String, Value>) -> Result<Probes, ActionError> {
        let (m, c, s, v) = (self.model, self.campaign, settings, &self.vars);
        Ok(Probes {
            metrics: commands::server_metrics(m, c, s, v, Role::Decode)?,
            counters: commands::transport_counters(m, c, s, v, Role::Decode)?,
            prefill_metrics: commands::server_metrics(m, c, s, v, Role::Prefill)?,
            prefill_counters: commands::transport_counters(m, c, s, v, Role::Prefill)?,
            gpu: commands::gpu_memory(m, c, s, v)?,
            role_gpu: commands::role_gpu_memory(m, c, s, v)?,
        })
    }

    /// The cumulative reads (metrics, counters), taken before and again after the run.
    pub(super) async fn snapshot(&self, p: &Probes) -> Result<Snapshot, ActionError> {
        Ok(Snapshot {
            metrics: self.read_all(&p.metrics).await?,
            counters: self.read_all(&p.counters).await?,
            prefill_metrics: self.read_all(&p.prefill_metrics).await?,
            prefill_counters: self.read_all(&p.prefill_counters).await?,
        })
    }

    /// The outputs of reads on several servers, one after the other (None without reads).
    async fn read_all(&self, scripts: &[Script]) -> Result<Option<String>, ActionError> {
        let mut out: Option<String> = None;
        for s in scripts {
            let text = self.read(&Some(s.clone())).await?.unwrap_or_default();
            let all = out.get_or_insert_with(String::new);
            all.push_str(&text);
            if !all.ends_with('\n') {
                all.push('\n');
            }
        }
        Ok(out)
    }

    /// The GPU memory figures after the run (none without a `gpu_memory` command or nvidia-smi).
    pub(super) async fn gpu_figures(&self, p: &Probes) -> Result<BTreeMap<String, f64>, ActionError> {
        let Some(s) = &p.gpu else { return Ok(BTreeMap::new()) };
        let node = self.nth_node(s.node)?;
        let text = self.read(&p.gpu).await?.unwrap_or_default();
        let mut out = gpu_memory::parse(&text).map_err(|error| ActionError::GpuMemory { node: node.name, error })?;
        for role in [Role::Prefill, Role::Decode] {
            let mut per_node = vec![];
            for (_, s) in p.role_gpu.iter().filter(|(r, _)| *r == role) {
                let node = self.nth_node(s.node)?;
                let text = self.read(&Some(s.clone())).await?.unwrap_or_default();
                per_node.push(gpu_memory::parse(&text).map_err(|error| ActionError::GpuMemory { node: node.name, error })?);
            }
            out.extend(gpu_memory::role_totals(role.as_str(), &per_node));
        }
        Ok(out)
    }

    /// The telemetry metrics of a run, or every guard's reason when it was not the
    /// disaggregated measurement its settings declare.
    pub(super) fn telemetry(
        &self,
        settings: &BTreeMap<String, Value>,
        (before, after): (&Snapshot, &Snapshot),
        completed: u64,
    ) -> Result<BTreeMap<String, f64>, Vec<String>> {
        let mut m = BTreeMap::new();
        let mut why = vec![];
        if let (Some(pre), Some(post)) = (&before.metrics, &after.metrics) {
            m = telemetry::deltas(pre, post, completed);
        }
        if let (Some(pre), Some(post)) = (&before.prefill_metrics, &after.prefill_metrics) {
            m.extend(telemetry::prefill_deltas(pre, post));
        }
        if before.metrics.is_some() && after.metrics.is_some() {
            why = telemetry::guard_failures(&m);
        }
        let sides = [(&before.counters, &after.counters, ""), (&before.prefill_counters, &after.prefill_counters, "prefill_")];
        for (pre, post, prefix) in sides {
            if let (Some(pre), Some(post)) = (pre, post) {
                m.extend(transport::deltas(pre, post, prefix));
            }
        }
        let declared = settings.get("transport").and_then(Value::as_str).and_then(Transport::from_symbol);
        why.extend(declared.and_then(|t| transport::wrong_interface(t, &m)));
        if !why.is_empty() {
            return Err(why);
        }
        m.extend(telemetry::against(self.reference(settings), &m));
        Ok(m)
    }

    /// The catalogue's figures for this pattern: the fabric bandwidth of the instance type
    /// the nodes run as (the declared one when the provider does not say) and the KV bytes
    /// per token a decode server's ranks hold together at the pattern's decode TP.
    fn reference(&self, settings: &BTreeMap<String, Value>) -> telemetry::Reference {
        let launched = self.nodes.iter().find_map(|n| n.instance_type.clone());
        let declared = self.campaign.stack.as_ref().and_then(|s| s.instance_types.first().cloned());
        let bandwidth = |t: Option<String>| t.and_then(|t| self.model.instances.get(&t)).and_then(|i| i.efa_bandwidth);
        let decode_tp = Topology::of(settings).tp_of(Role::Decode).unwrap_or(1.0).max(1.0) as u32;
        let model = self.campaign.design.model.as_ref();
        telemetry::Reference {
            fabric_bits_per_s: bandwidth(launched).or_else(|| bandwidth(declared)),
            kv_bytes_per_token: model.map(|m| m.kv_bytes_per_token_over_ranks(decode_tp) as f64),
        }
    }

    /// One read: the command's output on its node.
    async fn read(&self, s: &Option<Script>) -> Result<Option<String>, ActionError> {
        let Some(s) = s else { return Ok(None) };
        let node = self.nth_node(s.node)?;
        Ok(Some(self.run_on(&node, &s.body, Duration::from_secs(60)).await?.stdout))
    }
}
