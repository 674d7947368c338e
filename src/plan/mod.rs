//! Stage 4: the action graph (petgraph) of everything apply does, ordered for
//! the fewest server launches, estimated, and diffed against the state.
//! The plan is plain data: rendered as text, JSON or DOT, or saved and applied later.

pub mod order;
pub mod render;

use crate::check::Model;
use crate::design::{Category, Design};
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::state::{content_hash, State, Status};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the plan JSON (`--json`, `--out`); see docs/plan-json.md.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Stack,
    Nodes,
    Upload,
    Setup,
    Service,
    ServerStart,
    Pattern,
    ServerStop,
    Step,
    Analysis,
    Teardown,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// `+`: does not exist or has not run.
    Create,
    /// `~`: exists; changed in place.
    Update,
    /// `-/+`: ran with other settings; runs again.
    Replace,
    /// `-`: in the state but no longer declared.
    Delete,
    /// Already done with the same content hash.
    NoOp,
}

impl Change {
    pub fn symbol(self) -> &'static str {
        match self {
            Change::Create => "+",
            Change::Update => "~",
            Change::Replace => "-/+",
            Change::Delete => "-",
            Change::NoOp => " ",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub id: String,
    pub kind: Kind,
    pub label: String,
    /// Content hash of what the action does.
    pub hash: String,
    /// Estimated seconds.
    pub duration: f64,
    /// Indices of actions that must finish first (order and resources).
    pub deps: Vec<usize>,
    /// The subset of `deps` whose failure makes this action pointless (a pattern needs its
    /// server, not the pattern before it).
    #[serde(default)]
    pub needs: Vec<usize>,
    pub change: Change,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// One-line description of the pattern's factors or the step's tool.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupSummary {
    pub group: u32,
    pub key: String,
    pub patterns: usize,
    pub startup: f64,
    pub measure: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    /// Wall time: the critical path of the graph, in seconds.
    pub wall_seconds: f64,
    pub node_hours: f64,
    pub price_per_node_hour: f64,
    pub cost_usd: f64,
    pub nodes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_estimate_seconds: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub run: usize,
    pub destroy: usize,
    pub setup_steps: usize,
    pub unchanged: usize,
    pub launches: usize,
    pub min_launches: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.add + self.change + self.run + self.destroy + self.setup_steps > 0
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format: u32,
    pub experiment: String,
    pub extends: Option<String>,
    /// The file the plan was made from, as given on the command line.
    #[serde(default)]
    pub source: String,
    /// Hash of every source file the plan was made from.
    pub source_hash: String,
    /// The state serial the plan was diffed against.
    pub state_serial: u64,
    pub state_hash: String,
    pub stack: Option<String>,
    pub actions: Vec<Action>,
    pub groups: Vec<GroupSummary>,
    pub estimate: Estimate,
    pub summary: Summary,
    /// Patterns kept for rules or the user, not scheduled.
    pub adhoc: Vec<String>,
    pub notes: Vec<String>,
}

const STACK_SECONDS: f64 = 240.0;
const NODES_SECONDS: f64 = 180.0;
const SETUP_STEP_SECONDS: f64 = 20.0;
const UPLOAD_SECONDS: f64 = 10.0;
const SERVICE_SECONDS: f64 = 30.0;
const STOP_SECONDS: f64 = 30.0;

/// Builds the plan of an experiment against a state.
pub fn build(model: &Model, design: &Design, state: &State, source_hash: &str, diags: &mut Vec<Diagnostic>) -> Plan {
    let exp = model.experiments.iter().find(|e| e.name == design.experiment);
    let stack = match exp.and_then(|e| e.stack.clone()) {
        Some(s) => model.stacks.iter().find(|st| st.name == s),
        None => model.stacks.first(),
    };
    let resolver = crate::design::Resolver::new(model, design);
    let mut b = Builder { actions: vec![], index: BTreeMap::new(), resolver: &resolver };

    // Infrastructure and setup.
    let mut node_ready: Vec<usize> = vec![];
    if let Some(st) = stack {
        let stack_i = b.push(Action::new(
            "stack",
            Kind::Stack,
            format!("stack \"{}\"", st.name),
            content_hash(&(&st.name, &st.region, &st.placement, &st.buckets, &st.ssh_cidr)),
            STACK_SECONDS,
            vec![],
        ));
        b.actions[stack_i].detail =
            format!("CloudFormation: security group, IAM role, bucket, {} placement group in {}", st.placement, st.region);
        let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        let nodes_i = b.push(Action::new(
            "nodes",
            Kind::Nodes,
            format!("nodes {}", names.join(", ")),
            content_hash(&(&st.instance_types, &st.zones, &names, st.volume as u64, &st.ami, &st.ami_parameter, st.efa)),
            NODES_SECONDS,
            vec![stack_i],
        ));
        b.actions[nodes_i].detail =
            format!("{} x {} in {}", names.len(), st.instance_types.join(" or "), st.zones.join(", then "));
        let upload_i = b.push(Action::new(
            "upload",
            Kind::Upload,
            "upload scripts".into(),
            content_hash(&design.experiment),
            UPLOAD_SECONDS,
            vec![stack_i],
        ));
        let setup = st.setup.as_ref().and_then(|s| model.setups.iter().find(|x| &x.name == s));
        for n in &st.nodes {
            let mut prev = nodes_i;
            if let Some(setup) = setup {
                for step in setup.steps.iter().filter(|s| s.nodes.is_empty() || s.nodes.contains(&n.name)) {
                    let id = format!("setup.{}.{}", n.name, step.id);
                    let hash = content_hash(&(&step.run, &step.skip_if, &step.env));
                    let mut a =
                        Action::new(&id, Kind::Setup, format!("{} on {}", step.id, n.name), hash, SETUP_STEP_SECONDS, vec![prev]);
                    a.node = Some(n.name.clone());
                    a.detail = step.name.clone();
                    prev = b.push(a);
                }
            }
            node_ready.push(prev);
        }
        node_ready.push(upload_i);
    }

    // Everything on the nodes runs one at a time: baseline, groups, low level.
    let mut tail: Vec<usize> = node_ready.clone();
    let mut pattern_action: BTreeMap<usize, usize> = BTreeMap::new();
    // Ad-hoc steps that a rule (or the user) already ran stay in the plan, not "forgotten".
    let ran = |i: usize| state.actions.get(&design.patterns[i].id).is_some_and(|r| r.status == Status::Done);
    let step_patterns = |cat: Category| -> Vec<usize> {
        (0..design.patterns.len())
            .filter(|&i| design.patterns[i].category == cat && (!design.patterns[i].adhoc || ran(i)))
            .collect()
    };
    for i in step_patterns(Category::Baseline) {
        let a = b.pattern_action(design, i, tail.clone());
        b.actions[a].needs = node_ready.clone();
        pattern_action.insert(i, a);
        tail = vec![a];
    }
    let sched = match exp.and_then(|e| e.order.as_ref()) {
        Some(order) => {
            let items = order_items(order);
            let s = order::pinned(design, &items);
            if s.launches > s.min_launches {
                diags.push(
                    Diagnostic::error(
                        Code::OrderCost,
                        order.span,
                        format!(
                            "this order needs {} server launches, {} more than the minimum of {}",
                            s.launches,
                            s.launches - s.min_launches,
                            s.min_launches
                        ),
                    )
                    .help("remove `order` to let nixl group patterns by restart key"),
                );
            }
            s
        }
        None => order::schedule(design),
    };
    let mut groups: Vec<GroupSummary> = vec![];
    let mut k = 0;
    while k < sched.patterns.len() {
        let g = design.patterns[sched.patterns[k]].group.unwrap_or(0);
        let mut end = k;
        while end < sched.patterns.len() && design.patterns[sched.patterns[end]].group == Some(g) {
            end += 1;
        }
        let seg = &sched.patterns[k..end];
        let n = groups.len();
        let startup = design.startup.get(g as usize).copied().unwrap_or(600.0);
        let key = design.groups[g as usize].label();
        let start = b.push(Action::new(
            &format!("server.{}.start", n + 1),
            Kind::ServerStart,
            format!("start server: {key}"),
            content_hash(&key),
            startup,
            tail.clone(),
        ));
        b.actions[start].group = Some(g);
        // A launch needs the nodes and the previous launch stopped, not the steps before it.
        let mut needs = node_ready.clone();
        needs.extend(tail.iter().copied().filter(|&t| b.actions[t].kind == Kind::ServerStop));
        b.actions[start].needs = needs;
        let mut prev = start;
        let mut measure = 0.0;
        for &i in seg {
            let a = b.pattern_action(design, i, vec![prev]);
            b.actions[a].group = Some(g);
            b.actions[a].needs = vec![start];
            pattern_action.insert(i, a);
            measure += design.patterns[i].duration;
            prev = a;
        }
        let stop = b.push(Action::new(
            &format!("server.{}.stop", n + 1),
            Kind::ServerStop,
            "stop server, verify GPU memory is free".into(),
            content_hash(&key),
            STOP_SECONDS,
            vec![prev],
        ));
        b.actions[stop].group = Some(g);
        b.actions[stop].needs = vec![start];
        tail = vec![stop];
        groups.push(GroupSummary { group: g, key, patterns: seg.len(), startup, measure });
        k = end;
    }
    let mut services: BTreeMap<String, usize> = BTreeMap::new();
    for i in step_patterns(Category::LowLevel) {
        let mut deps = tail.clone();
        let mut needs = node_ready.clone();
        if let Some(t) = design.patterns[i].tool.as_ref().and_then(|t| model.tools.get(t)) {
            for s in &t.needs {
                let si = *services.entry(s.clone()).or_insert_with(|| {
                    let id = format!("service.{s}");
                    let hash = model.services.get(s).map(|x| content_hash(&x.run)).unwrap_or_default();
                    b.push(Action::new(
                        &id,
                        Kind::Service,
                        format!("start service {s}"),
                        hash,
                        SERVICE_SECONDS,
                        node_ready.clone(),
                    ))
                });
                deps.push(si);
                needs.push(si);
            }
        }
        let a = b.pattern_action(design, i, deps);
        b.actions[a].needs = needs;
        pattern_action.insert(i, a);
        tail = vec![a];
    }
    // Analyses run locally as soon as the patterns they read are done.
    for i in step_patterns(Category::Analysis) {
        let p = &design.patterns[i];
        let deps: Vec<usize> = pattern_action
            .iter()
            .filter(|(&pi, _)| p.inputs.iter().any(|l| design.layers[design.patterns[pi].layer as usize].name == *l))
            .map(|(_, &a)| a)
            .collect();
        let a = b.pattern_action(design, i, deps);
        // An analysis reads whatever results exist; a failed input does not stop it.
        b.actions[a].needs = vec![];
        pattern_action.insert(i, a);
    }

    // The graph must be acyclic; report the actions of any cycle.
    let graph = to_graph(&b.actions);
    if let Err(cycle) = petgraph::algo::toposort(&graph, None) {
        let a = &b.actions[cycle.node_id().index()];
        diags.push(
            Diagnostic::error(Code::Cycle, Span::default(), format!("dependency cycle through `{}`", a.id))
                .help("an action cannot depend on itself through others"),
        );
    }

    // Diff against the state.
    let mut summary = Summary::default();
    for a in &mut b.actions {
        a.change = match a.kind {
            Kind::ServerStart | Kind::ServerStop | Kind::Upload | Kind::Service => Change::Create,
            _ => match state.actions.get(&a.id) {
                Some(r) if r.status == Status::Done && r.hash == a.hash => Change::NoOp,
                Some(r) if r.status == Status::Done => {
                    if matches!(a.kind, Kind::Stack | Kind::Nodes) {
                        Change::Update
                    } else {
                        Change::Replace
                    }
                }
                _ => Change::Create,
            },
        };
    }
    // A stack update says what its change set will touch, from what the last apply recorded.
    if let (Some(st), Some(r)) = (stack, state.resources.get("stack")) {
        let recorded = r.attributes.keys().any(|k| k.starts_with(crate::provider::aws::template::RESOURCE_HASH_PREFIX));
        if let Some(a) = b.actions.iter_mut().find(|a| a.kind == Kind::Stack && a.change == Change::Update) {
            let changes = crate::provider::aws::template::changes(st, &r.attributes);
            if recorded && !changes.is_empty() {
                a.detail = format!("CloudFormation change set: {}", changes.join(", "));
            }
        }
    }
    // Transient actions are needed only where real work remains.
    prune_transients(&mut b.actions, design);
    // Ad-hoc patterns are declared even when unscheduled: one a rule ran is kept, not forgotten.
    let declared: std::collections::HashSet<&str> = b
        .actions
        .iter()
        .map(|a| a.id.as_str())
        .chain(design.patterns.iter().filter(|p| p.adhoc).map(|p| p.id.as_str()))
        .collect();
    let mut deletes = vec![];
    for (id, r) in &state.actions {
        let transient = id.starts_with("server.") || id.starts_with("service.") || id == "upload";
        if !declared.contains(id.as_str()) && r.status == Status::Done && !transient {
            deletes.push(Action::new(
                id,
                kind_of(id),
                format!("forget {id} (its results stay on disk)"),
                r.hash.clone(),
                0.0,
                vec![],
            ));
        }
    }
    for a in &mut deletes {
        a.change = Change::Delete;
    }
    b.actions.extend(deletes);
    for a in &b.actions {
        match (a.change, a.kind) {
            (Change::NoOp, _) => summary.unchanged += 1,
            (Change::Delete, _) => summary.destroy += 1,
            (_, Kind::Stack | Kind::Nodes) if a.change == Change::Update => summary.change += 1,
            (_, Kind::Stack | Kind::Nodes) => summary.add += 1,
            (_, Kind::Setup) => summary.setup_steps += 1,
            (_, Kind::Pattern | Kind::Step | Kind::Analysis) => summary.run += 1,
            _ => {}
        }
    }
    // Launches and their summaries count only the patterns that will run.
    let mut launched: Vec<GroupSummary> = vec![];
    for (i, a) in b.actions.iter().enumerate() {
        if a.kind != Kind::ServerStart {
            continue;
        }
        let pending: Vec<&Action> =
            b.actions[i + 1..].iter().take_while(|x| x.kind == Kind::Pattern).filter(|x| x.change != Change::NoOp).collect();
        let key = groups.iter().find(|g| Some(g.group) == a.group).map(|g| g.key.clone()).unwrap_or_default();
        launched.push(GroupSummary {
            group: a.group.unwrap_or(0),
            key,
            patterns: pending.len(),
            startup: a.duration,
            measure: pending.iter().map(|x| x.duration).sum(),
        });
    }
    let mut distinct: Vec<u32> = launched.iter().map(|g| g.group).collect();
    distinct.sort_unstable();
    distinct.dedup();
    summary.launches = launched.len();
    summary.min_launches = distinct.len();
    let groups = launched;

    let wall = critical_path(&b.actions);
    let price = stack
        .and_then(|s| s.instance_types.first())
        .and_then(|t| model.instances.get(t))
        .map(|i| i.price_per_hour)
        .unwrap_or(0.0);
    let nodes = stack.map(|s| s.nodes.len()).unwrap_or(0);
    let node_hours = wall / 3600.0 * nodes as f64;
    let hand = exp.and_then(|e| e.hand_estimate);
    let state_hash = content_hash(&state.actions);
    Plan {
        format: PLAN_FORMAT,
        experiment: design.experiment.clone(),
        extends: design.extends.clone(),
        source: String::new(),
        source_hash: source_hash.to_string(),
        state_serial: state.serial,
        state_hash,
        stack: stack.map(|s| s.name.clone()),
        actions: b.actions,
        groups,
        estimate: Estimate {
            wall_seconds: wall,
            node_hours,
            price_per_node_hour: price,
            cost_usd: node_hours * price,
            nodes,
            hand_estimate_seconds: hand,
        },
        summary,
        adhoc: design.patterns.iter().filter(|p| p.adhoc).map(|p| p.id.clone()).collect(),
        notes: design.notes.clone(),
    }
}

fn order_items(e: &crate::syntax::ast::Expr) -> Vec<String> {
    match &e.kind {
        crate::syntax::ast::ExprKind::List(items) => items.iter().filter_map(|i| i.as_plain_str()).collect(),
        _ => vec![],
    }
}

fn kind_of(id: &str) -> Kind {
    match id.split('.').next().unwrap_or("") {
        "stack" => Kind::Stack,
        "nodes" => Kind::Nodes,
        "setup" => Kind::Setup,
        _ => Kind::Pattern,
    }
}

/// Drops server starts and stops whose patterns are all done, and services no step needs.
fn prune_transients(actions: &mut Vec<Action>, _design: &Design) {
    let n = actions.len();
    let mut keep = vec![true; n];
    for i in 0..n {
        if actions[i].kind == Kind::ServerStart {
            // The segment: patterns after the start up to its stop.
            let mut j = i + 1;
            let mut pending = false;
            while j < n && actions[j].kind == Kind::Pattern && actions[j].group == actions[i].group {
                pending |= actions[j].change != Change::NoOp;
                j += 1;
            }
            if !pending {
                keep[i] = false;
                if j < n && actions[j].kind == Kind::ServerStop {
                    keep[j] = false;
                }
            }
        }
        if actions[i].kind == Kind::Service {
            let idx = i;
            let used = actions.iter().any(|a| a.kind == Kind::Step && a.change != Change::NoOp && a.deps.contains(&idx));
            keep[i] = used;
        }
        if actions[i].kind == Kind::Upload {
            keep[i] =
                actions.iter().any(|a| a.change != Change::NoOp && matches!(a.kind, Kind::Setup | Kind::Pattern | Kind::Step));
        }
    }
    // Re-index: a removed action's dependants inherit its dependencies.
    let mut new_index = vec![usize::MAX; n];
    let mut out: Vec<Action> = vec![];
    for i in 0..n {
        if keep[i] {
            new_index[i] = out.len();
            out.push(actions[i].clone());
        }
    }
    fn resolve(i: usize, keep: &[bool], actions: &[Action], new_index: &[usize], acc: &mut Vec<usize>) {
        if keep[i] {
            if !acc.contains(&new_index[i]) {
                acc.push(new_index[i]);
            }
        } else {
            for &d in &actions[i].deps {
                resolve(d, keep, actions, new_index, acc);
            }
        }
    }
    for (i, a) in actions.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let mut deps = vec![];
        for &d in &a.deps {
            resolve(d, &keep, actions, &new_index, &mut deps);
        }
        out[new_index[i]].deps = deps;
        let mut needs = vec![];
        for &d in &a.needs {
            resolve(d, &keep, actions, &new_index, &mut needs);
        }
        out[new_index[i]].needs = needs;
    }
    *actions = out;
}

