//! What apply does after each result: log it to MLflow (when a tracking
//! server is configured) and evaluate the experiment's rules. The patterns of
//! rules that fire are queued and run after the plan by the same walk as the
//! plan's actions: low-level steps and analyses first, then E2E patterns with
//! one server launch per restart group, numbered after the plan's launches.

use super::{ApplyError, Exec, Options};
use crate::address::ActionId;
use crate::check::model::RuleDecl;
use crate::design::{Campaign, Category};
use crate::plan::{Action, Kind};
use crate::provider::Provider;
use crate::results::mlflow::{Artifacts, Client, Logged, Target};
use crate::results::rules::{self, Fired};
use crate::results::{ResultRecord, Store};
use std::collections::{BTreeMap, BTreeSet};

/// File beside the results listing the rules that fired, one JSON object a line.
pub const FIRED_LOG: &str = "fired-rules.jsonl";

pub struct Post {
    target: Option<Target>,
    client: Option<Client>,
    /// Set after a failed connection: said once, then results stay local.
    mlflow_down: bool,
    /// Set once apply said that the server keeps artifacts where nixl does not upload.
    artifacts_noted: bool,
    rules: Vec<RuleDecl>,
    fired: BTreeSet<usize>,
    /// Results stored since they were last handed to MLflow and the rules.
    ready: Vec<ActionId>,
    /// Pattern ids fired rules asked for, not yet run.
    queue: Vec<String>,
    /// Results of the experiment this one extends, for `expected(...)` in rules.
    parent: Vec<ResultRecord>,
    /// The scheduled patterns and their current hashes: a rule's figure waits for them.
    scheduled: Vec<rules::Scheduled>,
}

impl Post {
    pub fn new(model: &crate::check::Model, campaign: &Campaign, opts: &Options) -> Post {
        let parent = match (&campaign.design.extends, opts.results_dir.parent()) {
            (Some(p), Some(dir)) => Store::new(&dir.join(p)).all(),
            _ => vec![],
        };
        Post {
            target: opts.mlflow.clone(),
            client: None,
            mlflow_down: false,
            scheduled: if campaign.experiment.rules.is_empty() { vec![] } else { rules::scheduled(model, campaign) },
            artifacts_noted: false,
            rules: campaign.experiment.rules.clone(),
            fired: BTreeSet::new(),
            ready: vec![],
            queue: vec![],
            parent,
        }
    }

    pub fn result_ready(&mut self, id: &ActionId) {
        self.ready.push(id.clone());
    }
}

