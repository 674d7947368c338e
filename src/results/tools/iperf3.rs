//! `iperf3 -J`: one JSON document per run (std/tools appends one per stream
//! count). The figures are the `end` sums: what was received (the rate that
//! counts) and what was sent, which can differ widely on a short run. iperf3
//! exits 0 on a refused connection and writes only an `error` key: that run,
//! and so the step, failed. Old versions (3.6) have no `sender` fields; they
//! are not needed.

use super::{Figures, ParseError};
use serde_json::Value;

pub(super) fn parse(raw: &[u8]) -> Result<Figures, ParseError> {
    let mut f = Figures::new();
    let mut stream = serde_json::Deserializer::from_slice(raw).into_iter::<Value>();
    let mut runs = 0;
    for doc in stream.by_ref() {
        let doc = doc.map_err(|e| unreadable(raw, runs, &e))?;
        if let Some(e) = doc.get("error").and_then(Value::as_str) {
            return Err(ParseError::failed(format!("iperf3 run {}: {e}", runs + 1), raw));
        }
        let run = figures(&doc).ok_or_else(|| ParseError::not_found("iperf3 `end.sum_received` figures", raw))?;
        let streams = run["streams"];
        for (k, v) in run.iter().filter(|(k, _)| *k != "streams") {
            f.insert(format!("{k}_p{streams}"), *v);
        }
        f.extend(run);
        runs += 1;
    }
    if runs == 0 {
        return Err(ParseError::not_found("iperf3 JSON document", raw));
    }
    f.insert("runs".into(), runs as f64);
    Ok(f)
}

/// Text that is not JSON where a document should start (iperf3 without -J, or a shell error).
fn unreadable(raw: &[u8], runs: usize, e: &serde_json::Error) -> ParseError {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("").trim().to_string();
    let reason = if line.is_empty() { format!("unreadable output after run {runs}: {e}") } else { line };
    ParseError::failed(reason, raw)
}

/// One run's figures, or None when it has no TCP end sums.
fn figures(doc: &Value) -> Option<Figures> {
    let end = doc.get("end")?;
    let bits = |sum: &str| end.get(sum)?.get("bits_per_second")?.as_f64();
    let received = bits("sum_received")?;
    let mut f = Figures::new();
    f.insert("received_gbit_s".into(), received / 1e9);
    f.insert("bandwidth_gb_s".into(), received / 8e9);
    if let Some(sent) = bits("sum_sent") {
        f.insert("sent_gbit_s".into(), sent / 1e9);
    }
    if let Some(r) = end.pointer("/sum_sent/retransmits").and_then(Value::as_f64) {
        f.insert("retransmits".into(), r);
    }
    let streams = doc.pointer("/start/test_start/num_streams").and_then(Value::as_f64).unwrap_or(1.0);
    f.insert("streams".into(), streams);
    Some(f)
}
