//! Stage 4: the action graph (petgraph) of everything apply does, in the
//! campaign's restart-minimal order, estimated, and diffed against the state.
//! The plan is plain data: rendered as text, JSON or DOT, or saved and applied later.

mod action_json;
mod actions;
mod content_hash;
mod opt_u32;
mod thin_str;
pub use actions::machine_spec;
pub use content_hash::ContentHash;
pub use diff::{node_replacement, NodeReplacement};
pub use opt_u32::OptU32;
pub use thin_str::ThinStr;
mod diff;
pub mod parallel;
pub mod refresh;
pub mod sets;
pub mod target;
pub mod view;

pub use crate::address::ActionId;
use crate::check::model::Stack;
use crate::check::Model;
use crate::design::Campaign;
use crate::state::State;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
pub use target::Target;

/// Version of the plan JSON (`--json`, `--out`); see docs/planning.md.
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
}

impl Kind {
    /// Whether the action produces a result (a pattern, tool step or analysis).
    pub fn has_result(self) -> bool {
        matches!(self, Kind::Pattern | Kind::Step | Kind::Analysis)
    }
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

/// Indices of other actions: a pattern has one of each (the action before it, its server
/// start), kept inline; longer lists go to the heap.
pub type Deps = smallvec::SmallVec<[usize; 1]>;

/// One thing apply does. Serialised by hand (`action_json`) so that a pattern's label, which
/// is its id and not stored twice, is still written out.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Action {
    pub id: ActionId,
    pub kind: Kind,
    /// Empty for a pattern, step or analysis, whose label is its id: read through `label()`.
    label: Option<ThinStr>,
    /// Content hash of what the action does.
    pub hash: ContentHash,
    /// Estimated seconds.
    pub duration: f64,
    /// Indices of actions that must finish first (order and resources).
    pub deps: Deps,
    /// The subset of `deps` whose failure makes this action pointless (a pattern needs its
    /// server, not the pattern before it).
    #[serde(default)]
    pub needs: Deps,
    pub change: Change,
    /// Shared by every action of the layer (one allocation, not one per pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<ThinStr>,
    /// The restart group (index into the design's restart keys).
    #[serde(default, skip_serializing_if = "OptU32::is_none")]
    pub group: OptU32,
    /// The server launch this action belongs to, numbered as everywhere else.
    #[serde(default, skip_serializing_if = "OptU32::is_none")]
    pub launch: OptU32,
    /// The node set it runs on, when the experiment declares `parallel` > 1 (1-based).
    #[serde(default, skip_serializing_if = "OptU32::is_none")]
    pub set: OptU32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ThinStr>,
    /// One-line description of the pattern's factors or the step's tool.
    #[serde(default)]
    pub detail: Box<str>,
}

impl Action {
    /// What the plan text and the apply log call the action: a pattern by its id.
    pub fn label(&self) -> &str {
        match (&self.id, &self.label) {
            (_, Some(label)) => label,
            (ActionId::Pattern(id), None) => id,
            _ => "",
        }
    }
}

/// One server launch of the plan: its number, restart key and the work it still has.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupSummary {
    /// The launch number, the same in the plan text, `--target group:N` and `nixl show`.
    #[serde(default)]
    pub launch: u32,
    pub group: u32,
    pub key: String,
    pub patterns: usize,
    pub startup: f64,
    pub measure: f64,
    /// The launch's servers and nodes, and the roles it restarts (only when the experiment
    /// sets a layout setting: `prefill_nodes`, `decode_tp`, `replicas`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<crate::design::topology::LaunchLayout>,
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
    /// Which price `price_per_node_hour` is: on demand (left out of the JSON), or spot (the
    /// stack's first market).
    #[serde(default, skip_serializing_if = "PriceBasis::is_on_demand")]
    pub price_basis: PriceBasis,
}

impl PriceBasis {
    fn is_on_demand(&self) -> bool {
        *self == PriceBasis::OnDemand
    }
}

