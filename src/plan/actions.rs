//! The actions of a campaign and their dependencies, phase by phase:
//! infrastructure, setup per node, baseline steps, server launches with their
//! patterns, low-level steps with the services they need, analyses.
//! Everything on the nodes runs one at a time (two benchmarks on the same
//! nodes perturb each other's figures); analyses run locally as soon as their inputs exist.

use super::{Action, ActionId, ContentHash, Deps, Kind, OptU32, ThinStr};
use crate::check::model::Stack;
use crate::check::Model;
use crate::design::{Campaign, Category, Design, Resolver};
use crate::state::{content_hash, State, Status};
use smallvec::smallvec;
use std::collections::BTreeMap;

const STACK_SECONDS: f64 = 240.0;
const NODES_SECONDS: f64 = 180.0;
const SETUP_STEP_SECONDS: f64 = 20.0;
const UPLOAD_SECONDS: f64 = 10.0;
pub(crate) const SERVICE_SECONDS: f64 = 30.0;
const STOP_SECONDS: f64 = 30.0;
const DEFAULT_STARTUP: f64 = 600.0;

struct Builder<'c> {
    model: &'c Model,
    campaign: &'c Campaign,
    resolver: Resolver<'c>,
    actions: Vec<Action>,
    /// Pattern index in the design to its action (`NONE` when not in the plan). Indices are
    /// u32 here and in `pending`: two such lists per pattern are part of planning's peak memory.
    of_pattern: Vec<u32>,
    /// Layer names, one shared allocation each.
    layers: Vec<ThinStr>,
    /// Pattern actions (action index, pattern index) whose hash and description are filled
    /// in at the end, on every core.
    pending: Vec<(u32, u32)>,
    /// What the nodes must have finished before any measurement: setup ends and the upload.
    ready: Vec<usize>,
    /// The last measurement action(s): the next one waits for them.
    tail: Vec<usize>,
}

/// Every action of the campaign, in a topological order (each depends only on earlier ones).
/// `wanted` names ad-hoc step patterns to include although no rule ran them (a `--target`).
pub fn graph(model: &Model, campaign: &Campaign, state: &State, wanted: &[String]) -> Vec<Action> {
    let mut b = Builder {
        model,
        campaign,
        resolver: Resolver::new(model, campaign),
        // Patterns, two per launch, setup and infrastructure: one allocation for a million patterns.
        actions: Vec::with_capacity(campaign.design.patterns.len() + 2 * campaign.schedule.segments.len() + 64),
        of_pattern: vec![NONE; campaign.design.patterns.len()],
        layers: layer_names(&campaign.design),
        pending: Vec::with_capacity(campaign.design.patterns.len()),
        ready: vec![],
        tail: vec![],
    };
    if let Some(stack) = &campaign.stack {
        b.infrastructure(stack);
    }
    b.tail = b.ready.clone();
    b.baseline(state, wanted);
    b.launches();
    b.low_level(state, wanted);
    b.analyses(state, wanted);
    fill_patterns(&b.resolver, &campaign.design, &mut b.actions, &b.pending);
    b.actions
}