impl<P: Provider> Exec<'_, P> {
    /// Hands each new result to MLflow, then evaluates the rules once.
    pub(super) async fn process_results(&mut self) {
        let ready = std::mem::take(&mut self.post.ready);
        if ready.is_empty() {
            return;
        }
        for id in ready {
            if let Some(rec) = id.pattern().and_then(|p| self.store.get(p)) {
                self.log_mlflow(&rec).await;
            }
        }
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
                    self.log(&format!("       MLflow: {e}; results stay local (push later with `nixl results --push`)"));
                    self.post.mlflow_down = true;
                    return;
                }
            }
        }
        let Some(c) = &self.post.client else { return };
        let logged = c.log(rec, self.store.raw(rec).as_deref()).await;
        match logged {
            Ok(Logged::Written { run, artifacts }) => {
                self.log(&format!("       logged to MLflow run {run}"));
                if let Artifacts::NotProxied { artifact_uri } = artifacts {
                    if !std::mem::replace(&mut self.post.artifacts_noted, true) {
                        self.log(&format!("       MLflow keeps artifacts at {artifact_uri}: {}", Artifacts::NOT_UPLOADED));
                    }
                }
            }
            Ok(Logged::Existing(_)) => {}
            Err(e) => self.log(&format!("       MLflow: {e} (kept locally)")),
        }
    }

    fn evaluate_rules(&mut self) {
        if self.post.rules.is_empty() {
            return;
        }
        let results = self.store.all();
        let ctx = rules::Ctx {
            design: &self.campaign.design,
            results: &results,
            parent: &self.post.parent,
            scheduled: &self.post.scheduled,
        };
        for f in rules::evaluate(&self.post.rules, &ctx) {
            if !self.post.fired.insert(f.rule) {
                continue;
            }
            let fresh: Vec<String> =
                f.patterns.iter().filter(|id| !self.post.queue.contains(id) && !self.done_with_same_hash(id)).cloned().collect();
            let why = if f.reason.is_empty() { String::new() } else { format!(" because \"{}\"", f.reason) };
            let what =
                if fresh.is_empty() { "its patterns already ran".to_string() } else { format!("adds {}", fresh.join(", ")) };
            self.log(&format!("  rule fired: when {}{why}: {what}", f.condition));
            self.post.queue.extend(fresh.iter().cloned());
            self.note_fired(&Fired { patterns: fresh, ..f });
        }
    }

    fn done_with_same_hash(&self, id: &str) -> bool {
        let Some(p) = self.campaign.design.pattern(id) else { return true };
        self.state.is_done(&ActionId::Pattern(id.into()), &self.resolver.hash(p))
    }

    fn note_fired(&self, f: &Fired) {
        let _ = std::fs::create_dir_all(self.store.dir());
        let line = serde_json::to_string(f).unwrap_or_default() + "\n";
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(self.store.dir().join(FIRED_LOG)) {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Runs what fired rules queued, through the same walk as the plan; results
    /// may fire further rules, so this repeats until nothing new is queued.
    pub(super) async fn run_rule_work(&mut self) -> Result<(), ApplyError> {
        while !self.post.queue.is_empty() && !self.interrupted() {
            let queued = std::mem::take(&mut self.post.queue);
            let mut e2e: BTreeMap<Option<u32>, Vec<Action>> = BTreeMap::new();
            for id in queued {
                let Some(a) = crate::plan::pattern_action(self.model, self.campaign, &id) else {
                    self.log(&format!("  rule pattern {id} is not in the design"));
                    continue;
                };
                let category = self.campaign.design.pattern(&id).map(|p| p.category);
                if category == Some(Category::E2e) {
                    let group = self.campaign.design.pattern(&id).and_then(|p| p.group);
                    e2e.entry(group).or_default().push(a);
                } else {
                    self.log(&format!("  running what a rule added: {id}"));
                    let actions = self.with_services(a);
                    self.walk_all(&actions).await?;
                }
            }
            for (group, patterns) in e2e {
                let actions = self.launch(group, patterns);
                self.walk_all(&actions).await?;
            }
        }
        Ok(())
    }

    async fn walk_all(&mut self, actions: &[Action]) -> Result<(), ApplyError> {
        self.counter.1 += actions.len();
        let all: BTreeSet<usize> = (0..actions.len()).collect();
        self.walk(actions, &all).await
    }

    /// A step with the services its tool needs started first (etcd for NIXLBench).
    fn with_services(&self, step: Action) -> Vec<Action> {
        let tool = self.campaign.design.pattern(step.id.pattern().unwrap_or("")).and_then(|p| p.tool());
        let needs = tool.and_then(|t| self.model.tools.get(t)).map(|t| t.needs.clone()).unwrap_or_default();
        let mut actions: Vec<Action> = needs.iter().map(|s| Action::service(s)).collect();
        let mut step = step;
        step.deps = (0..actions.len()).collect();
        step.needs = step.deps.clone();
        actions.push(step);
        actions
    }

    /// One server launch for a restart group's fired patterns: start, the patterns, stop.
    fn launch(&mut self, group: Option<u32>, patterns: Vec<Action>) -> Vec<Action> {
        self.last_launch += 1;
        let n = self.last_launch;
        let ids: Vec<String> = patterns.iter().map(|a| a.id.to_string()).collect();
        self.log(&format!("  launch {n} for what rules added: {}", ids.join(", ")));
        let key = group.and_then(|g| self.campaign.design.groups.get(g as usize)).map(|k| k.label()).unwrap_or_default();
        let hash = crate::state::content_hash(&key);
        let mut start =
            Action::new(ActionId::ServerStart(n), Kind::ServerStart, format!("start server: {key}"), hash.clone(), 0.0, vec![]);
        start.group = group.into();
        start.launch = n.into();
        let mut actions = vec![start];
        for mut p in patterns {
            p.deps = smallvec::smallvec![actions.len() - 1];
            p.needs = smallvec::smallvec![0];
            p.group = group.into();
            p.launch = n.into();
            actions.push(p);
        }
        let mut stop = Action::new(
            ActionId::ServerStop(n),
            Kind::ServerStop,
            "stop server, verify GPU memory is free".into(),
            hash,
            0.0,
            vec![actions.len() - 1],
        );
        stop.needs = smallvec::smallvec![0];
        stop.group = group.into();
        stop.launch = n.into();
        actions.push(stop);
        actions
    }
}
