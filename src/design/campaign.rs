//! An experiment resolved for the runtime: the merged experiment (with what
//! it extends), its design, the stack, setup and command templates it names,
//! and the order its patterns run in. The pipeline builds one per experiment;
//! the planner, the executor, the CLI and the language server take it and
//! never look a name up again (a child experiment inherits its parent's stack
//! here, once, instead of in every command).

use super::schedule::{self, Schedule};
use super::Design;
use crate::check::model::{Experiment, Node, Setup, Stack};
use crate::check::Model;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp};
use crate::syntax::ast::{Expr, ExprKind};
use std::collections::BTreeMap;

/// The commands of a `server` or `bench` definition, by name (`start_unified`, `health`, `run`, ...).
pub type Templates = BTreeMap<String, Expr>;

#[derive(Clone, Debug)]
pub struct Campaign {
    /// The experiment with everything it inherits folded in.
    pub experiment: Experiment,
    pub design: Design,
    /// The stack it runs on; None only when the files declare no stack at all.
    pub stack: Option<Stack>,
    /// The setup the stack names.
    pub setup: Option<Setup>,
    pub server: Templates,
    pub bench: Templates,
    /// The E2E patterns in run order, grouped by restart key.
    pub schedule: Schedule,
}

impl Campaign {
    pub fn name(&self) -> &str {
        &self.design.experiment
    }
}

/// Resolves one experiment: merge, expand, name lookups, schedule. Every problem
/// found is returned; the campaign is None only when the experiment cannot be merged.
pub fn resolve(model: &Model, name: &str) -> (Option<Campaign>, Vec<Diagnostic>) {
    resolve_with(model, name, true)
}

/// [`resolve`], rendering every command for the acceptance check (`accepts.rs`) only when
/// `render` is true: a command about another experiment does not run these commands.
pub fn resolve_with(model: &Model, name: &str, render: bool) -> (Option<Campaign>, Vec<Diagnostic>) {
    let mut diags = vec![];
    let Some(mut experiment) = super::merge::merged(model, name, &mut diags) else {
        return (None, diags);
    };
    let templates = |def: &Option<String>| def.as_ref().and_then(|d| model.templates.get(d)).cloned().unwrap_or_default();
    let (server, bench) = (templates(&experiment.server_def), templates(&experiment.bench_def));
    restart_on_server_changes(&mut experiment, &server);
    let mut design = super::expand::run(model, &experiment, &mut diags);
    drop_redundant_implied(&mut design, &experiment.restart_implied);
    let stack = stack_of(model, &experiment, &mut diags).cloned();
    let setup = stack.as_ref().and_then(|s| s.setup.as_ref()).and_then(|n| model.setups.iter().find(|x| &x.name == n)).cloned();
    reserved_ids(&design, &mut diags);
    let schedule = order(&experiment, &design, &mut diags);
    let mut campaign = Campaign { experiment, design, stack, setup, server, bench, schedule };
    grow_to_largest_launch(model, &mut campaign);
    if render && !diags.iter().any(Diagnostic::is_error) {
        super::accepts::check(model, &campaign, &mut diags);
    }
    (Some(campaign), diags)
}

/// The stack's nodes grown to what the largest launch lays out (`topology.rs`): nodes
/// beyond the declared ones are named on (node3, node4, ...); a stack never has fewer
/// nodes than it declares. Launches that need fewer leave the rest idle.
fn grow_to_largest_launch(model: &Model, campaign: &mut Campaign) {
    let needed = super::topology::largest_launch(model, campaign);
    let Some(stack) = campaign.stack.as_mut() else { return };
    while stack.nodes.len() < needed {
        let name = format!("node{}", stack.nodes.len() + 1);
        stack.nodes.push(Node { name, role: Some("added for the largest launch".into()), span: stack.span });
    }
}

/// Adds to `restart_on` every setting the server's start commands read that some layer,
/// pattern, factor or `set` can change: a pattern then never runs on a server started
/// with other flags. Settings fixed for the whole experiment cannot split a launch.
fn restart_on_server_changes(exp: &mut Experiment, server: &Templates) {
    let mut read = super::accepts::server_command_names(server);
    read.extend(super::topology::SETTINGS.iter().map(|s| s.to_string()));
    let mut varying: Vec<String> = exp.factors.iter().map(|f| f.name.clone()).collect();
    varying.extend(exp.derived.iter().filter(|d| d.setting).map(|d| d.name.clone()));
    for l in &exp.layers {
        varying.extend(l.fixed.keys().cloned());
        varying.extend(l.derived.iter().filter(|d| d.setting).map(|d| d.name.clone()));
    }
    varying.extend(exp.patterns.iter().flat_map(|p| p.values.keys().cloned()));
    let listed: Vec<String> = match &exp.restart_on {
        Some(Expr { kind: ExprKind::List(items), .. }) => {
            items.iter().filter_map(|e| e.as_name()).map(|i| i.name.clone()).collect()
        }
        _ => vec!["mode".into(), "transport".into()],
    };
    exp.restart_implied = read.into_iter().filter(|n| varying.contains(n) && !listed.contains(n)).collect();
}

