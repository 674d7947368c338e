//! `nixl report`: one self-contained HTML page from the stored results: where
//! the figures came from (synthetic data marked), TTFT and TPOT against the
//! design's factors, the EFA/TCP ratio, throughput per GPU, cost per token and Pareto
//! fronts (`report_decisions`), saturation curves with their knee and replicate intervals
//! (`report_load`), the analyses' intervals, the histogram of
//! every result an analysis flags, the pattern table and the analyses' verdicts.

use super::factors::Factor;
use super::rules::Fired;
use super::svg::{esc, histogram, interval_chart, line_chart, styles, IntervalRow, LineChart, Series, Style, XAxis};
use super::{Provenance, ResultKind, ResultRecord, ResultTest};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What a report is made of.
pub struct Report<'a> {
    pub experiment: &'a str,
    /// The design's factors and restart settings, levels in numeric order.
    pub factors: &'a [Factor],
    pub results: &'a [ResultRecord],
    pub fired: &'a [Fired],
    /// Prices, nodes and start-up estimates for the cost per token.
    pub pricing: &'a super::decisions::Pricing,
    /// When the report was written (RFC 3339).
    pub generated: &'a str,
}

/// The words of the banner over synthetic data.
pub const SYNTHETIC_BANNER: &str = "SYNTHETIC: local stand-ins, not measurements of the hardware";

fn setting<'r>(r: &'r ResultRecord, k: &str) -> Option<&'r str> {
    r.settings.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty() && *s != "none")
}

/// A p-value as it should read: never 0.0, small ones in scientific notation.
fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// How the plots of a metric use the factors: one on x, one as facets (one chart per
/// level) when two or more others vary, the rest with the layer as series; factors with
/// one level are named in each chart's note. No factor is averaged over.
struct Layout<'f> {
    x: Option<&'f Factor>,
    facet: Option<&'f Factor>,
    series: Vec<&'f Factor>,
    constant: Vec<String>,
}

fn layout<'f>(factors: &'f [Factor], recs: &[&ResultRecord]) -> Layout<'f> {
    let values = |f: &Factor, layer: Option<&str>| -> BTreeSet<String> {
        recs.iter().filter(|r| layer.is_none_or(|l| r.layer == l)).filter_map(|r| f.of(r)).map(str::to_string).collect()
    };
    let layers: BTreeSet<&str> = recs.iter().map(|r| r.layer.as_str()).collect();
    // A factor a layer fixes (mode, transport) is told apart by the layer already.
    let varies = |f: &Factor| layers.iter().any(|l| values(f, Some(l)).len() > 1);
    let dims: Vec<&Factor> = factors.iter().filter(|f| varies(f)).collect();
    let constant = factors
        .iter()
        .filter(|f| !f.restart)
        .filter_map(|f| {
            let v = values(f, None);
            (v.len() == 1).then(|| format!("{} = {}", f.name, v.into_iter().next().unwrap_or_default()))
        })
        .collect();
    let x = dims
        .iter()
        .find(|f| f.name == "prompt" && f.numeric())
        .or_else(|| dims.iter().find(|f| f.numeric()))
        .or(dims.first())
        .copied();
    let mut rest: Vec<&Factor> = dims.into_iter().filter(|f| Some(f.name.as_str()) != x.map(|x| x.name.as_str())).collect();
    let facet = if rest.len() >= 2 { Some(rest.remove(0)) } else { None };
    Layout { x, facet, series: rest, constant }
}

/// The x axis of a factor: its levels' values (numeric, by powers of two when they
/// span a wide range), else their positions; and where a result sits on it.
fn x_axis(f: Option<&Factor>, present: &BTreeSet<String>) -> XAxis {
    let Some(f) = f else { return XAxis { label: String::new(), log2: false, ticks: vec![(0.0, String::new())] } };
    let levels: Vec<(usize, &super::factors::Level)> =
        f.levels.iter().enumerate().filter(|(_, l)| present.contains(&l.text)).collect();
    let ticks: Vec<(f64, String)> = levels.iter().map(|(i, l)| (l.value.unwrap_or(*i as f64), l.text.clone())).collect();
    let numeric = f.numeric();
    let (lo, hi) = ticks.iter().fold((f64::INFINITY, 0.0_f64), |(a, b), t| (a.min(t.0), b.max(t.0)));
    let ticks = if numeric { ticks } else { levels.iter().map(|(i, l)| (*i as f64, l.text.clone())).collect() };
    XAxis { label: f.name.clone(), log2: numeric && lo > 0.0 && hi / lo >= 4.0, ticks }
}

