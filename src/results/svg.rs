//! Small inline SVG charts for the report: line charts, histograms with a count
//! axis and interval (forest) charts. No scripts, no external resources, so the
//! page renders anywhere offline. Every series has its own colour, and a marker
//! and dash pattern besides, so series stay apart in print and for colour-blind readers.

use std::fmt::Write;

/// Ten well-separated colours (Tableau 10); more series get colours spread evenly around the hue circle.
const TEN: &[&str] =
    &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

const W: f64 = 640.0;
const H: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 46.0;
const LEGEND_ROW: f64 = 18.0;

/// A marker drawn at each point of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}

const MARKERS: [Marker; 5] = [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond, Marker::Cross];
const DASHES: [Option<&str>; 3] = [None, Some("7 4"), Some("2 3")];

/// How one series is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    pub color: String,
    pub marker: Marker,
    pub dash: Option<&'static str>,
}

/// `n` styles, each with a colour of its own; markers cycle every 5 and dashes every 5 x 1.
pub fn styles(n: usize) -> Vec<Style> {
    (0..n)
        .map(|i| {
            let color = if n <= TEN.len() {
                TEN[i].to_string()
            } else {
                // Evenly spaced hues, alternately darker and lighter, so neighbours differ twice.
                let hue = (i as f64 * 360.0 / n as f64).round();
                let light = if i % 2 == 0 { 38 } else { 55 };
                format!("hsl({hue},70%,{light}%)")
            };
            Style { color, marker: MARKERS[i % MARKERS.len()], dash: DASHES[(i / MARKERS.len()) % DASHES.len()] }
        })
        .collect()
}

pub struct Series {
    pub name: String,
    /// (x, y) points; drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Index into the report's styles, the same for the same series in every chart.
    pub style: usize,
}

/// The x axis of a line chart: the positions of the levels and their labels.
pub struct XAxis {
    pub label: String,
    /// Space positions by powers of two (prompt lengths, concurrency).
    pub log2: bool,
    pub ticks: Vec<(f64, String)>,
}

