//! Small inline SVG charts for the report: line charts and histograms,
//! no scripts, no external resources, so the page renders anywhere offline.

use std::fmt::Write;

pub const PALETTE: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

const W: f64 = 640.0;
const H: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 46.0;

pub struct Series {
    pub name: String,
    /// (x, y) points; drawn in x order.
    pub points: Vec<(f64, f64)>,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Round tick positions covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = vec![];
    while t <= hi + step * 1e-9 && out.len() < 20 {
        out.push(t);
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if v.abs() >= 1024.0 && (v / 1024.0).fract() == 0.0 {
        format!("{}K", v / 1024.0)
    } else if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The opening of a plot: the svg element, a white background and the title.
fn open_svg(title: &str, w: f64, h: f64, title_size: u32) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{}</title>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/><text x="{LEFT}" y="18" font-size="{title_size}" font-weight="bold">{}</text>"##,
        esc(title)
    );
    s
}

/// A line chart; `log_x` spaces x by powers of two (prompt lengths).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool) -> String {
    let pts: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let mut s = open_svg(title, W, H, 14);
    if pts.is_empty() {
        let _ = write!(s, r#"<text x="{LEFT}" y="{}" font-size="13">no results to plot yet</text></svg>"#, H / 2.0);
        return s;
    }
    let tx = |x: f64| if log_x { x.max(1e-9).log2() } else { x };
    let (mut x0, mut x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(tx(p.0)), b.max(tx(p.0))));
    if x0 == x1 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let y1 = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let y0 = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.0);
    let y1 = if y1 <= y0 { y0 + 1.0 } else { y1 * 1.05 };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    axes(&mut s, x_label, y_label, pw, ph);
    for t in ticks(y0, y1) {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py(t) + 4.0,
            label(t),
            y = py(t)
        );
    }
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let xt: Vec<f64> = if log_x || xs.len() <= 8 { xs } else { ticks(x0, x1) };
    for t in xt {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            px(t),
            TOP + ph + 16.0,
            label(t)
        );
    }
    for (i, se) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut p: Vec<(f64, f64)> = se.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let d: Vec<String> = p.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(s, r#"<path class="series" d="M{}" fill="none" stroke="{color}" stroke-width="2"/>"#, d.join(" L"));
        for (x, y) in &p {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{}: {} → {y:.2}</title></circle>"#,
                px(*x),
                py(*y),
                esc(&se.name),
                label(*x)
            );
        }
        let ly = TOP + 14.0 + i as f64 * 18.0;
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            LEFT + pw + 12.0,
            ly - 4.0,
            LEFT + pw + 30.0,
            ly,
            esc(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn axes(s: &mut String, x_label: &str, y_label: &str, pw: f64, ph: f64) {
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b:.1}" stroke="#333"/><line x1="{LEFT}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#333"/>"##,
        b = TOP + ph,
        r = LEFT + pw
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 8.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        esc(y_label)
    );
}

/// A histogram of a sample with an optional vertical marker (a split threshold).
pub fn histogram(title: &str, x_label: &str, sample: &[f64], marker: Option<f64>) -> String {
    let v: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
    let (w, h) = (W - RIGHT + 60.0, H - 60.0);
    let mut s = open_svg(title, w, h, 13);
    if v.is_empty() {
        s.push_str("</svg>");
        return s;
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-9);
    let bins = ((v.len() as f64).sqrt().ceil() as usize).clamp(5, 30);
    let mut counts = vec![0usize; bins];
    for x in &v {
        let b = (((x - lo) / (hi - lo)) * bins as f64) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let top = *counts.iter().max().unwrap_or(&1) as f64;
    let (pw, ph) = (w - LEFT - 20.0, h - TOP - BOTTOM);
    let _ = write!(s, r##"<line x1="{LEFT}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#333"/>"##, b = TOP + ph, r = LEFT + pw);
    let bw = pw / bins as f64;
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / top * ph;
        let _ = write!(
            s,
            r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#4a7ab5"/>"##,
            LEFT + i as f64 * bw + 1.0,
            TOP + ph - bh,
            (bw - 2.0).max(1.0)
        );
    }
    for (x, anchor) in [(lo, "start"), (hi, "end")] {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            LEFT + (x - lo) / (hi - lo) * pw,
            TOP + ph + 16.0,
            label(x)
        );
    }
    if let Some(m) = marker.filter(|m| *m >= lo && *m <= hi) {
        let mx = LEFT + (m - lo) / (hi - lo) * pw;
        let _ = write!(
            s,
            r##"<line x1="{mx:.1}" x2="{mx:.1}" y1="{TOP}" y2="{:.1}" stroke="#d62728" stroke-dasharray="4 3"/>"##,
            TOP + ph
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text></svg>"#,
        LEFT + pw / 2.0,
        h - 8.0,
        esc(x_label)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_paths_or_say_they_are_empty() {
        let s = line_chart("t", "x", "y", &[Series { name: "a<b".into(), points: vec![(1024.0, 1.0), (4096.0, 2.0)] }], true);
        assert!(s.contains("<path class=\"series\""));
        assert!(s.contains("a&lt;b"));
        assert!(line_chart("t", "x", "y", &[], false).contains("no results"));
        let h = histogram("h", "ms", &[1.0, 2.0, 2.0, 9.0, 10.0], Some(5.0));
        assert!(h.matches("class=\"bar\"").count() >= 5);
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }
}
