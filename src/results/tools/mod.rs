//! Reading what the low-level tools print: one module per tool family, one
//! entry point, [`parse`]. Each parser reads the tool's genuine output format
//! (the samples and their expected figures are in
//! `../shared/fixtures/tool-outputs/SOURCES.md`) and returns named figures
//! whose names carry their unit, or a typed [`ParseError`] with the last lines
//! of the output.
//!
//! Units, everywhere: `_us` microseconds, `_ms` milliseconds, `_gb_s` 10^9
//! bytes per second (what nixlbench and nccl-tests print as GB/s; fabtests'
//! and ucx_perftest's MB/s are converted), `_gbit_s` 10^9 bits per second,
//! `_bytes`, `_mib`, `_pct`, `_w`, `_c`, `_mhz`. Tables with one row per
//! message size give every row's figures suffixed by the size as pattern ids
//! write it (`latency_us_64b`, `bandwidth_gb_s_1536kb`), the last row's
//! unsuffixed (the requested size when one was asked for, else the largest)
//! and the peak bandwidth with its size. docs/results.md lists each parser's figures.

mod fabtests;
mod fi_info;
mod iperf3;
mod kvbench;
mod nccl;
mod nixlbench;
mod nvidia_smi;
mod ucx_perftest;

pub use crate::check::symbols::ToolParser;
use std::collections::BTreeMap;
use std::fmt;

/// Metric name (unit in the name) to value.
pub type Figures = BTreeMap<String, f64>;

/// How many lines of the raw output an error keeps.
pub const TAIL_LINES: usize = 12;

/// Why a tool's output gave no figures.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseError {
    /// The tool wrote nothing (or only white space).
    NoOutput,
    /// The output lacks what the tool prints on success (`what`: "a perf table", "a Final: line").
    NotFound { what: &'static str, tail: String },
    /// The tool said it failed: iperf3's `error`, nccl-tests' FAILED, fi_getinfo's error code.
    ToolFailed { reason: String, tail: String },
}

impl ParseError {
    fn not_found(what: &'static str, raw: &[u8]) -> ParseError {
        ParseError::NotFound { what, tail: tail(raw, TAIL_LINES) }
    }

    fn failed(reason: impl Into<String>, raw: &[u8]) -> ParseError {
        ParseError::ToolFailed { reason: reason.into(), tail: tail(raw, TAIL_LINES) }
    }

    /// The last lines of the output, when there was any.
    pub fn tail(&self) -> &str {
        match self {
            ParseError::NoOutput => "",
            ParseError::NotFound { tail, .. } | ParseError::ToolFailed { tail, .. } => tail,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NoOutput => write!(f, "the tool wrote no output"),
            ParseError::NotFound { what, .. } => write!(f, "the output has no {what}"),
            ParseError::ToolFailed { reason, .. } => write!(f, "the tool reported a failure: {reason}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The figures in `raw`, read as `parser`'s tool prints them.
pub fn parse(parser: ToolParser, raw: &[u8]) -> Result<Figures, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::NoOutput);
    }
    let lines = clean_lines(raw);
    let figures = match parser {
        ToolParser::Fabtests => fabtests::parse(&lines, raw),
        ToolParser::Nixlbench => nixlbench::parse(&lines, raw),
        ToolParser::Kvbench => kvbench::parse(&lines, raw),
        ToolParser::UcxPerftest => ucx_perftest::parse(&lines, raw),
        ToolParser::Iperf3 => iperf3::parse(raw),
        ToolParser::NcclTests => nccl::parse(&lines, raw),
        ToolParser::NvidiaSmi => nvidia_smi::parse_table(&lines, raw),
        ToolParser::NvidiaSmiCsv => nvidia_smi::parse_csv(&lines, raw),
        ToolParser::NvidiaSmiDmon => nvidia_smi::parse_dmon(&lines, raw),
        ToolParser::NvidiaSmiTopo => nvidia_smi::parse_topo(&lines, raw),
        ToolParser::FiInfo => fi_info::parse(&lines, raw),
    }?;
    if figures.is_empty() {
        return Err(ParseError::not_found("figures", raw));
    }
    Ok(figures)
}

/// The figures of a tool without a parser: the numeric fields of a JSON object
/// (or `name: value` lines), as the local demo's tools write them.
pub fn parse_generic(raw: &[u8]) -> Result<Figures, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::NoOutput);
    }
    let figures = super::parse_tool_output(raw);
    if figures.is_empty() {
        return Err(ParseError::not_found("JSON object of figures", raw));
    }
    Ok(figures)
}

/// The last `n` non-blank lines of a raw output, escapes removed.
pub fn tail(raw: &[u8], n: usize) -> String {
    let lines: Vec<String> = clean_lines(raw).into_iter().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The output's lines as the tool printed them: invalid UTF-8 replaced, ANSI
/// escapes and carriage returns removed, trailing spaces trimmed, and the
/// prefixes launchers add taken off (a CI log's `[2026-07-28T10:17:33.487Z] `,
/// mpirun's `[1,0]<stdout>:`).
pub fn clean_lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| {
            let l = strip_ansi(l);
            let l = strip_launcher_prefix(&l);
            l.trim_end().to_string()
        })
        .collect()
}

