//! The plan as users read it: terraform-like text, stable JSON, and DOT with one cluster per server launch.

use super::parallel::Sets;
use super::{Change, Kind, Plan};
use crate::check::value::fmt_duration;
use std::fmt::Write;

struct Paint {
    on: bool,
}

impl Paint {
    fn sym(&self, c: Change) -> String {
        let s = c.symbol();
        if !self.on {
            return s.to_string();
        }
        let code = match c {
            Change::Create => "32",
            Change::Update => "33",
            Change::Replace => "35",
            Change::Delete => "31",
            Change::NoOp => "0",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
    fn bold(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// What `--refresh` found, before the actions it explains.
fn refreshed(r: &super::refresh::Refresh) -> String {
    if r.checked == 0 {
        return "Refreshed: the state records no nodes.\n\n".into();
    }
    if r.findings.is_empty() {
        return format!("Refreshed: the {} recorded node(s) run as recorded (asked {}).\n\n", r.checked, r.provider);
    }
    let mut s = format!("Refreshed: asked {} about the {} recorded node(s):\n", r.provider, r.checked);
    for f in &r.findings {
        let _ = writeln!(s, "  {f}");
    }
    if r.replaces_nodes() {
        s += "  The nodes and their setup are planned again (apply terminates the rest of the pair first).\n";
    }
    s + "\n"
}

pub fn money(x: f64) -> String {
    format!("${x:.2}")
}

/// The text plan. `color` adds ANSI colours to the change symbols.
pub fn text(plan: &Plan, reduction: Option<&str>, color: bool) -> String {
    let mut s = String::new();
    write_text(&mut s, plan, reduction, color);
    s
}

/// The text plan written as it is made: a million-pattern plan is not held twice in memory.
pub fn write_text(s: &mut dyn Write, plan: &Plan, reduction: Option<&str>, color: bool) {
    let p = Paint { on: color };
    let ext = plan.extends.as_ref().map(|e| format!(" (extends {e})")).unwrap_or_default();
    let _ = writeln!(s, "nixl will perform these actions for experiment {}{ext}:", p.bold(&plan.experiment));
    let _ = writeln!(s, "Symbols: + create or run, ~ update in place, -/+ run again (changed), - forget.\n");
    if let Some(r) = &plan.refresh {
        let _ = s.write_str(&refreshed(r));
    }
    let w = plan.actions.iter().filter(|a| a.change != Change::NoOp).map(|a| a.label().len()).max().unwrap_or(10).clamp(10, 48);
    let mut section = "";
    let mut setup_nodes: Vec<String> = vec![];
    for a in &plan.actions {
        let heading = match a.kind {
            Kind::Stack | Kind::Nodes | Kind::Upload => "infrastructure",
            Kind::Setup => "setup",
            Kind::Service => "services",
            Kind::ServerStart | Kind::Pattern | Kind::ServerStop => "measurement",
            Kind::Step => "steps",
            Kind::Analysis => "analyses (local, as soon as their inputs exist)",
        };
        let heading = if a.kind == Kind::Step { a.layer.as_deref().unwrap_or("steps") } else { heading };
        if a.change == Change::NoOp {
            continue;
        }
        if heading != section {
            let _ = writeln!(s, "  # {heading}");
            section = heading;
        }
        if a.kind == Kind::Setup {
            // One line per node: the step list is long and identical across nodes.
            let node = a.node.as_deref().unwrap_or_default().to_string();
            if !setup_nodes.contains(&node) {
                let steps: Vec<_> = plan
                    .actions
                    .iter()
                    .filter(|b| b.kind == Kind::Setup && b.node == a.node && b.change != Change::NoOp)
                    .collect();
                let total: f64 = steps.iter().map(|b| b.duration).sum();
                let first = match steps.first().map(|b| &b.id) {
                    Some(super::ActionId::Setup(s)) => s.step.clone(),
                    _ => String::new(),
                };
                let label = format!("setup on {node}");
                let _ = writeln!(
                    s,
                    "  {:>3} {label:<w$}  {} steps from {first}, ~{}",
                    p.sym(a.change),
                    steps.len(),
                    fmt_duration(total)
                );
                setup_nodes.push(node);
            }
            continue;
        }
        let _ = write!(s, "  {:>3} {:<w$}  ", p.sym(a.change), a.label());
        let _ = match a.detail.is_empty() {
            true => writeln!(s, "~{}", fmt_duration(a.duration)),
            false => writeln!(s, "{}", a.detail),
        };
    }
    let unchanged = plan.summary.unchanged;
    if unchanged > 0 {
        let _ = writeln!(s, "\n  ({unchanged} actions already done with the same settings are not shown)");
    }
    if !plan.adhoc.is_empty() {
        let _ = writeln!(
            s,
            "\n  {} ad-hoc patterns are not scheduled; rules or `nixl apply --target ID` run them.",
            plan.adhoc.len()
        );
    }
    if let Some(r) = reduction {
        let _ = writeln!(s, "\n{r}");
    } else {
        let _ = writeln!(s);
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(s, "Notes on the design:");
        for n in &plan.notes {
            let _ = writeln!(s, "  - {n}");
        }
        let _ = writeln!(s);
    }
    for b in &plan.saturation {
        let _ = writeln!(
            s,
            "Saturation search in {} on {}: {} point(s), request rates {} to {} req/s within {:.0} %: at most {} probes each ({} doubling, {} bisecting), in one launch.\n",
            b.layer,
            b.metric,
            b.points,
            b.from,
            b.to,
            b.tolerance * 100.0,
            b.max_probes,
            b.bracketing,
            b.bisection
        );
    }
    if let Some(seed) = plan.shuffle_seed {
        let _ = writeln!(s, "Run order inside each launch: shuffled with seed {seed} (same seed, same order).\n");
    }
    if !plan.groups.is_empty() {
        let _ = writeln!(s, "Server launches, in order (one per restart key):");
        let kw = plan.groups.iter().map(|g| g.key.len()).max().unwrap_or(10);
        for g in &plan.groups {
            let _ = writeln!(
                s,
                "  {:>2}. {:<kw$}  {:>2} pattern{}  start-up ~{:<7}  measure ~{}",
                g.launch,
                g.key,
                g.patterns,
                if g.patterns == 1 { " " } else { "s" },
                fmt_duration(g.startup),
                fmt_duration(g.measure)
            );
            if let Some(l) = &g.layout {
                let _ = writeln!(s, "      {}", layout_line(l));
            }
        }
        if plan.groups.iter().any(|g| g.layout.as_ref().is_some_and(|l| !l.keeps.is_empty())) {
            let _ =
                writeln!(s, "  Apply stops and starts only the roles named; the servers kept running are checked healthy first.");
        }
        let _ = writeln!(
            s,
            "  {} launch{}; the minimum for these patterns is {}.",
            plan.summary.launches,
            if plan.summary.launches == 1 { "" } else { "es" },
            plan.summary.min_launches
        );
        let _ = writeln!(s);
    }
    let e = &plan.estimate;
    let _ = write!(s, "Estimate: {} wall time (critical path)", fmt_duration(e.wall_seconds));
    if e.nodes > 0 {
        let _ =
            write!(s, ", {:.1} node-hours at {}/h per node = {}", e.node_hours, money(e.price_per_node_hour), money(e.cost_usd));
        let _ = match e.price_basis {
            crate::plan::PriceBasis::OnDemand => Ok(()),
            crate::plan::PriceBasis::Spot => write!(s, " (spot price from the catalogue)"),
            crate::plan::PriceBasis::SpotWithoutPrice => {
                write!(s, " (on-demand price: the catalogue states no `spot_price` for this type)")
            }
        };
    }
    let _ = writeln!(s, ".");
    if let Some(h) = e.hand_estimate_seconds {
        let _ = writeln!(
            s,
            "The hand estimate for this experiment was {} ({} min); computed: {} min.",
            fmt_duration(h),
            (h / 60.0).round(),
            (e.wall_seconds / 60.0).round()
        );
    }
    let _ = writeln!(s);
    if let Some(sets) = &plan.sets {
        write_sets(s, sets, e);
    }
    let _ = writeln!(s, "{}", summary_line(plan, &p));
}

/// A launch's servers, nodes and GPUs, and which roles it restarts and why.
fn layout_line(l: &crate::design::topology::LaunchLayout) -> String {
    let list = |r: &[crate::design::topology::Role]| r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
    let mut what = match l.changed.is_empty() {
        true => format!("starts {}", list(&l.restarts)),
        false => format!("restarts {} ({})", list(&l.restarts), l.changed.join(", ")),
    };
    if !l.changed.is_empty() && !l.keeps.is_empty() {
        what += &format!("; {} keep{} running", list(&l.keeps), if l.keeps.len() == 1 { "s" } else { "" });
    }
    format!("{} on {} node{}, {} GPUs; {what}", l.servers, l.nodes, if l.nodes == 1 { "" } else { "s" }, l.gpus)
}

/// `parallel` > 1: each set's share, the makespan against its bound, and the trade for k sets.
fn write_sets(s: &mut dyn Write, sets: &Sets, e: &super::Estimate) {
    let _ = writeln!(
        s,
        "Spread over {} node sets (apply runs them at once with --provider local; on AWS one set for now). Each set creates its own {} nodes and runs the setup (~{}), then:",
        sets.parallel,
        e.nodes,
        fmt_duration(sets.prepare_seconds)
    );
    let shares: Vec<String> = sets.schedule.iter().map(share).collect();
    let w = shares.iter().map(String::len).max().unwrap_or(0);
    for (set, text) in sets.schedule.iter().zip(&shares) {
        let _ = writeln!(s, "  set {:<2} {text:<w$}  work ~{}", set.set, fmt_duration(set.work_seconds));
    }
    let _ = writeln!(
        s,
        "  Makespan {}, {:.1} % above the lower bound {} (the longest job, or all the work shared evenly); wall time ~{}.",
        fmt_duration(sets.makespan_seconds),
        sets.above_bound(),
        fmt_duration(sets.bound_seconds),
        fmt_duration(sets.prepare_seconds + sets.makespan_seconds)
    );
    let _ = writeln!(s, "\nBy number of node sets (each set's nodes paid from their creation to its last job):");
    let _ = writeln!(s, "  sets  makespan   lower bound  above    wall time  node-hours  cost");
    for k in &sets.by_k {
        let _ = writeln!(
            s,
            "  {:>4}  {:<9}  {:<11}  {:>5.1} %  {:<9}  {:>10.1}  {}",
            k.k,
            fmt_duration(k.makespan_seconds),
            fmt_duration(k.bound_seconds),
            k.above_bound(),
            fmt_duration(k.wall_seconds),
            k.node_hours,
            money(k.cost_usd)
        );
    }
    let _ = writeln!(s);
}

/// What one set runs: its launches and how many tool steps.
fn share(set: &super::parallel::NodeSet) -> String {
    let launches: Vec<String> = set.launches.iter().map(u32::to_string).collect();
    let mut parts = vec![];
    match launches.len() {
        0 => {}
        1 => parts.push(format!("launch {}", launches[0])),
        _ => parts.push(format!("launches {}", launches.join(", "))),
    }
    match set.steps.len() {
        0 => {}
        1 => parts.push("1 step".into()),
        n => parts.push(format!("{n} steps")),
    }
    if parts.is_empty() {
        return "nothing to run (not created)".into();
    }
    parts.join(" + ")
}

fn summary_line(plan: &Plan, p: &Paint) -> String {
    let sm = &plan.summary;
    if !sm.has_changes() {
        return p.bold("No changes. Everything is done and up to date.");
    }
    let mut line = format!("Plan: {} to add, {} to change, {} to run, {} to destroy", sm.add, sm.change, sm.run, sm.destroy);
    if sm.setup_steps > 0 {
        line += &format!(", {} setup steps", sm.setup_steps);
    }
    line += &format!(
        ". {} server launch{}, est. {}",
        sm.launches,
        if sm.launches == 1 { "" } else { "es" },
        fmt_duration(plan.estimate.wall_seconds)
    );
    if plan.estimate.nodes > 0 {
        line += &format!(", {}", money(plan.estimate.cost_usd));
    }
    line.push('.');
    p.bold(&line)
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plan serialises") + "\n"
}

/// DOT: actions as nodes, dependencies as edges, one cluster per server launch.
pub fn dot(plan: &Plan) -> String {
    let mut s = String::from("digraph nixl {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
    let q = |x: &str| format!("\"{}\"", x.replace('"', "\\\""));
    let mut i = 0;
    while i < plan.actions.len() {
        let a = &plan.actions[i];
        if a.kind == Kind::ServerStart {
            let launch = a.launch.get().unwrap_or(0);
            let key = plan.groups.iter().find(|g| g.launch == launch).map(|g| g.key.as_str()).unwrap_or("");
            let _ = writeln!(s, "  subgraph cluster_{launch} {{\n    label={};", q(&format!("launch {launch}: {key}")));
            while i < plan.actions.len() {
                let b = &plan.actions[i];
                let _ = writeln!(s, "    n{i} [label={}];", q(&b.id.to_string()));
                i += 1;
                if b.kind == Kind::ServerStop {
                    break;
                }
            }
            let _ = writeln!(s, "  }}");
            continue;
        }
        let shape = match a.kind {
            Kind::Analysis => ", shape=ellipse",
            Kind::Stack | Kind::Nodes => ", shape=box3d",
            _ => "",
        };
        let _ = writeln!(s, "  n{i} [label={}{shape}];", q(&a.id.to_string()));
        i += 1;
    }
    for (i, a) in plan.actions.iter().enumerate() {
        for d in &a.deps {
            let _ = writeln!(s, "  n{d} -> n{i};");
        }
    }
    s.push_str("}\n");
    s
}
