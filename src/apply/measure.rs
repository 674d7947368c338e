//! The executor's measurements: an E2E pattern (the benchmark client against
//! the running server), a tool step (one or two nodes), an analysis (local),
//! each ending in a stored result with its raw output beside it.

use super::{ActionError, Exec, ToolOutputError};
use crate::address::ActionId;
use crate::check::model::Tool;
use crate::check::value::{Eval, Value};
use crate::design::commands;
use crate::design::Pattern;
use crate::plan::{Action, Change, Kind};
use crate::provider::Provider;
use crate::results::tools::{self, TAIL_LINES};
use crate::results::{gpu_memory, telemetry};
use crate::results::{ResultKind, ResultRecord};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Figures and per-request samples of one result.
type Measured = (BTreeMap<String, f64>, BTreeMap<String, Vec<f64>>);

impl<P: Provider> Exec<'_, P> {
    fn pattern_of(&self, a: &Action) -> Result<Pattern, ActionError> {
        a.id.pattern()
            .and_then(|id| self.campaign.design.pattern(id))
            .cloned()
            .ok_or_else(|| ActionError::NotDeclared(a.id.clone()))
    }

    /// Whether a pattern the plan runs for the first time already has its result: an apply
    /// killed after saving it and before recording the action. That result, with this hash
    /// and saved since the current nodes were created, is the measurement; running again
    /// would replace it. A replaced pattern (`-/+`) runs.
    fn saved_before_an_interruption(&self, a: &Action) -> bool {
        let (Some(id), Change::Create) = (a.id.pattern(), a.change) else { return false };
        let Some(rec) = self.store.get(id) else { return false };
        let nodes_since = self.state.actions.get(&ActionId::Nodes).and_then(|n| n.finished_at.clone());
        a.hash == rec.hash && nodes_since.is_some_and(|t| rec.finished_at >= t)
    }

    /// Where a command writes its output on the node: one file per action and hash.
    fn out_path(&self, a: &Action) -> String {
        format!("results/{}.{}.out", a.id, a.hash.short())
    }

    pub(super) async fn pattern(&mut self, a: &Action, started: Instant) -> Result<(), ActionError> {
        if self.saved_before_an_interruption(a) {
            self.probe_rate = None;
            self.log("       its result was saved before an interruption: kept, not run again");
            return Ok(());
        }
        self.read_provenance().await;
        let p = self.pattern_of(a)?;
        let mut settings = self.resolver.settings(&p);
        if let Some(rate) = self.probe_rate.take() {
            settings.insert("request_rate".into(), Value::num(rate));
        }
        let out = self.out_path(a);
        let extra = [("out", Value::Str(out.clone())), ("id", Value::Str(a.id.to_string()))];
        // Commands reach this node set's servers; the result keeps the declared settings.
        let here = self.on_this_set(&settings);
        let script = commands::bench(self.model, self.campaign, &here, &self.vars, &extra)?;
        let n1 = self.nth_node(script.node)?;
        let timeout = Duration::from_secs_f64((p.duration * 3.0).max(60.0));
        // The servers' and nodes' counters around the run (`probes.rs`).
        let probes = self.probes(&here)?;
        let before = self.snapshot(&probes).await?;
        self.run_on(&n1, &script.body, timeout).await?;
        let after = self.snapshot(&probes).await?;
        let gpu = self.gpu_figures(&probes).await?;
        let raw = self.provider.fetch(&n1, &out).await?;
        let allowed = settings.get("max_failed_requests").and_then(Value::as_f64).unwrap_or(0.0) as u64;
        match crate::results::vllm::parse(&raw, allowed) {
            Ok(mut run) => {
                match self.telemetry(&settings, (&before, &after), run.completed) {
                    Ok(t) => run.metrics.extend(t),
                    Err(why) => {
                        let _ = self.store.keep_raw(&format!("{}.failed.{}", a.id, a.hash.short()), &raw);
                        return Err(ActionError::Guard(why));
                    }
                }
                run.metrics.extend(gpu);
                if let Some(slo) = self.slo_of(&settings)? {
                    run.metrics.extend(crate::results::slo::measure(&slo, &run));
                }
                if let Some(passed) = self.probe_passed(&p, &settings, &run.metrics) {
                    run.metrics.insert("probe_passed".into(), f64::from(u8::from(passed)));
                }
                let unit =
                    |m: &str| telemetry::unit(m).or_else(|| gpu_memory::unit(m)).unwrap_or_else(|| crate::results::vllm::unit(m));
                let units = run.metrics.keys().map(|m| (m.clone(), unit(m).to_string())).collect();
                self.save_with_units(a, &settings, (run.metrics, run.samples), units, &raw, started)
            }
            Err(e) => {
                // Not a result, but the client's file is kept to look at.
                let _ = self.store.keep_raw(&format!("{}.failed.{}", a.id, a.hash.short()), &raw);
                Err(ActionError::Bench(e))
            }
        }
    }

    /// The pattern's benchmark run once on a cold server and dropped: its output stays on the
    /// node as `<id>.warmup.out`, nothing is stored, and a failure only says so in the log.
    pub(super) async fn warm_up(&mut self, a: &Action) {
        let Ok(p) = self.pattern_of(a) else { return };
        let mut settings = self.resolver.settings(&p);
        if let Some(rate) = self.probe_rate {
            settings.insert("request_rate".into(), Value::num(rate));
        }
        let extra = [("out", Value::Str(format!("results/{}.warmup.out", a.id))), ("id", Value::Str(a.id.to_string()))];
        let here = self.on_this_set(&settings);
        let Ok(script) = commands::bench(self.model, self.campaign, &here, &self.vars, &extra) else { return };
        let Ok(node) = self.nth_node(script.node) else { return };
        let timeout = Duration::from_secs_f64((p.duration * 3.0).max(60.0));
        match self.run_on(&node, &script.body, timeout).await {
            Ok(_) => self.log(&format!("  warm-up run of {} on the new server: done, discarded", a.id)),
            Err(e) => self.log(&format!("  warm-up run of {} on the new server failed (discarded): {e}", a.id)),
        }
    }

    /// A saturation probe's verdict on its layer's search `metric` (what the search and the
    /// report read back); None for other patterns or when a figure it needs is missing.
    fn probe_passed(&self, p: &Pattern, settings: &BTreeMap<String, Value>, m: &BTreeMap<String, f64>) -> Option<bool> {
        p.values().get("probe")?;
        let search = self.campaign.experiment.layers.get(p.layer as usize)?.saturation.as_ref()?;
        search.passes(settings.get("request_rate").and_then(Value::as_f64)?, m)
    }

    /// The pattern's `slo`, if it has one (checked with its span by `nixl check`).
    fn slo_of(&self, settings: &BTreeMap<String, Value>) -> Result<Option<crate::check::slo::Slo>, ActionError> {
        let Some(v) = settings.get("slo") else { return Ok(None) };
        crate::check::slo::Slo::from_value(v).map(Some).map_err(|(_, why)| {
            let span = self.campaign.experiment.span;
            ActionError::Template(Box::new(crate::diagnostics::Diagnostic::error(crate::diagnostics::Code::Domain, span, why)))
        })
    }

    pub(super) async fn step(&mut self, a: &Action, started: Instant) -> Result<(), ActionError> {
        self.read_provenance().await;
        let p = self.pattern_of(a)?;
        let tool =
            p.tool().and_then(|t| self.model.tools.get(t)).cloned().ok_or_else(|| ActionError::NotDeclared(a.id.clone()))?;
        let out = self.out_path(a);
        let n1 = self.nth_node(0)?;
        let vars = self.vars.with(&[
            ("out", Value::Str(out.clone())),
            ("self_ip", Value::Str(n1.private_ip.clone())),
            ("node", Value::Str(n1.name.clone())),
        ]);
        let scripts = commands::tool(&tool, &p, &vars, self.kv)?;
        let timeout = Duration::from_secs_f64((tool.duration * 3.0).max(60.0));
        let get = |role: &'static str| {
            scripts.iter().find(|s| s.role == role).ok_or(ActionError::MissingCommand { definition: "tool", command: role })
        };
        let reader = if tool.nodes >= 2 {
            let n2 = self.nth_node(1)?;
            let (server, client) = (get("server")?, get("client")?);
            let (s, c) = tokio::join!(self.run_on(&n1, &server.body, timeout), self.run_on(&n2, &client.body, timeout));
            c?;
            s?;
            if tool.result_on_server {
                n1
            } else {
                n2
            }
        } else {
            self.run_on(&n1, &get("run")?.body, timeout).await?;
            n1
        };
        let fetched = self.provider.fetch(&reader, &out).await.map_err(ToolOutputError::Fetch);
        let (metrics, raw) =
            fetched.and_then(|raw| Ok((tool_figures(&tool, &raw)?, raw))).map_err(|error| ActionError::ToolOutput {
                tool: tool.name.clone(),
                node: reader.name.clone(),
                path: out.clone(),
                error: Box::new(error),
            })?;
        let settings = self.resolver.settings(&p);
        self.save(a, &settings, (metrics, BTreeMap::new()), &raw, started)
    }

    pub(super) fn analysis(&mut self, a: &Action, started: Instant) -> Result<(), ActionError> {
        let p = self.pattern_of(a)?;
        let exp = &self.campaign.experiment;
        let layer = &exp.layers[p.layer as usize];
        // By the name it was declared with, never by how its id ends (`tpot-spread` is not `spread`).
        let decl = layer
            .analyses
            .iter()
            .find(|x| p.analysis() == Some(x.name.as_str()))
            .ok_or_else(|| ActionError::NotDeclared(a.id.clone()))?;
        let scope = crate::design::expand_base_scope(self.model, exp);
        let method = Eval { scope: &scope, kv_bytes_per_token: None }.eval(&decl.method)?;
        let results = self.store.all();
        let outcome = crate::results::analysis::run(&method, p.inputs(), &results).map_err(ActionError::Analysis)?;
        // The figures the analysis declares must be there, as for a tool.
        let missing: Vec<String> = decl.metrics.iter().filter(|m| !outcome.metrics.contains_key(*m)).cloned().collect();
        if !missing.is_empty() {
            let produced = outcome.metrics.keys().cloned().collect();
            return Err(ActionError::Analysis(crate::results::analysis::AnalysisError::MissingMetrics { missing, produced }));
        }
        let raw = serde_json::to_vec_pretty(&outcome.metrics).unwrap_or_default();
        let mut settings = self.resolver.settings(&p);
        // Rules name an analysis by its declared name (`bimodal("bimodality-detection")`).
        settings.insert("analysis".into(), Value::Str(decl.name.clone()));
        // What it computed, from what: shown with the result (an MLflow run's params).
        settings.insert("method".into(), Value::Str(crate::results::analysis::method_text(&method)));
        settings.insert("inputs".into(), Value::Str(p.inputs().join(", ")));
        let mut rec = self.result_record(a, &settings, (outcome.metrics, BTreeMap::new()), BTreeMap::new(), started);
        rec.intervals = outcome.intervals;
        rec.tests = outcome.tests;
        rec.front = outcome.front;
        self.store.save(&rec, &raw).map_err(ActionError::Store)
    }

    fn save(
        &mut self,
        a: &Action,
        settings: &BTreeMap<String, Value>,
        measured: Measured,
        raw: &[u8],
        started: Instant,
    ) -> Result<(), ActionError> {
        self.save_with_units(a, settings, measured, BTreeMap::new(), raw, started)
    }

    fn save_with_units(
        &mut self,
        a: &Action,
        settings: &BTreeMap<String, Value>,
        measured: Measured,
        units: BTreeMap<String, String>,
        raw: &[u8],
        started: Instant,
    ) -> Result<(), ActionError> {
        let rec = self.result_record(a, settings, measured, units, started);
        self.store.save(&rec, raw).map_err(ActionError::Store)
    }

    /// The stored record of a result, with the provenance of this apply.
    fn result_record(
        &self,
        a: &Action,
        settings: &BTreeMap<String, Value>,
        (metrics, samples): Measured,
        units: BTreeMap<String, String>,
        started: Instant,
    ) -> ResultRecord {
        let settings = settings
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Ref { .. }))
            .map(|(k, v)| (k.clone(), serde_json::Value::String(crate::results::setting_text(v))))
            .collect();
        let kind = match a.kind {
            Kind::Analysis => ResultKind::Analysis,
            Kind::Step => ResultKind::Step,
            _ => ResultKind::Pattern,
        };
        ResultRecord {
            id: a.id.to_string(),
            hash: a.hash.to_string(),
            layer: a.layer.as_deref().unwrap_or_default().to_string(),
            kind,
            finished_at: crate::state::lock::now_rfc3339(),
            seconds: started.elapsed().as_secs_f64(),
            settings,
            metrics,
            samples,
            units,
            raw: format!("{}.raw.{}", a.id, a.hash.short()),
            provenance: Some(self.provenance.clone().unwrap_or_else(|| self.provenance_here(None))),
            intervals: vec![],
            tests: vec![],
            front: vec![],
            launch: if a.kind == Kind::Pattern { self.launch.clone() } else { None },
        }
    }
}

/// A tool step's figures: what its parser reads (without a parser, the numeric
/// fields of a JSON object), holding every metric the tool declares. An empty
/// output, an unreadable one or a missing metric is an error, never an empty result.
fn tool_figures(tool: &Tool, raw: &[u8]) -> Result<BTreeMap<String, f64>, ToolOutputError> {
    let figures = match tool.parser {
        Some(p) => tools::parse(p, raw),
        None => tools::parse_generic(raw),
    }
    .map_err(ToolOutputError::Parse)?;
    let missing: Vec<String> = tool.metrics.iter().filter(|m| !figures.contains_key(m.as_str())).cloned().collect();
    if !missing.is_empty() {
        return Err(ToolOutputError::MissingMetrics { missing, tail: tools::tail(raw, TAIL_LINES) });
    }
    Ok(figures)
}
