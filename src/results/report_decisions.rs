//! The report's decisions: per E2E result its GPUs, throughput per GPU, tokens/s per
//! user and dollars per million output tokens (`decisions`), then Pareto fronts of
//! `ttft_p99` against throughput per GPU, per layer and across layers, each with its
//! chart and table, the cost per layer, and a note when unified and disaggregated
//! layers serve with different GPU counts.

use super::decisions::{decisions, Decision, Pricing};
use super::pareto::{front, Point};
use super::svg::{esc, scatter_front, styles, Scatter, ScatterPoint};
use super::ResultRecord;
use crate::check::analysis::DEFAULT_LATENCY;
use crate::check::model::Mode;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The latency the report's fronts use.
pub const LATENCY: &str = DEFAULT_LATENCY;

/// A figure as the report prints it: dollars with cents, throughputs with one decimal.
pub fn usd(v: f64) -> String {
    format!("${v:.2}")
}
pub fn tps(v: f64) -> String {
    format!("{v:.1}")
}

struct Row<'a> {
    d: &'a Decision,
    mode: Option<Mode>,
    latency: Option<f64>,
}

/// Writes the section; nothing when no result has a throughput.
pub fn section(s: &mut String, results: &[ResultRecord], pricing: &Pricing, stamp: &str) {
    let ds = decisions(results, pricing);
    if ds.is_empty() {
        return;
    }
    let by_id: BTreeMap<&str, &ResultRecord> = results.iter().map(|r| (r.id.as_str(), r)).collect();
    let rows: Vec<Row> = ds
        .iter()
        .map(|d| {
            let r = by_id[d.id.as_str()];
            let mode = r.settings.get("mode").and_then(|v| v.as_str()).and_then(Mode::from_symbol);
            Row { d, mode, latency: r.metrics.get(LATENCY).copied() }
        })
        .collect();
    let layers: Vec<&str> = rows.iter().map(|r| r.d.layer.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    s.push_str("<h2 id=\"decisions\">Decisions: throughput per GPU, cost per token, Pareto fronts</h2>");
    formula(s, &ds);
    equal_gpu_note(s, &rows);
    table(s, &rows);
    let palette = styles(layers.len().max(1));
    s.push_str("<div class=\"plots\">");
    let mut fronts: Vec<(String, Vec<&Row>)> = vec![];
    for l in &layers {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.d.layer == *l).collect();
        let on = chart(s, &format!("{l}: {LATENCY} vs throughput per GPU"), &mine, &layers, &palette, stamp);
        fronts.push((l.to_string(), on));
    }
    let all: Vec<&Row> = rows.iter().collect();
    let across = chart(s, &format!("All layers: {LATENCY} vs throughput per GPU"), &all, &layers, &palette, stamp);
    s.push_str("</div>");
    for (l, on) in &fronts {
        front_table(s, &format!("front-{l}"), &format!("Pareto front of {l}"), on);
    }
    front_table(s, "front-all", "Pareto front across layers", &across);
    cost_per_layer(s, &layers, &rows, &fronts);
}

fn formula(s: &mut String, ds: &[Decision]) {
    let priced: BTreeSet<(String, String, usize)> = ds
        .iter()
        .filter_map(|d| d.cost.as_ref())
        .map(|c| (c.instance_type.clone(), usd(c.price_per_node_hour), c.nodes))
        .collect();
    let prices: Vec<String> = priced.iter().map(|(t, p, n)| format!("{t} at {p} per node-hour, {n} nodes")).collect();
    let _ = write!(
        s,
        "<p class=\"formula\">GPUs: unified, <code>replicas</code> x the server's <code>tp</code>; disaggregated, \
         <code>prefill_nodes</code> x <code>prefill_tp</code> + <code>decode_nodes</code> x <code>decode_tp</code> (each \
         TP <code>tp</code> and each count 1 when not set). Throughput per GPU = \
         <code>throughput_tps</code> / GPUs; tokens/s per user = <code>throughput_tps</code> / <code>concurrency</code>. \
         $ per million output tokens = (measured <code>seconds</code> + the launch's start-up shared among its results) \
         &times; nodes &times; price per node-hour / 3600, over <code>throughput_tps</code> &times; <code>duration_s</code> \
         tokens &times; 10<sup>6</sup>. Priced as: {}.</p>",
        if prices.is_empty() {
            "no price known (no stack or instance type in the catalogue)".into()
        } else {
            esc(&prices.join("; "))
        }
    );
}

