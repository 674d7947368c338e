//! Stage 5: the executor. Walks the plan's actions through a provider,
//! records each outcome in the state the moment it ends, keeps every result,
//! and stops cleanly on Ctrl-C. The same code drives AWS and the local machine.

mod post;
pub mod progress;
pub mod render;

use crate::check::value::Value;
use crate::check::Model;
use crate::design::{Design, Resolver};
use crate::plan::{Action, Change, Kind, Plan};
use crate::provider::{CommandOutput, NodeInfo, Provider, StackInfo};
use crate::results::{ResultRecord, Store};
use crate::state::{ActionRecord, Resource, State, Status};
use render::RenderVars;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub state_path: PathBuf,
    pub results_dir: PathBuf,
    /// The directory of the .nixl file (stand-in scripts live beside it).
    pub here: PathBuf,
    /// Only these actions (ids, layer names, `group:N`) and what they need.
    pub targets: Vec<String>,
    /// Run these again even if done.
    pub replace: Vec<String>,
    /// Set by Ctrl-C: finish the current action, record it, stop.
    pub interrupted: Arc<AtomicBool>,
    /// Where each result is logged as it arrives; None keeps results local.
    pub mlflow: Option<crate::results::mlflow::Target>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: usize,
    pub skipped: usize,
    pub failed: Vec<(String, String)>,
    pub launches: usize,
    pub interrupted: bool,
}

struct Exec<'a, P: Provider> {
    provider: &'a P,
    model: &'a Model,
    design: &'a Design,
    resolver: Resolver,
    state: State,
    opts: &'a Options,
    store: Store,
    nodes: Vec<NodeInfo>,
    stack_info: Option<StackInfo>,
    render: RenderVars,
    failed: BTreeSet<usize>,
    outcome: Outcome,
    kv: Option<f64>,
    post: post::Post,
}

fn log(msg: &str) {
    progress::log(msg);
}