pub fn to_graph(actions: &[Action]) -> DiGraph<usize, ()> {
    let mut g = DiGraph::with_capacity(actions.len(), actions.len() * 2);
    let nodes: Vec<NodeIndex> = (0..actions.len()).map(|i| g.add_node(i)).collect();
    for (i, a) in actions.iter().enumerate() {
        for &d in &a.deps {
            g.add_edge(nodes[d], nodes[i], ());
        }
    }
    g
}

/// Longest path through the graph, counting only actions that will run.
pub fn critical_path(actions: &[Action]) -> f64 {
    let g = to_graph(actions);
    let Ok(order) = petgraph::algo::toposort(&g, None) else {
        return 0.0;
    };
    let mut finish = vec![0.0f64; actions.len()];
    for n in order {
        let i = g[n];
        let a = &actions[i];
        let start = a.deps.iter().map(|&d| finish[d]).fold(0.0, f64::max);
        let own = if a.change == Change::NoOp || a.change == Change::Delete { 0.0 } else { a.duration };
        finish[i] = start + own;
    }
    finish.into_iter().fold(0.0, f64::max)
}

struct Builder<'r> {
    actions: Vec<Action>,
    index: BTreeMap<String, usize>,
    resolver: &'r crate::design::Resolver,
}

impl Builder<'_> {
    fn push(&mut self, a: Action) -> usize {
        let i = self.actions.len();
        self.index.insert(a.id.clone(), i);
        self.actions.push(a);
        i
    }

    fn pattern_action(&mut self, design: &Design, i: usize, deps: Vec<usize>) -> usize {
        let p = &design.patterns[i];
        let kind = match p.category {
            Category::E2e => Kind::Pattern,
            Category::Analysis => Kind::Analysis,
            _ => Kind::Step,
        };
        // The hash covers every resolved setting, so a changed setting re-runs the pattern.
        let hash = self.resolver.hash(p);
        let mut a = Action::new(&p.id, kind, p.id.clone(), hash, p.duration, deps);
        a.layer = Some(design.layers[p.layer as usize].name.clone());
        a.detail = crate::design::report::describe(design, p);
        self.push(a)
    }
}

/// The action of one pattern of the design, outside a plan: how apply runs
/// the ad-hoc patterns that rules add while it runs.
pub fn pattern_action(model: &Model, design: &Design, id: &str) -> Option<Action> {
    let i = design.patterns.iter().position(|p| p.id == id)?;
    let resolver = crate::design::Resolver::new(model, design);
    let mut b = Builder { actions: vec![], index: BTreeMap::new(), resolver: &resolver };
    let k = b.pattern_action(design, i, vec![]);
    Some(b.actions.swap_remove(k))
}

impl Action {
    /// The action that starts a service, for patterns run outside a plan.
    pub fn service(name: &str) -> Action {
        Action::new(
            &format!("service.{name}"),
            Kind::Service,
            format!("start service {name}"),
            String::new(),
            SERVICE_SECONDS,
            vec![],
        )
    }

    fn new(id: &str, kind: Kind, label: String, hash: String, duration: f64, deps: Vec<usize>) -> Action {
        Action {
            id: id.to_string(),
            kind,
            label,
            hash,
            duration,
            needs: deps.clone(),
            deps,
            change: Change::Create,
            layer: None,
            group: None,
            node: None,
            detail: String::new(),
        }
    }
}
