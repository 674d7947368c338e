//! `nixl results --format csv`: one row per result with every factor of the
//! design, where the figures came from, and every metric.

use super::factors::Factor;
use super::{Provenance, ResultRecord};

/// How a provenance column is read from a record's provenance.
type Column = fn(&Provenance) -> Option<String>;

/// Provenance columns, in order.
const PROVENANCE: &[(&str, Column)] = &[
    ("provider", |p| Some(p.provider.clone())),
    ("synthetic", |p| Some(p.synthetic.to_string())),
    ("stack", |p| p.stack.clone()),
    ("zone", |p| p.zone.clone()),
    ("instance_type", |p| p.instance_type.clone()),
    ("image", |p| p.image.clone()),
    ("model", |p| p.model.clone()),
    ("vllm_version", |p| p.vllm_version.clone()),
    ("nixl_version", |p| p.nixl_version.clone()),
    ("nixl_cli", |p| Some(p.nixl_cli.clone())),
];

/// A header, then one row per result: id, layer, kind, each factor's level, when it
/// finished, its provenance (empty for records of earlier releases), then every metric
/// any result has (empty where a result lacks it), at full precision.
pub fn csv(records: &[ResultRecord], factors: &[Factor]) -> String {
    let mut metrics: Vec<&String> = records.iter().flat_map(|r| r.metrics.keys()).collect();
    metrics.sort();
    metrics.dedup();
    let mut header: Vec<String> = ["id", "layer", "kind"].iter().map(|s| s.to_string()).collect();
    header.extend(factors.iter().map(|f| f.name.clone()));
    header.push("finished_at".into());
    header.extend(PROVENANCE.iter().map(|(n, _)| n.to_string()));
    header.extend(metrics.iter().map(|m| m.to_string()));
    let mut out = row(&header);
    for r in records {
        let mut cells = vec![r.id.clone(), r.layer.clone(), r.kind.as_str().to_string()];
        cells.extend(factors.iter().map(|f| f.of(r).unwrap_or("").to_string()));
        cells.push(r.finished_at.clone());
        cells.extend(PROVENANCE.iter().map(|(_, get)| r.provenance.as_ref().and_then(get).unwrap_or_default()));
        cells.extend(metrics.iter().map(|m| r.metrics.get(*m).map(|v| v.to_string()).unwrap_or_default()));
        out += &row(&cells);
    }
    out
}

fn row(cells: &[String]) -> String {
    cells.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",") + "\n"
}

/// RFC 4180: a cell with a comma, quote or line break is quoted, its quotes doubled.
fn quote(c: &str) -> String {
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::factors::Level;

    #[test]
    fn every_factor_and_the_provenance_are_columns() {
        let rec: ResultRecord = serde_json::from_value(serde_json::json!({
            "id": "p-efa-12k-c4", "hash": "h", "layer": "L2-EFA", "kind": "pattern",
            "finished_at": "2026-01-01T00:00:00Z", "seconds": 1.0,
            "settings": { "prompt": "12K", "concurrency": "4", "transport": "efa", "port": "18100" },
            "metrics": { "ttft_mean": 322.619435 }, "raw": "r",
            "provenance": { "provider": "local", "synthetic": true, "stack": "s", "zone": null, "instance_type": "a,b",
                "image": null, "model": "Qwen/Qwen2.5-7B-Instruct", "vllm_version": null, "nixl_version": null, "nixl_cli": "0.1.0" }
        }))
        .unwrap();
        let f = |n: &str| Factor { name: n.into(), restart: false, levels: vec![Level { text: "x".into(), value: None }] };
        let out = csv(&[rec], &[f("prompt"), f("concurrency"), f("transport")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "id,layer,kind,prompt,concurrency,transport,finished_at,provider,synthetic,stack,zone,instance_type,image,model,vllm_version,nixl_version,nixl_cli,ttft_mean");
        assert_eq!(lines[1], "p-efa-12k-c4,L2-EFA,pattern,12K,4,efa,2026-01-01T00:00:00Z,local,true,s,,\"a,b\",,Qwen/Qwen2.5-7B-Instruct,,,0.1.0,322.619435");
    }
}
