//! What apply does after each result: log it to MLflow (when a tracking
//! server is configured) and evaluate the experiment's rules; the ad-hoc
//! patterns of rules that fire run at the end of the same apply: low-level
//! steps and analyses first, then E2E patterns with one server launch per
//! restart group.

use super::{log, Exec, Options};
use crate::check::model::RuleDecl;
use crate::check::Model;
use crate::design::{Category, Design};
use crate::plan::Kind;
use crate::provider::Provider;
use crate::results::mlflow::{Client, Logged, Target};
use crate::results::rules::{self, Fired};
use crate::results::{ResultRecord, Store};
use crate::state::Status;
use std::collections::BTreeSet;
use std::time::Instant;

/// File beside the results listing the rules that fired, one JSON object a line.
pub const FIRED_LOG: &str = "fired-rules.jsonl";

pub struct Post {
    target: Option<Target>,
    client: Option<Client>,
    /// Set after a failed connection: said once, then results stay local.
    mlflow_down: bool,
    rules: Vec<RuleDecl>,
    fired: BTreeSet<usize>,
    queue: Vec<String>,
    /// E2E patterns from the queue, waiting for their server launch.
    e2e: Vec<String>,
    parent: Vec<ResultRecord>,
}

impl Post {
    pub fn new(model: &Model, design: &Design, opts: &Options) -> Post {
        let exp = crate::design::merge::merged(model, &design.experiment, &mut vec![]);
        let parent = match (&design.extends, opts.results_dir.parent()) {
            (Some(p), Some(dir)) => Store::new(&dir.join(p)).all(),
            _ => vec![],
        };
        Post {
            target: opts.mlflow.clone(),
            client: None,
            mlflow_down: false,
            rules: exp.map(|e| e.rules).unwrap_or_default(),
            fired: BTreeSet::new(),
            queue: vec![],
            e2e: vec![],
            parent,
        }
    }
}

