//! The design as tables: the pattern table, the reduction table against the
//! experiment it extends, one pattern resolved (`nixl show`), the table of optimal
//! designs (how their points were found), and notes on effects a design cannot estimate.

use super::doptimal::OptimalDesign;
use super::{Category, Design, LayerInfo, Pattern};
use crate::check::model::Experiment;
use crate::check::value::{human_bytes, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One row of the reduction table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReductionRow {
    pub name: String,
    pub before: usize,
    pub after: usize,
    /// Why patterns were removed, with how many.
    pub reasons: Vec<(String, usize)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Reduction {
    pub from: String,
    pub to: String,
    pub layers: Vec<ReductionRow>,
    pub categories: Vec<ReductionRow>,
    pub total: (usize, usize),
}

fn scheduled_in(d: &Design, layer: usize) -> usize {
    d.patterns.iter().filter(|p| p.layer as usize == layer && !p.adhoc).count()
}

fn adhoc_in(d: &Design, layer: usize) -> usize {
    d.patterns.iter().filter(|p| p.layer as usize == layer && p.adhoc).count()
}

/// Compares an experiment's design with its parent's, layer by layer and per category.
pub fn reduction(parent: &Design, child: &Design) -> Reduction {
    let mut layers = vec![];
    for (ci, cl) in child.layers.iter().enumerate() {
        let pi = parent.layers.iter().position(|l| l.name == cl.name);
        let before = pi.map(|i| scheduled_in(parent, i)).unwrap_or(0);
        let after = scheduled_in(child, ci);
        let mut reasons = vec![];
        // A design that replaces the parent's picks the points anew: the prunes before it no
        // longer decide which of the parent's patterns are dropped, the new design does, so the
        // whole drop is its own. (A design where the parent had none adds a step after the
        // prunes, and the counts per reason still add up to the drop.)
        let parent_design = pi.and_then(|i| parent.layers[i].design_span);
        let overridden = cl.design_span.is_some() && parent_design.is_some() && parent_design != cl.design_span;
        if overridden {
            if before > after {
                reasons.push((
                    format!("the design this experiment gives the layer ({} of {} candidates)", after, cl.candidates),
                    before - after,
                ));
            }
        } else {
            let parent_removed: BTreeMap<&str, usize> =
                pi.map(|i| parent.layers[i].removed.iter().map(|(r, n)| (r.as_str(), *n)).collect()).unwrap_or_default();
            for (r, n) in &cl.removed {
                let was = parent_removed.get(r.as_str()).copied().unwrap_or(0);
                if *n > was {
                    reasons.push((r.clone(), n - was));
                }
            }
        }
        let adhoc = adhoc_in(child, ci).saturating_sub(pi.map(|i| adhoc_in(parent, i)).unwrap_or(0));
        if adhoc > 0 {
            reasons.push(("ad hoc: run only when a rule or the user asks".into(), adhoc));
        }
        layers.push(ReductionRow { name: cl.name.clone(), before, after, reasons });
    }
    let mut categories: Vec<ReductionRow> = vec![];
    for cat in [Category::E2e, Category::LowLevel, Category::Baseline, Category::Analysis] {
        let before = parent.scheduled().filter(|p| p.category == cat).count();
        let after = child.scheduled().filter(|p| p.category == cat).count();
        if before == 0 && after == 0 {
            continue;
        }
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (i, l) in child.layers.iter().enumerate() {
            if l.category == cat {
                for (r, n) in &layers[i].reasons {
                    *reasons.entry(r.clone()).or_default() += n;
                }
            }
        }
        categories.push(ReductionRow { name: cat.label().into(), before, after, reasons: reasons.into_iter().collect() });
    }
    let total = (parent.scheduled().count(), child.scheduled().count());
    Reduction { from: parent.experiment.clone(), to: child.experiment.clone(), layers, categories, total }
}

pub fn render_reduction(r: &Reduction) -> String {
    let mut s = String::new();
    let w = r.layers.iter().map(|l| l.name.len()).max().unwrap_or(5).max(9);
    let _ = writeln!(s, "Reduction from {} to {} (computed from the declarations):", r.from, r.to);
    let _ = writeln!(s, "  {:<w$}  {:>7}  {:>7}  removed by", "layer", r.from, r.to);
    for l in &r.layers {
        let why = l.reasons.iter().map(|(r, n)| format!("{r} ({n})")).collect::<Vec<_>>().join("; ");
        let _ = writeln!(s, "  {:<w$}  {:>7}  {:>7}  {why}", l.name, l.before, l.after);
    }
    let _ = writeln!(s);
    for c in &r.categories {
        let _ = writeln!(s, "  {:<w$}  {:>7}  {:>7}  {}", c.name, c.before, c.after, arrow(c.before, c.after));
    }
    let _ = writeln!(s, "  {:<w$}  {:>7}  {:>7}  {}", "total", r.total.0, r.total.1, arrow(r.total.0, r.total.1));
    s
}

fn arrow(a: usize, b: usize) -> String {
    if a == b {
        "unchanged".into()
    } else {
        format!("{a} -> {b}")
    }
}

/// The pattern table: per layer, id, factors, restart key, KV size, estimate.
pub fn pattern_table(d: &Design) -> String {
    let mut s = String::new();
    let idw = d.patterns.iter().map(|p| p.id.len()).max().unwrap_or(2).max(2);
    for (li, l) in d.layers.iter().enumerate() {
        let ps: Vec<&Pattern> = d.patterns.iter().filter(|p| p.layer as usize == li).collect();
        let sched = ps.iter().filter(|p| !p.adhoc).count();
        let adhoc = ps.len() - sched;
        let _ = write!(s, "{} ({}, {sched} scheduled", l.name, l.category.label());
        if adhoc > 0 {
            let _ = write!(s, ", {adhoc} ad hoc");
        }
        let _ = writeln!(s, ")");
        for p in ps {
            let _ = write!(s, "  {}{:<idw$}  ", if p.adhoc { "?" } else { " " }, p.id);
            write_description(&mut s, d, p);
            s.push('\n');
        }
    }
    s
}

/// The factor levels, restart group, KV size and estimate of one pattern.
pub fn describe(d: &Design, p: &Pattern) -> String {
    let mut s = String::with_capacity(96);
    write_description(&mut s, d, p);
    s
}

/// `describe` into a buffer; the pattern table of a million patterns uses it.
pub fn write_description(s: &mut String, d: &Design, p: &Pattern) {
    let sep = |s: &mut String| {
        if !s.is_empty() && !s.ends_with('\n') && !s.ends_with("  ") {
            s.push_str("  ");
        }
    };
    match p.category {
        Category::E2e => {
            for (i, f) in d.factors.iter().enumerate() {
                let v = match p.values().get(&f.name) {
                    Some(v) => v,
                    None => match p.levels.get(i) {
                        Some(l) => &f.levels[*l as usize],
                        None => continue,
                    },
                };
                sep(s);
                s.push_str(&f.name);
                s.push('=');
                v.write_display(s);
            }
            for (k, v) in p.values() {
                if !d.factors.iter().any(|f| &f.name == k) {
                    sep(s);
                    let _ = write!(s, "{k}={}", v.display());
                }
            }
        }
        Category::Baseline | Category::LowLevel => {
            if let Some(t) = p.tool() {
                sep(s);
                let _ = write!(s, "tool={t}");
            }
        }
        Category::Analysis => {
            sep(s);
            let _ = write!(s, "reads {}", p.inputs().join(", "));
        }
    }
    if let Some(kv) = p.kv_bytes {
        sep(s);
        let _ = write!(s, "KV {} ({} per GPU)", human_bytes(kv), human_bytes(kv / d.tp as f64));
    }
    sep(s);
    let _ = write!(s, "~{}", crate::check::value::fmt_duration(p.duration));
}

/// Notes for effects a design can no longer estimate: a factor held at one
/// level in a layer, or a two-factor interaction without a 2x2 sub-grid. A layer
/// with a model (`d_optimal`, `i_optimal`) is checked only for the effects its
/// model asks for; other layers for every factor and every numeric pair.
/// Level occurrences are marked in small tables, so this is linear in the patterns.
pub fn estimability_notes(exp: &Experiment, layers: &[LayerInfo], patterns: &[Pattern]) -> Vec<(usize, String)> {
    let mut notes = vec![];
    let sizes: Vec<usize> = exp.factors.iter().map(|f| f.levels.len()).collect();
    for (li, l) in layers.iter().enumerate() {
        if l.category != Category::E2e {
            continue;
        }
        let (varying, pairs) = asked_effects(exp, l);
        let mut any = false;
        let mut seen: Vec<Vec<bool>> = sizes.iter().map(|n| vec![false; *n]).collect();
        let mut crossed: Vec<Vec<bool>> = pairs.iter().map(|(a, b)| vec![false; sizes[*a] * sizes[*b]]).collect();
        for p in patterns.iter().filter(|p| p.layer as usize == li && p.values().is_empty() && !p.levels.is_empty()) {
            any = true;
            for &f in &varying {
                seen[f][p.levels[f] as usize] = true;
            }
            for (k, (a, b)) in pairs.iter().enumerate() {
                crossed[k][p.levels[*a] as usize * sizes[*b] + p.levels[*b] as usize] = true;
            }
        }
        if !any {
            continue;
        }
        let mut fixed_here = vec![];
        for &f in &varying {
            let present: Vec<usize> = (0..sizes[f]).filter(|i| seen[f][*i]).collect();
            if present.len() == 1 {
                fixed_here.push(f);
                let v = &exp.factors[f].levels[present[0]];
                notes.push((
                    li,
                    format!(
                        "{}: the effect of `{}` cannot be estimated (only {} remains)",
                        l.name,
                        exp.factors[f].name,
                        v.display()
                    ),
                ));
            }
        }
        for (k, (a, b)) in pairs.iter().enumerate() {
            if fixed_here.contains(a) || fixed_here.contains(b) {
                continue;
            }
            if !has_rectangle(&crossed[k], sizes[*a], sizes[*b]) {
                notes.push((
                    li,
                    format!(
                        "{}: the interaction of `{}` and `{}` cannot be estimated (no two levels of each are crossed)",
                        l.name, exp.factors[*a].name, exp.factors[*b].name
                    ),
                ));
            }
        }
    }
    notes
}

/// The factors and factor pairs whose effects a layer is checked for: its model's,
/// or (without a model) every factor with levels to vary and every numeric pair.
fn asked_effects(exp: &Experiment, layer: &LayerInfo) -> (Vec<usize>, Vec<(usize, usize)>) {
    let sizes: Vec<usize> = exp.factors.iter().map(|f| f.levels.len()).collect();
    let small = |(a, b): &(usize, usize)| sizes[*a] * sizes[*b] <= 1 << 16;
    if let Some(o) = &layer.optimal {
        let varying = o.effects.factors.iter().copied().filter(|f| sizes[*f] > 1).collect();
        return (varying, o.effects.pairs.iter().copied().filter(small).collect());
    }
    let varying: Vec<usize> = (0..exp.factors.len()).filter(|i| sizes[*i] > 1).collect();
    let numeric = |i: usize| exp.factors[i].levels.iter().all(|v| matches!(v, Value::Num(..)));
    let pairs = varying
        .iter()
        .enumerate()
        .flat_map(|(i, &a)| varying[i + 1..].iter().map(move |&b| (a, b)))
        .filter(|(a, b)| numeric(*a) && numeric(*b))
        .filter(small)
        .collect();
    (varying, pairs)
}

/// Whether two levels of each factor appear in all four combinations.
fn has_rectangle(cells: &[bool], rows: usize, cols: usize) -> bool {
    for i in 0..rows {
        for j in i + 1..rows {
            let common = (0..cols).filter(|c| cells[i * cols + c] && cells[j * cols + c]).count();
            if common >= 2 {
                return true;
            }
        }
    }
    false
}

/// The table of the layers whose points an optimal design chose: budget, model
/// size, how many starts found the chosen design, and the seed that reproduces it.
/// Empty when no layer has one.
pub fn optimal_table(d: &Design) -> String {
    let rows: Vec<(&str, &OptimalDesign)> =
        d.layers.iter().filter_map(|l| l.optimal.as_ref().map(|o| (l.name.as_str(), o))).collect();
    if rows.is_empty() {
        return String::new();
    }
    let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
    let mut s = String::new();
    let _ = writeln!(s, "Optimal designs (best of the seeded starts; efficiencies against the best design found):");
    let _ = writeln!(
        s,
        "  {:<w$}  criterion  {:>4}  {:>5}  {:>10}  {:>6}  {:>12}  {:>11}  {:>5}  seed",
        "layer", "runs", "terms", "candidates", "starts", "best reached", "worst start", "D-eff"
    );
    for (name, o) in rows {
        let _ = writeln!(
            s,
            "  {name:<w$}  {:<9}  {:>4}  {:>5}  {:>10}  {:>6}  {:>12}  {:>11.3}  {:>5.3}  {}",
            format!("{}-optimal", o.criterion.label()),
            o.runs,
            o.terms,
            o.candidates,
            o.starts,
            o.best_reached,
            o.worst_start,
            o.d_efficiency,
            o.seed
        );
    }
    s
}

/// One line on how an optimal design was found, for `nixl show`.
pub fn describe_optimal(o: &OptimalDesign) -> String {
    format!(
        "{}-optimal, {} of {} candidates for {} terms; best of {} starts (seed {}), reached by {}; D-efficiency {:.3}",
        o.criterion.label(),
        o.runs,
        o.candidates,
        o.terms,
        o.starts,
        o.seed,
        o.best_reached,
        o.d_efficiency
    )
}

/// Everything about one pattern, resolved: `nixl show`.
pub fn show_pattern(model: &crate::check::Model, campaign: &super::Campaign, p: &Pattern) -> String {
    let d = &campaign.design;
    let mut s = String::new();
    let layer = &d.layers[p.layer as usize];
    let _ = writeln!(s, "pattern {}", p.id);
    let _ = writeln!(s, "  experiment  {}", d.experiment);
    let _ = writeln!(s, "  layer       {} ({})", layer.name, layer.category.label());
    let _ = writeln!(s, "  scheduled   {}", if p.adhoc { "no (ad hoc)" } else { "yes" });
    if let Some(o) = &layer.optimal {
        let _ = writeln!(s, "  design      {}", describe_optimal(o));
    }
    let index = d.patterns.iter().position(|x| x.id == p.id);
    if let Some(l) = index.and_then(|i| campaign.schedule.launch_of(i)) {
        let _ =
            writeln!(s, "  launch      {} of {}: {}", l.number, campaign.schedule.launches, d.groups[l.group as usize].label());
    } else if let Some(g) = p.group {
        let _ = writeln!(s, "  restart key {}", d.groups[g as usize].label());
    }
    if let Some(kv) = p.kv_bytes {
        let _ = writeln!(
            s,
            "  KV cache    {} bytes = {} ({} per GPU at TP={})",
            kv as u64,
            human_bytes(kv),
            human_bytes(kv / d.tp as f64),
            d.tp
        );
    }
    let _ = writeln!(s, "  estimate    {}", crate::check::value::fmt_duration(p.duration));
    let _ = writeln!(s, "  settings:");
    let settings = super::pattern_settings(model, campaign, p);
    let w = settings.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in settings {
        let _ = writeln!(s, "    {k:<w$} = {}", v.display());
    }
    s
}