/// The GPU counts unified and disaggregated layers are compared at: equal (a unified layer
/// with `replicas` sized to the disaggregated one), or different, where per-GPU figures
/// stand in for an equal-GPU comparison.
fn equal_gpu_note(s: &mut String, rows: &[Row]) {
    let counts = |disaggregated: bool| -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in rows.iter().filter(|r| (r.mode == Some(Mode::Disaggregated)) == disaggregated) {
            if let Some(g) = r.d.gpus {
                m.entry(r.d.layer.clone()).or_default().insert(format!("{g}"));
            }
        }
        m
    };
    let (unified, disaggregated) = (counts(false), counts(true));
    let gpus = |m: &BTreeMap<String, BTreeSet<String>>| -> BTreeSet<String> { m.values().flatten().cloned().collect() };
    if unified.is_empty() || disaggregated.is_empty() {
        return;
    }
    let list = |m: &BTreeMap<String, BTreeSet<String>>| -> String {
        m.iter()
            .map(|(l, g)| format!("{l} {} GPU(s)", g.iter().cloned().collect::<Vec<_>>().join("/")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shared: Vec<String> = gpus(&unified).intersection(&gpus(&disaggregated)).cloned().collect();
    let tail = if gpus(&unified) == gpus(&disaggregated) {
        "the same GPU counts, so the fronts compare them at equal GPUs".to_string()
    } else if !shared.is_empty() {
        format!(
            "at {} GPU(s) the layers compare at equal GPUs; elsewhere the fronts compare throughput per GPU, as if \
             the smaller side were replicated to the same GPU count",
            shared.join("/")
        )
    } else {
        format!(
            "the fronts compare throughput per GPU, that is {} unified GPU(s) against {} disaggregated ones scaled to \
             one GPU each, as if the unified server were replicated to the same GPU count (`replicas = N` on a unified \
             layer measures that instead)",
            gpus(&unified).into_iter().collect::<Vec<_>>().join("/"),
            gpus(&disaggregated).into_iter().collect::<Vec<_>>().join("/"),
        )
    };
    let _ = write!(
        s,
        "<p id=\"equal-gpu-note\" class=\"note\"><b>Equal-GPU comparison:</b> unified layers serve each pattern with \
         {} (replicas x tp); disaggregated layers with {} (prefill servers x TP + decode servers x TP): {}; latencies \
         are compared as measured.</p>",
        esc(&list(&unified)),
        esc(&list(&disaggregated)),
        esc(&tail),
    );
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

fn table(s: &mut String, rows: &[Row]) {
    let _ = write!(
        s,
        "<table id=\"decision-table\"><tr><th>pattern</th><th>layer</th><th>GPUs</th><th>throughput tok/s</th>\
         <th>tok/s per GPU</th><th>tok/s per user</th><th>{LATENCY} ms</th><th>seconds</th><th>start-up share s</th>\
         <th>output tokens</th><th>$ per Mtok</th></tr>"
    );
    for r in rows {
        let d = r.d;
        let c = d.cost.as_ref();
        let share = c.map(|c| format!("{:.1}{}", c.startup_share_s, if c.startup_measured { "" } else { " (est.)" }));
        let _ = write!(
            s,
            "<tr id=\"cost-{}\"><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.id),
            esc(&d.id),
            esc(&d.layer),
            opt(d.gpus, |g| format!("{g}")),
            tps(d.throughput_tps),
            opt(d.tps_per_gpu, tps),
            opt(d.tps_per_user, tps),
            opt(r.latency, |v| format!("{v:.1}")),
            opt(c.map(|c| c.seconds), |v| format!("{v:.1}")),
            share.unwrap_or_else(|| "–".into()),
            opt(c.map(|c| c.output_tokens), |v| format!("{v:.0}")),
            opt(c.map(|c| c.usd_per_mtok), usd),
        );
    }
    s.push_str("</table>");
}

/// Draws one front's chart; returns the rows on the front, by increasing throughput per GPU.
fn chart<'r>(
    s: &mut String,
    title: &str,
    rows: &[&'r Row<'r>],
    layers: &[&str],
    palette: &[super::svg::Style],
    stamp: &str,
) -> Vec<&'r Row<'r>> {
    let usable: Vec<&Row> = rows.iter().copied().filter(|r| r.d.tps_per_gpu.is_some() && r.latency.is_some()).collect();
    let points: Vec<Point> = usable
        .iter()
        .map(|r| Point {
            id: r.d.id.clone(),
            latency_ms: r.latency.unwrap_or(f64::NAN),
            tps_per_gpu: r.d.tps_per_gpu.unwrap_or(f64::NAN),
        })
        .collect();
    let on: Vec<usize> = front(&points);
    let style = |l: &str| layers.iter().position(|x| *x == l).unwrap_or(0);
    let scatter: Vec<ScatterPoint> = usable
        .iter()
        .enumerate()
        .map(|(i, r)| ScatterPoint {
            x: points[i].tps_per_gpu,
            y: points[i].latency_ms,
            label: r.d.id.clone(),
            style: style(&r.d.layer),
            on_front: on.contains(&i),
        })
        .collect();
    let present: BTreeSet<&str> = usable.iter().map(|r| r.d.layer.as_str()).collect();
    let legend: Vec<(String, usize)> = present.iter().map(|l| (l.to_string(), style(l))).collect();
    let note = format!("{} of {} results on the front (ringed); lower and further right is better", on.len(), usable.len());
    let chart = Scatter {
        title,
        note: &note,
        x_label: "output tokens/s per GPU",
        y_label: &format!("{LATENCY} ms"),
        points: &scatter,
        legend: &legend,
    };
    let _ = write!(s, "<div class=\"box\">{}{stamp}</div>", scatter_front(&chart, palette));
    on.into_iter().map(|i| usable[i]).collect()
}

fn front_table(s: &mut String, id: &str, title: &str, on: &[&Row]) {
    let _ = write!(
        s,
        "<h3>{}</h3><table id=\"{}\" class=\"front\"><tr><th>pattern</th><th>layer</th><th>tok/s per GPU</th>\
         <th>{LATENCY} ms</th><th>tok/s per user</th><th>$ per Mtok</th></tr>",
        esc(title),
        esc(id)
    );
    for r in on {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.d.id),
            esc(&r.d.layer),
            opt(r.d.tps_per_gpu, tps),
            opt(r.latency, |v| format!("{v:.1}")),
            opt(r.d.tps_per_user, tps),
            opt(r.d.cost.as_ref().map(|c| c.usd_per_mtok), usd),
        );
    }
    s.push_str("</table>");
}