impl<P: Provider> Exec<'_, P> {
    pub(super) async fn after_result(&mut self, id: &str) {
        let Some(rec) = self.store.get(id) else { return };
        self.log_mlflow(&rec).await;
        self.evaluate_rules();
    }

    async fn log_mlflow(&mut self, rec: &ResultRecord) {
        let Some(t) = self.post.target.clone() else { return };
        if self.post.mlflow_down {
            return;
        }
        if self.post.client.is_none() {
            match Client::connect(&t).await {
                Ok(c) => self.post.client = Some(c),
                Err(e) => {
                    log(&format!("       MLflow: {e}; results stay local (push later with `nixl results --push`)"));
                    self.post.mlflow_down = true;
                    return;
                }
            }
        }
        if let Some(c) = &self.post.client {
            match c.log(rec).await {
                Ok(Logged::Created(run)) => log(&format!("       logged to MLflow run {run}")),
                Ok(Logged::Existing(_)) => {}
                Err(e) => log(&format!("       MLflow: {e} (kept locally)")),
            }
        }
    }

    fn evaluate_rules(&mut self) {
        if self.post.rules.is_empty() {
            return;
        }
        let results = self.store.all();
        let ctx = rules::Ctx { design: self.design, results: &results, parent: &self.post.parent };
        for f in rules::evaluate(&self.post.rules, &ctx) {
            if !self.post.fired.insert(f.rule) {
                continue;
            }
            let fresh: Vec<String> =
                f.patterns.iter().filter(|id| !self.post.queue.contains(id) && !self.done_with_same_hash(id)).cloned().collect();
            let why = if f.reason.is_empty() { String::new() } else { format!(" because \"{}\"", f.reason) };
            log(&format!(
                "  rule fired: when {}{why}: {}",
                f.condition,
                if fresh.is_empty() { "its patterns already ran".to_string() } else { format!("adds {}", fresh.join(", ")) }
            ));
            self.post.queue.extend(fresh.iter().cloned());
            self.note_fired(&Fired { patterns: fresh, ..f });
        }
    }

    fn done_with_same_hash(&self, id: &str) -> bool {
        let Some(p) = self.design.pattern(id) else { return true };
        let hash = self.resolver.hash(p);
        self.state.actions.get(id).is_some_and(|r| r.status == Status::Done && r.hash == hash)
    }

    fn note_fired(&self, f: &Fired) {
        let _ = std::fs::create_dir_all(self.store.dir());
        let line = serde_json::to_string(f).unwrap_or_default() + "\n";
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(self.store.dir().join(FIRED_LOG)) {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Runs the patterns fired rules asked for; their results are evaluated in turn.
    pub(super) async fn run_rule_patterns(&mut self) -> Result<(), String> {
        // Rules may fire again on the results of E2E patterns, so repeat until nothing is new.
        let mut k = 0;
        loop {
            k = self.run_rule_steps(k).await?;
            let e2e = std::mem::take(&mut self.post.e2e);
            if e2e.is_empty() {
                return Ok(());
            }
            self.run_rule_e2e(e2e).await?;
        }
    }

    /// E2E patterns fired by rules: one server launch per restart group, as the plan would.
    async fn run_rule_e2e(&mut self, ids: Vec<String>) -> Result<(), String> {
        let mut by_group: std::collections::BTreeMap<Option<u32>, Vec<String>> = Default::default();
        for id in ids {
            let g = self.design.pattern(&id).and_then(|p| p.group);
            by_group.entry(g).or_default().push(id);
        }
        for (group, ids) in by_group {
            if self.opts.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let actions: Vec<crate::plan::Action> =
                ids.iter().filter_map(|id| crate::plan::pattern_action(self.model, self.design, id)).collect();
            let Some(first) = actions.first() else { continue };
            let start = crate::plan::Action { kind: Kind::ServerStart, group, ..first.clone() };
            log(&format!("[rule] + start server for {}", ids.join(", ")));
            let started = Instant::now();
            if let Err(e) = self.server_start(&start).await {
                log(&format!("       failed: {e}"));
                let _ = self.stop_servers().await;
                for a in &actions {
                    self.outcome.failed.push((a.id.clone(), format!("its server did not start: {e}")));
                }
                continue;
            }
            self.outcome.launches += 1;
            log(&format!("       done in {:.1}s", started.elapsed().as_secs_f64()));
            for a in &actions {
                log(&format!("[rule] + {}", a.label));
                let started = Instant::now();
                match self.pattern(a, started).await {
                    Ok(_) => {
                        self.outcome.done += 1;
                        log(&format!("       done in {:.1}s", started.elapsed().as_secs_f64()));
                        self.record(a, Status::Done, started, None)?;
                        self.after_result(&a.id).await;
                    }
                    Err(e) => {
                        log(&format!("       failed: {e}"));
                        self.outcome.failed.push((a.id.clone(), e.clone()));
                        self.record(a, Status::Failed, started, Some(e))?;
                    }
                }
            }
            if let Err(e) = self.stop_servers().await {
                log(&format!("       stopping the server failed: {e}"));
            }
        }
        Ok(())
    }

    /// Low-level and analysis patterns fired by rules, from queue position `k`; E2E ones are set aside.
    async fn run_rule_steps(&mut self, mut k: usize) -> Result<usize, String> {
        while k < self.post.queue.len() {
            if self.opts.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let id = self.post.queue[k].clone();
            k += 1;
            let Some(a) = crate::plan::pattern_action(self.model, self.design, &id) else {
                log(&format!("  rule pattern {id} is not in the design"));
                continue;
            };
            if self.design.pattern(&id).is_some_and(|p| p.category == Category::E2e) {
                // E2E patterns need a server: they run together once the steps are done.
                self.post.e2e.push(id);
                continue;
            }
            log(&format!("[rule] + {}", a.label));
            let started = Instant::now();
            let r = match a.kind {
                Kind::Analysis => self.analysis(&a, started),
                _ => match self.start_services(&id).await {
                    Ok(()) => self.step(&a, started).await,
                    Err(e) => Err(e),
                },
            };
            match r {
                Ok(_) => {
                    self.outcome.done += 1;
                    log(&format!("       done in {:.1}s", started.elapsed().as_secs_f64()));
                    self.record(&a, Status::Done, started, None)?;
                    self.after_result(&id).await;
                }
                Err(e) => {
                    log(&format!("       failed: {e}"));
                    self.outcome.failed.push((id.clone(), e.clone()));
                    self.record(&a, Status::Failed, started, Some(e))?;
                }
            }
        }
        Ok(k)
    }

    /// Services a rule pattern's tool needs (etcd for NIXLBench), started if not yet.
    async fn start_services(&mut self, id: &str) -> Result<(), String> {
        let needs = self
            .design
            .pattern(id)
            .and_then(|p| p.tool.as_ref())
            .and_then(|t| self.model.tools.get(t))
            .map(|t| t.needs.clone())
            .unwrap_or_default();
        for s in needs {
            let a = crate::plan::Action::service(&s);
            self.service(&a).await?;
        }
        Ok(())
    }
}
