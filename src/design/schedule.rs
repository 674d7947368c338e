//! The order of restart groups and of patterns inside them. Patterns are
//! grouped by restart key, so launches equal the number of distinct keys,
//! the lower bound. Groups follow a documented policy (docs/planning.md):
//! smaller context first (max_model_len, else the largest prompt), then layer
//! declaration order, then the remaining key values with `false`/`none` first.
//! Inside a group: factor levels in declaration order (prompt, then concurrency).

use crate::check::value::Value;
use crate::design::{Category, Design, Pattern};
use std::cmp::Ordering;

/// Scheduled E2E patterns in run order, and the group order used.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    pub groups: Vec<u32>,
    /// The server launches along the order: the one numbering of launches that
    /// the plan text, the plan JSON, `nixl show` and `--target launch:N` share.
    pub segments: Vec<Launch>,
    /// Launches the order needs: changes of restart key along it.
    pub launches: usize,
    /// Distinct restart keys among the scheduled patterns.
    pub min_launches: usize,
    /// Launches 1..=N hold the patterns an `order` pins (0: none), so they run in that order on one node set.
    pub pinned_launches: u32,
}

/// One server launch: its number (1-based, in run order), restart group and patterns.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub number: u32,
    pub group: u32,
    pub patterns: Vec<usize>,
}

impl Schedule {
    fn new(d: &Design, groups: Vec<u32>, patterns: Vec<usize>, min_launches: usize) -> Schedule {
        let mut segments: Vec<Launch> = vec![];
        for &i in &patterns {
            let g = d.patterns[i].group.unwrap_or(0);
            match segments.last_mut() {
                Some(l) if l.group == g => l.patterns.push(i),
                _ => segments.push(Launch { number: segments.len() as u32 + 1, group: g, patterns: vec![i] }),
            }
        }
        // The order is kept once, in the launches: a flat copy would be 8 more bytes a pattern.
        Schedule { groups, launches: segments.len(), min_launches, segments, pinned_launches: 0 }
    }

    /// The scheduled patterns (by index in the design) in run order.
    pub fn order(&self) -> impl Iterator<Item = &usize> {
        self.segments.iter().flat_map(|l| &l.patterns)
    }

    /// The launch that runs a pattern (by index in the design).
    pub fn launch_of(&self, pattern: usize) -> Option<&Launch> {
        self.segments.iter().find(|l| l.patterns.contains(&pattern))
    }
}

fn context_size(d: &Design, g: u32, members: &[&Pattern]) -> f64 {
    let key = &d.groups[g as usize];
    if let Some((_, v)) = key.values.iter().find(|(k, _)| k == "max_model_len") {
        if let Some(x) = v.as_f64() {
            return x;
        }
    }
    members.iter().filter_map(|p| d.factor_value(p, "prompt")).filter_map(|v| v.as_f64()).fold(0.0, f64::max)
}

fn value_rank(v: &Value) -> (u8, String) {
    match v {
        Value::None | Value::Bool(false) => (0, String::new()),
        Value::Bool(true) => (2, String::new()),
        Value::Num(x, _) => (1, format!("{x:020.3}")),
        other => (1, other.interpolated()),
    }
}

/// Scheduled patterns by restart group, in one pass.
fn by_group(d: &Design, scheduled: &[usize]) -> std::collections::BTreeMap<u32, Vec<usize>> {
    let mut m: std::collections::BTreeMap<u32, Vec<usize>> = std::collections::BTreeMap::new();
    for &i in scheduled {
        if let Some(g) = d.patterns[i].group {
            m.entry(g).or_default().push(i);
        }
    }
    m
}

