//! Stage 5: the executor. Walks the plan's actions through a provider,
//! records each outcome in the state the moment it ends, keeps every result,
//! and stops cleanly on Ctrl-C. The same code drives AWS and the local
//! machine, and the same walk runs the patterns that rules add while it runs.

mod errors;
mod infra;
mod kept;
mod measure;
mod node_sets;
mod post;
mod probes;
mod provenance;
mod refresh;
mod regions;
mod replicates;
mod secrets;
mod server;
mod spot;

pub use errors::{diagnostic, secret_diagnostics, ActionError, ApplyError, ToolOutputError};
pub use infra::{recorded_nodes, recorded_stack};
pub use node_sets::{run_on_sets, run_planned};
pub use post::FIRED_LOG;
pub use refresh::observe;
pub use regions::{active as active_stack, teardown, Teardown};
pub use secrets::{Secrets, REDACTED};

use crate::address::ActionId;
use crate::check::Model;
use crate::design::render::RenderVars;
use crate::design::{Campaign, Resolver};
use crate::plan::target::runs;
use crate::plan::{Action, Change, Kind, Plan};
use crate::progress::Sink;
use crate::provider::{NodeInfo, Provider, StackInfo};
use crate::results::Store;
use crate::state::{ActionRecord, State, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct Options {
    pub state_path: PathBuf,
    pub results_dir: PathBuf,
    /// The directory of the .nixl file (stand-in scripts live beside it).
    pub here: PathBuf,
    /// Set by Ctrl-C: finish the current action, record it, stop.
    pub interrupted: Arc<AtomicBool>,
    /// Where each result is logged as it arrives; None keeps results local.
    pub mlflow: Option<crate::results::mlflow::Target>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: usize,
    pub skipped: usize,
    pub failed: Vec<(ActionId, ActionError)>,
    pub launches: usize,
    pub interrupted: bool,
}

struct Exec<'a, P: Provider> {
    provider: &'a P,
    sink: &'a dyn Sink,
    model: &'a Model,
    campaign: &'a Campaign,
    resolver: Resolver<'a>,
    state: State,
    opts: &'a Options,
    store: Store,
    nodes: Vec<NodeInfo>,
    stack_info: Option<StackInfo>,
    vars: RenderVars,
    /// Actions that did not succeed, so what needs them does not run: the first
    /// line of why for a failure, None for an action skipped in turn.
    failed: BTreeMap<ActionId, Option<String>>,
    outcome: Outcome,
    kv: Option<f64>,
    post: post::Post,
    /// Actions announced so far and in all (rules add to the total as they fire).
    counter: (usize, usize),
    /// Launch numbers given so far (rules launch servers after the plan's).
    last_launch: u32,
    /// What results are measured on, read once from the nodes (`provenance.rs`).
    provenance: Option<crate::results::Provenance>,
    /// The server launch that is up, recorded with each E2E result for its cost per token.
    launch: Option<crate::results::LaunchStart>,
    /// The secrets the plan's setup steps read (the provider's outputs come redacted of them).
    secrets: &'a Secrets,
    /// The request rate the saturation search gave the probe about to run.
    probe_rate: Option<f64>,
    /// The node set this walk runs on (`parallel` > 1); its lines say so.
    set: Option<u32>,
    /// The state the node sets share, when several walk at once: each record goes into it.
    ledger: Option<&'a node_sets::Ledger>,
    /// The group of the next launch the walk will start, set before a stop (what it may keep running).
    next_launch: Option<u32>,
}