/// Where the estimate's price per node-hour comes from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PriceBasis {
    /// The catalogue's on-demand `price`.
    #[default]
    OnDemand,
    /// The catalogue's `spot_price`: the stack's first market is spot.
    Spot,
    /// The stack's first market is spot, but the catalogue states no `spot_price` for the type.
    SpotWithoutPrice,
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
    /// What `--target` limited the plan to (empty: everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// What `--refresh` found of the recorded nodes (None: the plan is made from the state alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<refresh::Refresh>,
    /// Seed of the shuffled run order inside each launch (`shuffle`, or replicates); None: policy order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<u64>,
    /// Each saturation search: its layer, rates, tolerance and the most probes per point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturation: Vec<SaturationBound>,
    /// With `parallel` > 1: the work spread over the node sets and the trade for other counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sets: Option<parallel::Sets>,
}

fn default_search_metric() -> crate::check::saturation::SaturationMetric {
    crate::check::saturation::SaturationMetric::SloMet
}

/// A saturation search's bound on probes, per point of its layer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SaturationBound {
    pub layer: String,
    pub from: f64,
    pub to: f64,
    pub tolerance: f64,
    /// What a probe passes on: `slo_met` or `goodput`.
    #[serde(default = "default_search_metric")]
    pub metric: crate::check::saturation::SaturationMetric,
    /// Points searched (each gets up to `max_probes` probes in one launch).
    pub points: usize,
    pub bracketing: u32,
    pub bisection: u32,
    pub max_probes: u32,
}

/// What a stack update would touch, from what the last apply recorded. The
/// provider knows its resources; the planner only prints the answer.
pub type StackChanges<'a> = &'a dyn Fn(&Stack, &BTreeMap<String, String>) -> Vec<String>;

/// Everything a plan is made from.
pub struct Inputs<'a> {
    pub model: &'a Model,
    pub campaign: &'a Campaign,
    pub state: &'a State,
    /// Hash of the source files, so a saved plan can tell they changed.
    pub source_hash: &'a str,
    pub stack_changes: StackChanges<'a>,
    /// `--target`: only these and what they need (empty: everything).
    pub targets: &'a [String],
    /// `--replace`: run these again even if done.
    pub replace: &'a [String],
}

