//! The plan against the state: what is done, what changed, what is no longer
//! declared, and the summary and launch table of what remains.

use super::target::Target;
use super::{Action, ActionId, Change, GroupSummary, Kind, StackChanges, Summary};
use crate::check::model::Stack;
use crate::design::Campaign;
use crate::state::{State, Status};
use std::collections::HashSet;

/// Marks each action done, changed or new; what `--replace` names runs again.
/// Transient actions (launches, services, the upload) always run when the work around them does.
pub fn against_state(actions: &mut [Action], state: &State, replace: &[Target], stack: Option<&Stack>) {
    for a in actions.iter_mut() {
        a.change = if a.id.is_transient() {
            Change::Create
        } else {
            match state.actions.get(&a.id) {
                // Before the hash: nodes launched as other machines are replaced even when the
                // file's nodes read the same (an old unencrypted volume, a new placement).
                Some(r) if r.status == Status::Done && a.kind == Kind::Nodes => match node_replacement(state, stack) {
                    Some(why) => {
                        a.detail = format!("{} (replaced: {why})", a.detail).into();
                        Change::Replace
                    }
                    None if a.hash == r.hash => Change::NoOp,
                    None => Change::Update,
                },
                Some(r) if r.status == Status::Done && a.hash == r.hash => Change::NoOp,
                Some(r) if r.status == Status::Done && matches!(a.kind, Kind::Stack | Kind::Nodes) => Change::Update,
                Some(r) if r.status == Status::Done => Change::Replace,
                _ => Change::Create,
            }
        };
        if a.change == Change::NoOp && replace.iter().any(|t| t.matches(a)) {
            a.change = Change::Replace;
        }
    }
    // New machines need their setup again: it was done on the ones replaced.
    if actions.iter().any(|a| a.kind == Kind::Nodes && a.change == Change::Replace) {
        for a in actions.iter_mut().filter(|a| a.kind == Kind::Setup && a.change == Change::NoOp) {
            a.change = Change::Replace;
        }
    }
    // An analysis whose inputs run again is computed again on their new results.
    for i in 0..actions.len() {
        let inputs_run = actions[i].kind == Kind::Analysis
            && actions[i].change == Change::NoOp
            && actions[i].deps.iter().any(|&d| matches!(actions[d].change, Change::Create | Change::Replace));
        if inputs_run {
            actions[i].change = Change::Replace;
        }
    }
}

/// Why the running nodes are not what the file asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeReplacement {
    /// Their recorded spec is another machine (type, volume, image, EFA, placement, KMS key).
    OtherMachines,
    /// They were recorded before nixl recorded how root volumes are encrypted: the volumes
    /// may be unencrypted.
    MaybeUnencrypted,
}

impl std::fmt::Display for NodeReplacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeReplacement::OtherMachines => "the machines the file asks for changed",
            NodeReplacement::MaybeUnencrypted => {
                "launched before nixl recorded volume encryption, their root volumes may be unencrypted"
            }
        })
    }
}

/// Whether, and why, the recorded nodes must be replaced. Other machines win over the
/// encryption (new machines are encrypted either way). Records of releases before specs were
/// recorded (None) are older than encryption too; their type or zone may also be gone.
pub fn node_replacement(state: &State, stack: Option<&Stack>) -> Option<NodeReplacement> {
    let st = stack?;
    let (spec, unencrypted) = (super::actions::machine_spec(st), super::actions::unencrypted_spec(st));
    let mut why = None;
    for n in &state.infra.nodes {
        let other = match &n.spec {
            // With a `kms_key` now, a record without one is another key's machine either way.
            Some(s) => *s != spec && (st.kms_key.is_some() || *s != unencrypted),
            None => {
                n.instance_type.as_ref().is_some_and(|t| !st.instance_types.contains(t))
                    || n.zone.as_ref().is_some_and(|z| !st.zones.contains(z))
            }
        };
        if other {
            return Some(NodeReplacement::OtherMachines);
        }
        if n.spec.as_ref() != Some(&spec) {
            why = Some(NodeReplacement::MaybeUnencrypted);
        }
    }
    why
}

/// A stack update says what its change set will touch, from the resource hashes the last apply recorded.
pub fn describe_stack_update(actions: &mut [Action], stack: Option<&Stack>, state: &State, changes: StackChanges) {
    let (Some(st), Some(rec)) = (stack, &state.infra.stack) else { return };
    if let Some(a) = actions.iter_mut().find(|a| a.kind == Kind::Stack && a.change == Change::Update) {
        let touched = changes(st, &rec.outputs);
        if !touched.is_empty() {
            a.detail = format!("CloudFormation change set: {}", touched.join(", ")).into();
        }
    }
}

/// Drops launches whose patterns are all done, services no pending step needs,
/// and the upload when nothing on the nodes runs.
/// Infrastructure is created only when the plan has work for it: a finished campaign
/// whose nodes were destroyed plans nothing, not a stack, two GPU nodes and their setup.
/// Changes to infrastructure that exists stay (the file declares them); `--target nodes`
/// still creates it on purpose.
pub fn drop_idle_infrastructure(actions: &mut Vec<Action>) {
    let work = actions
        .iter()
        .any(|a| a.change != Change::NoOp && matches!(a.kind, Kind::Pattern | Kind::Step | Kind::Service | Kind::ServerStart));
    if work {
        return;
    }
    // Setup and the upload go only with nodes that do not exist: new steps for live nodes stay.
    let no_nodes = actions.iter().any(|a| a.kind == Kind::Nodes && a.change == Change::Create);
    let idle = |a: &Action| match a.kind {
        Kind::Stack | Kind::Nodes => a.change == Change::Create,
        Kind::Upload | Kind::Setup => no_nodes,
        _ => false,
    };
    let keep: Vec<bool> = actions.iter().map(|a| !idle(a)).collect();
    keep_only(actions, &keep);
}

