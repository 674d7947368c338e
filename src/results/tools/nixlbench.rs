//! NIXLBench's statistics table: a header whose columns are separated by runs
//! of spaces (`Block Size (B)  Batch Size  B/W (GB/Sec)  Avg Lat. (us) ...`),
//! an optional dash rule, one row per block size. Read by column name, so the
//! legacy layout (April 2025: latency before bandwidth, MiB/GiB/GB columns) and
//! the multi-rank one (`Aggregate B/W`, `Network Util (%)`) read the same way.
//! Each table follows a configuration block; its `Op type` names the table when
//! one output holds several (WRITE then READ).

use super::{num, sized_table, Figures, ParseError, SizedRow};

/// One statistics table and the operation its configuration named.
pub(super) struct Table {
    pub op: Option<String>,
    pub rows: Vec<SizedRow>,
}

pub(super) fn parse(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let tables = tables(lines);
    let Some(last) = tables.last() else {
        return Err(no_table(lines, raw));
    };
    let mut f = sized_table(&last.rows, PER_SIZE, "bandwidth_gb_s");
    if tables.len() > 1 {
        for (i, t) in tables.iter().enumerate() {
            let prefix = t.op.as_deref().map(str::to_ascii_lowercase).unwrap_or_else(|| format!("run{}", i + 1));
            for (k, v) in sized_table(&t.rows, PER_SIZE, "bandwidth_gb_s") {
                f.insert(format!("{prefix}_{k}"), v);
            }
        }
        f.insert("tables".into(), tables.len() as f64);
    }
    Ok(f)
}

const PER_SIZE: &[&str] = &["bandwidth_gb_s", "latency_us"];

/// Why there is no table: the last line naming an error, else "no table".
pub(super) fn no_table(lines: &[String], raw: &[u8]) -> ParseError {
    let failure = lines.iter().rev().find(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("error") || l.contains("failed") || l.contains("terminate called")
    });
    match failure {
        Some(l) => ParseError::failed(l.trim(), raw),
        None => ParseError::not_found("nixlbench statistics table", raw),
    }
}

/// Every statistics table with at least one row, in order.
pub(super) fn tables(lines: &[String]) -> Vec<Table> {
    let mut out = vec![];
    let mut op = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if let Some(v) = config_value(line, "Op type") {
            op = Some(v.to_string());
            continue;
        }
        if !(line.starts_with("Block Size (B)") && line.contains("Batch Size")) {
            continue;
        }
        let header: Vec<&str> = line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        let mut rows = vec![];
        while let Some(l) = lines.get(i).map(|l| l.trim()) {
            if l.is_empty() || l.bytes().all(|b| b == b'-') {
                i += 1;
                continue;
            }
            let Some(r) = row(&header, l) else { break };
            rows.push(r);
            i += 1;
        }
        if !rows.is_empty() {
            out.push(Table { op: op.take(), rows });
        }
    }
    out
}

/// `Op type (--op_type=[READ,WRITE])   : WRITE` gives `WRITE` for "Op type".
fn config_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?;
    let (_, v) = rest.split_once(':')?;
    Some(v.trim()).filter(|v| !v.is_empty())
}

fn row(header: &[&str], line: &str) -> Option<SizedRow> {
    let cells: Vec<&str> = line.split_whitespace().collect();
    if cells.len() != header.len() {
        return None;
    }
    let mut bytes = None;
    let mut cols = vec![];
    for (h, c) in header.iter().zip(&cells) {
        let v = num(c)?;
        let name = match *h {
            "Block Size (B)" => {
                bytes = Some(v);
                continue;
            }
            "Batch Size" => "batch_size",
            "B/W (GB/Sec)" => "bandwidth_gb_s",
            "Aggregate B/W (GB/Sec)" => "aggregate_bandwidth_gb_s",
            "Network Util (%)" => "network_util_pct",
            "Avg Lat. (us)" => "latency_us",
            "Avg Prep (us)" => "prep_us",
            "P99 Prep (us)" => "prep_p99_us",
            "Avg Post (us)" => "post_us",
            "P99 Post (us)" => "post_p99_us",
            "Avg Tx (us)" => "tx_us",
            "P99 Tx (us)" => "tx_p99_us",
            // The legacy layout's MiB/s and GiB/s repeat its GB/s column in other units.
            _ => continue,
        };
        cols.push((name, v));
    }
    Some(SizedRow { bytes: bytes?, cols })
}