/// Each pattern action's content hash and description. Resolving every setting of a pattern
/// is most of planning a large campaign, so a million patterns are shared among the cores
/// (each thread fills its own slice of the actions; the result is the same).
fn fill_patterns(resolver: &Resolver, design: &Design, actions: &mut [Action], pending: &[(u32, u32)]) {
    let fill = |a: &mut Action, i: u32| {
        let p = &design.patterns[i as usize];
        a.hash = ContentHash::Hex(resolver.digest(p));
        a.detail = crate::design::tables::describe(design, p).into();
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(16);
    if threads < 2 || pending.len() < 4096 {
        for &(k, i) in pending {
            fill(&mut actions[k as usize], i);
        }
        return;
    }
    // `pending` is in push order, so each chunk's actions form one slice after the previous one's.
    std::thread::scope(|s| {
        let (mut rest, mut offset) = (actions, 0);
        for chunk in pending.chunks(pending.len().div_ceil(threads)) {
            let end = chunk[chunk.len() - 1].0 as usize + 1;
            let (mine, tail) = rest.split_at_mut(end - offset);
            let (base, fill) = (offset, &fill);
            s.spawn(move || {
                for &(k, i) in chunk {
                    fill(&mut mine[k as usize - base], i);
                }
            });
            (rest, offset) = (tail, end);
        }
    });
}

const NONE: u32 = u32::MAX;

fn layer_names(design: &Design) -> Vec<ThinStr> {
    design.layers.iter().map(|l| ThinStr::from(l.name.as_str())).collect()
}

/// What a node is launched as: everything but the zones it may be placed in, and how its root
/// volume is encrypted. A change of it (instance type, volume, image, EFA, placement, KMS key)
/// replaces the nodes; a change of zones alone leaves running nodes where they are.
pub fn machine_spec(st: &Stack) -> String {
    match &st.kms_key {
        // (The form with a key is the one the release that added encryption recorded.)
        Some(key) => content_hash(&(machine(st), key)),
        None => content_hash(&(machine(st), ENCRYPTED_WITH_THE_ACCOUNTS_KEY)),
    }
}

/// The spec of the same machine as releases before encrypted root volumes recorded it (the
/// release that added encryption recorded it too when no `kms_key` was given): a node recorded
/// with it cannot be told from one whose volume is unencrypted.
pub fn unencrypted_spec(st: &Stack) -> String {
    content_hash(&machine(st))
}

/// ", then us-west-2 if no zone there has capacity" for a stack with several regions.
fn fallback_regions(st: &Stack) -> String {
    st.regions.iter().skip(1).map(|r| format!(", then {}", r.region)).collect::<String>()
        + if st.regions.len() > 1 { " (a stack in each region used)" } else { "" }
}

/// The zones in the order apply tries them: "us-east-1a, then us-east-1b", and with several
/// regions each region's zones after its name.
fn zone_order(st: &Stack) -> String {
    match st.regions.as_slice() {
        [_, _, ..] => {
            st.regions.iter().map(|r| format!("{}: {}", r.region, r.zones.join(", then "))).collect::<Vec<_>>().join("; then ")
        }
        _ => st.zones.join(", then "),
    }
}

/// Marks a spec whose volumes are encrypted with the account's default EBS key.
const ENCRYPTED_WITH_THE_ACCOUNTS_KEY: &str = "root volume encrypted with the account's EBS key";

fn machine(st: &Stack) -> impl serde::Serialize + '_ {
    let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
    (&st.instance_types, names, st.volume as u64, &st.ami, &st.ami_parameter, st.efa, &st.placement)
}

/// The action of one pattern, outside a plan (rules run ad-hoc patterns this way).
pub fn single(model: &Model, campaign: &Campaign, id: &str) -> Option<Action> {
    let i = campaign.design.patterns.iter().position(|p| *p.id == *id)?;
    let resolver = Resolver::new(model, campaign);
    Some(pattern(&resolver, &campaign.design, &layer_names(&campaign.design), i, Deps::new()))
}

impl Action {
    pub(crate) fn new(id: ActionId, kind: Kind, label: String, hash: String, duration: f64, deps: impl Into<Deps>) -> Action {
        let deps = deps.into();
        Action {
            id,
            kind,
            label: (!label.is_empty()).then(|| label.into()),
            hash: ContentHash::new(&hash),
            duration,
            needs: deps.clone(),
            deps,
            change: super::Change::Create,
            layer: None,
            group: OptU32::NONE,
            launch: OptU32::NONE,
            set: OptU32::NONE,
            node: None,
            detail: Box::default(),
        }
    }

    /// The action that starts a service, for patterns run outside a plan.
    pub fn service(name: &str) -> Action {
        Action::new(
            ActionId::Service(name.into()),
            Kind::Service,
            format!("start service {name}"),
            String::new(),
            SERVICE_SECONDS,
            vec![],
        )
    }
}

/// A pattern, step or analysis action without its hash and description (`fill_patterns`).
fn pattern_shell(design: &Design, layers: &[ThinStr], i: usize, deps: Deps) -> Action {
    let p = &design.patterns[i];
    let kind = match p.category {
        Category::E2e => Kind::Pattern,
        Category::Analysis => Kind::Analysis,
        _ => Kind::Step,
    };
    // The label of a pattern is its id (`Action::label`): not stored twice.
    let mut a = Action::new(ActionId::Pattern(p.id.clone()), kind, String::new(), String::new(), p.duration, deps);
    a.layer = Some(layers[p.layer as usize].clone());
    a
}

/// A pattern, step or analysis action; its hash covers every resolved setting,
/// so a changed setting runs it again.
fn pattern(resolver: &Resolver, design: &Design, layers: &[ThinStr], i: usize, deps: Deps) -> Action {
    let mut a = pattern_shell(design, layers, i, deps);
    fill_patterns(resolver, design, std::slice::from_mut(&mut a), &[(0, i as u32)]);
    a
}

