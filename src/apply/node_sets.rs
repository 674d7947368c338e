//! `parallel = k` on apply: the plan's node work runs on k node sets at once, each set
//! walking the launches and tool steps the plan gave it (`plan::parallel`), in plan order.
//!
//! The phases: the stack and set 1's nodes and setup (the campaign's own, recorded as
//! always); then every set at once, a set beyond the first creating its own nodes first;
//! then what runs locally after the node work (analyses). One state holds every set's
//! records: each goes into it under a mutex and is saved atomically the moment it ends
//! (the command's file lock keeps other processes out). A set whose nodes cannot be
//! created hands its launches and steps to the sets that can, which take them once their
//! own are done.

use super::secrets::{Redacting, Secrets};
use super::{ApplyError, Exec, Options, Outcome};
use crate::address::ActionId;
use crate::check::Model;
use crate::design::Campaign;
use crate::plan::target::runs;
use crate::plan::{Action, Kind, Plan};
use crate::progress::Sink;
use crate::provider::{NodeInfo, NodeSets, Provider, StackInfo};
use crate::state::{ActionRecord, State, StateError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The state the sets share: every record goes in under the mutex and is saved at once.
pub(super) struct Ledger(Mutex<State>);

impl Ledger {
    pub(super) fn record(&self, path: &Path, id: &ActionId, rec: ActionRecord) -> Result<(), StateError> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.actions.insert(id.clone(), rec);
        state.save(path)
    }

    /// Set 1's nodes, re-provisioned after a spot interruption (`spot.rs`): recorded and saved at once.
    pub(super) fn replace_nodes(&self, path: &Path, nodes: Vec<crate::state::NodeRecord>) -> Result<(), StateError> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.infra.nodes = nodes;
        state.save(path)
    }

    /// The state as the sets left it (a copy: the sets' executors may still borrow the ledger).
    fn state(&self) -> State {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A launch (its start, patterns and stop) or a tool step: what one set runs as a whole,
/// as action indices in plan order.
type Unit = Vec<usize>;

/// Work left by sets that could not create their nodes, for the others to take.
struct Handover {
    inner: Mutex<Waiting>,
}

struct Waiting {
    /// Sets that have not yet said whether they have nodes.
    preparing: usize,
    orphans: VecDeque<(u32, Unit)>,
}

impl Handover {
    fn new(sets: usize) -> Handover {
        Handover { inner: Mutex::new(Waiting { preparing: sets, orphans: VecDeque::new() }) }
    }

    /// A set has its nodes (`left` empty) or cannot have them (its units go to the others).
    fn prepared(&self, set: u32, left: Vec<Unit>) {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        w.preparing -= 1;
        w.orphans.extend(left.into_iter().map(|u| (set, u)));
    }

    /// The next unit left by another set; None once every set is prepared and none is left.
    async fn next(&self) -> Option<(u32, Unit)> {
        loop {
            {
                let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(u) = w.orphans.pop_front() {
                    return Some(u);
                }
                if w.preparing == 0 {
                    return None;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What every set starts from: the shared phase's nodes, stack and failures.
struct Base {
    state: State,
    nodes: Vec<NodeInfo>,
    stack_info: Option<StackInfo>,
    failed: BTreeMap<ActionId, Option<String>>,
}

/// Runs the plan on the node sets it declares: `parallel = k` > 1 on k copies of `provider`
/// ([`NodeSets::node_set`]), else on the provider alone ([`super::run`]). The command line
/// calls this for every provider.
pub async fn run_planned<P: NodeSets>(
    provider: &P,
    sink: &dyn Sink,
    model: &Model,
    campaign: &Campaign,
    plan: &Plan,
    state: State,
    opts: &Options,
) -> Result<Outcome, ApplyError> {
    match plan.sets.as_ref().map(|s| s.parallel) {
        Some(k) if k > 1 => {
            let sets: Vec<P> = (1..=k).map(|s| provider.node_set(s)).collect();
            run_on_sets(&sets, sink, model, campaign, plan, state, opts).await
        }
        _ => super::run(provider, sink, model, campaign, plan, state, opts).await,
    }
}

/// Runs the plan on `providers.len()` node sets (`providers[s - 1]` reaches set s), then
/// what rules added on each set and the local work after them. The state is saved after
/// every action.
pub async fn run_on_sets<P: Provider>(
    providers: &[P],
    sink: &dyn Sink,
    model: &Model,
    campaign: &Campaign,
    plan: &Plan,
    state: State,
    opts: &Options,
) -> Result<Outcome, ApplyError> {
    let Some(first) = providers.first() else { return Ok(Outcome::default()) };
    let secrets = Secrets::read(first, campaign, plan).await?;
    let sets: Vec<Redacting<P>> = providers.iter().map(|inner| Redacting { inner, secrets: &secrets }).collect();
    let wanted: BTreeSet<usize> = (0..plan.actions.len()).filter(|&i| runs(&plan.actions[i])).collect();
    let to_run = || wanted.iter().map(|&i| &plan.actions[i]);
    sink.begin(to_run().filter(|a| a.kind == Kind::Pattern).count(), to_run().map(|a| a.duration).sum(), plan.groups.len());
    let work = Work::of(&plan.actions, &wanted, sets.len());
    let new = |p, s| Exec::new(p, sink, model, campaign, plan, s, opts, &secrets);

    // 1. The stack, and set 1's nodes and setup.
    let mut shared = new(&sets[0], state);
    shared.counter.1 = work.shared.len();
    // The region first: moving the clients forgets the stack they knew.
    shared.enter_recorded_region().await.map_err(ApplyError::Refresh)?;
    shared.restore_infra();
    shared.refresh_nodes(plan).await?;
    shared.walk(&plan.actions, &work.shared).await?;
    // Every set works in the region the stack ended in (set 1 may have fallen back).
    if let Ok(st) = shared.active_stack() {
        for p in &sets {
            p.use_region(&st.region).await.map_err(ApplyError::Refresh)?;
        }
    }
    let base = Base {
        state: shared.state.clone(),
        nodes: shared.nodes.clone(),
        stack_info: shared.stack_info.clone(),
        failed: shared.failed.clone(),
    };
    let mut outcome = std::mem::take(&mut shared.outcome);

    // 2. Every set at once.
    let ledger = Ledger(Mutex::new(base.state.clone()));
    let handover = Handover::new(sets.len());
    let walks = sets.iter().enumerate().map(|(i, p)| {
        let mut ex = new(p, base.state.clone());
        ex.ledger = Some(&ledger);
        run_set(ex, i as u32 + 1, &base, &work, &handover)
    });
    let mut failed = base.failed.clone();
    for walked in crate::join::join_all(walks).await {
        let ex = walked?;
        failed.extend(ex.failed);
        merge(&mut outcome, ex.outcome);
    }

    // 3. What runs here after the node work: analyses.
    let mut last = new(&sets[0], ledger.state());
    (last.stack_info, last.failed) = (base.stack_info.clone(), failed);
    last.set_nodes(base.nodes);
    last.walk(&plan.actions, &work.after).await?;
    merge(&mut outcome, last.outcome);
    sink.end();
    Ok(outcome)
}

/// One set: its nodes (set 1 has the shared ones), its units in plan order, then what
/// sets without nodes left, then what rules added while it ran.
async fn run_set<'a, P: Provider>(
    mut ex: Exec<'a, P>,
    set: u32,
    base: &Base,
    work: &Work<'_>,
    handover: &Handover,
) -> Result<Exec<'a, P>, ApplyError> {
    ex.set = Some(set);
    (ex.stack_info, ex.failed) = (base.stack_info.clone(), base.failed.clone());
    let mine = &work.units[set as usize - 1];
    ex.counter.1 = mine.iter().map(Vec::len).sum();
    if mine.is_empty() && set > 1 {
        // The plan gave it nothing: no nodes to pay for, nothing to take over.
        handover.prepared(set, vec![]);
        return Ok(ex);
    }
    let prepared = match set {
        1 => {
            ex.set_nodes(base.nodes.clone());
            Ok(())
        }
        _ => ex.prepare_own_nodes().await,
    };
    if let Err(e) = prepared {
        ex.log(&format!("cannot create its nodes ({e}); its launches and steps go to the other sets"));
        handover.prepared(set, mine.clone());
        return Ok(ex);
    }
    handover.prepared(set, vec![]);
    // Servers a killed apply left on these nodes would hold the set's ports.
    if let Err(e) = ex.stop_servers().await {
        ex.log(&format!("stopping what an earlier apply left running failed: {e}"));
    }
    let mut started = BTreeSet::new();
    let all: Unit = mine.iter().flatten().copied().collect();
    walk_unit(&mut ex, work.actions, &all, &mut started).await?;
    while let Some((from, unit)) = handover.next().await {
        if ex.interrupted() {
            break;
        }
        ex.counter.1 += unit.len();
        ex.log(&format!("takes over {} from set {from}", describe(&work.actions[unit[0]])));
        walk_unit(&mut ex, work.actions, &unit, &mut started).await?;
    }
    ex.run_rule_work().await?;
    Ok(ex)
}

/// Walks a unit with the services its steps need that this set has not started yet.
async fn walk_unit<P: Provider>(
    ex: &mut Exec<'_, P>,
    actions: &[Action],
    unit: &[usize],
    started: &mut BTreeSet<usize>,
) -> Result<(), ApplyError> {
    let services = unit.iter().flat_map(|&i| actions[i].deps.iter().copied()).filter(|&d| actions[d].kind == Kind::Service);
    let services: Vec<usize> = services.filter(|d| started.insert(*d)).collect();
    let wanted: BTreeSet<usize> = unit.iter().copied().chain(services).collect();
    ex.walk(actions, &wanted).await
}

fn describe(a: &Action) -> String {
    match a.launch.get() {
        Some(n) => format!("launch {n}"),
        None => format!("step {}", a.id),
    }
}

/// The plan's wanted actions by phase: shared infrastructure, each set's units, the rest.
struct Work<'p> {
    actions: &'p [Action],
    shared: BTreeSet<usize>,
    /// `units[s - 1]`: set s's launches and steps, in plan order.
    units: Vec<Vec<Unit>>,
    after: BTreeSet<usize>,
}

impl<'p> Work<'p> {
    fn of(actions: &'p [Action], wanted: &BTreeSet<usize>, sets: usize) -> Work<'p> {
        let mut w = Work { actions, shared: BTreeSet::new(), units: vec![vec![]; sets], after: BTreeSet::new() };
        // A unit is keyed by its launch number, or by the step's own index.
        let mut keyed: Vec<BTreeMap<(u32, usize), Unit>> = vec![BTreeMap::new(); sets];
        for &i in wanted {
            let a = &actions[i];
            match (a.set.get(), a.kind) {
                (Some(s), _) if (s as usize) <= sets => {
                    let key = a.launch.get().map_or((u32::MAX, i), |n| (n, 0));
                    keyed[s as usize - 1].entry(key).or_default().push(i);
                }
                (_, Kind::Stack | Kind::Nodes | Kind::Upload | Kind::Setup) => {
                    w.shared.insert(i);
                }
                // Services start on each set that needs them (`walk_unit`).
                (_, Kind::Service) => {}
                _ => {
                    w.after.insert(i);
                }
            }
        }
        for (s, units) in keyed.into_iter().enumerate() {
            let mut units: Vec<Unit> = units.into_values().collect();
            units.sort_by_key(|u| u[0]);
            w.units[s] = units;
        }
        w
    }
}

fn merge(total: &mut Outcome, part: Outcome) {
    total.done += part.done;
    total.skipped += part.skipped;
    total.failed.extend(part.failed);
    total.launches += part.launches;
    total.interrupted |= part.interrupted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Deps;

    fn action(id: ActionId, kind: Kind, launch: Option<u32>, set: Option<u32>, deps: &[usize]) -> Action {
        let mut a = Action::new(id, kind, String::new(), String::new(), 1.0, Deps::from_slice(deps));
        (a.launch, a.set) = (launch.into(), set.into());
        a
    }

    #[test]
    fn work_splits_into_shared_infrastructure_each_sets_launches_and_steps_and_the_analyses_after() {
        let p = |s: &str| ActionId::Pattern(s.into());
        let actions = vec![
            action(ActionId::Stack, Kind::Stack, None, None, &[]),
            action(ActionId::Nodes, Kind::Nodes, None, None, &[0]),
            action(ActionId::Service("etcd".into()), Kind::Service, None, None, &[1]),
            action(p("step"), Kind::Step, None, Some(2), &[1, 2]),
            action(ActionId::ServerStart(1), Kind::ServerStart, Some(1), Some(1), &[1]),
            action(p("a"), Kind::Pattern, Some(1), Some(1), &[4]),
            action(ActionId::ServerStop(1), Kind::ServerStop, Some(1), Some(1), &[5]),
            action(ActionId::ServerStart(2), Kind::ServerStart, Some(2), Some(2), &[1]),
            action(p("b"), Kind::Pattern, Some(2), Some(2), &[7]),
            action(ActionId::ServerStop(2), Kind::ServerStop, Some(2), Some(2), &[8]),
            action(p("analysis"), Kind::Analysis, None, None, &[5, 8]),
        ];
        let wanted: BTreeSet<usize> = (0..actions.len()).collect();
        let w = Work::of(&actions, &wanted, 3);
        assert_eq!(w.shared, [0, 1].into());
        // Set 2 runs its step, then launch 2, each a unit in plan order; set 3 has nothing.
        assert_eq!(w.units, vec![vec![vec![4, 5, 6]], vec![vec![3], vec![7, 8, 9]], vec![]]);
        assert_eq!(w.after, [10].into());
    }

    #[tokio::test]
    async fn a_set_without_nodes_hands_its_units_over_and_the_others_take_them_once_all_are_prepared() {
        let h = Handover::new(2);
        h.prepared(1, vec![]);
        h.prepared(2, vec![vec![7, 8], vec![3]]);
        assert_eq!(h.next().await, Some((2, vec![7, 8])));
        assert_eq!(h.next().await, Some((2, vec![3])));
        assert_eq!(h.next().await, None);
    }
}
