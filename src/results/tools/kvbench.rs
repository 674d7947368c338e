//! KVBench (nixl/benchmark/kvbench): `main.py plan` prints a banner of `=`
//! lines around the request's shape (ISL, page size, requests, TP, PP) and the
//! nixlbench command it plans (`--max_batch_size 5958 \` ...); `main.py
//! profile` runs that nixlbench, whose statistics table follows. Both are read:
//! the plan as `plan_*` figures, the table as nixlbench's figures.

use super::nixlbench;
use super::{num, Figures, ParseError};

pub(super) fn parse(lines: &[String], raw: &[u8]) -> Result<Figures, ParseError> {
    let mut f = plan(lines);
    let tables = nixlbench::tables(lines);
    if let Some(t) = tables.last() {
        f.extend(super::sized_table(&t.rows, &["bandwidth_gb_s", "latency_us"], "bandwidth_gb_s"));
    }
    if f.is_empty() {
        return Err(nixlbench::no_table(lines, raw));
    }
    Ok(f)
}

/// The request shape between the banners and the planned nixlbench flags.
fn plan(lines: &[String]) -> Figures {
    let mut f = Figures::new();
    let mut in_banner = false;
    let mut in_command = false;
    for line in lines {
        let l = line.trim();
        if !l.is_empty() && l.bytes().all(|b| b == b'=') {
            in_banner = !in_banner;
            continue;
        }
        if in_banner {
            if let Some((k, v)) = l.split_once(':') {
                let name = match k.trim() {
                    "ISL" => "isl_tokens",
                    "Page Size" => "page_size_tokens",
                    "Requests" => "requests",
                    "TP" => "tp",
                    "PP" => "pp",
                    _ => continue,
                };
                if let Some(x) = v.split_whitespace().next().and_then(num) {
                    f.insert(name.into(), x);
                }
            }
            continue;
        }
        if l.starts_with("nixlbench") {
            in_command = l.ends_with('\\');
            continue;
        }
        if in_command {
            in_command = l.ends_with('\\');
            let mut words = l.trim_end_matches('\\').split_whitespace();
            let (Some(flag), Some(value)) = (words.next(), words.next()) else { continue };
            let name = match flag {
                "--start_batch_size" => "plan_start_batch_size",
                "--max_batch_size" => "plan_max_batch_size",
                "--start_block_size" => "plan_start_block_size_bytes",
                "--max_block_size" => "plan_max_block_size_bytes",
                _ => continue,
            };
            if let Some(x) = num(value) {
                f.insert(name.into(), x);
            }
        }
    }
    f
}