/// Runs the plan (already limited to its targets), then what rules added. The state is saved after every action.
pub async fn run<P: Provider>(
    provider: &P,
    sink: &dyn Sink,
    model: &Model,
    campaign: &Campaign,
    plan: &Plan,
    state: State,
    opts: &Options,
) -> Result<Outcome, ApplyError> {
    // Before anything is created: a secret that cannot be read stops apply here, naming it.
    let secrets = Secrets::read(provider, campaign, plan).await?;
    let provider = &secrets::Redacting { inner: provider, secrets: &secrets };
    let mut ex = Exec::new(provider, sink, model, campaign, plan, state, opts, &secrets);
    // The region first: moving the clients forgets the stack they knew.
    ex.enter_recorded_region().await.map_err(ApplyError::Refresh)?;
    ex.restore_infra();
    ex.refresh_nodes(plan).await?;
    // The plan is already limited to `--target` and marks `--replace` as changed.
    let wanted: BTreeSet<usize> = (0..plan.actions.len()).filter(|&i| runs(&plan.actions[i])).collect();
    let to_run: Vec<&Action> = wanted.iter().map(|&i| &plan.actions[i]).collect();
    ex.counter.1 = to_run.len();
    sink.begin(
        to_run.iter().filter(|a| a.kind == Kind::Pattern).count(),
        to_run.iter().map(|a| a.duration).sum(),
        plan.groups.len(),
    );
    ex.walk(&plan.actions, &wanted).await?;
    ex.run_rule_work().await?;
    sink.end();
    Ok(ex.outcome)
}

impl<'a, P: Provider> Exec<'a, P> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        provider: &'a P,
        sink: &'a dyn Sink,
        model: &'a Model,
        campaign: &'a Campaign,
        plan: &Plan,
        state: State,
        opts: &'a Options,
        secrets: &'a Secrets,
    ) -> Exec<'a, P> {
        Exec {
            provider,
            sink,
            model,
            campaign,
            resolver: Resolver::new(model, campaign),
            state,
            opts,
            store: Store::new(&opts.results_dir),
            nodes: vec![],
            stack_info: None,
            vars: RenderVars::new(&[], &opts.here.display().to_string()).with_model(campaign.design.model.as_ref()),
            failed: BTreeMap::new(),
            outcome: Outcome::default(),
            kv: campaign.design.model.as_ref().map(|m| m.kv_bytes_per_token() as f64),
            post: post::Post::new(model, campaign, opts),
            counter: (0, 0),
            last_launch: plan.actions.iter().filter_map(|a| a.launch.get()).max().unwrap_or(0),
            provenance: None,
            launch: None,
            secrets,
            probe_rate: None,
            set: None,
            ledger: None,
            next_launch: None,
        }
    }
}

