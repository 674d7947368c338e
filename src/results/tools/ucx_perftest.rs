//! ucx_perftest: a boxed header, optional `[thread 0]` progress lines and UCX
//! log lines, then one `Final:` line (iterations; 50th percentile, average and
//! overall time in usec; bandwidth average and overall in MB/s, where UCX's MB
//! is 2^20 bytes; message rate average and overall). The time columns are
//! "overhead (usec)" for *_bw tests and "latency (usec)" for *_lat and get
//! tests, and are named so. A run without `Final:` did not finish: its progress
//! lines are not a result.

use super::{num, Figures, ParseError};

/// UCX's MB/s, in bytes per second.
const MIB: f64 = 1024.0 * 1024.0;

pub(super) fn parse(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let time = if lines.iter().any(|l| l.contains("overhead (usec)")) { "overhead" } else { "latency" };
    let Some(cells) = lines.iter().rev().find_map(|l| l.trim().strip_prefix("Final:")) else {
        if let Some(e) = lines.iter().rev().find(|l| l.contains(" UCX  ERROR") || l.contains("Failed to")) {
            return Err(ParseError::failed(e.trim(), raw));
        }
        return Err(ParseError::not_found("ucx_perftest `Final:` line (the run did not finish)", raw));
    };
    let v: Vec<f64> = cells.split_whitespace().map_while(num).collect();
    let [iterations, p50, _avg, overall, _bw_avg, bw_overall, _rate_avg, rate_overall] = v[..] else {
        return Err(ParseError::not_found("complete ucx_perftest `Final:` line", raw));
    };
    let mut f = Figures::new();
    f.insert("iterations".into(), iterations);
    f.insert(format!("{time}_p50_us"), p50);
    f.insert(format!("{time}_us"), overall);
    f.insert("bandwidth_gb_s".into(), bw_overall * MIB / 1e9);
    f.insert("msg_rate_per_s".into(), rate_overall);
    Ok(f)
}
