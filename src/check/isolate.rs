//! Which experiments can still be expanded when the check found errors, so a
//! mistake in a stack never hides the mistakes of an experiment (a prune that
//! removes everything, a duplicate id). An error confines itself to the
//! top-level item it lies in: one in an experiment stops that experiment and the
//! experiments extending it; one in a stack, a setup, an unknown block kind, a
//! line that did not parse or an import stops nothing else (whatever reads the
//! lost item reports its own error). Errors in the definitions experiments read
//! (`let`, tools, models, servers...) stop every experiment.

use super::CheckOutput;
use crate::diagnostics::Span;
use crate::syntax::ast::StmtKind;
use std::collections::{BTreeMap, BTreeSet};

/// Names of the experiments whose design can be trusted to expand, in model order.
pub fn expandable(out: &CheckOutput) -> Vec<String> {
    let mut broken: BTreeSet<String> = BTreeSet::new();
    for d in out.diagnostics.iter().filter(|d| d.is_error()) {
        match owner(out, d.primary.span) {
            Owner::Experiment(name) => {
                broken.insert(name);
            }
            Owner::Shared => return vec![],
            Owner::Alone => {}
        }
    }
    let parents: BTreeMap<&str, Option<&str>> =
        out.model.experiments.iter().map(|e| (e.name.as_str(), e.extends.as_deref())).collect();
    let clean = |name: &str| {
        let mut seen = BTreeSet::new();
        let mut cur = Some(name);
        while let Some(n) = cur {
            if broken.contains(n) {
                return false;
            }
            // A cycle is the design stage's to report (E0401); a missing parent is an error in the child.
            if !seen.insert(n) {
                return true;
            }
            cur = parents.get(n).copied().flatten();
        }
        true
    };
    out.model.experiments.iter().filter(|e| clean(&e.name)).map(|e| e.name.clone()).collect()
}

enum Owner {
    Experiment(String),
    /// A definition experiments may read.
    Shared,
    /// Something no experiment reads, or that reports its own absence where it is read.
    Alone,
}

fn owner(out: &CheckOutput, span: Span) -> Owner {
    let Some((_, file)) = out.files.iter().find(|(id, _)| *id == span.file) else { return Owner::Alone };
    let item = file.items.iter().find(|s| s.span.start <= span.start && span.end <= s.span.end);
    match item.map(|s| &s.kind) {
        Some(StmtKind::Let(..)) => Owner::Shared,
        Some(StmtKind::Block(b)) => match b.kind.name.as_str() {
            "experiment" => b.name().map(|l| Owner::Experiment(l.text().to_string())).unwrap_or(Owner::Alone),
            "stack" | "setup" => Owner::Alone,
            kind if super::schema::block(kind).is_none() => Owner::Alone,
            _ => Owner::Shared,
        },
        _ => Owner::Alone,
    }
}
