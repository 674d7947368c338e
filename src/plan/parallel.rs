//! What `parallel = k` adds to the plan: the node work spread over k node sets
//! (`sets::assign`), each set's schedule, the makespan against its lower bound, and the
//! same figures with their cost for k = 1..max(8, k), so the trade is seen before spending.
//!
//! The jobs are what must run on one pair of nodes: a server launch (start, its patterns,
//! stop), or the launches an `order` pins, kept together in their order; and each tool step.
//! Services (etcd) start once on every set whose steps need them. Analyses run locally and
//! are not node work. Before its work each set creates its nodes and runs the setup.

use super::sets::{self, Job, Problem};
use super::{Action, Change, Kind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schedule over the declared node sets, and the trade for other counts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sets {
    /// The declared `parallel`.
    pub parallel: u32,
    /// Creating one set's nodes and running its setup (every set does, at the same time).
    pub prepare_seconds: f64,
    /// The longest set's work (after its preparation).
    pub makespan_seconds: f64,
    /// No spread can be shorter: the longest job, or the work shared evenly.
    pub bound_seconds: f64,
    pub schedule: Vec<NodeSet>,
    /// k = 1..max(8, parallel).
    pub by_k: Vec<Spread>,
}

/// One node set's share of the work, in the order it runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeSet {
    /// 1-based, as in the plan text.
    pub set: u32,
    pub launches: Vec<u32>,
    /// Tool steps (pattern ids).
    pub steps: Vec<String>,
    pub work_seconds: f64,
}

/// The best spread found on k sets: its time and what its nodes cost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub k: u32,
    pub makespan_seconds: f64,
    pub bound_seconds: f64,
    /// Preparation and makespan.
    pub wall_seconds: f64,
    /// Every set that has work, from its preparation to its last job.
    pub node_hours: f64,
    pub cost_usd: f64,
}

impl Spread {
    /// How far the makespan is above the bound, in percent.
    pub fn above_bound(&self) -> f64 {
        above(self.makespan_seconds, self.bound_seconds)
    }
}

impl Sets {
    pub fn above_bound(&self) -> f64 {
        above(self.makespan_seconds, self.bound_seconds)
    }
}

fn above(makespan: f64, bound: f64) -> f64 {
    if bound > 0.0 {
        (makespan / bound - 1.0) * 100.0
    } else {
        0.0
    }
}

/// What a job stands for.
#[derive(Clone, Debug, PartialEq)]
enum Unit {
    Launches(Vec<u32>),
    /// The step's action index.
    Step(usize),
}

/// The node work of a plan as jobs for `sets::assign`.
struct Work {
    jobs: Vec<Job>,
    units: Vec<Unit>,
    shared: Vec<f64>,
}

fn runs(a: &Action) -> bool {
    !matches!(a.change, Change::NoOp | Change::Delete)
}

/// Launches 1..=`pinned` are one job (an `order` sequences them on one set).
fn work(actions: &[Action], pinned: u32) -> Work {
    let mut w = Work { jobs: vec![], units: vec![], shared: vec![] };
    let mut of_launch: BTreeMap<u32, usize> = BTreeMap::new();
    let mut of_service: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, a) in actions.iter().enumerate().filter(|(_, a)| runs(a)) {
        match (a.kind, a.launch.get()) {
            (Kind::ServerStart | Kind::Pattern | Kind::ServerStop, Some(n)) => {
                let key = if n <= pinned { 1 } else { n };
                let job = *of_launch.entry(key).or_insert_with(|| {
                    w.jobs.push(Job { seconds: 0.0, needs: vec![] });
                    w.units.push(Unit::Launches(vec![]));
                    w.jobs.len() - 1
                });
                w.jobs[job].seconds += a.duration;
                if let Unit::Launches(l) = &mut w.units[job] {
                    if !l.contains(&n) {
                        l.push(n);
                    }
                }
            }
            (Kind::Service, _) => {
                of_service.insert(i, w.shared.len());
                w.shared.push(a.duration);
            }
            (Kind::Step, _) => {
                let needs = a.deps.iter().filter_map(|d| of_service.get(d).copied()).collect();
                w.jobs.push(Job { seconds: a.duration, needs });
                w.units.push(Unit::Step(i));
            }
            _ => {}
        }
    }
    w
}

/// Creating the nodes and setting them up, as if new: a set beyond the first has no nodes yet.
fn prepare_seconds(actions: &[Action]) -> f64 {
    let mut finish = vec![0.0f64; actions.len()];
    for (i, a) in actions.iter().enumerate() {
        if matches!(a.kind, Kind::Stack | Kind::Nodes | Kind::Upload | Kind::Setup) {
            let start = a.deps.iter().filter(|&&d| d < i).map(|&d| finish[d]).fold(0.0, f64::max);
            finish[i] = start + a.duration;
        }
    }
    finish.into_iter().fold(0.0, f64::max)
}

/// What each node set costs: its nodes and their price per node-hour.
#[derive(Clone, Copy, Debug)]
pub struct Pricing {
    pub nodes: usize,
    pub price_per_node_hour: f64,
}

/// The spread of a plan's node work over `parallel` sets (None for one set), with each
/// launch and step action marked with its set.
pub fn spread(actions: &mut [Action], parallel: u32, pinned: u32, pricing: Pricing) -> Option<Sets> {
    if parallel <= 1 {
        return None;
    }
    let w = work(actions, pinned);
    let problem = Problem { jobs: &w.jobs, shared: &w.shared };
    let prepare = prepare_seconds(actions);
    let by_k = (1..=parallel.max(8)).map(|k| trade(problem, k, prepare, pricing)).collect();
    let chosen = sets::assign(problem, parallel as usize);
    let schedule = chosen
        .sets
        .iter()
        .zip(&chosen.loads)
        .enumerate()
        .map(|(s, (jobs, &load))| node_set(actions, &w, s as u32 + 1, jobs, load))
        .collect();
    mark(actions, &w, &chosen);
    Some(Sets {
        parallel,
        prepare_seconds: prepare,
        makespan_seconds: chosen.makespan(),
        bound_seconds: sets::lower_bound(problem, parallel as usize),
        schedule,
        by_k,
    })
}