/// Why there is no plan.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    /// A `--target` or `--replace` that names nothing.
    UnknownTarget(target::UnknownTarget),
    /// The state's live stack has another name or region than the file's: applying
    /// would create a second stack and leave the first running, invisible to nixl.
    StackMoved { recorded: String, recorded_region: String, declared: String, declared_region: String },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::UnknownTarget(e) => write!(f, "{e}"),
            PlanError::StackMoved { recorded, recorded_region, declared, declared_region } => write!(
                f,
                "this state's stack is \"{recorded}\" in {recorded_region}, with its nodes and bucket; the file now declares \"{declared}\" in {declared_region}. \
                 Applying would create a second stack and leave the first running, unseen by nixl. \
                 Run `nixl destroy` while the file still declares the first (or restore it), then apply; \
                 or give the new stack its own state with --state FILE"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl From<target::UnknownTarget> for PlanError {
    fn from(e: target::UnknownTarget) -> PlanError {
        PlanError::UnknownTarget(e)
    }
}

/// A live stack of another name or region than the declared one (states of earlier
/// releases do not record them, and are not checked).
fn stack_moved(state: &State, stack: Option<&crate::check::model::Stack>) -> Result<(), PlanError> {
    let (Some(rec), Some(st)) = (&state.infra.stack, stack) else { return Ok(()) };
    let (Some(name), Some(region)) = (&rec.name, &rec.region) else { return Ok(()) };
    // Any region the stack lists: apply may have fallen back to a later one.
    if name == &st.name && (region == &st.region || st.region_choice(region).is_some()) {
        return Ok(());
    }
    Err(PlanError::StackMoved {
        recorded: name.clone(),
        recorded_region: region.clone(),
        declared: st.name.clone(),
        declared_region: st.region.clone(),
    })
}

/// Builds the plan of a campaign against a state, phase by phase. A target
/// or replacement that names nothing is an error, not an empty plan.
pub fn build(inputs: &Inputs) -> Result<Plan, PlanError> {
    let campaign = inputs.campaign;
    stack_moved(inputs.state, campaign.stack.as_ref())?;
    // An ad-hoc step is in the plan only when a rule ran it, or when it is named here.
    let named: Vec<String> = inputs.targets.iter().chain(inputs.replace).cloned().collect();
    let mut actions = actions::graph(inputs.model, campaign, inputs.state, &named);
    let targets = Target::parse_all(inputs.targets, &actions)?;
    let replace = Target::parse_all(inputs.replace, &actions)?;
    diff::against_state(&mut actions, inputs.state, &replace, campaign.stack.as_ref());
    diff::describe_stack_update(&mut actions, campaign.stack.as_ref(), inputs.state, inputs.stack_changes);
    diff::prune_transients(&mut actions);
    if !targets.is_empty() {
        let wanted = target::selection(&actions, &[targets, replace].concat());
        diff::keep_only(&mut actions, &wanted);
    } else {
        diff::forget_undeclared(&mut actions, campaign, inputs.state);
        diff::drop_idle_infrastructure(&mut actions);
    }
    let (summary, mut groups) = diff::summarise(&actions, campaign);
    let layouts = crate::design::topology::launch_layouts(inputs.model, campaign);
    for g in &mut groups {
        g.layout = layouts.get(&g.launch).cloned();
    }
    let estimate = estimate(inputs.model, campaign, &actions);
    let pricing = parallel::Pricing { nodes: estimate.nodes, price_per_node_hour: estimate.price_per_node_hour };
    let sets = parallel::spread(&mut actions, campaign.experiment.parallel, campaign.schedule.pinned_launches, pricing);
    Ok(Plan {
        format: PLAN_FORMAT,
        experiment: campaign.name().to_string(),
        extends: campaign.design.extends.clone(),
        source: String::new(),
        source_hash: inputs.source_hash.to_string(),
        state_serial: inputs.state.serial,
        state_hash: crate::state::content_hash(&inputs.state.actions),
        stack: campaign.stack.as_ref().map(|s| s.name.clone()),
        actions,
        groups,
        estimate,
        summary,
        adhoc: campaign.design.patterns.iter().filter(|p| p.adhoc).map(|p| p.id.to_string()).collect(),
        notes: campaign.design.notes.clone(),
        targets: inputs.targets.to_vec(),
        refresh: None,
        shuffle_seed: campaign.design.shuffle,
        saturation: campaign
            .experiment
            .layers
            .iter()
            .filter_map(|l| {
                let s = l.saturation.as_ref()?;
                let points = campaign
                    .design
                    .patterns
                    .iter()
                    .filter(|p| campaign.design.layers.get(p.layer as usize).is_some_and(|x| x.name == l.name))
                    .filter(|p| p.values().get("probe").and_then(|v| v.as_f64()) == Some(1.0))
                    .count();
                Some(SaturationBound {
                    layer: l.name.clone(),
                    from: s.from,
                    to: s.to,
                    tolerance: s.tolerance,
                    metric: s.metric,
                    points,
                    bracketing: s.bracketing_probes(),
                    bisection: s.bisection_probes(),
                    max_probes: s.max_probes(),
                })
            })
            .collect(),
        sets,
    })
}

/// `nixl plan --refresh`: the plan against the state as the provider found the nodes, with what
/// it found. It applies to the state on disk (its serial and hash are that state's), which is
/// not written: apply asks the provider again before it sends the nodes anything.
pub fn build_refreshed(inputs: &Inputs, refresh: refresh::Refresh) -> Result<Plan, PlanError> {
    let seen = refresh.state_after(inputs.state);
    let mut plan = build(&Inputs { state: &seen, ..*inputs })?;
    plan.state_serial = inputs.state.serial;
    plan.state_hash = crate::state::content_hash(&inputs.state.actions);
    plan.refresh = Some(refresh);
    Ok(plan)
}

fn estimate(model: &Model, campaign: &Campaign, actions: &[Action]) -> Estimate {
    let stack = campaign.stack.as_ref();
    let wall = critical_path(actions);
    let instance = stack.and_then(|s| s.instance_types.first()).and_then(|t| model.instances.get(t));
    let spot_first = stack.and_then(|s| s.markets.first()) == Some(&crate::check::model::Market::Spot);
    let (price, price_basis) = match (instance, spot_first) {
        (Some(i), true) => match i.spot_price_per_hour {
            Some(spot) => (spot, PriceBasis::Spot),
            None => (i.price_per_hour, PriceBasis::SpotWithoutPrice),
        },
        (Some(i), false) => (i.price_per_hour, PriceBasis::OnDemand),
        (None, _) => (0.0, PriceBasis::OnDemand),
    };
    let nodes = stack.map(|s| s.nodes.len()).unwrap_or(0);
    let node_hours = wall / 3600.0 * nodes as f64;
    Estimate {
        wall_seconds: wall,
        node_hours,
        price_per_node_hour: price,
        cost_usd: node_hours * price,
        nodes,
        hand_estimate_seconds: campaign.experiment.hand_estimate,
        price_basis,
    }
}

/// The dependency graph; node `i` is action `i` (no weights: 24 bytes an action).
pub fn to_graph(actions: &[Action]) -> DiGraph<(), ()> {
    let edges = actions.iter().map(|a| a.deps.len()).sum();
    let mut g = DiGraph::with_capacity(actions.len(), edges);
    for _ in actions {
        g.add_node(());
    }
    for (i, a) in actions.iter().enumerate() {
        for &d in &a.deps {
            g.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
        }
    }
    g
}

/// Longest path through the graph, counting only actions that will run. The planner lists
/// actions in a topological order (each depends only on earlier ones), so one pass in list
/// order suffices; a list in any other order (a hand-edited saved plan) is ordered by
/// petgraph's toposort, and a cycle has no critical path (0).
pub fn critical_path(actions: &[Action]) -> f64 {
    let mut finish = vec![0.0f64; actions.len()];
    let mut visit = |i: usize| {
        let a = &actions[i];
        let start = a.deps.iter().map(|&d| finish[d]).fold(0.0, f64::max);
        let own = if a.change == Change::NoOp || a.change == Change::Delete { 0.0 } else { a.duration };
        finish[i] = start + own;
    };
    if actions.iter().enumerate().all(|(i, a)| a.deps.iter().all(|&d| d < i)) {
        (0..actions.len()).for_each(&mut visit);
    } else {
        match petgraph::algo::toposort(&to_graph(actions), None) {
            Ok(order) => order.into_iter().for_each(|n| visit(n.index())),
            Err(_) => return 0.0,
        }
    }
    finish.into_iter().fold(0.0, f64::max)
}

/// The action of one pattern of the campaign, outside a plan: how apply runs
/// the ad-hoc patterns that rules add while it runs.
pub fn pattern_action(model: &Model, campaign: &Campaign, id: &str) -> Option<Action> {
    actions::single(model, campaign, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str, duration: f64, deps: &[usize]) -> Action {
        Action::new(ActionId::Pattern(id.into()), Kind::Pattern, String::new(), String::new(), duration, deps.to_vec())
    }

    #[test]
    fn a_pattern_and_its_action_stay_small() {
        // Planning holds one of each per pattern: with their ids and descriptions, a million
        // patterns plan in under 400 MB (benches/cli.rs). A field added here should be boxed
        // or packed unless every pattern has it.
        assert!(std::mem::size_of::<Action>() <= 160, "an action takes {} bytes", std::mem::size_of::<Action>());
        let pattern = std::mem::size_of::<crate::design::Pattern>();
        assert!(pattern <= 104, "a pattern takes {pattern} bytes");
    }

    #[test]
    fn the_critical_path_is_the_same_in_any_listed_order_and_a_cycle_has_none() {
        // a(1) -> b(2) -> d(4), a -> c(10) -> d: the path through c is 15.
        let listed = vec![action("a", 1.0, &[]), action("b", 2.0, &[0]), action("c", 10.0, &[0]), action("d", 4.0, &[1, 2])];
        assert_eq!(critical_path(&listed), 15.0);
        // The same graph listed backwards (indices remapped): petgraph orders it.
        let backwards = vec![action("d", 4.0, &[2, 1]), action("c", 10.0, &[3]), action("b", 2.0, &[3]), action("a", 1.0, &[])];
        assert_eq!(critical_path(&backwards), 15.0);
        let cycle = vec![action("a", 1.0, &[1]), action("b", 1.0, &[0])];
        assert_eq!(critical_path(&cycle), 0.0);
    }
}