impl Builder<'_> {
    fn push(&mut self, a: Action) -> usize {
        self.actions.push(a);
        self.actions.len() - 1
    }

    fn push_pattern(&mut self, i: usize, deps: Deps) -> usize {
        let a = pattern_shell(&self.campaign.design, &self.layers, i, deps);
        let k = self.push(a);
        self.pending.push((k as u32, i as u32));
        self.of_pattern[i] = k as u32;
        k
    }

    /// Stack, nodes, upload and each node's setup steps in order.
    fn infrastructure(&mut self, st: &Stack) {
        // (The nodes' hash keeps its composition, zones included, so states of earlier
        // releases read the same; `machine_spec` tells a replacement from a zone change.)
        // Versioning and the reason for a world-open SSH rule are part of the stack; adding them
        // moves every stack hash once, so stacks made before the hardened template get it.
        // Several regions: their order, instead of the one region (a one-region hash reads as before).
        let region = match st.regions.as_slice() {
            [_, _, ..] => st.regions.iter().map(|r| r.region.as_str()).collect::<Vec<_>>().join(" then "),
            _ => st.region.clone(),
        };
        let hardened = (&st.name, &region, &st.placement, &st.buckets, &st.ssh_cidr, st.versioned, &st.ssh_reason);
        // Nodes of a stack made before nixl had secrets may not read them: a campaign that uses
        // secrets moves the hash once, so such a stack is updated (newer ones have nothing to change).
        let reads_secrets = self.campaign.setup.iter().flat_map(|s| &s.steps).any(|s| s.secrets().next().is_some());
        let stack_hash =
            if reads_secrets { content_hash(&(hardened, "nodes read the stack's secrets")) } else { content_hash(&hardened) };
        let mut stack =
            Action::new(ActionId::Stack, Kind::Stack, format!("stack \"{}\"", st.name), stack_hash, STACK_SECONDS, vec![]);
        stack.detail = format!(
            "CloudFormation: security group, IAM role, bucket, {} placement group in {}{}",
            st.placement,
            st.region,
            fallback_regions(st)
        )
        .into();
        let stack_i = self.push(stack);
        let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        // Several regions: every region's zones in order, and each region's AMI.
        let zones: Vec<String> = match st.regions.as_slice() {
            [_, _, ..] => st.regions.iter().flat_map(|r| r.zones.iter().cloned()).collect(),
            _ => st.zones.clone(),
        };
        let spec = (&st.instance_types, &zones, &names, st.volume as u64, &st.ami, &st.ami_parameter, st.efa);
        let amis: Vec<Option<&str>> = st.regions.iter().map(|r| r.ami.as_deref()).collect();
        let nodes_hash = match (&st.kms_key, st.regions.len() > 1) {
            (None, false) => content_hash(&spec),
            (Some(key), false) => content_hash(&(spec, key)),
            (key, true) => content_hash(&(spec, key, amis)),
        };
        let mut nodes = Action::new(
            ActionId::Nodes,
            Kind::Nodes,
            format!("nodes {}", names.join(", ")),
            nodes_hash,
            NODES_SECONDS,
            vec![stack_i],
        );
        nodes.detail = format!("{} x {} in {}", names.len(), st.instance_types.join(" or "), zone_order(st)).into();
        let nodes_i = self.push(nodes);
        let upload = Action::new(
            ActionId::Upload,
            Kind::Upload,
            "upload scripts".into(),
            content_hash(&self.campaign.name()),
            UPLOAD_SECONDS,
            vec![stack_i],
        );
        let upload_i = self.push(upload);
        for n in &st.nodes {
            let mut prev = nodes_i;
            let steps = self.campaign.setup.iter().flat_map(|s| &s.steps);
            for step in steps.filter(|s| s.nodes.is_empty() || s.nodes.contains(&n.name)) {
                let id = ActionId::setup(&n.name, &step.id);
                let hash = content_hash(&(&step.run, &step.skip_if, &step.env));
                let mut a =
                    Action::new(id, Kind::Setup, format!("{} on {}", step.id, n.name), hash, SETUP_STEP_SECONDS, vec![prev]);
                a.node = Some(n.name.as_str().into());
                a.detail = step.name.as_str().into();
                prev = self.push(a);
            }
            self.ready.push(prev);
        }
        self.ready.push(upload_i);
    }

    /// Step patterns of a category; an ad-hoc one a rule already ran stays in the plan, not
    /// "forgotten", and one the user targets is in it.
    fn steps_of(&self, cat: Category, state: &State, wanted: &[String]) -> Vec<usize> {
        let d = &self.campaign.design;
        let ran =
            |i: usize| state.actions.get(&ActionId::Pattern(d.patterns[i].id.clone())).is_some_and(|r| r.status == Status::Done);
        let named = |i: usize| wanted.iter().any(|w| **w == *d.patterns[i].id);
        (0..d.patterns.len()).filter(|&i| d.patterns[i].category == cat && (!d.patterns[i].adhoc || ran(i) || named(i))).collect()
    }

    fn baseline(&mut self, state: &State, wanted: &[String]) {
        for i in self.steps_of(Category::Baseline, state, wanted) {
            let a = self.push_pattern(i, self.tail.as_slice().into());
            self.actions[a].needs = self.ready.as_slice().into();
            self.tail = vec![a];
        }
    }

    /// One start, the launch's patterns and one stop per launch of the campaign's schedule.
    fn launches(&mut self) {
        let design = &self.campaign.design;
        for launch in &self.campaign.schedule.segments {
            let g = launch.group;
            let key = design.groups[g as usize].label();
            let startup = design.startup.get(g as usize).copied().unwrap_or(DEFAULT_STARTUP);
            let mut start = Action::new(
                ActionId::ServerStart(launch.number),
                Kind::ServerStart,
                format!("start server: {key}"),
                content_hash(&key),
                startup,
                self.tail.clone(),
            );
            // A launch needs the nodes and the previous launch stopped, not the steps before it.
            start.needs = self.ready.as_slice().into();
            start.needs.extend(self.tail.iter().copied().filter(|&t| self.actions[t].kind == Kind::ServerStop));
            let start_i = self.push(start);
            let mut prev = start_i;
            for &i in &launch.patterns {
                let a = self.push_pattern(i, smallvec![prev]);
                self.actions[a].needs = smallvec![start_i];
                prev = a;
            }
            let stop = Action::new(
                ActionId::ServerStop(launch.number),
                Kind::ServerStop,
                "stop server, verify GPU memory is free".into(),
                content_hash(&key),
                STOP_SECONDS,
                vec![prev],
            );
            let stop_i = self.push(stop);
            self.actions[stop_i].needs = smallvec![start_i];
            for a in &mut self.actions[start_i..=stop_i] {
                a.group = g.into();
                a.launch = launch.number.into();
            }
            self.tail = vec![stop_i];
        }
    }

    /// Low-level tool steps after the launches, each with the services its tool needs.
    fn low_level(&mut self, state: &State, wanted: &[String]) {
        let mut services: BTreeMap<String, usize> = BTreeMap::new();
        for i in self.steps_of(Category::LowLevel, state, wanted) {
            let mut deps = self.tail.clone();
            let mut needs = self.ready.clone();
            let tool = self.campaign.design.patterns[i].tool().and_then(|t| self.model.tools.get(t));
            for s in tool.map(|t| t.needs.clone()).unwrap_or_default() {
                let si = match services.get(&s) {
                    Some(&si) => si,
                    None => {
                        let hash = self.model.services.get(&s).map(|x| content_hash(&x.run)).unwrap_or_default();
                        let label = format!("start service {s}");
                        let a = Action::new(
                            ActionId::Service(s.as_str().into()),
                            Kind::Service,
                            label,
                            hash,
                            SERVICE_SECONDS,
                            self.ready.clone(),
                        );
                        let si = self.push(a);
                        services.insert(s, si);
                        si
                    }
                };
                deps.push(si);
                needs.push(si);
            }
            let a = self.push_pattern(i, deps.into());
            self.actions[a].needs = needs.into();
            self.tail = vec![a];
        }
    }

    /// Analyses run locally as soon as the patterns they read are done; a failed input does not stop them.
    fn analyses(&mut self, state: &State, wanted: &[String]) {
        let d = &self.campaign.design;
        for i in self.steps_of(Category::Analysis, state, wanted) {
            let p = &d.patterns[i];
            let deps: Deps = self
                .of_pattern
                .iter()
                .enumerate()
                .filter(|&(pi, &a)| a != NONE && p.inputs().iter().any(|l| d.layers[d.patterns[pi].layer as usize].name == *l))
                .map(|(_, &a)| a as usize)
                .collect();
            let a = self.push_pattern(i, deps);
            self.actions[a].needs = Deps::new();
        }
    }
}