/// Runs the plan. The state is saved after every action.
pub async fn run<P: Provider>(
    provider: &P,
    model: &Model,
    design: &Design,
    plan: &Plan,
    state: State,
    opts: &Options,
) -> Result<Outcome, String> {
    let store = Store::new(&opts.results_dir);
    let mut ex = Exec {
        provider,
        model,
        design,
        resolver: Resolver::new(model, design),
        state,
        opts,
        store,
        nodes: vec![],
        stack_info: None,
        render: RenderVars::new(&[], &opts.here.display().to_string()).with_model(design.model.as_ref()),
        failed: BTreeSet::new(),
        outcome: Outcome::default(),
        kv: design.model.as_ref().map(|m| m.kv_bytes_per_token() as f64),
        post: post::Post::new(model, design, opts),
    };
    let wanted = selection(plan, &opts.targets, &opts.replace);
    let actions = &plan.actions;
    let to_run: Vec<&Action> = wanted.iter().map(|&i| &actions[i]).filter(|a| runs(a, &opts.replace)).collect();
    let total = to_run.len();
    progress::begin(plan, &to_run);
    let mut n = 0;
    let mut server_up: Option<u32> = None;
    // Setup actions already run as part of a batch across nodes.
    let mut handled: BTreeSet<usize> = BTreeSet::new();
    let mut i = 0;
    while i < actions.len() {
        if opts.interrupted.load(Ordering::SeqCst) {
            ex.outcome.interrupted = true;
            log("Interrupted: finished actions are recorded; run apply again to resume.");
            break;
        }
        let a = &actions[i];
        if handled.contains(&i) {
            i += 1;
            continue;
        }
        if !wanted.contains(&i) || !runs(a, &opts.replace) {
            // Infrastructure already in the state is still needed to reach the nodes.
            if matches!(a.kind, Kind::Stack | Kind::Nodes) && wanted.iter().any(|&j| runs(&actions[j], &opts.replace)) {
                ex.restore_infra(a);
            }
            i += 1;
            continue;
        }
        if let Some(d) = a.needs.iter().find(|d| ex.failed.contains(d)) {
            ex.failed.insert(i);
            ex.outcome.skipped += 1;
            log(&format!("  skip {}: it needs {}, which failed", a.id, actions[*d].id));
            i += 1;
            continue;
        }
        // Setup steps of the same id run on every node at once.
        if a.kind == Kind::Setup {
            let step_id = a.id.rsplit('.').next().unwrap_or("").to_string();
            let batch: Vec<usize> = (i..actions.len())
                .filter(|&j| {
                    actions[j].kind == Kind::Setup && actions[j].id.ends_with(&format!(".{step_id}")) && wanted.contains(&j)
                })
                .filter(|&j| runs(&actions[j], &opts.replace) && !actions[j].needs.iter().any(|d| ex.failed.contains(d)))
                .collect();
            n += batch.len();
            log(&format!(
                "[{n}/{total}] setup {step_id} on {}",
                batch.iter().map(|&j| actions[j].node.clone().unwrap_or_default()).collect::<Vec<_>>().join(", ")
            ));
            ex.setup_batch(&batch, actions).await;
            handled.extend(batch.iter().copied());
            // Steps of other ids on these nodes come later in the list; continue with the next unrun action.
            i += 1;
            continue;
        }
        n += 1;
        progress::starting(plan, a);
        if a.kind == Kind::Pattern {
            log(&format!("[{n}/{total}] {} {}  ({})", symbol(a), a.label, progress::position()));
        } else {
            log(&format!("[{n}/{total}] {} {}", symbol(a), a.label));
        }
        let started = Instant::now();
        let result = match a.kind {
            Kind::Stack => ex.stack(a).await,
            Kind::Nodes => ex.ensure_nodes(a).await,
            Kind::Upload => Ok(None),
            Kind::Service => ex.service(a).await,
            Kind::ServerStart => {
                let r = ex.server_start(a).await;
                if r.is_ok() {
                    server_up = a.group;
                    ex.outcome.launches += 1;
                }
                r
            }
            Kind::ServerStop => {
                server_up = None;
                ex.server_stop(a).await
            }
            Kind::Pattern => ex.pattern(a, started).await,
            Kind::Step => ex.step(a, started).await,
            Kind::Analysis => ex.analysis(a, started),
            Kind::Teardown | Kind::Setup => Ok(None),
        };
        progress::finished(a);
        match result {
            Ok(_) => {
                ex.outcome.done += 1;
                log(&format!("       done in {:.1}s", started.elapsed().as_secs_f64()));
                if !matches!(a.kind, Kind::ServerStart | Kind::ServerStop | Kind::Service | Kind::Upload) {
                    ex.record(a, Status::Done, started, None)?;
                }
                if matches!(a.kind, Kind::Pattern | Kind::Step | Kind::Analysis) {
                    ex.after_result(&a.id).await;
                }
            }
            Err(e) => {
                log(&format!("       failed: {e}"));
                ex.failed.insert(i);
                ex.outcome.failed.push((a.id.clone(), e.clone()));
                if !matches!(a.kind, Kind::ServerStart | Kind::ServerStop | Kind::Service | Kind::Upload) {
                    ex.record(a, Status::Failed, started, Some(e))?;
                }
                // A server that did not come up fails its group's patterns; stop it anyway.
                if a.kind == Kind::ServerStart {
                    let _ = ex.stop_servers().await;
                }
            }
        }
        i += 1;
    }
    if server_up.is_some() {
        let _ = ex.stop_servers().await;
    }
    ex.run_rule_patterns().await?;
    progress::end();
    Ok(ex.outcome)
}

fn symbol(a: &Action) -> &'static str {
    match a.change {
        Change::Replace => "-/+",
        _ => "+",
    }
}

/// Whether an action has work to do (or was asked to run again).
fn runs(a: &Action, replace: &[String]) -> bool {
    a.change != Change::NoOp && a.change != Change::Delete || replace.iter().any(|r| r == &a.id || a.layer.as_deref() == Some(r))
}