/// Removes from every restart key the implied settings that never tell apart two
/// launches `restart_on` alone would merge: they split nothing, and would only make
/// each launch's label long. Keys stay distinct, since launches equal on `restart_on`
/// differ only in the names kept.
fn drop_redundant_implied(design: &mut Design, implied: &[String]) {
    let explicit = |k: &super::RestartKey| -> Vec<String> {
        k.values.iter().filter(|(n, _)| !implied.contains(n)).map(|(n, v)| format!("{n}={}", v.display())).collect()
    };
    let value = |k: &super::RestartKey, name: &str| k.values.iter().find(|(n, _)| n == name).map(|(_, v)| v.display());
    let keep: Vec<&String> = implied
        .iter()
        .filter(|name| {
            design.groups.iter().enumerate().any(|(i, a)| {
                design.groups[i + 1..].iter().any(|b| explicit(a) == explicit(b) && value(a, name) != value(b, name))
            })
        })
        .collect();
    for g in &mut design.groups {
        g.values.retain(|(n, _)| !implied.contains(n) || keep.contains(&n));
    }
}

/// The stack an experiment names; else the only one declared in its own file;
/// else the only one at all. Naming none when there are several is an error:
/// picking the first silently ran campaigns in the wrong region.
fn stack_of<'m>(model: &'m Model, exp: &Experiment, diags: &mut Vec<Diagnostic>) -> Option<&'m Stack> {
    let names = || model.stacks.iter().map(|s| s.name.as_str());
    let own: Vec<&Stack> = model.stacks.iter().filter(|s| s.span.file == exp.span.file).collect();
    let candidates: Vec<&Stack> = if own.is_empty() { model.stacks.iter().collect() } else { own };
    match &exp.stack {
        Some(wanted) => {
            let found = model.stacks.iter().find(|s| &s.name == wanted);
            if found.is_none() {
                let hint = did_you_mean(wanted, names()).or_help(|| {
                    format!("the stacks declared are: {}", names().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", "))
                });
                diags.push(
                    Diagnostic::error(Code::UnknownReference, exp.stack_span, format!("no stack `{wanted}`"))
                        .label("the experiment runs on this stack")
                        .help(hint),
                );
            }
            found
        }
        None if candidates.len() > 1 => {
            let list: Vec<String> = candidates.iter().map(|s| format!("\"{}\"", s.name)).collect();
            diags.push(
                Diagnostic::error(
                    Code::MissingAttribute,
                    exp.span,
                    format!("experiment `{}` does not say which of {} stacks it runs on", exp.name, list.len()),
                )
                .help(format!("add `stack = {}` (the stacks declared are: {})", list[0], list.join(", "))),
            );
            None
        }
        None => candidates.first().copied(),
    }
}

/// A pattern id must not read as another action's address (`stack`, `setup.node1.05-x`,
/// `server.3.start`): the plan, the state and `--target` could not tell them apart.
fn reserved_ids(design: &Design, diags: &mut Vec<Diagnostic>) {
    // Ids become file names and words of the scripts sent to the nodes: a safe set of
    // characters, so no id can change what a script does. One report per layer.
    let mut reported = std::collections::HashSet::new();
    for p in &design.patterns {
        let safe = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if (p.id.is_empty() || !p.id.chars().all(safe) || p.id.starts_with(['-', '.'])) && reported.insert(p.layer) {
            diags.push(
                Diagnostic::error(
                    Code::Domain,
                    p.span,
                    format!("pattern id `{}` has characters ids cannot have", p.id.escape_debug()),
                )
                .label("ids name result files and appear in the commands sent to the nodes")
                .help("use letters, digits, `-`, `_` and `.`, not starting with `-` or `.`"),
            );
            continue;
        }
        if crate::address::ActionId::from(&*p.id).pattern().is_none() {
            diags.push(
                Diagnostic::error(
                    Code::Domain,
                    p.span,
                    format!("pattern id `{}` is the address of another kind of action", p.id),
                )
                .help("choose an id that is not `stack`, `nodes`, `upload`, `setup.N.S`, `service.S` or `server.N.start|stop`"),
            );
        }
    }
}

/// The run order: restart-minimal, or the pinned `order`, which is warned
/// about (W0402) when it costs launches. Part of the design, so `nixl check`
/// and the editor show the warning, not only `nixl plan`.
fn order(exp: &Experiment, design: &Design, diags: &mut Vec<Diagnostic>) -> Schedule {
    let Some(order) = &exp.order else { return schedule::schedule(design) };
    let items: Vec<String> = match &order.kind {
        ExprKind::List(items) => items.iter().filter_map(|i| i.as_plain_str()).collect(),
        _ => vec![],
    };
    let s = schedule::pinned(design, &items);
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