fn trade(problem: Problem, k: u32, prepare: f64, pricing: Pricing) -> Spread {
    let a = sets::assign(problem, k as usize);
    let busy: f64 = a.sets.iter().zip(&a.loads).filter(|(jobs, _)| !jobs.is_empty()).map(|(_, load)| prepare + load).sum();
    let node_hours = busy / 3600.0 * pricing.nodes as f64;
    Spread {
        k,
        makespan_seconds: a.makespan(),
        bound_seconds: sets::lower_bound(problem, k as usize),
        wall_seconds: prepare + a.makespan(),
        node_hours,
        cost_usd: node_hours * pricing.price_per_node_hour,
    }
}

fn node_set(actions: &[Action], w: &Work, set: u32, jobs: &[usize], load: f64) -> NodeSet {
    let mut ns = NodeSet { set, launches: vec![], steps: vec![], work_seconds: load };
    for &j in jobs {
        match &w.units[j] {
            Unit::Launches(l) => ns.launches.extend(l),
            Unit::Step(i) => ns.steps.push(actions[*i].label().to_string()),
        }
    }
    ns
}

/// Each launch's and step's actions get their set number.
fn mark(actions: &mut [Action], w: &Work, chosen: &sets::Assignment) {
    let mut set_of_launch: BTreeMap<u32, u32> = BTreeMap::new();
    for (s, jobs) in chosen.sets.iter().enumerate() {
        for &j in jobs {
            match &w.units[j] {
                Unit::Launches(l) => set_of_launch.extend(l.iter().map(|&n| (n, s as u32 + 1))),
                Unit::Step(i) => actions[*i].set = (s as u32 + 1).into(),
            }
        }
    }
    for a in actions.iter_mut().filter(|a| runs(a)) {
        if let Some(set) = a.launch.get().and_then(|n| set_of_launch.get(&n)) {
            a.set = (*set).into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ActionId, Deps};
    use super::*;

    fn action(id: ActionId, kind: Kind, seconds: f64, launch: Option<u32>, deps: &[usize]) -> Action {
        let mut a = Action::new(id, kind, String::new(), String::new(), seconds, Deps::from_slice(deps));
        a.launch = launch.into();
        a
    }

    /// Two launches, one pinned with a third, and two steps that need a service.
    fn actions() -> Vec<Action> {
        let p = |s: &str| ActionId::Pattern(s.into());
        vec![
            action(ActionId::Stack, Kind::Stack, 100.0, None, &[]),
            action(ActionId::Nodes, Kind::Nodes, 50.0, None, &[0]),
            action(ActionId::ServerStart(1), Kind::ServerStart, 10.0, Some(1), &[1]),
            action(p("a"), Kind::Pattern, 1000.0, Some(1), &[2]),
            action(ActionId::ServerStart(2), Kind::ServerStart, 10.0, Some(2), &[3]),
            action(p("b"), Kind::Pattern, 500.0, Some(2), &[4]),
            action(ActionId::ServerStart(3), Kind::ServerStart, 10.0, Some(3), &[5]),
            action(p("c"), Kind::Pattern, 800.0, Some(3), &[6]),
            action(ActionId::Service("etcd".into()), Kind::Service, 30.0, None, &[1]),
            action(p("s1"), Kind::Step, 200.0, None, &[7, 8]),
            action(p("s2"), Kind::Step, 200.0, None, &[9, 8]),
        ]
    }

    #[test]
    fn one_set_adds_nothing_to_the_plan() {
        let pricing = Pricing { nodes: 2, price_per_node_hour: 10.0 };
        assert_eq!(spread(&mut actions(), 1, 0, pricing), None);
    }

    #[test]
    fn launches_a_pin_sequences_stay_together_and_services_start_once_per_set() {
        let pricing = Pricing { nodes: 2, price_per_node_hour: 10.0 };
        let mut a = actions();
        let s = spread(&mut a, 2, 2, pricing).unwrap();
        assert_eq!(s.prepare_seconds, 150.0);
        // Jobs: launches 1-2 pinned (1520 s), launch 3 (810 s), two steps of 200 s with etcd.
        let launches: Vec<&Vec<u32>> = s.schedule.iter().map(|n| &n.launches).collect();
        assert_eq!(launches, vec![&vec![1, 2], &vec![3]]);
        assert_eq!(s.schedule[1].steps, vec!["s1", "s2"]);
        assert_eq!(s.schedule[1].work_seconds, 810.0 + 30.0 + 400.0);
        assert_eq!(s.makespan_seconds, 1520.0);
        assert_eq!(s.bound_seconds, 1520.0);
        // One set: everything in a row; its cost is its nodes' busy time.
        let one = &s.by_k[0];
        assert_eq!(one.makespan_seconds, 1520.0 + 810.0 + 30.0 + 400.0);
        assert_eq!(one.wall_seconds, 150.0 + one.makespan_seconds);
        assert!((one.cost_usd - one.wall_seconds / 3600.0 * 2.0 * 10.0).abs() < 1e-9);
        assert_eq!(s.by_k.len(), 8);
        // The actions know their set.
        assert_eq!((a[3].set.get(), a[5].set.get(), a[7].set.get(), a[9].set.get()), (Some(1), Some(1), Some(2), Some(2)));
        assert_eq!(a[0].set.get(), None);
    }
}
