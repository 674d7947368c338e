//! `experiment B extends A`: B inherits A's factors, settings, derived values,
//! prunes, layers, patterns and rules, then adds or overrides its own.

use crate::check::model::{Experiment, Layer};
use crate::check::Model;
use crate::diagnostics::{Code, Diagnostic};

/// The experiment with everything it inherits folded in.
pub fn merged(model: &Model, name: &str, diags: &mut Vec<Diagnostic>) -> Option<Experiment> {
    let mut chain = vec![];
    let mut cur = model.experiments.iter().find(|e| e.name == name)?;
    loop {
        if chain.iter().any(|e: &&Experiment| e.name == cur.name) {
            let names: Vec<&str> = chain.iter().map(|e| e.name.as_str()).chain([cur.name.as_str()]).collect();
            diags.push(
                Diagnostic::error(
                    Code::Cycle,
                    cur.span,
                    format!("experiments extend each other in a cycle: {}", names.join(" -> ")),
                )
                .help("an experiment can only extend one that does not extend it back"),
            );
            return None;
        }
        chain.push(cur);
        match &cur.extends {
            Some(parent) => match model.experiments.iter().find(|e| &e.name == parent) {
                Some(p) => cur = p,
                None => break, // reported by the checker
            },
            None => break,
        }
    }
    let mut base = chain.pop()?.clone();
    while let Some(child) = chain.pop() {
        base = overlay(base, child);
    }
    Some(base)
}

fn overlay(mut base: Experiment, child: &Experiment) -> Experiment {
    base.name = child.name.clone();
    base.extends = child.extends.clone();
    base.prefix = child.prefix.clone();
    base.span = child.span;
    if child.model.is_some() {
        base.model = child.model.clone();
    }
    if child.stack.is_some() {
        base.stack = child.stack.clone();
        base.stack_span = child.stack_span;
    }
    if child.server_def.is_some() {
        base.server_def = child.server_def.clone();
    }
    if child.bench_def.is_some() {
        base.bench_def = child.bench_def.clone();
    }
    if child.shuffle.is_some() {
        base.shuffle = child.shuffle;
    }
    if child.discard_first_run.is_some() {
        base.discard_first_run = child.discard_first_run;
    }
    for (k, v) in &child.settings {
        base.settings.insert(k.clone(), v.clone());
    }
    base.overrides.extend(child.overrides.iter().cloned());
    for f in &child.factors {
        match base.factors.iter_mut().find(|b| b.name == f.name) {
            Some(b) => *b = f.clone(),
            None => base.factors.push(f.clone()),
        }
    }
    for d in &child.derived {
        match base.derived.iter_mut().find(|b| b.name == d.name) {
            Some(b) => *b = d.clone(),
            None => base.derived.push(d.clone()),
        }
    }
    for (slot, value) in [
        (&mut base.restart_on, &child.restart_on),
        (&mut base.duration, &child.duration),
        (&mut base.startup, &child.startup),
        (&mut base.order, &child.order),
    ] {
        if value.is_some() {
            *slot = value.clone();
        }
    }
    // How many node sets: the child's when it says, else inherited like the stack.
    if child.parallel_span.is_some() {
        base.parallel = child.parallel;
        base.parallel_span = child.parallel_span;
    }
    base.prunes.extend(child.prunes.iter().cloned());
    for l in &child.layers {
        match base.layers.iter_mut().find(|b| b.name == l.name) {
            Some(b) => overlay_layer(b, l),
            None => base.layers.push(l.clone()),
        }
    }
    // A hand estimate describes one experiment, not the ones extending it.
    base.hand_estimate = child.hand_estimate;
    base.patterns.extend(child.patterns.iter().cloned());
    base.rules.extend(child.rules.iter().cloned());
    for (k, v) in &child.mlflow {
        base.mlflow.insert(k.clone(), v.clone());
    }
    base
}

fn overlay_layer(base: &mut Layer, child: &Layer) {
    for (k, v) in &child.fixed {
        base.fixed.insert(k.clone(), v.clone());
    }
    for (slot, value) in [
        (&mut base.id, &child.id),
        (&mut base.design, &child.design),
        (&mut base.steps, &child.steps),
        (&mut base.keep, &child.keep),
    ] {
        if value.is_some() {
            *slot = value.clone();
        }
    }
    base.adhoc = base.adhoc || child.adhoc;
    if child.schedule.is_some() {
        base.schedule = child.schedule.clone();
    }
    if child.design.is_some() {
        base.saturation = child.saturation.clone();
    }
    if child.replicates.is_some() {
        base.replicates = child.replicates;
    }
    if child.until.is_some() {
        base.until = child.until.clone();
    }
    for d in &child.derived {
        match base.derived.iter_mut().find(|b| b.name == d.name) {
            Some(b) => *b = d.clone(),
            None => base.derived.push(d.clone()),
        }
    }
    base.prunes.extend(child.prunes.iter().cloned());
    for a in &child.analyses {
        match base.analyses.iter_mut().find(|b| b.name == a.name) {
            Some(b) => *b = a.clone(),
            None => base.analyses.push(a.clone()),
        }
    }
}
