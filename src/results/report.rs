//! `nixl report`: one self-contained HTML page from the stored results:
//! TTFT and TPOT against prompt length, the EFA/TCP ratio, bimodality
//! histograms, the pattern table and the analyses' verdicts.

use super::rules::Fired;
use super::svg::{esc, histogram, line_chart, Series};
use super::{analysis, stats, ResultKind, ResultRecord};
use std::collections::BTreeMap;
use std::fmt::Write;

fn setting<'r>(r: &'r ResultRecord, k: &str) -> Option<&'r str> {
    r.settings.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty() && *s != "none")
}

/// Prompt length in tokens from its stored form ("12K", "4096").
pub fn tokens(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1024.0),
        'M' | 'm' => (&s[..s.len() - 1], 1024.0 * 1024.0),
        _ => (s, 1.0),
    };
    num.trim().parse::<f64>().ok().map(|n| n * mul)
}

/// E2E results: those with a prompt length and the metric.
fn e2e<'r>(recs: &'r [ResultRecord], metric: &'r str) -> impl Iterator<Item = (&'r ResultRecord, f64, f64)> {
    recs.iter().filter_map(move |r| Some((r, tokens(setting(r, "prompt")?)?, *r.metrics.get(metric)?)))
}

/// One line per layer and concurrency.
fn by_layer_concurrency(recs: &[ResultRecord], metric: &str) -> Vec<Series> {
    let mut m: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (r, x, y) in e2e(recs, metric) {
        let c = setting(r, "concurrency").unwrap_or("?");
        m.entry(format!("{} c={c}", r.layer)).or_default().push((x, y));
    }
    m.into_iter().map(|(name, points)| Series { name, points }).collect()
}

/// TTFT of EFA layers over TCP ones at the same prompt and concurrency; when
/// nothing ran over TCP, over unified serving (labelled so).
fn transport_ratio(recs: &[ResultRecord]) -> (String, Vec<Series>) {
    let is = |r: &ResultRecord, t: &[&str]| setting(r, "transport").is_some_and(|x| t.contains(&x));
    let efa: Vec<&ResultRecord> = recs.iter().filter(|r| is(r, &["efa", "srd"])).collect();
    let tcp: Vec<&ResultRecord> = recs.iter().filter(|r| is(r, &["tcp"])).collect();
    let (base, label): (Vec<&ResultRecord>, &str) = if tcp.is_empty() {
        (
            recs.iter().filter(|r| setting(r, "mode") == Some(crate::check::model::Mode::Unified.as_str())).collect(),
            "EFA / unified TTFT (no TCP results)",
        )
    } else {
        (tcp, "EFA / TCP TTFT")
    };
    let mut m: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for a in &efa {
        for b in base
            .iter()
            .filter(|b| setting(b, "prompt") == setting(a, "prompt") && setting(b, "concurrency") == setting(a, "concurrency"))
        {
            if let (Some(x), Some(ya), Some(yb)) =
                (setting(a, "prompt").and_then(tokens), a.metrics.get("ttft_mean"), b.metrics.get("ttft_mean"))
            {
                if *yb > 0.0 {
                    m.entry(format!("c={}", setting(a, "concurrency").unwrap_or("?"))).or_default().push((x, ya / yb));
                }
            }
        }
    }
    (label.to_string(), m.into_iter().map(|(name, points)| Series { name, points }).collect())
}