/// Per layer: its GPU counts, its front's size, the cheapest point on its front and the
/// cheapest of all its results.
fn cost_per_layer(s: &mut String, layers: &[&str], rows: &[Row], fronts: &[(String, Vec<&Row>)]) {
    s.push_str(
        "<h3>Cost per layer</h3><table id=\"cost-per-layer\"><tr><th>layer</th><th>GPUs</th><th>results</th>\
         <th>on its front</th><th>cheapest on its front</th><th>$ per Mtok</th><th>cheapest of all</th><th>$ per Mtok</th></tr>",
    );
    let cheapest = |rs: &mut dyn Iterator<Item = &Row>| -> Option<(String, f64)> {
        rs.filter_map(|r| r.d.cost.as_ref().map(|c| (r.d.id.clone(), c.usd_per_mtok))).min_by(|a, b| a.1.total_cmp(&b.1))
    };
    for l in layers {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.d.layer == *l).collect();
        let gpus: BTreeSet<String> = mine.iter().filter_map(|r| r.d.gpus).map(|g| format!("{g}")).collect();
        let on = fronts.iter().find(|(x, _)| x == l).map(|(_, on)| on.as_slice()).unwrap_or(&[]);
        let (front_id, front_usd) = cheapest(&mut on.iter().copied()).map(|(i, v)| (i, usd(v))).unwrap_or_default();
        let (all_id, all_usd) = cheapest(&mut mine.iter().copied()).map(|(i, v)| (i, usd(v))).unwrap_or_default();
        let _ = write!(
            s,
            "<tr id=\"layer-cost-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td>\
             <td class=\"l\">{}</td><td>{}</td></tr>",
            esc(l),
            esc(l),
            gpus.into_iter().collect::<Vec<_>>().join("/"),
            mine.len(),
            on.len(),
            esc(&front_id),
            front_usd,
            esc(&all_id),
            all_usd
        );
    }
    s.push_str("</table>");
}
