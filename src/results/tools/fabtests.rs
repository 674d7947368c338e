//! libfabric fabtests' perf table, as fi_rdm_bw, fi_rma_bw, fi_rdm_pingpong,
//! fi_rma_pingpong (`bytes iters total time MB/sec usec/xfer Mxfers/sec`) and
//! util fi_pingpong (`bytes #sent #ack total time ...`) print it. Sizes and
//! totals carry k/m/g suffixes (1k = 1024), counts are 1000-based, MB/sec is
//! 10^6 bytes per second. efa_test.sh prints a server and a client table: the
//! last table is read (the client's).

use super::{num, size_bytes, sized_table, Figures, ParseError, SizedRow};

pub(super) fn parse(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let Some(rows) = last_table(lines) else {
        let failure = lines.iter().rev().find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("ret=") || l.contains("no data available")
        });
        return Err(match failure {
            Some(l) => ParseError::failed(l.trim(), raw),
            None => ParseError::not_found("fabtests perf table", raw),
        });
    };
    Ok(sized_table(&rows, &["latency_us", "bandwidth_gb_s"], "bandwidth_gb_s"))
}

/// The rows under the last header that has any.
fn last_table(lines: &[String]) -> Option<Vec<SizedRow>> {
    let mut found = None;
    let mut i = 0;
    while i < lines.len() {
        let header: Vec<&str> = lines[i].split_whitespace().collect();
        i += 1;
        if header.first() != Some(&"bytes") || !header.contains(&"MB/sec") || !header.contains(&"usec/xfer") {
            continue;
        }
        let mut rows = vec![];
        while let Some(r) = lines.get(i).and_then(|l| row(&header, l)) {
            rows.push(r);
            i += 1;
        }
        if !rows.is_empty() {
            found = Some(rows);
        }
    }
    found
}

/// One data row under `header`, or None when the line is not one.
fn row(header: &[&str], line: &str) -> Option<SizedRow> {
    let cells: Vec<&str> = line.split_whitespace().collect();
    if cells.len() != header.len() {
        return None;
    }
    let bytes = size_bytes(cells[0])?;
    let mut cols = vec![];
    for (h, c) in header.iter().zip(&cells).skip(1) {
        match *h {
            "iters" => cols.push(("iterations", count(c)?)),
            "MB/sec" => cols.push(("bandwidth_gb_s", num(c)? / 1000.0)),
            "usec/xfer" => cols.push(("latency_us", num(c)?)),
            "Mxfers/sec" => cols.push(("mxfers_per_s", num(c)?)),
            "total" => cols.push(("total_bytes", size_bytes(c)?)),
            "time" => cols.push(("time_s", num(c.strip_suffix('s')?)?)),
            // fi_pingpong's `#sent` and `#ack` (printed `=10`) say nothing the others do not.
            _ => {}
        }
    }
    Some(SizedRow { bytes, cols })
}

/// An iteration count: `200`, `20k` (fabtests counts in thousands, not KiB).
fn count(s: &str) -> Option<f64> {
    let (n, mult) = match s.as_bytes().last()? {
        b'k' => (&s[..s.len() - 1], 1e3),
        b'm' => (&s[..s.len() - 1], 1e6),
        b'b' => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    Some(num(n)? * mult)
}
