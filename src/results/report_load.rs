//! The report's figures under load: for every point a saturation search ran on, the curve its
//! probes drew (offered request rate against goodput, met and missed apart) with the knee
//! bracket marked; for every point with replicates, the mean of each headline metric with its
//! 95 % Student-t interval and n. Points are told apart by their settings, never by their ids.

use super::factors::Factor;
use super::stats::{mean, t_interval};
use super::svg::{esc, interval_chart, line_chart, styles, IntervalRow, LineChart, Series, XAxis};
use super::ResultRecord;
use std::fmt::Write;

/// What a probe passed on: `probe_passed` (the search's own verdict, by its `metric`), else `slo_met`.
pub const PASSED: [&str; 2] = ["probe_passed", "slo_met"];

/// The metrics whose replicate intervals the report shows, when the results have them.
pub const REPLICATED: [&str; 5] = ["ttft_p50", "ttft_p99", "tpot_mean", "throughput_tps", "goodput_rps"];

/// A rate as the report prints it: up to three decimals, no trailing zeros (17.5, 18.75, 20).
pub fn rate(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One point of the design: its layer and its settings but the ones that tell its runs apart.
type PointKey = (String, Vec<(String, String)>);

fn point_key(r: &ResultRecord, apart: &[&str]) -> PointKey {
    let settings = r
        .settings
        .iter()
        .filter(|(k, _)| !apart.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    (r.layer.clone(), settings)
}

/// The runs of each point that have `key` in their settings, points in the order first seen.
fn points<'r>(results: &'r [ResultRecord], key: &str, apart: &[&str]) -> Vec<(PointKey, Vec<&'r ResultRecord>)> {
    let mut out: Vec<(PointKey, Vec<&ResultRecord>)> = vec![];
    for r in results.iter().filter(|r| r.settings.contains_key(key)) {
        let k = point_key(r, apart);
        match out.iter_mut().find(|(p, _)| *p == k) {
            Some((_, runs)) => runs.push(r),
            None => out.push((k, vec![r])),
        }
    }
    out
}

/// "L2-EFA, prompt = 4K": the layer and the levels of the factors the point has (but `skip`).
fn point_label(factors: &[Factor], r: &ResultRecord, skip: &str) -> String {
    let levels: Vec<String> = factors
        .iter()
        .filter(|f| !f.restart && f.name != skip)
        .filter_map(|f| f.of(r).map(|v| format!("{} = {v}", f.name)))
        .collect();
    if levels.is_empty() {
        r.layer.clone()
    } else {
        format!("{}, {}", r.layer, levels.join(", "))
    }
}

fn setting_num(r: &ResultRecord, k: &str) -> Option<f64> {
    r.settings.get(k).and_then(|v| v.as_str()).and_then(|s| s.parse().ok())
}

/// One probe as the curve uses it.
struct Probe<'r> {
    rec: &'r ResultRecord,
    number: f64,
    rate: f64,
    goodput: Option<f64>,
    passed: bool,
}

/// The highest rate that passed and the lowest that missed (either may be absent).
pub fn bracket(probes: &[(f64, bool)]) -> (Option<f64>, Option<f64>) {
    let passed = probes.iter().filter(|p| p.1).map(|p| p.0).reduce(f64::max);
    let missed = probes.iter().filter(|p| !p.1).map(|p| p.0).reduce(f64::min);
    (passed, missed)
}

/// Writes both parts; nothing when no result is a probe or a replicate.
pub fn section(s: &mut String, factors: &[Factor], results: &[ResultRecord], stamp: &str) {
    saturation(s, factors, results, stamp);
    replicates(s, factors, results, stamp);
}