impl<P: Provider> Exec<'_, P> {
    fn interrupted(&self) -> bool {
        self.opts.interrupted.load(Ordering::SeqCst)
    }

    /// One line of the apply's output; a node set's lines start with its number.
    fn log(&self, msg: &str) {
        match self.set {
            Some(set) => self.sink.line(&format!("set {set}: {msg}")),
            None => self.sink.line(msg),
        }
    }

    /// Runs the wanted actions in order. Setup steps of one id run on every node
    /// at once; an action whose needs failed is skipped, or failed when it is a
    /// pattern whose server did not start. A server left up is stopped at the end.
    async fn walk(&mut self, actions: &[Action], wanted: &BTreeSet<usize>) -> Result<(), ApplyError> {
        let mut handled: BTreeSet<usize> = BTreeSet::new();
        let mut server_up = false;
        // A server started and no pattern has run on it yet (`discard_first_run`).
        let mut cold = false;
        for (i, a) in actions.iter().enumerate() {
            if self.interrupted() {
                self.outcome.interrupted = true;
                self.log("Interrupted: finished actions are recorded; run apply again to resume.");
                break;
            }
            if !wanted.contains(&i) || handled.contains(&i) {
                continue;
            }
            // A stop cleans up after its launch even when the start or a pattern failed, so a
            // crashed server leaves no process holding the GPUs and the next launch still runs.
            let cleanup = a.kind == Kind::ServerStop && !self.nodes.is_empty();
            if let Some(d) = a.needs.iter().map(|&d| &actions[d]).find(|d| self.failed.contains_key(&d.id)) {
                if !cleanup {
                    self.cannot_run(a, d)?;
                    continue;
                }
            }
            if a.kind == Kind::Setup {
                let batch = self.setup_batch_of(actions, wanted, i);
                handled.extend(batch.iter().copied());
                let batch: Vec<&Action> = batch.iter().map(|&j| &actions[j]).collect();
                self.setup(&batch).await?;
                continue;
            }
            if a.kind == Kind::Pattern {
                if let Some(why) = self.enough_replicates(a) {
                    self.outcome.skipped += 1;
                    self.log(&format!("  skip {}: {why}", a.id));
                    continue;
                }
                match self.probe(a) {
                    Some(Ok(rate)) => self.probe_rate = Some(rate),
                    Some(Err(why)) => {
                        self.outcome.skipped += 1;
                        self.log(&format!("  skip {}: {why}", a.id));
                        continue;
                    }
                    None => {}
                }
                if std::mem::take(&mut cold) && self.campaign.experiment.discard_first_run == Some(true) {
                    self.warm_up(a).await;
                }
            }
            if a.kind == Kind::ServerStop {
                let next = (i + 1..actions.len()).filter(|j| wanted.contains(j)).map(|j| &actions[j]);
                self.next_launch = next
                    .take_while(|x| x.kind != Kind::ServerStop)
                    .find(|x| x.kind == Kind::ServerStart)
                    .and_then(|x| x.group.get());
            }
            if matches!(a.kind, Kind::Pattern | Kind::Step) && a.launch.get().is_some() {
                self.recover_interruption(actions, a).await?;
            }
            let mut ok = self.execute(a).await?;
            // A pattern that failed because its node was taken back runs once more, on new nodes.
            if !ok && a.kind == Kind::Pattern && self.recover_interruption(actions, a).await? {
                self.outcome.failed.retain(|(id, _)| id != &a.id);
                self.failed.remove(&a.id);
                ok = self.execute(a).await?;
            }
            self.process_results().await;
            match a.kind {
                Kind::ServerStart => {
                    server_up = ok;
                    cold = ok;
                }
                Kind::ServerStop => server_up = false,
                _ => {}
            }
            // A server that did not come up may still hold GPUs: stop it anyway.
            if a.kind == Kind::ServerStart && !ok {
                let _ = self.stop_servers().await;
            }
        }
        // Servers kept for a launch that did not start are stopped, unless apply was
        // interrupted: then the state records them for the next apply to check.
        if server_up || (self.state.kept_servers.is_some() && !self.outcome.interrupted) {
            let _ = self.stop_servers().await;
            self.state.save(&self.opts.state_path)?;
        }
        Ok(())
    }

    /// The same setup step on every node that is wanted and whose earlier steps did not fail.
    fn setup_batch_of(&self, actions: &[Action], wanted: &BTreeSet<usize>, first: usize) -> Vec<usize> {
        let Some(step) = actions[first].id.setup_step() else { return vec![first] };
        (first..actions.len())
            .filter(|&j| wanted.contains(&j))
            .filter(|&j| actions[j].id.setup_step() == Some(step))
            .filter(|&j| !actions[j].needs.iter().any(|&d| self.failed.contains_key(&actions[d].id)))
            .collect()
    }

    /// A needed action failed: a pattern whose launch failed is recorded as failed
    /// with the launch's error (so `status` shows why); anything else is skipped.
    fn cannot_run(&mut self, a: &Action, need: &Action) -> Result<(), ApplyError> {
        let why = self.failed.get(&need.id).cloned().flatten();
        let verb = if why.is_some() { "failed" } else { "did not run" };
        if let (Some(launch), Some(reason), true) = (need.id.launch(), why, a.kind.has_result()) {
            self.log(&format!("  fail {}: its server (launch {launch}) did not start", a.id));
            let e = ActionError::ServerDidNotStart { launch, reason };
            return self.settle(a, Instant::now(), Err(e)).map(|_| ());
        }
        self.failed.insert(a.id.clone(), None);
        self.outcome.skipped += 1;
        self.log(&format!("  skip {}: it needs {}, which {verb}", a.id, need.id));
        Ok(())
    }

    /// "[n/total]" for the next `count` actions ("[5-6/19]" for a setup step on two nodes).
    fn number(&mut self, count: usize) -> String {
        let first = self.counter.0 + 1;
        self.counter.0 += count;
        self.counter.1 = self.counter.1.max(self.counter.0);
        if count > 1 {
            format!("[{first}-{}/{}]", self.counter.0, self.counter.1)
        } else {
            format!("[{first}/{}]", self.counter.1)
        }
    }

    /// Runs one action: announce it, do it, then [`Exec::settle`] the outcome.
    async fn execute(&mut self, a: &Action) -> Result<bool, ApplyError> {
        let key = a.group.get().and_then(|g| self.campaign.design.groups.get(g as usize)).map(|k| k.label());
        self.sink.starting(a.launch.get().zip(key.as_deref()));
        let n = self.number(1);
        let symbol = if a.change == Change::Replace { "-/+" } else { "+" };
        match a.kind {
            Kind::Pattern => self.log(&format!("{n} {symbol} {}  ({})", a.label(), self.sink.position())),
            _ => self.log(&format!("{n} {symbol} {}", a.label())),
        }
        let started = Instant::now();
        let result = match a.kind {
            Kind::Stack => self.stack(a).await,
            Kind::Nodes => self.ensure_nodes(a).await,
            Kind::Upload => Ok(()),
            Kind::Service => self.service(a).await,
            Kind::ServerStart => self.server_start(a).await,
            Kind::ServerStop => {
                let next = self.next_launch.take();
                self.stop_launch(a.group.get(), next).await
            }
            Kind::Pattern => self.pattern(a, started).await,
            Kind::Step => self.step(a, started).await,
            Kind::Analysis => self.analysis(a, started),
            Kind::Setup => Err(ActionError::NotDeclared(a.id.clone())),
        };
        self.sink.finished(a.kind == Kind::Pattern, a.duration);
        match &result {
            Ok(()) => self.log(&format!("       done in {:.1}s", started.elapsed().as_secs_f64())),
            Err(e) => self.log(&format!("       failed: {e}")),
        }
        if a.kind == Kind::ServerStart && result.is_ok() {
            self.outcome.launches += 1;
        }
        // The launch that is up, if any: its results share its start-up (results::decisions).
        match a.kind {
            Kind::ServerStart => {
                self.launch = result.is_ok().then(|| crate::results::LaunchStart {
                    number: a.launch.get().unwrap_or(0),
                    startup_seconds: started.elapsed().as_secs_f64(),
                    up_at: crate::state::lock::now_rfc3339(),
                })
            }
            Kind::ServerStop => self.launch = None,
            _ => {}
        }
        // Which servers are kept running is in the state the moment it changes.
        if matches!(a.kind, Kind::ServerStart | Kind::ServerStop) {
            self.state.save(&self.opts.state_path)?;
        }
        self.settle(a, started, result)
    }

    /// The one place an outcome is kept: counted, recorded in the state (a save
    /// error stops apply), and a new result handed to MLflow and the rules.
    fn settle(&mut self, a: &Action, started: Instant, result: Result<(), ActionError>) -> Result<bool, ApplyError> {
        let ok = result.is_ok();
        let error = result.as_ref().err().map(ToString::to_string);
        if !a.id.is_transient() {
            let status = if ok { Status::Done } else { Status::Failed };
            self.record(a, status, started, error.clone())?;
        }
        match result {
            Ok(()) => {
                self.outcome.done += 1;
                if a.kind.has_result() {
                    self.post.result_ready(&a.id);
                }
            }
            Err(e) => {
                // The whole reason, log tail included: a pattern whose server did not start keeps it in the state.
                self.failed.insert(a.id.clone(), Some(error.unwrap_or_default()));
                self.outcome.failed.push((a.id.clone(), e));
            }
        }
        Ok(ok)
    }

    fn record(&mut self, a: &Action, status: Status, started: Instant, error: Option<String>) -> Result<(), ApplyError> {
        let rec = ActionRecord {
            hash: a.hash.to_string(),
            status,
            finished_at: Some(crate::state::lock::now_rfc3339()),
            seconds: Some(started.elapsed().as_secs_f64()),
            error,
            set: self.set,
        };
        if let Some(ledger) = self.ledger {
            ledger.record(&self.opts.state_path, &a.id, rec.clone())?;
        }
        self.state.actions.insert(a.id.clone(), rec);
        if self.ledger.is_none() {
            self.state.save(&self.opts.state_path)?;
        }
        Ok(())
    }
}
