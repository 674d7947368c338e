//! Computed facts shown in the editor: inlay hints after a block's opening
//! brace (a layer's pattern count, a pattern's KV-cache size, a stack's hourly
//! price) and a code lens on each experiment ("plan: N patterns, M launches,
//! est. T"). All read the last analysis; nothing is computed here that
//! `nixl plan` would compute differently.

use super::analysis::Analysis;
use crate::design::Design;
use crate::syntax::ast::{Block, StmtKind};
use lsp_types::{CodeLens, Command, InlayHint, InlayHintLabel, Position, Range};

/// Hints for the blocks whose header lies in `range`.
pub fn inlay_hints(a: &Analysis, range: Range) -> Vec<InlayHint> {
    let mut out = vec![];
    for s in &a.ast().items {
        let StmtKind::Block(b) = &s.kind else { continue };
        match b.kind.name.as_str() {
            "experiment" => {
                let Some(d) = b.name().and_then(|l| a.design(l.text())) else { continue };
                for st in &b.body {
                    if let StmtKind::Block(c) = &st.kind {
                        let label = match c.kind.name.as_str() {
                            "layer" => c.name().and_then(|l| layer_fact(d, l.text())),
                            "pattern" => c.name().and_then(|l| pattern_fact(d, l.text())),
                            _ => None,
                        };
                        push(a, c, label, range, &mut out);
                    }
                }
            }
            "stack" => {
                let label = b.name().and_then(|l| stack_fact(a, l.text()));
                push(a, b, label, range, &mut out);
            }
            _ => {}
        }
    }
    out
}

fn push(a: &Analysis, b: &Block, label: Option<String>, range: Range, out: &mut Vec<InlayHint>) {
    let Some(label) = label else { return };
    let at = a.lines.position(b.body_span.start as usize + 1);
    if at.line < range.start.line || at.line > range.end.line {
        return;
    }
    out.push(InlayHint {
        position: at,
        label: InlayHintLabel::String(label),
        kind: None,
        text_edits: None,
        tooltip: None,
        padding_left: Some(true),
        padding_right: None,
        data: None,
    });
}

/// "24 patterns (3 ad hoc, 4 pruned)" for a layer of an expanded design.
fn layer_fact(d: &Design, layer: &str) -> Option<String> {
    let li = d.layers.iter().position(|l| l.name == layer)?;
    let patterns: Vec<_> = d.patterns.iter().filter(|p| p.layer as usize == li).collect();
    let adhoc = patterns.iter().filter(|p| p.adhoc).count();
    let pruned: usize = d.layers[li].removed.iter().map(|(_, n)| n).sum();
    let mut extra = vec![];
    if adhoc > 0 {
        extra.push(format!("{adhoc} ad hoc"));
    }
    if pruned > 0 {
        extra.push(format!("{pruned} pruned"));
    }
    let n = patterns.len();
    let noun = if n == 1 { "pattern" } else { "patterns" };
    Some(if extra.is_empty() { format!("{n} {noun}") } else { format!("{n} {noun} ({})", extra.join(", ")) })
}

/// "KV 3.0 GiB, est. 5min" for an extra pattern.
fn pattern_fact(d: &Design, id: &str) -> Option<String> {
    let p = d.pattern(id)?;
    let mut parts = vec![];
    if let Some(kv) = p.kv_bytes {
        parts.push(format!("KV {:.1} GiB", kv / (1u64 << 30) as f64));
    }
    parts.push(format!("est. {}", duration(p.duration)));
    Some(parts.join(", "))
}

/// "$20.98/h" for a stack: its nodes times the instance's price.
fn stack_fact(a: &Analysis, stack: &str) -> Option<String> {
    let model = &a.loaded.check.model;
    let s = model.stacks.iter().find(|s| s.name == stack)?;
    let i = model.instances.get(s.instance_types.first()?)?;
    let n = s.nodes.len().max(1);
    Some(format!("{n} x {} = ${:.2}/h", i.name, i.price_per_hour * n as f64))
}

/// One lens per experiment of the document: patterns, server launches and the estimate.
pub fn code_lenses(a: &Analysis) -> Vec<CodeLens> {
    let mut out = vec![];
    for s in &a.ast().items {
        let StmtKind::Block(b) = &s.kind else { continue };
        if b.kind.name != "experiment" {
            continue;
        }
        let Some(d) = b.name().and_then(|l| a.design(l.text())) else { continue };
        let (patterns, launches, seconds) = plan_summary(d);
        let title = format!("plan: {patterns} patterns, {launches} launches, est. {}", duration(seconds));
        let at = a.lines.position(b.kind.span.start as usize);
        out.push(CodeLens {
            range: Range::new(at, Position::new(at.line, at.character + b.kind.name.len() as u32)),
            command: Some(Command { title, command: String::new(), arguments: None }),
            data: None,
        });
    }
    out
}

/// Scheduled patterns, distinct restart groups among them, and measurement plus start-up time.
pub fn plan_summary(d: &Design) -> (usize, usize, f64) {
    let scheduled: Vec<_> = d.scheduled().collect();
    let mut groups: Vec<u32> = scheduled.iter().filter_map(|p| p.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let measure: f64 = scheduled.iter().map(|p| p.duration).sum();
    let startup: f64 = groups.iter().map(|g| d.startup.get(*g as usize).copied().unwrap_or(0.0)).sum();
    (scheduled.len(), groups.len(), measure + startup)
}

fn duration(seconds: f64) -> String {
    let m = (seconds / 60.0).round() as u64;
    if m >= 60 {
        format!("{}h{:02}min", m / 60, m % 60)
    } else {
        format!("{m}min")
    }
}