fn x_of(f: Option<&Factor>, r: &ResultRecord) -> Option<f64> {
    let Some(f) = f else { return Some(0.0) };
    let text = f.of(r)?;
    let i = f.levels.iter().position(|l| l.text == text)?;
    Some(if f.numeric() { f.levels[i].value? } else { i as f64 })
}

/// A series' label: the layer and each series factor's level.
fn series_label(layer: Option<&str>, series: &[&Factor], r: &ResultRecord) -> String {
    let mut parts: Vec<String> = layer.map(|l| vec![l.to_string()]).unwrap_or_default();
    parts.extend(series.iter().map(|f| format!("{}={}", f.name, f.of(r).unwrap_or("?"))));
    parts.join(" ")
}

/// One chart before drawing: series by label, in level order.
struct Chart {
    title: String,
    note: String,
    x: XAxis,
    y_label: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
    reference: Option<f64>,
}

/// The charts of one metric of the E2E results, by the layout of their factors.
fn metric_charts(factors: &[Factor], recs: &[ResultRecord], metric: &str, title: &str, y_label: &str) -> Vec<Chart> {
    let with: Vec<&ResultRecord> =
        recs.iter().filter(|r| r.kind == ResultKind::Pattern && r.metrics.get(metric).is_some_and(|v| v.is_finite())).collect();
    let lay = layout(factors, &with);
    let facets: Vec<Option<String>> = match lay.facet {
        Some(f) => {
            f.levels.iter().map(|l| Some(l.text.clone())).filter(|l| with.iter().any(|r| f.of(r) == l.as_deref())).collect()
        }
        None => vec![None],
    };
    let mut out = vec![];
    for level in facets {
        let mine: Vec<&ResultRecord> =
            with.iter().copied().filter(|r| level.is_none() || lay.facet.and_then(|f| f.of(r)) == level.as_deref()).collect();
        let present: BTreeSet<String> = mine.iter().filter_map(|r| lay.x.and_then(|f| f.of(r))).map(str::to_string).collect();
        let mut order: Vec<&ResultRecord> = mine.clone();
        order.sort_by(|a, b| {
            a.layer.cmp(&b.layer).then_with(|| {
                lay.series
                    .iter()
                    .map(|f| f.cmp(f.of(a).unwrap_or(""), f.of(b).unwrap_or("")))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        });
        let mut series: Vec<(String, Vec<(f64, f64)>)> = vec![];
        let mut off_design = 0;
        for r in order {
            let Some(x) = x_of(lay.x, r) else {
                off_design += 1;
                continue;
            };
            let name = series_label(Some(&r.layer), &lay.series, r);
            let y = r.metrics[metric];
            match series.iter_mut().find(|s| s.0 == name) {
                Some(s) => s.1.push((x, y)),
                None => series.push((name, vec![(x, y)])),
            }
        }
        let mut note = lay.constant.join(", ");
        if off_design > 0 {
            let _ = write!(
                note,
                "{}{off_design} result(s) at levels the design does not declare are in the table only",
                if note.is_empty() { "" } else { "; " }
            );
        }
        let facet_title = match (lay.facet, &level) {
            (Some(f), Some(l)) => format!(", {}={l}", f.name),
            _ => String::new(),
        };
        let x_name = lay.x.map(|f| f.name.as_str()).unwrap_or("");
        out.push(Chart {
            title: format!("{title} vs {x_name}{facet_title}"),
            note,
            x: x_axis(lay.x, &present),
            y_label: y_label.to_string(),
            series,
            reference: None,
        });
    }
    out
}

/// TTFT of EFA layers over TCP ones at the same levels of every design factor; when
/// nothing ran over TCP, over unified serving (labelled so).
fn transport_ratio(factors: &[Factor], recs: &[ResultRecord]) -> Chart {
    let is = |r: &ResultRecord, t: &[&str]| setting(r, "transport").is_some_and(|x| t.contains(&x));
    let e2e = |r: &&ResultRecord| r.kind == ResultKind::Pattern && r.metrics.contains_key("ttft_mean");
    let efa: Vec<&ResultRecord> = recs.iter().filter(e2e).filter(|r| is(r, &["efa", "srd"])).collect();
    let tcp: Vec<&ResultRecord> = recs.iter().filter(e2e).filter(|r| is(r, &["tcp"])).collect();
    let (base, label): (Vec<&ResultRecord>, &str) = if tcp.is_empty() {
        let unified = crate::check::model::Mode::Unified.as_str();
        (recs.iter().filter(e2e).filter(|r| setting(r, "mode") == Some(unified)).collect(), "EFA / unified TTFT (no TCP results)")
    } else {
        (tcp, "EFA / TCP TTFT")
    };
    let design: Vec<Factor> = factors.iter().filter(|f| !f.restart).cloned().collect();
    let same = |a: &ResultRecord, b: &ResultRecord| design.iter().all(|f| f.of(a) == f.of(b));
    let lay = layout(&design, &efa);
    let mut extra = lay.series.clone();
    extra.extend(lay.facet);
    let present: BTreeSet<String> = efa.iter().filter_map(|r| lay.x.and_then(|f| f.of(r))).map(str::to_string).collect();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = vec![];
    for a in &efa {
        for b in base.iter().filter(|b| same(a, b)) {
            let (Some(x), ya, yb) = (x_of(lay.x, a), a.metrics["ttft_mean"], b.metrics["ttft_mean"]) else { continue };
            if yb > 0.0 {
                let name = format!("{} / {}{}", a.layer, b.layer, {
                    let s = series_label(None, &extra, a);
                    if s.is_empty() {
                        s
                    } else {
                        format!(" {s}")
                    }
                });
                match series.iter_mut().find(|s| s.0 == name) {
                    Some(s) => s.1.push((x, ya / yb)),
                    None => series.push((name, vec![(x, ya / yb)])),
                }
            }
        }
    }
    let x_name = lay.x.map(|f| f.name.as_str()).unwrap_or("");
    Chart {
        title: format!("{label} vs {x_name}"),
        note: lay.constant.join(", "),
        x: x_axis(lay.x, &present),
        y_label: "ratio".into(),
        series,
        reference: Some(1.0),
    }
}

/// What an analysis concluded, in one sentence.
pub fn verdict(r: &ResultRecord) -> String {
    let m = &r.metrics;
    let f = |k: &str| m.get(k).copied();
    if let (Some(d), Some(p)) = (f("dip"), f("p_value")) {
        let word = if f("bimodal") == Some(1.0) { "bimodal" } else { "no evidence of bimodality" };
        let mut s = format!("{word}: most bimodal result dip {d:.4}, p = {}", fmt_p(p));
        if let Some(h) = f("p_holm") {
            let _ = write!(s, " (Holm-adjusted over {} results: {})", f("tested").unwrap_or(0.0), fmt_p(h));
        }
        if let (Some(a), Some(b)) = (f("phase_a_mean"), f("phase_b_mean")) {
            let _ = write!(s, "; phase A mean {a:.1}, phase B mean {b:.1}");
        }
        return s;
    }
    if !r.intervals.is_empty() {
        return r
            .intervals
            .iter()
            .map(|i| {
                format!(
                    "{}: {:.3} [95% CI {:.3} to {:.3}; n = {}, {}]",
                    i.quantity,
                    i.estimate,
                    i.low,
                    i.high,
                    i.n,
                    i.method.describe()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(sp) = f("tpot_spread_ms") {
        let ind = if f("backend_independent") == Some(1.0) {
            "TPOT is independent of the backend"
        } else {
            "TPOT differs between backends"
        };
        return format!("{ind}: spread {sp:.2} ms");
    }
    if let Some(r) = f("pearson") {
        return format!(
            "Pearson r = {r:.3}, Spearman rho = {:.3} over {} pairs",
            f("spearman").unwrap_or(f64::NAN),
            f("pairs").unwrap_or(0.0)
        );
    }
    m.iter().map(|(k, v)| format!("{k} = {v:.3}")).collect::<Vec<_>>().join(", ")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child,td.l{text-align:left}\
.plots{display:flex;flex-wrap:wrap;gap:16px}svg.plot{border:1px solid #eee}.box{position:relative}\
.banner{background:#b00020;color:#fff;font-weight:bold;font-size:20px;padding:12px 16px;margin:8px 0 16px;border-radius:4px}\
.stamp{position:absolute;top:6px;right:8px;background:#b00020;color:#fff;font:bold 11px system-ui,sans-serif;padding:2px 6px;border-radius:3px}\
#provenance th{text-align:left;background:#f4f4f4}.flag{color:#b00020;font-weight:bold}\
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;max-width:1100px}.formula{max-width:1100px}";

pub fn html(rep: &Report) -> String {
    let recs = rep.results;
    let synthetic = recs.iter().filter(|r| r.provenance.as_ref().is_some_and(|p| p.synthetic)).count();
    let mut s = String::new();
    let title = format!("{}nixl report: {}", if synthetic > 0 { "SYNTHETIC · " } else { "" }, rep.experiment);
    let _ = write!(s, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title><style>{STYLE}</style></head><body><h1>nixl report: {1}</h1>", esc(&title), esc(rep.experiment));
    if synthetic > 0 {
        let share = if synthetic == recs.len() { String::new() } else { format!(" ({synthetic} of {} results)", recs.len()) };
        let _ = write!(s, "<div id=\"synthetic-banner\" class=\"banner\" role=\"alert\">{}{share}</div>", esc(SYNTHETIC_BANNER));
    }
    provenance(&mut s, recs, rep.generated);
    let stamp = if synthetic > 0 { "<span class=\"stamp\">SYNTHETIC</span>" } else { "" };
    let mut charts = metric_charts(rep.factors, recs, "ttft_mean", "TTFT (mean)", "TTFT ms");
    charts.extend(metric_charts(rep.factors, recs, "tpot_mean", "TPOT (mean)", "TPOT ms"));
    charts.push(transport_ratio(rep.factors, recs));
    let mut names: Vec<&str> = vec![];
    for c in &charts {
        for (n, _) in &c.series {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let palette = styles(names.len().max(1));
    s.push_str("<h2>Latency against the design's factors</h2><div class=\"plots\">");
    for c in &charts {
        let _ = write!(s, "<div class=\"box\">{}{stamp}</div>", draw(c, &names, &palette));
    }
    s.push_str("</div>");
    super::report_decisions::section(&mut s, recs, rep.pricing, stamp);
    super::report_load::section(&mut s, rep.factors, recs, stamp);
    intervals(&mut s, recs, stamp);
    tests(&mut s, recs, stamp);
    pattern_table(&mut s, rep.factors, recs);
    s.push_str("<h2>Analyses</h2><table><tr><th>analysis</th><th class=\"l\">verdict</th></tr>");
    for r in recs.iter().filter(|r| r.kind == ResultKind::Analysis) {
        let _ = write!(s, "<tr><td>{}</td><td class=\"l\">{}</td></tr>", esc(&r.id), esc(&verdict(r)));
    }
    s.push_str("</table><h2>Rules that fired</h2>");
    if rep.fired.is_empty() {
        s.push_str("<p>None.</p>");
    }
    for f in rep.fired {
        let _ = write!(s, "<p><code>{}</code>: {} → {}</p>", esc(&f.condition), esc(&f.reason), esc(&f.patterns.join(", ")));
    }
    s.push_str("</body></html>\n");
    s
}

fn draw(c: &Chart, names: &[&str], palette: &[Style]) -> String {
    let series: Vec<Series> = c
        .series
        .iter()
        .map(|(n, p)| Series { name: n.clone(), points: p.clone(), style: names.iter().position(|x| x == n).unwrap_or(0) })
        .collect();
    let chart = LineChart {
        title: &c.title,
        note: &c.note,
        x: &c.x,
        y_label: &c.y_label,
        series: &series,
        reference: c.reference,
        band: None,
    };
    line_chart(&chart, palette)
}

/// The header: what the figures were measured on and with, from every result's provenance.
fn provenance(s: &mut String, recs: &[ResultRecord], generated: &str) {
    let with: Vec<&Provenance> = recs.iter().filter_map(|r| r.provenance.as_ref()).collect();
    let distinct = |get: &dyn Fn(&Provenance) -> Option<String>| -> String {
        let all: BTreeSet<String> = with.iter().map(|p| get(p).unwrap_or_else(|| "not recorded".into())).collect();
        if all.is_empty() {
            "not recorded".into()
        } else {
            all.into_iter().collect::<Vec<_>>().join(", ")
        }
    };
    let mut times: Vec<&str> = recs.iter().map(|r| r.finished_at.as_str()).filter(|t| !t.is_empty()).collect();
    times.sort();
    let when = match (times.first(), times.last()) {
        (Some(a), Some(b)) if a != b => format!("{a} to {b}"),
        (Some(a), _) => a.to_string(),
        _ => "no results yet".into(),
    };
    let data = if with.iter().all(|p| p.synthetic) && !with.is_empty() {
        "synthetic (local stand-ins)".to_string()
    } else {
        let n = with.iter().filter(|p| p.synthetic).count();
        if n == 0 {
            "measured".into()
        } else {
            format!("mixed: {n} of {} results synthetic", with.len())
        }
    };
    let rows: Vec<(&str, String)> = vec![
        ("Model", distinct(&|p| p.model.clone())),
        ("Provider", distinct(&|p| Some(p.provider.clone()))),
        ("Data", data),
        ("Instance type (as launched)", distinct(&|p| p.instance_type.clone())),
        ("Zone", distinct(&|p| p.zone.clone())),
        ("Image", distinct(&|p| p.image.clone())),
        ("vLLM", distinct(&|p| p.vllm_version.clone())),
        ("NIXL", distinct(&|p| p.nixl_version.clone())),
        ("Stack", distinct(&|p| p.stack.clone())),
        ("nixl", distinct(&|p| Some(p.nixl_cli.clone()))),
        ("Measured", when),
        ("Report written", generated.to_string()),
    ];
    s.push_str("<table id=\"provenance\">");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{k}</th><td class=\"l\">{}</td></tr>", esc(&v));
    }
    s.push_str("</table>");
    let old = recs.len() - with.len();
    let _ = write!(s, "<p>{} results", recs.len());
    if old > 0 {
        let _ = write!(s, "; {old} from an earlier release record no provenance");
    }
    s.push_str(".</p>");
}

/// Every interval the analyses give, one chart per quantity, each row with its n and method.
fn intervals(s: &mut String, recs: &[ResultRecord], stamp: &str) {
    let mut by: BTreeMap<&str, (f64, Vec<IntervalRow>)> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.kind == ResultKind::Analysis) {
        for i in &r.intervals {
            let row = IntervalRow {
                label: r.settings.get("analysis").and_then(|v| v.as_str()).unwrap_or(&r.id).to_string(),
                estimate: i.estimate,
                low: i.low,
                high: i.high,
                note: format!("n = {}, {}", i.n, i.method.describe()),
            };
            by.entry(&i.quantity).or_insert((i.reference, vec![])).1.push(row);
        }
    }
    if by.is_empty() {
        return;
    }
    s.push_str("<h2>Intervals from the analyses</h2><div class=\"plots\">");
    for (q, (reference, rows)) in &by {
        let unit = if *reference == 1.0 { "ratio" } else { "difference" };
        let _ = write!(s, "<div class=\"box\">{}{stamp}</div>", interval_chart(q, unit, rows, Some(*reference)));
    }
    s.push_str("</div>");
}

/// Per analysis that tests every result (the dip test): the table of all its tests, the
/// histogram of every result it flags, the others' histograms folded away.
fn tests(s: &mut String, recs: &[ResultRecord], stamp: &str) {
    let with: Vec<&ResultRecord> = recs.iter().filter(|r| !r.tests.is_empty()).collect();
    if with.is_empty() {
        return;
    }
    s.push_str("<h2>Bimodality of per-request samples</h2>");
    for a in with {
        let name = a.settings.get("analysis").and_then(|v| v.as_str()).unwrap_or(&a.id);
        let flagged: Vec<&ResultTest> = a.tests.iter().filter(|t| t.flagged).collect();
        let t0 = &a.tests[0];
        let _ = write!(
            s,
            "<h3>{}: dip test of {} result(s), {}-adjusted, alpha {}: {} flagged</h3>",
            esc(name),
            a.tests.len(),
            t0.correction.as_str(),
            t0.alpha,
            flagged.len()
        );
        s.push_str(
            "<table><tr><th>result</th><th>n</th><th>dip</th><th>p</th><th>p adjusted</th><th class=\"l\">verdict</th></tr>",
        );
        for t in &a.tests {
            let verdict = if t.flagged { "<span class=\"flag\">bimodal</span>" } else { "no evidence" };
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td class=\"l\">{verdict}</td></tr>",
                esc(t.result.as_deref().unwrap_or("(results pooled)")),
                t.n,
                t.statistic,
                fmt_p(t.p_value),
                fmt_p(t.p_adjusted)
            );
        }
        s.push_str("</table><div class=\"plots\">");
        for t in &flagged {
            let _ = write!(s, "<div class=\"box\">{}{stamp}</div>", test_histogram(recs, t));
        }
        s.push_str("</div>");
        let rest: Vec<&ResultTest> = a.tests.iter().filter(|t| !t.flagged).collect();
        if !rest.is_empty() {
            let _ = write!(
                s,
                "<details><summary>Histograms of the {} result(s) not flagged</summary><div class=\"plots\">",
                rest.len()
            );
            for t in rest {
                let _ = write!(s, "<div class=\"box\">{}{stamp}</div>", test_histogram(recs, t));
            }
            s.push_str("</div></details>");
        }
    }
}

fn test_histogram(recs: &[ResultRecord], t: &ResultTest) -> String {
    let sample: &[f64] = match &t.result {
        Some(id) => recs.iter().find(|r| &r.id == id).and_then(|r| r.samples.get(&t.sample)).map(Vec::as_slice).unwrap_or(&[]),
        None => &t.values,
    };
    let title = format!("{}{}", t.result.as_deref().unwrap_or("pooled results"), if t.flagged { ": bimodal" } else { "" });
    let note = format!(
        "dip {:.3}, p = {}, {} p = {}, n = {}",
        t.statistic,
        fmt_p(t.p_value),
        t.correction.as_str(),
        fmt_p(t.p_adjusted),
        t.n
    );
    histogram(&title, &note, &t.sample, sample, if t.flagged { t.split } else { None })
}

fn pattern_table(s: &mut String, factors: &[Factor], recs: &[ResultRecord]) {
    const COLS: &[&str] = &["ttft_mean", "ttft_p99", "tpot_mean", "e2e_latency_mean", "throughput_tps"];
    s.push_str("<h2>Patterns</h2><table><tr><th>pattern</th><th>layer</th>");
    for f in factors {
        let _ = write!(s, "<th>{}</th>", esc(&f.name));
    }
    for c in COLS {
        let _ = write!(s, "<th>{c}</th>");
    }
    s.push_str("<th class=\"l\">other figures</th></tr>");
    let mut rows: Vec<&ResultRecord> = recs.iter().filter(|r| r.kind != ResultKind::Analysis).collect();
    rows.sort_by(|a, b| {
        a.layer.cmp(&b.layer).then_with(|| {
            factors
                .iter()
                .map(|f| f.cmp(f.of(a).unwrap_or(""), f.of(b).unwrap_or("")))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    for r in rows {
        let _ = write!(s, "<tr><td>{}</td><td class=\"l\">{}</td>", esc(&r.id), esc(&r.layer));
        for f in factors {
            let _ = write!(s, "<td>{}</td>", esc(f.of(r).filter(|v| *v != "none").unwrap_or("")));
        }
        for c in COLS {
            let _ = write!(s, "<td>{}</td>", r.metrics.get(*c).map(|v| format!("{v:.1}")).unwrap_or_default());
        }
        let other: Vec<String> =
            r.metrics.iter().filter(|(k, _)| !COLS.contains(&k.as_str())).map(|(k, v)| format!("{k}={v:.3}")).collect();
        let _ = write!(s, "<td class=\"l\">{}</td></tr>", esc(&other.join(", ")));
    }
    s.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::factors::Level;

    fn factor(name: &str, levels: &[(&str, f64)]) -> Factor {
        let levels = levels.iter().map(|(t, v)| Level { text: t.to_string(), value: Some(*v) }).collect();
        Factor { name: name.into(), restart: false, levels }
    }

    fn rec(layer: &str, prompt: &str, c: &str, out: &str, ttft: f64) -> ResultRecord {
        serde_json::from_value(serde_json::json!({
            "id": format!("{layer}-{prompt}-c{c}-o{out}"), "hash": "h", "layer": layer, "kind": "pattern",
            "finished_at": "2026-01-01T00:00:00Z", "seconds": 1.0,
            "settings": { "prompt": prompt, "concurrency": c, "max_tokens": out },
            "metrics": { "ttft_mean": ttft, "tpot_mean": 10.0 }, "raw": "r",
        }))
        .unwrap()
    }

    /// Three factors: prompt on x, concurrency as facets in numeric order (1, 4, 16),
    /// output length as series with the layer; nothing averaged over.
    #[test]
    fn a_third_factor_is_a_facet_and_levels_are_in_numeric_order() {
        let factors = [
            factor("prompt", &[("1K", 1024.0), ("4K", 4096.0), ("12K", 12288.0)]),
            factor("concurrency", &[("1", 1.0), ("4", 4.0), ("16", 16.0)]),
            factor("max_tokens", &[("64", 64.0), ("128", 128.0)]),
        ];
        let mut recs = vec![];
        for layer in ["A", "B"] {
            for p in ["12K", "1K", "4K"] {
                for c in ["16", "4", "1"] {
                    for o in ["128", "64"] {
                        recs.push(rec(layer, p, c, o, 1.0));
                    }
                }
            }
        }
        let charts = metric_charts(&factors, &recs, "ttft_mean", "TTFT", "ms");
        let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["TTFT vs prompt, concurrency=1", "TTFT vs prompt, concurrency=4", "TTFT vs prompt, concurrency=16"]);
        let names: Vec<&str> = charts[0].series.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["A max_tokens=64", "A max_tokens=128", "B max_tokens=64", "B max_tokens=128"]);
        // One point per prompt in each series: nothing mixed.
        assert!(charts.iter().all(|c| c.series.iter().all(|s| s.1.len() == 3)));
        let ticks: Vec<&str> = charts[0].x.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(ticks, ["1K", "4K", "12K"]);
        let html = html(&Report {
            experiment: "e",
            factors: &factors,
            results: &recs,
            fired: &[],
            pricing: &Default::default(),
            generated: "now",
        });
        assert!(!html.contains("synthetic-banner"), "no provenance says synthetic");
        let (c4, c16) = (html.find("concurrency=4").unwrap(), html.find("concurrency=16").unwrap());
        assert!(c4 < c16, "c=4 before c=16");
    }

    #[test]
    fn p_values_never_print_as_zero() {
        assert_eq!(fmt_p(0.0004997), "5.0e-4");
        assert_eq!(fmt_p(0.25), "0.250");
    }
}