/// A line chart: a title, a note under it (what is held constant), one line per series.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub note: &'a str,
    pub x: &'a XAxis,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// A horizontal reference line (1 for a ratio).
    pub reference: Option<f64>,
    /// A shaded span of x between two values (a saturation search's knee bracket).
    pub band: Option<(f64, f64)>,
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
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The opening of a plot: the svg element, a white background, the title and a note under it.
fn open_svg(title: &str, note: &str, w: f64, h: f64, title_size: u32) -> String {
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
    if !note.is_empty() {
        let _ = write!(s, r##"<text class="note" x="{LEFT}" y="34" font-size="11" fill="#555">{}</text>"##, esc(note));
    }
    s
}

/// A marker centred on (x, y).
fn marker(s: &mut String, m: Marker, x: f64, y: f64, color: &str, tip: &str) {
    let r = 4.0;
    let shape = match m {
        Marker::Circle => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{color}">"#),
        Marker::Square => {
            format!(r#"<rect x="{:.1}" y="{:.1}" width="{w}" height="{w}" fill="{color}">"#, x - r, y - r, w = 2.0 * r)
        }
        Marker::Triangle => format!(
            r#"<polygon points="{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}">"#,
            y - r - 1.0,
            x - r - 0.5,
            y + r - 0.5,
            x + r + 0.5,
            y + r - 0.5
        ),
        Marker::Diamond => {
            let d = r + 1.0;
            format!(
                r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" fill="{color}">"#,
                y - d,
                x + d,
                y + d,
                x - d
            )
        }
        Marker::Cross => format!(
            r#"<path d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}" stroke="{color}" stroke-width="2.5">"#,
            x - r,
            y - r,
            x + r,
            y + r,
            x - r,
            y + r,
            x + r,
            y - r
        ),
    };
    let close = match m {
        Marker::Circle => "</circle>",
        Marker::Square => "</rect>",
        Marker::Triangle | Marker::Diamond => "</polygon>",
        Marker::Cross => "</path>",
    };
    let _ = write!(s, r#"{shape}<title>{}</title>{close}"#, esc(tip));
}

fn dash_attr(style: &Style) -> String {
    style.dash.map(|d| format!(r#" stroke-dasharray="{d}""#)).unwrap_or_default()
}

/// A line chart with one line (colour, marker, dash) per series and a legend on the right.
pub fn line_chart(c: &LineChart, styles: &[Style]) -> String {
    let pts: Vec<(f64, f64)> =
        c.series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let h = H.max(TOP + 20.0 + LEGEND_ROW * c.series.len() as f64);
    let mut s = open_svg(c.title, c.note, W, h, 14);
    if pts.is_empty() {
        let _ = write!(s, r#"<text x="{LEFT}" y="{}" font-size="13">no results to plot yet</text></svg>"#, h / 2.0);
        return s;
    }
    let tx = |x: f64| if c.x.log2 { x.max(1e-9).log2() } else { x };
    let xs = pts.iter().map(|p| p.0).chain(c.x.ticks.iter().map(|t| t.0));
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(tx(x)), b.max(tx(x))));
    let pad = ((x1 - x0) * 0.04).max(0.0);
    (x0, x1) = (x0 - pad, x1 + pad);
    if x0 == x1 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let ys = pts.iter().map(|p| p.1).chain(c.reference);
    let (y0, y1) = ys.fold((0.0_f64, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    let y1 = if y1 <= y0 { y0 + 1.0 } else { y1 * 1.05 };
    let pw = W - LEFT - RIGHT;
    let ph = h - TOP - BOTTOM;
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    axes(&mut s, &c.x.label, c.y_label, pw, ph, h);
    y_grid(&mut s, ticks(y0, y1), pw, &py);
    if let Some(r) = c.reference {
        let _ = write!(
            s,
            r##"<line class="reference" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#555" stroke-dasharray="3 3"/>"##,
            LEFT + pw,
            y = py(r)
        );
    }
    if let Some((a, b)) = c.band {
        let (l, r) = (px(a).min(px(b)), px(a).max(px(b)));
        let _ = write!(
            s,
            r##"<rect class="band" x="{l:.1}" y="{TOP}" width="{:.1}" height="{ph:.1}" fill="#f0b400" fill-opacity="0.25"><title>knee: between {} and {}</title></rect>"##,
            (r - l).max(2.0),
            label(a),
            label(b)
        );
    }
    for (x, text) in &c.x.ticks {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            px(*x),
            TOP + ph + 16.0,
            esc(text)
        );
    }
    for (i, se) in c.series.iter().enumerate() {
        let st = &styles[se.style % styles.len().max(1)];
        let mut p: Vec<(f64, f64)> = se.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let d: Vec<String> = p.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(
            s,
            r#"<path class="series" d="M{}" fill="none" stroke="{}" stroke-width="2"{}/>"#,
            d.join(" L"),
            st.color,
            dash_attr(st)
        );
        for (x, y) in &p {
            let tip = format!("{}: {} → {y:.2}", se.name, label(*x));
            marker(&mut s, st.marker, px(*x), py(*y), &st.color, &tip);
        }
        let ly = TOP + 14.0 + i as f64 * LEGEND_ROW;
        let lx = LEFT + pw + 12.0;
        let _ = write!(
            s,
            r#"<line x1="{lx:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{}/>"#,
            lx + 24.0,
            ly - 4.0,
            ly - 4.0,
            st.color,
            dash_attr(st)
        );
        marker(&mut s, st.marker, lx + 12.0, ly - 4.0, &st.color, &se.name);
        let _ = write!(s, r#"<text class="legend" x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#, lx + 30.0, esc(&se.name));
    }
    s.push_str("</svg>");
    s
}

fn axes(s: &mut String, x_label: &str, y_label: &str, pw: f64, ph: f64, h: f64) {
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
        h - 8.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        esc(y_label)
    );
}

/// A histogram of a sample with a count axis, value ticks and an optional
/// vertical marker (a split threshold).
pub fn histogram(title: &str, note: &str, x_label: &str, sample: &[f64], split: Option<f64>) -> String {
    let v: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
    let (w, h) = (460.0, 280.0);
    let mut s = open_svg(title, note, w, h, 13);
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
    let top = (*counts.iter().max().unwrap_or(&1)).max(1) as f64;
    let (pw, ph) = (w - LEFT - 20.0, h - TOP - BOTTOM);
    axes(&mut s, x_label, "requests", pw, ph, h);
    let count_ticks: Vec<f64> = ticks(0.0, top).into_iter().filter(|t| t.fract() == 0.0).collect();
    for t in count_ticks {
        let y = TOP + ph - t / top * ph;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text class="count" x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{t:.0}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let bw = pw / bins as f64;
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / top * ph;
        let (a, b) = (lo + (hi - lo) * i as f64 / bins as f64, lo + (hi - lo) * (i + 1) as f64 / bins as f64);
        let _ = write!(
            s,
            r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#4a7ab5"><title>{} to {}: {c}</title></rect>"##,
            LEFT + i as f64 * bw + 1.0,
            TOP + ph - bh,
            (bw - 2.0).max(1.0),
            label(a),
            label(b)
        );
    }
    for t in ticks(lo, hi) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            LEFT + (t - lo) / (hi - lo) * pw,
            TOP + ph + 16.0,
            label(t)
        );
    }
    if let Some(m) = split.filter(|m| *m >= lo && *m <= hi) {
        let mx = LEFT + (m - lo) / (hi - lo) * pw;
        let _ = write!(
            s,
            r##"<line class="split" x1="{mx:.1}" x2="{mx:.1}" y1="{TOP}" y2="{:.1}" stroke="#d62728" stroke-width="2" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#d62728">split {}</text>"##,
            TOP + ph,
            mx + 3.0,
            TOP + 10.0,
            label(m)
        );
    }
    s.push_str("</svg>");
    s
}

/// One point of a scatter: a result, its series (a layer) and whether it is on the front.
pub struct ScatterPoint {
    pub x: f64,
    pub y: f64,
    pub label: String,
    pub style: usize,
    pub on_front: bool,
}

/// A scatter of results with a Pareto front: the front's points ringed and joined.
pub struct Scatter<'a> {
    pub title: &'a str,
    pub note: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub points: &'a [ScatterPoint],
    /// The series in the legend: name and style.
    pub legend: &'a [(String, usize)],
}

/// A scatter with its front drawn as a black line through the ringed front points, in x order.
pub fn scatter_front(c: &Scatter, styles: &[Style]) -> String {
    let pts: Vec<&ScatterPoint> = c.points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
    let h = H.max(TOP + 20.0 + LEGEND_ROW * (c.legend.len() + 1) as f64);
    let mut s = open_svg(c.title, c.note, W, h, 14);
    if pts.is_empty() {
        let _ = write!(s, r#"<text x="{LEFT}" y="{}" font-size="13">no results to plot yet</text></svg>"#, h / 2.0);
        return s;
    }
    let top = |f: fn(&ScatterPoint) -> f64| pts.iter().map(|p| f(p)).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE) * 1.08;
    let (x1, y1) = (top(|p| p.x), top(|p| p.y));
    let (pw, ph) = (W - LEFT - RIGHT, h - TOP - BOTTOM);
    let px = |x: f64| LEFT + x / x1 * pw;
    let py = |y: f64| TOP + ph - y / y1 * ph;
    axes(&mut s, c.x_label, c.y_label, pw, ph, h);
    y_grid(&mut s, ticks(0.0, y1), pw, &py);
    for t in ticks(0.0, x1) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            px(t),
            TOP + ph + 16.0,
            label(t)
        );
    }
    let mut front: Vec<&&ScatterPoint> = pts.iter().filter(|p| p.on_front).collect();
    front.sort_by(|a, b| a.x.total_cmp(&b.x));
    let d: Vec<String> = front.iter().map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y))).collect();
    if !d.is_empty() {
        let _ = write!(s, r##"<path class="front" d="M{}" fill="none" stroke="#111" stroke-width="2.5"/>"##, d.join(" L"));
    }
    for p in &pts {
        let st = &styles[p.style % styles.len().max(1)];
        if p.on_front {
            let _ = write!(
                s,
                r##"<circle class="front-point" cx="{:.1}" cy="{:.1}" r="8" fill="none" stroke="#111" stroke-width="1.5"/>"##,
                px(p.x),
                py(p.y)
            );
        }
        let tip = format!("{}: {} per GPU, {} latency", p.label, label(p.x), label(p.y));
        marker(&mut s, st.marker, px(p.x), py(p.y), &st.color, &tip);
    }
    let lx = LEFT + pw + 12.0;
    for (i, (name, style)) in c.legend.iter().enumerate() {
        let st = &styles[style % styles.len().max(1)];
        let ly = TOP + 14.0 + i as f64 * LEGEND_ROW;
        marker(&mut s, st.marker, lx + 12.0, ly - 4.0, &st.color, name);
        let _ = write!(s, r#"<text class="legend" x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#, lx + 30.0, esc(name));
    }
    let ly = TOP + 14.0 + c.legend.len() as f64 * LEGEND_ROW;
    let _ = write!(
        s,
        r##"<line x1="{lx:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#111" stroke-width="2.5"/><text class="legend" x="{:.1}" y="{ly:.1}" font-size="11">Pareto front</text></svg>"##,
        lx + 24.0,
        lx + 30.0,
        y = ly - 4.0
    );
    s
}

/// One row of an interval chart.
pub struct IntervalRow {
    pub label: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// What the interval rests on: "n = 3, Student t".
    pub note: String,
}

/// Intervals as horizontal whiskers around their estimate, one row each, with the
/// value meaning "no effect", when there is one, as a dashed line.
pub fn interval_chart(title: &str, x_label: &str, rows: &[IntervalRow], reference: Option<f64>) -> String {
    let (label_w, note_w, row_h) = (130.0, 210.0, 36.0);
    let h = TOP + 20.0 + row_h * rows.len() as f64 + BOTTOM;
    let note = if reference.is_some() { "95% intervals; dashed: no effect" } else { "95% intervals" };
    let mut s = open_svg(title, note, W, h, 13);
    let vals = rows.iter().flat_map(|r| [r.low, r.high, r.estimate]).chain(reference).filter(|v| v.is_finite());
    let (mut lo, mut hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(1e-9);
    (lo, hi) = (lo - pad, hi + pad);
    let (x0, pw) = (label_w, W - label_w - note_w);
    let px = |v: f64| x0 + (v - lo) / (hi - lo) * pw;
    let bottom = h - BOTTOM;
    let _ = write!(s, r##"<line x1="{x0}" x2="{:.1}" y1="{bottom:.1}" y2="{bottom:.1}" stroke="#333"/>"##, x0 + pw);
    for t in ticks(lo, hi) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            px(t),
            bottom + 16.0,
            label(t)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        x0 + pw / 2.0,
        h - 8.0,
        esc(x_label)
    );
    if let Some(reference) = reference {
        let _ = write!(
            s,
            r##"<line class="reference" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{bottom:.1}" stroke="#555" stroke-dasharray="3 3"/>"##,
            x = px(reference)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + 20.0 + row_h * i as f64;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><line class="interval" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#1f77b4" stroke-width="2"/><line x1="{a:.1}" x2="{a:.1}" y1="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="2"/><line x1="{b:.1}" x2="{b:.1}" y1="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="2"/><circle cx="{:.1}" cy="{y:.1}" r="4" fill="#1f77b4"><title>{}: {} [{} to {}]</title></circle><text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{} [{}, {}]</text><text class="interval-note" x="{nx:.1}" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
            x0 - 8.0,
            y + 4.0,
            esc(&r.label),
            px(r.low),
            px(r.high),
            y - 6.0,
            y + 6.0,
            y - 6.0,
            y + 6.0,
            px(r.estimate),
            esc(&r.label),
            label(r.estimate),
            label(r.low),
            label(r.high),
            x0 + pw + 10.0,
            y + 4.0,
            label(r.estimate),
            label(r.low),
            label(r.high),
            y + 16.0,
            esc(&r.note),
            nx = x0 + pw + 10.0,
            a = px(r.low),
            b = px(r.high),
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal grid lines with their value labels, one per tick.
fn y_grid(s: &mut String, ticks: impl IntoIterator<Item = f64>, pw: f64, py: &dyn Fn(f64) -> f64) {
    for t in ticks {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_paths_or_say_they_are_empty() {
        let x = XAxis { label: "x".into(), log2: true, ticks: vec![(1024.0, "1K".into()), (4096.0, "4K".into())] };
        let series = [Series { name: "a<b".into(), points: vec![(1024.0, 1.0), (4096.0, 2.0)], style: 0 }];
        let c = LineChart { title: "t", note: "", x: &x, y_label: "y", series: &series, reference: None, band: None };
        let s = line_chart(&c, &styles(1));
        assert!(s.contains("<path class=\"series\""));
        assert!(s.contains("a&lt;b"));
        let c = LineChart { series: &[], ..c };
        assert!(line_chart(&c, &styles(1)).contains("no results"));
        let h = histogram("h", "", "ms", &[1.0, 2.0, 2.0, 9.0, 10.0], Some(5.0));
        assert!(h.matches("class=\"bar\"").count() >= 5);
        assert!(h.contains("class=\"count\"") && h.contains(">requests<"), "a count axis");
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    /// Nine series (the issue's case) and forty all get colours of their own, and
    /// neighbours differ in marker too.
    #[test]
    fn every_series_has_its_own_colour() {
        for n in [1, 9, 10, 11, 40] {
            let st = styles(n);
            let mut colours: Vec<&str> = st.iter().map(|s| s.color.as_str()).collect();
            colours.sort();
            colours.dedup();
            assert_eq!(colours.len(), n, "{n} series");
            assert!(st.windows(2).all(|w| w[0].marker != w[1].marker));
        }
    }

    #[test]
    fn a_scatter_rings_and_joins_only_the_front() {
        let point = |x: f64, y: f64, on_front: bool| ScatterPoint { x, y, label: "p".into(), style: 0, on_front };
        let pts = [point(10.0, 100.0, true), point(20.0, 300.0, true), point(5.0, 400.0, false)];
        let legend = [("L1".to_string(), 0)];
        let c = Scatter { title: "t", note: "", x_label: "x", y_label: "y", points: &pts, legend: &legend };
        let s = scatter_front(&c, &styles(1));
        assert_eq!(s.matches("class=\"front-point\"").count(), 2);
        assert_eq!(s.matches("class=\"front\"").count(), 1);
        assert!(s.contains(">Pareto front<"));
    }

    #[test]
    fn an_interval_chart_draws_each_row_with_its_note() {
        let rows =
            [IntervalRow { label: "ttft diff".into(), estimate: 25.0, low: 4.6, high: 54.8, note: "n = 3, Student t".into() }];
        let s = interval_chart("i", "ms", &rows, Some(0.0));
        assert_eq!(s.matches("class=\"interval\"").count(), 1);
        assert!(s.contains("n = 3, Student t") && s.contains("class=\"reference\""));
    }
}