fn saturation(s: &mut String, factors: &[Factor], results: &[ResultRecord], stamp: &str) {
    let searched = points(results, "probe", &["probe", "request_rate"]);
    if searched.is_empty() {
        return;
    }
    s.push_str(
        "<h2 id=\"saturation\">Saturation searches: goodput against the offered rate, and the knee</h2><div class=\"plots\">",
    );
    let palette = styles(3);
    let mut tables = String::new();
    for (n, (_, runs)) in searched.iter().enumerate() {
        let mut probes: Vec<Probe> = runs
            .iter()
            .filter_map(|r| {
                let passed = PASSED.iter().find_map(|m| r.metrics.get(*m))?;
                Some(Probe {
                    rec: r,
                    number: setting_num(r, "probe")?,
                    rate: setting_num(r, "request_rate")?,
                    goodput: r.metrics.get("goodput_rps").copied(),
                    passed: *passed >= 1.0,
                })
            })
            .collect();
        probes.sort_by(|a, b| a.number.total_cmp(&b.number));
        let label = point_label(factors, runs[0], "request_rate");
        let (passed, missed) = bracket(&probes.iter().map(|p| (p.rate, p.passed)).collect::<Vec<_>>());
        let said = |r: Option<f64>| r.map_or("no probed rate".to_string(), |r| format!("{} req/s", rate(r)));
        let verdict = format!("the SLO holds up to {} and fails at {} ({} probes)", said(passed), said(missed), probes.len());
        let curve = |pass: bool| -> Vec<(f64, f64)> {
            probes.iter().filter(|p| p.passed == pass).filter_map(|p| Some((p.rate, p.goodput?))).collect()
        };
        let series = [
            Series { name: "goodput, SLO met".into(), points: curve(true), style: 0 },
            Series { name: "goodput, SLO missed".into(), points: curve(false), style: 1 },
            Series { name: "offered rate".into(), points: probes.iter().map(|p| (p.rate, p.rate)).collect(), style: 2 },
        ];
        let x = XAxis { label: "offered request rate (req/s)".into(), log2: false, ticks: rate_ticks(&probes) };
        let title = format!("{label}: saturation");
        let chart = LineChart {
            title: &title,
            note: &verdict,
            x: &x,
            y_label: "goodput req/s",
            series: &series,
            reference: None,
            band: passed.zip(missed),
        };
        let _ = write!(s, "<div class=\"box\" id=\"saturation-chart-{n}\">{}{stamp}</div>", line_chart(&chart, &palette));
        let _ = write!(
            tables,
            "<p id=\"knee-{n}\"><b>{}</b>: {}</p><table id=\"saturation-{n}\"><tr><th>probe</th><th>rate req/s</th><th>goodput req/s</th><th>SLO attainment</th><th>SLO</th><th class=\"l\">knee</th></tr>",
            esc(&label),
            esc(&verdict)
        );
        for p in &probes {
            let mark = match (Some(p.rate) == passed, Some(p.rate) == missed) {
                (true, _) => "highest rate that met the SLO",
                (_, true) => "lowest rate that missed it",
                _ => "",
            };
            let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("-".to_string(), f);
            let _ = write!(
                tables,
                "<tr id=\"probe-{}\"{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{mark}</td></tr>",
                esc(&p.rec.id),
                if mark.is_empty() { "" } else { " class=\"knee\"" },
                p.number,
                rate(p.rate),
                opt(p.goodput, |g| format!("{g:.3}")),
                opt(p.rec.metrics.get("slo_attainment").copied(), |a| format!("{a:.3}")),
                if p.passed { "met" } else { "missed" },
            );
        }
        tables.push_str("</table>");
    }
    s.push_str("</div>");
    s.push_str(&tables);
}

/// Ticks at the probed rates, leaving out one within 8 % of the range of the previous tick.
fn rate_ticks(probes: &[Probe]) -> Vec<(f64, String)> {
    let mut rates: Vec<f64> = probes.iter().map(|p| p.rate).collect();
    rates.sort_by(f64::total_cmp);
    let span = rates.last().zip(rates.first()).map_or(1.0, |(a, b)| (a - b).max(1e-9));
    let mut out: Vec<(f64, String)> = vec![];
    for r in rates {
        if out.last().is_none_or(|(last, _)| (r - last) / span > 0.08) {
            out.push((r, rate(r)));
        }
    }
    out
}

/// The interval of one metric over one point's replicates.
pub struct ReplicateInterval {
    pub point: String,
    pub metric: &'static str,
    pub n: usize,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Every replicated point's intervals, points in the order first seen, metrics as [`REPLICATED`].
pub fn replicate_intervals(factors: &[Factor], results: &[ResultRecord]) -> Vec<ReplicateInterval> {
    let mut out = vec![];
    for (_, runs) in points(results, "replicate", &["replicate"]) {
        let point = point_label(factors, runs[0], "");
        for metric in REPLICATED {
            let values: Vec<f64> = runs.iter().filter_map(|r| r.metrics.get(metric).copied()).collect();
            if let Some((low, high)) = t_interval(&values) {
                out.push(ReplicateInterval { point: point.clone(), metric, n: values.len(), mean: mean(&values), low, high });
            }
        }
    }
    out
}

fn replicates(s: &mut String, factors: &[Factor], results: &[ResultRecord], stamp: &str) {
    let all = replicate_intervals(factors, results);
    if all.is_empty() {
        return;
    }
    s.push_str("<h2 id=\"replicates\">Replicates: means with 95 % Student-t intervals</h2><div class=\"plots\">");
    for metric in REPLICATED {
        let rows: Vec<IntervalRow> = all
            .iter()
            .filter(|i| i.metric == metric)
            .map(|i| IntervalRow {
                label: i.point.clone(),
                estimate: i.mean,
                low: i.low,
                high: i.high,
                note: format!("n = {}, Student t", i.n),
            })
            .collect();
        if !rows.is_empty() {
            let unit = super::vllm::unit(metric);
            let _ = write!(s, "<div class=\"box\">{}{stamp}</div>", interval_chart(metric, unit, &rows, None));
        }
    }
    s.push_str("</div><table id=\"replicate-intervals\"><tr><th class=\"l\">point</th><th>metric</th><th>n</th><th>mean</th><th>95 % low</th><th>95 % high</th></tr>");
    for (k, i) in all.iter().enumerate() {
        let _ = write!(
            s,
            "<tr id=\"replicate-{k}\"><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&i.point),
            i.metric,
            i.n,
            i.mean,
            i.low,
            i.high
        );
    }
    s.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_print_short_and_the_bracket_is_the_last_pass_and_first_miss() {
        assert_eq!(
            (rate(20.0), rate(17.5), rate(18.75), rate(19.0626)),
            ("20".into(), "17.5".into(), "18.75".into(), "19.063".into())
        );
        let runs = [(5.0, true), (10.0, true), (20.0, true), (40.0, false), (30.0, false), (25.0, false), (22.5, true)];
        assert_eq!(bracket(&runs), (Some(22.5), Some(25.0)));
        assert_eq!(bracket(&[(5.0, false)]), (None, Some(5.0)));
    }
}