/// What an analysis concluded, in one sentence.
pub fn verdict(r: &ResultRecord) -> String {
    let m = &r.metrics;
    let f = |k: &str| m.get(k).copied();
    if let (Some(d), Some(p)) = (f("dip"), f("p_value")) {
        let word = if f("bimodal") == Some(1.0) { "bimodal" } else { "no evidence of bimodality" };
        let mut s = format!("{word}: dip {d:.4}, p = {p:.3}");
        if let (Some(a), Some(b)) = (f("phase_a_mean"), f("phase_b_mean")) {
            let _ = write!(s, "; phase A mean {a:.1}, phase B mean {b:.1}");
        }
        return s;
    }
    if let Some(k) = m.keys().find(|k| k.ends_with("_diff_mean")) {
        let base = k.trim_end_matches("_diff_mean");
        let g = |suffix: &str| f(&format!("{base}{suffix}")).unwrap_or(f64::NAN);
        return format!(
            "{base}: difference {:.1} [95% CI {:.1} to {:.1}], ratio {:.3} [{:.3} to {:.3}] over {} pair(s)",
            g("_diff_mean"),
            g("_diff_ci_low"),
            g("_diff_ci_high"),
            g("_ratio_mean"),
            g("_ratio_ci_low"),
            g("_ratio_ci_high"),
            f("pairs").unwrap_or(0.0)
        );
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
.plots{display:flex;flex-wrap:wrap;gap:16px}svg.plot{border:1px solid #eee}";

pub fn html(experiment: &str, recs: &[ResultRecord], fired: &[Fired]) -> String {
    let mut s = String::new();
    let _ = write!(s, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nixl report: {0}</title><style>{STYLE}</style></head><body><h1>nixl report: {0}</h1>", esc(experiment));
    let _ = write!(s, "<p>{} results, generated {}.</p>", recs.len(), esc(&crate::state::lock::now_rfc3339()));
    s.push_str("<h2>Latency against prompt length</h2><div class=\"plots\">");
    s.push_str(&line_chart(
        "TTFT (mean) vs prompt length",
        "prompt tokens",
        "TTFT ms",
        &by_layer_concurrency(recs, "ttft_mean"),
        true,
    ));
    s.push_str(&line_chart(
        "TPOT (mean) vs prompt length",
        "prompt tokens",
        "TPOT ms",
        &by_layer_concurrency(recs, "tpot_mean"),
        true,
    ));
    let (label, ratio) = transport_ratio(recs);
    s.push_str(&line_chart(&label, "prompt tokens", "ratio", &ratio, true));
    s.push_str("</div><h2>Bimodality of per-request TTFT</h2><div class=\"plots\">");
    let mut shown = 0;
    for r in recs {
        let Some((_, v)) = analysis::samples_of(r, "ttft") else { continue };
        if shown == 12 {
            s.push_str("<p>(further results with samples are in the table)</p>");
            break;
        }
        let (d, p) = stats::dip_test(v, analysis::DIP_SIMS / 4);
        let split = stats::two_component_split(v).map(|x| x.threshold);
        let title = format!("{}: dip {d:.3}, p={p:.2}", r.id);
        s.push_str(&histogram(&title, "TTFT ms", v, if p < 0.05 { split } else { None }));
        shown += 1;
    }
    if shown == 0 {
        s.push_str("<p>No per-request samples stored.</p>");
    }
    s.push_str("</div>");
    pattern_table(&mut s, recs);
    s.push_str("<h2>Analyses</h2><table><tr><th>analysis</th><th class=\"l\">verdict</th></tr>");
    for r in recs.iter().filter(|r| r.kind == ResultKind::Analysis) {
        let _ = write!(s, "<tr><td>{}</td><td class=\"l\">{}</td></tr>", esc(&r.id), esc(&verdict(r)));
    }
    s.push_str("</table><h2>Rules that fired</h2>");
    if fired.is_empty() {
        s.push_str("<p>None.</p>");
    }
    for f in fired {
        let _ = write!(s, "<p><code>{}</code>: {} → {}</p>", esc(&f.condition), esc(&f.reason), esc(&f.patterns.join(", ")));
    }
    s.push_str("</body></html>\n");
    s
}

fn pattern_table(s: &mut String, recs: &[ResultRecord]) {
    const COLS: &[&str] = &["ttft_mean", "ttft_p99", "tpot_mean", "e2e_latency_mean", "throughput_tps"];
    s.push_str(
        "<h2>Patterns</h2><table><tr><th>pattern</th><th>layer</th><th>prompt</th><th>c</th><th>mode</th><th>transport</th>",
    );
    for c in COLS {
        let _ = write!(s, "<th>{c}</th>");
    }
    s.push_str("<th class=\"l\">other figures</th></tr>");
    for r in recs.iter().filter(|r| r.kind != ResultKind::Analysis) {
        let _ = write!(s, "<tr><td>{}</td><td class=\"l\">{}</td>", esc(&r.id), esc(&r.layer));
        for k in ["prompt", "concurrency", "mode", "transport"] {
            let _ = write!(s, "<td>{}</td>", esc(setting(r, k).unwrap_or("")));
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

    #[test]
    fn prompt_lengths_read_back() {
        assert_eq!(tokens("12K"), Some(12288.0));
        assert_eq!(tokens("4096"), Some(4096.0));
        assert_eq!(tokens(""), None);
        assert_eq!(tokens("x"), None);
    }
}