pub fn prune_transients(actions: &mut Vec<Action>) {
    // One pass for what each transient is needed by: a million actions stay linear.
    let pending = |a: &&Action| a.change != Change::NoOp;
    let launches: HashSet<u32> =
        actions.iter().filter(pending).filter(|a| a.kind == Kind::Pattern).filter_map(|a| a.launch.get()).collect();
    let services: HashSet<usize> =
        actions.iter().filter(pending).filter(|a| a.kind == Kind::Step).flat_map(|a| a.deps.iter().copied()).collect();
    let upload = actions.iter().filter(pending).any(|a| matches!(a.kind, Kind::Setup | Kind::Pattern | Kind::Step));
    let keep: Vec<bool> = (0..actions.len())
        .map(|i| match actions[i].kind {
            Kind::ServerStart | Kind::ServerStop => actions[i].launch.get().is_some_and(|l| launches.contains(&l)),
            Kind::Service => services.contains(&i),
            Kind::Upload => upload,
            _ => true,
        })
        .collect();
    keep_only(actions, &keep);
}

/// Keeps the marked actions; a dropped action's dependants inherit its dependencies.
pub fn keep_only(actions: &mut Vec<Action>, keep: &[bool]) {
    let n = actions.len();
    if keep.iter().all(|&k| k) {
        return;
    }
    let mut new_index = vec![usize::MAX; n];
    let mut kept = 0;
    for i in 0..n {
        if keep[i] {
            new_index[i] = kept;
            kept += 1;
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
    // New dependency lists first (they read the old ones), then the kept actions are moved, not copied.
    let mut deps: Vec<(Vec<usize>, Vec<usize>)> = Vec::with_capacity(kept);
    for (i, a) in actions.iter().enumerate().filter(|(i, _)| keep[*i]) {
        let (mut d, mut nd) = (vec![], vec![]);
        for &x in &a.deps {
            resolve(x, keep, actions, &new_index, &mut d);
        }
        for &x in &a.needs {
            resolve(x, keep, actions, &new_index, &mut nd);
        }
        debug_assert_eq!(deps.len(), new_index[i]);
        deps.push((d, nd));
    }
    let mut i = 0;
    actions.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    for (a, (d, nd)) in actions.iter_mut().zip(deps) {
        a.deps = d.into();
        a.needs = nd.into();
    }
}

/// Done actions the campaign no longer declares are forgotten (their results
/// stay on disk). Ad-hoc patterns are declared even when unscheduled.
pub fn forget_undeclared(actions: &mut Vec<Action>, campaign: &Campaign, state: &State) {
    if state.actions.is_empty() {
        return;
    }
    let adhoc: Vec<ActionId> =
        campaign.design.patterns.iter().filter(|p| p.adhoc).map(|p| ActionId::Pattern(p.id.clone())).collect();
    let declared: HashSet<&ActionId> = actions.iter().map(|a| &a.id).chain(&adhoc).collect();
    let mut forgotten = vec![];
    for (id, r) in &state.actions {
        if declared.contains(id) || r.status != Status::Done || id.is_transient() {
            continue;
        }
        let kind = match id {
            ActionId::Stack => Kind::Stack,
            ActionId::Nodes => Kind::Nodes,
            ActionId::Setup(_) => Kind::Setup,
            _ => Kind::Pattern,
        };
        let mut a = Action::new(id.clone(), kind, format!("forget {id} (its results stay on disk)"), r.hash.clone(), 0.0, vec![]);
        a.change = Change::Delete;
        forgotten.push(a);
    }
    drop(declared);
    actions.extend(forgotten);
}

/// Counts by change, and one row per launch that still has patterns to run.
pub fn summarise(actions: &[Action], campaign: &Campaign) -> (Summary, Vec<GroupSummary>) {
    let mut summary = Summary::default();
    for a in actions {
        match (a.change, a.kind) {
            (Change::NoOp, _) => summary.unchanged += 1,
            (Change::Delete, _) => summary.destroy += 1,
            (Change::Update, Kind::Stack | Kind::Nodes) => summary.change += 1,
            (_, Kind::Stack | Kind::Nodes) => summary.add += 1,
            (_, Kind::Setup) => summary.setup_steps += 1,
            (_, k) if k.has_result() => summary.run += 1,
            _ => {}
        }
    }
    let design = &campaign.design;
    // Patterns still to run and their estimate, per launch, in one pass.
    let mut work: std::collections::HashMap<u32, (usize, f64)> = std::collections::HashMap::new();
    for a in actions.iter().filter(|x| x.kind == Kind::Pattern && x.change != Change::NoOp) {
        let w = work.entry(a.launch.get().unwrap_or(0)).or_default();
        w.0 += 1;
        w.1 += a.duration;
    }
    let launches: Vec<GroupSummary> = actions
        .iter()
        .filter(|a| a.kind == Kind::ServerStart)
        .map(|start| {
            let (patterns, measure) = work.get(&start.launch.get().unwrap_or(0)).copied().unwrap_or_default();
            let group = start.group.get().unwrap_or(0);
            GroupSummary {
                launch: start.launch.get().unwrap_or(0),
                group,
                key: design.groups.get(group as usize).map(|k| k.label()).unwrap_or_default(),
                patterns,
                startup: start.duration,
                measure,
                layout: None,
            }
        })
        .collect();
    let mut distinct: Vec<u32> = launches.iter().map(|g| g.group).collect();
    distinct.sort_unstable();
    distinct.dedup();
    summary.launches = launches.len();
    summary.min_launches = distinct.len();
    (summary, launches)
}