/// Indices of the actions to consider: all, or the targets and everything they depend on.
fn selection(plan: &Plan, targets: &[String], replace: &[String]) -> BTreeSet<usize> {
    let actions = &plan.actions;
    let chosen: Vec<usize> = if targets.is_empty() {
        (0..actions.len()).collect()
    } else {
        (0..actions.len())
            .filter(|&i| {
                let a = &actions[i];
                targets.iter().chain(replace.iter()).any(|t| {
                    &a.id == t
                        || a.layer.as_deref() == Some(t)
                        || t.strip_prefix("group:")
                            .and_then(|g| g.parse::<u32>().ok())
                            .is_some_and(|g| a.group == Some(g.saturating_sub(1)))
                })
            })
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut stack = chosen;
    while let Some(i) = stack.pop() {
        if out.insert(i) {
            stack.extend(actions[i].deps.iter().copied());
            // A pattern needs its group's server started before and stopped after.
            if actions[i].kind == Kind::Pattern {
                if let Some(stop) = (i..actions.len()).find(|&j| actions[j].kind == Kind::ServerStop) {
                    stack.push(stop);
                }
            }
        }
    }
    out
}

impl<P: Provider> Exec<'_, P> {
    fn record(&mut self, a: &Action, status: Status, started: Instant, error: Option<String>) -> Result<(), String> {
        self.state.actions.insert(
            a.id.clone(),
            ActionRecord {
                hash: a.hash.clone(),
                status,
                finished_at: Some(crate::state::lock::now_rfc3339()),
                seconds: Some(started.elapsed().as_secs_f64()),
                error,
            },
        );
        self.state.save(&self.opts.state_path).map_err(|e| e.to_string())
    }

    fn stack_model(&self) -> Result<&crate::check::model::Stack, String> {
        let exp = self.model.experiments.iter().find(|e| e.name == self.design.experiment);
        let name = exp.and_then(|e| e.stack.clone());
        match name {
            Some(n) => self.model.stacks.iter().find(|s| s.name == n),
            None => self.model.stacks.first(),
        }
        .ok_or_else(|| "the experiment has no stack to run on".to_string())
    }

    /// Reads stack and node details recorded by an earlier apply.
    fn restore_infra(&mut self, a: &Action) {
        if a.kind == Kind::Stack && self.stack_info.is_none() {
            if let Some(r) = self.state.resources.get("stack") {
                let info =
                    StackInfo { id: r.id.clone(), bucket: r.attributes.get("bucket").cloned(), outputs: r.attributes.clone() };
                self.provider.attach(&info);
                self.stack_info = Some(info);
            }
        }
        if a.kind == Kind::Nodes && self.nodes.is_empty() {
            let mut nodes: Vec<NodeInfo> = self
                .state
                .resources
                .iter()
                .filter(|(k, _)| k.starts_with("node."))
                .map(|(k, r)| NodeInfo {
                    name: k.trim_start_matches("node.").to_string(),
                    id: r.id.clone(),
                    private_ip: r.attributes.get("private_ip").cloned().unwrap_or_default(),
                    zone: r.attributes.get("zone").cloned(),
                    instance_type: r.attributes.get("instance_type").cloned(),
                })
                .collect();
            if let Ok(st) = self.stack_model() {
                let order: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
                nodes.sort_by_key(|n| order.iter().position(|o| *o == n.name).unwrap_or(usize::MAX));
            }
            self.set_nodes(nodes);
        }
    }

    fn set_nodes(&mut self, nodes: Vec<NodeInfo>) {
        self.render = RenderVars::new(&nodes, &self.opts.here.display().to_string()).with_model(self.design.model.as_ref());
        self.nodes = nodes;
    }

    async fn stack(&mut self, a: &Action) -> Result<Option<()>, String> {
        let st = self.stack_model()?.clone();
        let info = self.provider.ensure_stack(&st).await.map_err(|e| e.to_string())?;
        let mut attrs = info.outputs.clone();
        if let Some(b) = &info.bucket {
            attrs.insert("bucket".into(), b.clone());
        }
        self.state.resources.insert(
            "stack".into(),
            Resource { kind: "stack".into(), id: info.id.clone(), hash: a.hash.clone(), attributes: attrs },
        );
        self.stack_info = Some(info);
        Ok(None)
    }

    async fn ensure_nodes(&mut self, a: &Action) -> Result<Option<()>, String> {
        let st = self.stack_model()?.clone();
        if self.stack_info.is_none() {
            self.restore_infra(&Action { kind: Kind::Stack, ..a.clone() });
        }
        let info = self.stack_info.clone().unwrap_or_default();
        let existing: Vec<NodeInfo> = self.nodes.clone();
        let nodes = self.provider.ensure_nodes(&st, &info, &existing).await.map_err(|e| e.to_string())?;
        for n in &nodes {
            let mut attrs = BTreeMap::new();
            attrs.insert("private_ip".into(), n.private_ip.clone());
            if let Some(z) = &n.zone {
                attrs.insert("zone".into(), z.clone());
            }
            if let Some(t) = &n.instance_type {
                attrs.insert("instance_type".into(), t.clone());
            }
            self.state.resources.insert(
                format!("node.{}", n.name),
                Resource { kind: "node".into(), id: n.id.clone(), hash: a.hash.clone(), attributes: attrs },
            );
        }
        self.set_nodes(nodes);
        Ok(None)
    }

    fn node(&self, name: &str) -> Result<NodeInfo, String> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .ok_or_else(|| format!("node `{name}` is not known; run apply without --target first"))
    }

    fn first_node(&self, k: usize) -> Result<NodeInfo, String> {
        self.nodes.get(k).cloned().ok_or_else(|| format!("the stack needs at least {} nodes", k + 1))
    }

    async fn setup_batch(&mut self, batch: &[usize], actions: &[Action]) {
        let Some(&first) = batch.first() else { return };
        let step_id = actions[first].id.rsplit('.').next().unwrap_or("").to_string();
        let step = self
            .stack_model()
            .ok()
            .and_then(|st| st.setup.clone())
            .and_then(|s| self.model.setups.iter().find(|x| x.name == s))
            .and_then(|s| s.steps.iter().find(|x| x.id == step_id))
            .cloned();
        let Some(step) = step else { return };
        let script = render::setup_script(&step);
        let _ = self.provider.put_object(&format!("scripts/{}.sh", crate::state::content_hash(&script)), script.as_bytes()).await;
        let nodes: Vec<NodeInfo> =
            batch.iter().filter_map(|&j| actions[j].node.as_ref().and_then(|n| self.node(n).ok())).collect();
        let started = Instant::now();
        let result = self.provider.run(&nodes, &script, Duration::from_secs_f64(step.timeout.max(1.0))).await;
        for (k, &j) in batch.iter().enumerate() {
            let a = &actions[j];
            let outcome: Result<bool, String> = match &result {
                Ok(outs) => match outs.get(k) {
                    Some(o) if o.exit_code == 0 => Ok(o.stdout.contains("NIXL_SKIPPED")),
                    Some(o) => Err(format!("exit code {} on {}:\n{}", o.exit_code, o.node, indent(&o.tail(20)))),
                    None => Err("no output from the node".into()),
                },
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(skipped) => {
                    if skipped {
                        log(&format!("       {}: skipped (condition holds)", a.node.clone().unwrap_or_default()));
                    }
                    self.outcome.done += 1;
                    let _ = self.record(a, Status::Done, started, None);
                }
                Err(e) => {
                    log(&format!("       {}: failed: {e}", a.node.clone().unwrap_or_default()));
                    self.failed.insert(j);
                    self.outcome.failed.push((a.id.clone(), e.clone()));
                    let _ = self.record(a, Status::Failed, started, Some(e));
                }
            }
        }
    }

    fn templates(&self, which: &str) -> Option<&BTreeMap<String, crate::syntax::ast::Expr>> {
        let exp = self.model.experiments.iter().find(|e| e.name == self.design.experiment)?;
        let def = match which {
            "server" => self.merged_def(exp, true),
            _ => self.merged_def(exp, false),
        }?;
        self.model.templates.get(&def)
    }

    /// The server or bench definition of the experiment or the one it extends.
    fn merged_def(&self, exp: &crate::check::model::Experiment, server: bool) -> Option<String> {
        let mut cur = Some(exp);
        while let Some(e) = cur {
            let d = if server { &e.server_def } else { &e.bench_def };
            if d.is_some() {
                return d.clone();
            }
            cur = e.extends.as_ref().and_then(|p| self.model.experiments.iter().find(|x| &x.name == p));
        }
        None
    }

    /// The settings of the first pattern of a group, for rendering server commands.
    fn group_settings(&self, group: Option<u32>) -> BTreeMap<String, Value> {
        self.design.patterns.iter().find(|p| p.group == group).map(|p| self.resolver.settings(p)).unwrap_or_default()
    }

    async fn run_on(&self, node: &NodeInfo, script: &str, timeout: Duration) -> Result<CommandOutput, String> {
        let mut outs = self.provider.run(std::slice::from_ref(node), script, timeout).await.map_err(|e| e.to_string())?;
        let o = outs.pop().ok_or("no output from the node")?;
        if o.exit_code != 0 {
            return Err(format!("exit code {} on {}:\n{}", o.exit_code, o.node, indent(&o.tail(20))));
        }
        Ok(o)
    }

    async fn server_start(&mut self, a: &Action) -> Result<Option<()>, String> {
        let settings = self.group_settings(a.group);
        let t = self
            .templates("server")
            .cloned()
            .ok_or("the experiment's server has no start commands (start_unified, start_prefill, ...)")?;
        let scope = render::scope(&settings, self.model, &self.render.vars);
        let get =
            |k: &str| -> Result<Option<String>, String> { t.get(k).map(|e| render::template(e, &scope, self.kv)).transpose() };
        let disaggregated = settings.get("mode").and_then(Value::as_str) == Some("disaggregated");
        let n1 = self.first_node(0)?;
        let short = Duration::from_secs(120);
        if disaggregated {
            let n2 = self.first_node(1)?;
            let decode = get("start_decode")?.ok_or("the server has no `start_decode` command")?;
            let prefill = get("start_prefill")?.ok_or("the server has no `start_prefill` command")?;
            self.run_on(&n2, &decode, short).await?;
            self.run_on(&n1, &prefill, short).await?;
            if let Some(proxy) = get("start_proxy")? {
                self.run_on(&n1, &proxy, short).await?;
            }
        } else {
            let cmd = get("start_unified")?.ok_or("the server has no `start_unified` command")?;
            self.run_on(&n1, &cmd, short).await?;
        }
        // Wait for health, up to the server's timeout.
        let health = get("health")?.ok_or("the server has no `health` command")?;
        let limit = settings.get("health_timeout").and_then(Value::as_f64).unwrap_or(600.0);
        let started = Instant::now();
        loop {
            let ok = self
                .provider
                .run(std::slice::from_ref(&n1), &health, Duration::from_secs(30))
                .await
                .map(|o| o.first().is_some_and(|x| x.exit_code == 0));
            if ok == Ok(true) {
                return Ok(None);
            }
            if started.elapsed().as_secs_f64() > limit {
                return Err(format!("the server was not healthy after {limit:.0}s (health_timeout)"));
            }
            if self.opts.interrupted.load(Ordering::SeqCst) {
                return Err("interrupted while waiting for the server".into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn stop_servers(&mut self) -> Result<(), String> {
        let t = self.templates("server").cloned().unwrap_or_default();
        let Some(stop) = t.get("stop") else { return Ok(()) };
        let scope = render::scope(&BTreeMap::new(), self.model, &self.render.vars);
        let script = render::template(stop, &scope, self.kv)?;
        let outs = self.provider.run(&self.nodes, &script, Duration::from_secs(180)).await.map_err(|e| e.to_string())?;
        match outs.iter().find(|o| o.exit_code != 0) {
            Some(o) => Err(format!("stop failed on {}:\n{}", o.node, indent(&o.tail(10)))),
            None => Ok(()),
        }
    }

    async fn server_stop(&mut self, _a: &Action) -> Result<Option<()>, String> {
        self.stop_servers().await.map(|_| None)
    }

    async fn service(&mut self, a: &Action) -> Result<Option<()>, String> {
        let name = a.id.trim_start_matches("service.");
        let s = self.model.services.get(name).ok_or_else(|| format!("no service `{name}`"))?.clone();
        let n1 = self.first_node(0)?;
        self.run_on(&n1, &s.run.join("\n"), Duration::from_secs(300)).await?;
        if let Some(h) = &s.health {
            let started = Instant::now();
            while self.run_on(&n1, h, Duration::from_secs(30)).await.is_err() {
                if started.elapsed() > Duration::from_secs(120) {
                    return Err(format!("service `{name}` did not become healthy in 120s"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(None)
    }

    fn out_path(&self, a: &Action) -> String {
        format!("results/{}.{}.out", a.id, &a.hash[..8.min(a.hash.len())])
    }

    async fn pattern(&mut self, a: &Action, started: Instant) -> Result<Option<()>, String> {
        let p = self.design.pattern(&a.id).ok_or("pattern missing from the design")?.clone();
        let settings = self.resolver.settings(&p);
        let t = self.templates("bench").cloned().ok_or("the experiment's bench has no `run` command")?;
        let run = t.get("run").ok_or("the experiment's bench has no `run` command")?;
        let out = self.out_path(a);
        let vars = self.render.with(&[("out", Value::Str(out.clone())), ("id", Value::Str(a.id.clone()))]);
        let scope = render::scope(&settings, self.model, &vars);
        let script = format!("mkdir -p results\n{}", render::template(run, &scope, self.kv)?);
        let n1 = self.first_node(0)?;
        let timeout = Duration::from_secs_f64((p.duration * 3.0).max(60.0));
        self.run_on(&n1, &script, timeout).await?;
        let raw = self.provider.fetch(&n1, &out).await.map_err(|e| e.to_string())?;
        let (metrics, samples) =
            crate::results::parse_vllm_bench(&raw).ok_or_else(|| format!("the benchmark wrote no vLLM result JSON to {out}"))?;
        self.save(a, &settings, metrics, samples, &raw, started)
    }

    pub(crate) async fn step(&mut self, a: &Action, started: Instant) -> Result<Option<()>, String> {
        let p = self.design.pattern(&a.id).ok_or("step missing from the design")?.clone();
        let tool = self.model.tools.get(p.tool.as_deref().unwrap_or("")).ok_or("unknown tool")?.clone();
        let out = self.out_path(a);
        let n1 = self.first_node(0)?;
        let vars = self.render.with(&[
            ("out", Value::Str(out.clone())),
            ("self_ip", Value::Str(n1.private_ip.clone())),
            ("node", Value::Str(n1.name.clone())),
        ]);
        let cmds = render::tool_commands(&tool, &p.values, &vars, self.kv)?;
        let timeout = Duration::from_secs_f64((tool.duration * 3.0).max(60.0));
        let get = |role: &str| cmds.iter().find(|(r, _)| r == role).map(|(_, c)| format!("mkdir -p results\n{c}"));
        let reader = if tool.nodes >= 2 {
            let n2 = self.first_node(1)?;
            let server = get("server").ok_or("two-node tool without a server command")?;
            let client = get("client").ok_or("two-node tool without a client command")?;
            let (s, c) = tokio::join!(self.run_on(&n1, &server, timeout), self.run_on(&n2, &client, timeout));
            c?;
            s?;
            n2
        } else {
            let run = get("run").ok_or("tool without a run command")?;
            self.run_on(&n1, &run, timeout).await?;
            n1
        };
        let raw = self.provider.fetch(&reader, &out).await.unwrap_or_default();
        let metrics = crate::results::parse_tool_output(&raw);
        let settings = self.resolver.settings(&p);
        self.save(a, &settings, metrics, BTreeMap::new(), &raw, started)
    }

    fn analysis(&mut self, a: &Action, started: Instant) -> Result<Option<()>, String> {
        let exp = crate::design::merge::merged(self.model, &self.design.experiment, &mut vec![]).ok_or("experiment missing")?;
        let p = self.design.pattern(&a.id).ok_or("analysis missing from the design")?.clone();
        let layer = &exp.layers[p.layer as usize];
        let decl = layer.analyses.iter().find(|x| a.id.ends_with(&x.name)).ok_or("analysis declaration missing")?;
        let scope = crate::design::expand_base_scope(self.model, &exp);
        let method =
            crate::check::value::Eval { scope: &scope, kv_bytes_per_token: None }.eval(&decl.method).map_err(|d| d.message)?;
        let results = self.store.all();
        let metrics = crate::results::analysis::run(&method, &p.inputs, &results).map_err(|e| e.to_string())?;
        let raw = serde_json::to_vec_pretty(&metrics).unwrap_or_default();
        let settings = self.resolver.settings(&p);
        self.save(a, &settings, metrics, BTreeMap::new(), &raw, started)
    }

    fn save(
        &mut self,
        a: &Action,
        settings: &BTreeMap<String, Value>,
        metrics: BTreeMap<String, f64>,
        samples: BTreeMap<String, Vec<f64>>,
        raw: &[u8],
        started: Instant,
    ) -> Result<Option<()>, String> {
        let settings_json = settings
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Ref { .. }))
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.display().trim_matches('"').to_string())))
            .collect();
        let rec = ResultRecord {
            id: a.id.clone(),
            hash: a.hash.clone(),
            layer: a.layer.clone().unwrap_or_default(),
            kind: format!("{:?}", a.kind).to_lowercase(),
            finished_at: crate::state::lock::now_rfc3339(),
            seconds: started.elapsed().as_secs_f64(),
            settings: settings_json,
            metrics,
            samples,
            raw: format!("{}.raw.{}", a.id, &a.hash[..8.min(a.hash.len())]),
        };
        self.store.save(&rec, raw).map_err(|e| format!("cannot store the result: {e}"))?;
        Ok(None)
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("         | {l}")).collect::<Vec<_>>().join("\n")
}