/// Default policy order of the groups that have scheduled patterns.
pub fn group_order(d: &Design, scheduled: &[usize]) -> Vec<u32> {
    let buckets = by_group(d, scheduled);
    let groups: Vec<u32> = buckets.keys().copied().collect();
    // (group, context size, first layer, other key values)
    type SortKey = (u32, f64, u32, Vec<(u8, String)>);
    let info: Vec<SortKey> = groups
        .iter()
        .map(|&g| {
            let members: Vec<&Pattern> = buckets[&g].iter().map(|&i| &d.patterns[i]).collect();
            let layer = members.iter().map(|p| p.layer).min().unwrap_or(0);
            let rest =
                d.groups[g as usize].values.iter().filter(|(k, _)| k != "max_model_len").map(|(_, v)| value_rank(v)).collect();
            (g, context_size(d, g, &members), layer, rest)
        })
        .collect();
    let mut sorted = info;
    sorted.sort_by(|a, b| {
        a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)).then(a.0.cmp(&b.0))
    });
    sorted.into_iter().map(|x| x.0).collect()
}

/// Orders patterns inside a group: factor levels in declaration order, then id.
pub fn within_group(d: &Design, members: &mut [usize]) {
    members.sort_by(|&a, &b| {
        let (pa, pb) = (&d.patterns[a], &d.patterns[b]);
        for f in &d.factors {
            let va = d.factor_value(pa, &f.name).and_then(|v| v.as_f64_or_inf());
            let vb = d.factor_value(pb, &f.name).and_then(|v| v.as_f64_or_inf());
            match (va, vb) {
                (Some(x), Some(y)) if x != y => return x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                _ => {}
            }
        }
        pa.id.cmp(&pb.id)
    });
}

/// A saturation search's probes run in their order (each rate depends on the ones before):
/// the shuffle may move them among the other patterns, not among themselves.
fn keep_probes_in_order(d: &Design, members: &mut [usize]) {
    let slots: Vec<usize> = (0..members.len()).filter(|&i| d.patterns[members[i]].values().contains_key("probe")).collect();
    let mut probes: Vec<usize> = slots.iter().map(|&i| members[i]).collect();
    probes.sort_by(|&a, &b| d.patterns[a].id.cmp(&d.patterns[b].id));
    for (slot, p) in slots.into_iter().zip(probes) {
        members[slot] = p;
    }
}

/// The default schedule of the scheduled E2E patterns.
pub fn schedule(d: &Design) -> Schedule {
    let scheduled: Vec<usize> =
        (0..d.patterns.len()).filter(|&i| !d.patterns[i].adhoc && d.patterns[i].category == Category::E2e).collect();
    let groups = group_order(d, &scheduled);
    let mut buckets = by_group(d, &scheduled);
    let mut patterns = Vec::with_capacity(scheduled.len());
    for g in &groups {
        let mut members = buckets.remove(g).unwrap_or_default();
        within_group(d, &mut members);
        if let Some(seed) = d.shuffle {
            super::shuffle(&mut members, seed, *g);
            keep_probes_in_order(d, &mut members);
        }
        patterns.extend(members);
    }
    let min = groups.len();
    Schedule::new(d, groups, patterns, min)
}

/// A pinned order: the listed layers or pattern ids first, in that order, the rest by policy.
pub fn pinned(d: &Design, items: &[String]) -> Schedule {
    let default = schedule(d);
    let mut order: Vec<usize> = vec![];
    let mut taken = vec![false; d.patterns.len()];
    for item in items {
        let layer = d.layers.iter().position(|l| &l.name == item);
        for &i in default.order() {
            let p = &d.patterns[i];
            let hit = match layer {
                Some(li) => p.layer as usize == li,
                None => *p.id == **item,
            };
            if hit && !taken[i] {
                taken[i] = true;
                order.push(i);
            }
        }
    }
    let pinned_patterns = order.len();
    for &i in default.order() {
        if !taken[i] {
            taken[i] = true;
            order.push(i);
        }
    }
    let mut groups: Vec<u32> = vec![];
    for &i in &order {
        let g = d.patterns[i].group.unwrap_or(0);
        if groups.last() != Some(&g) {
            groups.push(g);
        }
    }
    let last_pinned = pinned_patterns.checked_sub(1).map(|k| order[k]);
    let mut s = Schedule::new(d, groups, order, default.min_launches);
    s.pinned_launches = last_pinned.and_then(|i| s.launch_of(i)).map_or(0, |l| l.number);
    s
}