/// Removes CSI sequences (`ESC [ ... final byte`) and other two-byte escapes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, up to the final byte (@ to ~).
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A CI timestamp (`[2026-07-28T10:17:33.487Z] `) or mpirun's rank tag
/// (`[1,0]<stdout>:`) at the start of a line. UCX's own `[1751618583.034650]`
/// log prefix is kept: those lines are log lines, not data.
fn strip_launcher_prefix(line: &str) -> &str {
    let Some(rest) = line.strip_prefix('[') else { return line };
    let Some(end) = rest.find(']') else { return line };
    let inside = &rest[..end];
    let after = &rest[end + 1..];
    let is_timestamp = inside.len() >= 19
        && inside.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && inside.as_bytes()[4] == b'-'
        && inside.contains('T');
    if is_timestamp {
        return after.strip_prefix(' ').unwrap_or(after);
    }
    let is_rank = !inside.is_empty() && inside.split(',').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if is_rank {
        for tag in ["<stdout>:", "<stderr>:"] {
            if let Some(a) = after.strip_prefix(tag) {
                return a;
            }
        }
    }
    line
}

/// A size as fabtests prints it: `64`, `1.5k`, `1000m`, `1.4g` (1k = 1024).
pub fn size_bytes(s: &str) -> Option<f64> {
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1024.0),
        (i, 'm' | 'M') => (&s[..i], 1024.0 * 1024.0),
        (i, 'g' | 'G') => (&s[..i], 1024.0 * 1024.0 * 1024.0),
        (i, 't' | 'T') => (&s[..i], 1024f64.powi(4)),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some((v * mult).round())
}

/// A size as pattern ids write it: `64b`, `1kb`, `1536kb`, `8mb`.
pub fn size_label(bytes: f64) -> String {
    crate::check::value::binary_bytes(bytes).to_lowercase()
}

/// One row of a table with one row per message size.
struct SizedRow {
    bytes: f64,
    /// Figure name (unit included) and value, in column order.
    cols: Vec<(&'static str, f64)>,
}

/// The figures of a table of [`SizedRow`]s: the `per_size` columns of every
/// row suffixed by the row's size, every column of the last row unsuffixed,
/// `size_bytes` and `rows`, and the largest `peak` column as `peak_<peak>` with
/// its `peak_size_bytes`. A later row of the same size replaces an earlier one.
fn sized_table(rows: &[SizedRow], per_size: &[&str], peak: &str) -> Figures {
    let mut f = Figures::new();
    for r in rows {
        let label = size_label(r.bytes);
        for (name, v) in &r.cols {
            if per_size.contains(name) {
                f.insert(format!("{name}_{label}"), *v);
            }
        }
    }
    if let Some(last) = rows.last() {
        for (name, v) in &last.cols {
            f.insert(name.to_string(), *v);
        }
        f.insert("size_bytes".into(), last.bytes);
    }
    let value = |r: &SizedRow| r.cols.iter().find(|(n, _)| *n == peak).map(|(_, v)| *v);
    let best =
        rows.iter().filter_map(|r| value(r).map(|v| (v, r.bytes))).fold(None, |best: Option<(f64, f64)>, (v, b)| match best {
            Some((bv, _)) if bv >= v => best,
            _ => Some((v, b)),
        });
    if let Some((v, b)) = best {
        f.insert(format!("peak_{peak}"), v);
        f.insert("peak_size_bytes".into(), b);
    }
    f.insert("rows".into(), rows.len() as f64);
    f
}

/// A number as printed, or None ("N/A", "-", text).
fn num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_prefixes_and_escapes_come_off() {
        let raw = b"[2026-07-28T10:17:33.487Z] 16384   4  \r\n[1,0]<stdout>:#  size\n\x1b[4mGPU0\x1b[0m\tX\n[1751618583.034650] [u:1:0] UCX WARN x\n";
        let l = clean_lines(raw);
        assert_eq!(l, ["16384   4", "#  size", "GPU0\tX", "[1751618583.034650] [u:1:0] UCX WARN x"]);
    }

    #[test]
    fn sizes_read_with_binary_suffixes() {
        assert_eq!(size_bytes("64"), Some(64.0));
        assert_eq!(size_bytes("1.5k"), Some(1536.0));
        assert_eq!(size_bytes("1000m"), Some(1000.0 * 1048576.0));
        assert_eq!(size_bytes("1.4g"), Some((1.4f64 * 1073741824.0).round()));
        assert_eq!(size_bytes("=10"), None);
        assert_eq!(size_label(1572864.0), "1536kb");
        assert_eq!(size_label(64.0), "64b");
    }

    #[test]
    fn empty_output_is_no_output() {
        assert_eq!(parse(ToolParser::Fabtests, b" \n\n"), Err(ParseError::NoOutput));
        assert_eq!(parse(ToolParser::Iperf3, b""), Err(ParseError::NoOutput));
    }
}
