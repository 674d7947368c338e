//! nccl-tests (all_reduce_perf and its siblings): a `#`-commented header
//! (`size count type redop root time algbw busbw #wrong time algbw busbw
//! #wrong`, out-of-place then in-place), one row per size with NCCL INFO lines
//! possibly interleaved, then `# Out of bounds values : N OK|FAILED` and `# Avg
//! bus bandwidth : X`. GB/s is 10^9 bytes per second. Wrong values, a FAILED
//! line or a `Test ... failure` line make the run failed: its figures are not
//! a result.

use super::{num, sized_table, Figures, ParseError, SizedRow};

pub(super) fn parse(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let test_failure = lines.iter().find(|l| is_test_failure(l)).map(|l| ParseError::failed(l.trim(), raw));
    let Some(h) = lines.iter().position(|l| header(l).is_some()) else {
        return Err(test_failure.unwrap_or_else(|| ParseError::not_found("nccl-tests table", raw)));
    };
    let cols = header(&lines[h]).expect("found above");
    let rows: Vec<SizedRow> =
        lines[h + 1..].iter().take_while(|l| !l.starts_with("# Out of bounds")).filter_map(|l| row(&cols, l)).collect();
    if rows.is_empty() {
        return Err(test_failure.unwrap_or_else(|| ParseError::not_found("row in the nccl-tests table", raw)));
    }
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| r.cols.iter().any(|(n, v)| n.starts_with("wrong") && *v > 0.0))
        .map(|r| super::size_label(r.bytes))
        .collect();
    if !wrong.is_empty() {
        return Err(ParseError::failed(format!("wrong values at {}", wrong.join(", ")), raw));
    }
    if let Some(l) = lines.iter().find(|l| l.starts_with("# Out of bounds") && l.contains("FAILED")) {
        return Err(ParseError::failed(l.trim_start_matches('#').trim(), raw));
    }
    if let Some(e) = test_failure {
        return Err(e);
    }
    let mut f = sized_table(&rows, &["busbw_gb_s", "busbw_inplace_gb_s"], "busbw_gb_s");
    f.retain(|k, _| !k.starts_with("wrong"));
    if let Some(avg) =
        lines.iter().find_map(|l| l.strip_prefix("# Avg bus bandwidth")).and_then(|r| num(r.trim_start().trim_start_matches(':')))
    {
        f.insert("avg_busbw_gb_s".into(), avg);
    }
    Ok(f)
}

/// `gpu-1-1: Test CUDA failure common.cu:1304 '...'`, ` .. pid 1: Test failure common.cu:1189`.
fn is_test_failure(l: &str) -> bool {
    l.contains("Test failure") || l.contains("Test CUDA failure") || l.contains("Test NCCL failure")
}

/// The column names of the header line, `#` removed, or None.
fn header(l: &str) -> Option<Vec<String>> {
    let cols: Vec<String> = l.strip_prefix('#')?.split_whitespace().map(str::to_string).collect();
    let has = |n: &str| cols.iter().any(|c| c == n);
    (cols.first().map(String::as_str) == Some("size") && has("busbw") && has("algbw")).then_some(cols)
}

/// One row: the out-of-place columns, then the in-place ones (their second occurrence).
fn row(cols: &[String], l: &str) -> Option<SizedRow> {
    let cells: Vec<&str> = l.split_whitespace().collect();
    if cells.len() != cols.len() || l.starts_with('#') {
        return None;
    }
    let bytes = num(cells[0])?;
    let mut out = vec![];
    let mut times = 0;
    for (c, v) in cols.iter().zip(&cells) {
        times += usize::from(c == "time");
        let name = match (c.as_str(), times > 1) {
            ("time", false) => "time_us",
            ("algbw", false) => "algbw_gb_s",
            ("busbw", false) => "busbw_gb_s",
            ("#wrong", false) => "wrong",
            ("time", true) => "time_inplace_us",
            ("algbw", true) => "algbw_inplace_gb_s",
            ("busbw", true) => "busbw_inplace_gb_s",
            ("#wrong", true) => "wrong_inplace",
            _ => continue,
        };
        // `#wrong` is N/A when validation is off.
        match num(v) {
            Some(x) => out.push((name, x)),
            None if c == "#wrong" => {}
            None => return None,
        }
    }
    Some(SizedRow { bytes, cols: out })
}
