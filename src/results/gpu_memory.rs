//! A node's GPU memory after a pattern, from
//! `nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits`
//! (one line per GPU, `used, total` in MiB), as std/vllm's `gpu_memory` reads it on the
//! decode node (or the unified server's node).

use std::collections::BTreeMap;

/// A line nvidia-smi printed that is not `used, total`.
#[derive(Debug, PartialEq)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nvidia-smi printed `{}`, not `memory.used, memory.total` in MiB", self.0)
    }
}

/// `gpu_memory_used_mib` and `gpu_memory_total_mib` summed over the node's GPUs, and
/// `gpu_memory_used_share`; nothing when the output is empty (no nvidia-smi on the node).
pub fn parse(text: &str) -> Result<BTreeMap<String, f64>, Unreadable> {
    let (mut used, mut total) = (0.0, 0.0);
    let mut gpus = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut fields = line.split(',').map(|f| f.trim().parse::<f64>());
        match (fields.next(), fields.next(), fields.next()) {
            (Some(Ok(u)), Some(Ok(t)), None) if u >= 0.0 && t > 0.0 => {
                used += u;
                total += t;
                gpus += 1;
            }
            _ => return Err(Unreadable(line.to_string())),
        }
    }
    let mut out = BTreeMap::new();
    if gpus > 0 {
        out.insert("gpu_memory_used_mib".to_string(), used);
        out.insert("gpu_memory_total_mib".to_string(), total);
        out.insert("gpu_memory_used_share".to_string(), used / total);
    }
    Ok(out)
}

/// The unit of a GPU memory metric (also with a role's prefix: `prefill_gpu_memory_used_mib`).
pub fn unit(metric: &str) -> Option<&'static str> {
    Some(match metric {
        "gpu_memory_used_mib" | "gpu_memory_total_mib" => "MiB",
        "gpu_memory_used_share" => "fraction",
        "prefill_gpu_memory_used_mib" | "prefill_gpu_memory_total_mib" => "MiB",
        "decode_gpu_memory_used_mib" | "decode_gpu_memory_total_mib" => "MiB",
        _ => return None,
    })
}

/// One role's GPU memory over its servers' nodes: the used and total MiB of each node's
/// read (`parse`) added up, as `{role}_gpu_memory_used_mib` and `{role}_gpu_memory_total_mib`.
pub fn role_totals(role: &str, per_node: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for what in ["used", "total"] {
        let name = format!("gpu_memory_{what}_mib");
        let values: Vec<f64> = per_node.iter().filter_map(|m| m.get(&name).copied()).collect();
        if !values.is_empty() {
            out.insert(format!("{role}_{name}"), values.iter().sum());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_adds_up_its_nodes_and_skips_a_node_without_nvidia_smi() {
        let node =
            |used: f64| BTreeMap::from([("gpu_memory_used_mib".to_string(), used), ("gpu_memory_total_mib".to_string(), 100.0)]);
        let m = role_totals("decode", &[node(40.0), node(2.0), BTreeMap::new()]);
        assert_eq!(m["decode_gpu_memory_used_mib"], 42.0);
        assert_eq!(m["decode_gpu_memory_total_mib"], 200.0);
        assert_eq!(unit("decode_gpu_memory_used_mib"), Some("MiB"));
    }

    #[test]
    fn four_l40s_with_one_serving() {
        // nvidia-smi's own output on a g6e.12xlarge with vLLM at TP 1 (0.9 of 46068 MiB).
        let m = parse("41461, 46068\n1, 46068\n1, 46068\n1, 46068\n").unwrap();
        assert_eq!(m["gpu_memory_used_mib"], 41464.0);
        assert_eq!(m["gpu_memory_total_mib"], 184272.0);
        assert_eq!(m["gpu_memory_used_share"], 41464.0 / 184272.0);
    }

    #[test]
    fn an_error_line_is_not_a_figure_and_no_output_is_no_figure() {
        let e = parse("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n").unwrap_err();
        assert!(e.to_string().contains("NVIDIA-SMI has failed"));
        assert_eq!(parse("41461 MiB, 46068 MiB\n"), Err(Unreadable("41461 MiB, 46068 MiB".into())));
        assert!(parse("").unwrap().is_empty());
    }
}
