//! What a serving team decides from, per E2E result, computed from the stored records
//! and never re-measured: throughput per GPU, tokens/s per user and dollars per
//! million output tokens.
//!
//! - GPUs a pattern served with (`design::topology`): unified, `replicas` x `tp`;
//!   disaggregated, `prefill_nodes` x the prefill TP plus `decode_nodes` x the decode TP
//!   (`prefill_tp` and `decode_tp` when the settings name them, else `tp` each; a count
//!   not named is 1).
//! - Cost: (the record's measured `seconds` + its share of its launch's start-up) x nodes
//!   in the stack x price per node-hour / 3600. The start-up is the one the result
//!   recorded (measured by apply), shared equally among the results measured after it;
//!   a record without one (an earlier release) gets its scheduled launch's estimate,
//!   shared among that launch's stored results.
//! - Output tokens: `throughput_tps` x `duration_s`.

use super::{LaunchStart, ResultKind, ResultRecord};
use crate::check::model::Mode;
use crate::check::Model;
use crate::design::Campaign;
use std::collections::BTreeMap;

/// What the cost of a result is computed from: the catalogue's prices, the stack's nodes
/// and the schedule's start-up estimates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pricing {
    /// USD per node-hour by instance type (std/aws's catalogue).
    pub prices: BTreeMap<String, f64>,
    /// The stack's first declared type: priced when a result's launched type is not in the catalogue.
    pub declared: Option<String>,
    pub nodes: usize,
    /// Per scheduled E2E pattern: its launch number and that launch's estimated start-up seconds.
    pub planned: BTreeMap<String, (u32, f64)>,
}

impl Pricing {
    pub fn of(model: &Model, campaign: &Campaign) -> Pricing {
        let design = &campaign.design;
        let mut planned = BTreeMap::new();
        for launch in &campaign.schedule.segments {
            let startup = design.startup.get(launch.group as usize).copied().unwrap_or(0.0);
            for &i in &launch.patterns {
                planned.insert(design.patterns[i].id.to_string(), (launch.number, startup));
            }
        }
        Pricing {
            prices: model.instances.iter().map(|(k, i)| (k.clone(), i.price_per_hour)).collect(),
            declared: campaign.stack.as_ref().and_then(|s| s.instance_types.first().cloned()),
            nodes: campaign.stack.as_ref().map(|s| s.nodes.len()).unwrap_or(0),
            planned,
        }
    }

    /// The instance type a result is priced as, and its price: as launched when the
    /// catalogue knows it (a fallback type costs what it costs), else as declared.
    pub fn price(&self, r: &ResultRecord) -> Option<(&str, f64)> {
        let launched = r.provenance.as_ref().and_then(|p| p.instance_type.as_deref());
        let known = |t: &str| self.prices.get_key_value(t).map(|(k, v)| (k.as_str(), *v));
        launched.and_then(known).or_else(|| self.declared.as_deref().and_then(known))
    }
}

/// The figures of one E2E result.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub id: String,
    pub layer: String,
    /// None when the settings name no `tp`.
    pub gpus: Option<f64>,
    pub throughput_tps: f64,
    pub tps_per_gpu: Option<f64>,
    pub tps_per_user: Option<f64>,
    pub cost: Option<Cost>,
}

/// How a result's dollars per million output tokens came about.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    pub seconds: f64,
    pub startup_share_s: f64,
    /// The start-up was measured by apply (else the schedule's estimate).
    pub startup_measured: bool,
    pub nodes: usize,
    pub instance_type: String,
    pub price_per_node_hour: f64,
    pub usd: f64,
    pub output_tokens: f64,
    pub usd_per_mtok: f64,
}

/// Dollars per million output tokens: (seconds + start-up share) x nodes x price / 3600,
/// over the tokens. None without tokens.
pub fn usd_per_mtok(seconds: f64, startup_share_s: f64, nodes: usize, price_per_node_hour: f64, tokens: f64) -> Option<f64> {
    let usd = (seconds + startup_share_s) * nodes as f64 * price_per_node_hour / 3600.0;
    (tokens > 0.0 && usd.is_finite()).then(|| usd / tokens * 1e6)
}

fn setting_num(r: &ResultRecord, k: &str) -> Option<f64> {
    r.settings.get(k).and_then(|v| v.as_str()).and_then(|s| s.parse::<f64>().ok())
}

/// GPUs a result's pattern served with (see the module's doc).
pub fn gpus(r: &ResultRecord) -> Option<f64> {
    let tp = setting_num(r, "tp");
    let mode = r.settings.get("mode").and_then(|v| v.as_str()).and_then(Mode::from_symbol);
    let count = |k: &str| setting_num(r, k).unwrap_or(1.0);
    match mode {
        Some(Mode::Disaggregated) => Some(
            count("prefill_nodes") * setting_num(r, "prefill_tp").or(tp)?
                + count("decode_nodes") * setting_num(r, "decode_tp").or(tp)?,
        ),
        _ => Some(count("replicas") * tp?),
    }
}

/// An E2E result: a pattern's record with a throughput.
pub fn is_e2e(r: &ResultRecord) -> bool {
    r.kind == ResultKind::Pattern && r.metrics.get("throughput_tps").is_some_and(|v| v.is_finite())
}

/// Which start-up a result shares, and with how many others.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Share {
    Measured { number: u32, up_at: String },
    Planned(u32),
}

fn share_of(r: &ResultRecord, pricing: &Pricing) -> Option<(Share, f64, bool)> {
    match &r.launch {
        Some(LaunchStart { number, startup_seconds, up_at }) => {
            Some((Share::Measured { number: *number, up_at: up_at.clone() }, *startup_seconds, true))
        }
        None => pricing.planned.get(&r.id).map(|(n, s)| (Share::Planned(*n), *s, false)),
    }
}

/// The figures of every E2E result among `results`, in their order.
pub fn decisions(results: &[ResultRecord], pricing: &Pricing) -> Vec<Decision> {
    let e2e: Vec<&ResultRecord> = results.iter().filter(|r| is_e2e(r)).collect();
    let mut sharing: BTreeMap<Share, usize> = BTreeMap::new();
    for r in &e2e {
        if let Some((k, _, _)) = share_of(r, pricing) {
            *sharing.entry(k).or_default() += 1;
        }
    }
    e2e.iter()
        .map(|r| {
            let tps = r.metrics["throughput_tps"];
            let gpus = gpus(r).filter(|g| *g > 0.0);
            let concurrency = setting_num(r, "concurrency").filter(|c| *c > 0.0);
            let cost = (|| {
                let (instance_type, price) = pricing.price(r)?;
                let tokens = tps * r.metrics.get("duration_s")?;
                let (startup_share_s, startup_measured) = match share_of(r, pricing) {
                    Some((k, s, measured)) => (s / sharing[&k] as f64, measured),
                    None => (0.0, false),
                };
                let usd_per_mtok = usd_per_mtok(r.seconds, startup_share_s, pricing.nodes, price, tokens)?;
                Some(Cost {
                    seconds: r.seconds,
                    startup_share_s,
                    startup_measured,
                    nodes: pricing.nodes,
                    instance_type: instance_type.to_string(),
                    price_per_node_hour: price,
                    usd: usd_per_mtok * tokens / 1e6,
                    output_tokens: tokens,
                    usd_per_mtok,
                })
            })();
            Decision {
                id: r.id.clone(),
                layer: r.layer.clone(),
                gpus,
                throughput_tps: tps,
                tps_per_gpu: gpus.map(|g| tps / g),
                tps_per_user: concurrency.map(|c| tps / c),
                cost,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, mode: &str, seconds: f64, launch: Option<(u32, f64)>) -> ResultRecord {
        let mut r: ResultRecord = serde_json::from_value(serde_json::json!({
            "id": id, "hash": "h", "layer": "L", "kind": "pattern", "finished_at": "", "seconds": seconds,
            "settings": { "mode": mode, "tp": "4", "concurrency": "8" },
            "metrics": { "throughput_tps": 1000.0, "duration_s": 50.0 }, "raw": "",
        }))
        .unwrap();
        r.launch = launch.map(|(number, startup_seconds)| LaunchStart { number, startup_seconds, up_at: "t".into() });
        r
    }

    fn pricing() -> Pricing {
        Pricing {
            prices: [("g6e.12xlarge".to_string(), 10.49)].into_iter().collect(),
            declared: Some("g6e.12xlarge".into()),
            nodes: 2,
            planned: [("planned".to_string(), (7, 600.0))].into_iter().collect(),
        }
    }

    /// 60 s measured plus half of a 120 s start-up, on 2 nodes at $10.49 an hour, for
    /// 1000 tokens/s over 50 s: 120 s x 2 x 10.49 / 3600 = $0.69933 for 50,000 tokens.
    #[test]
    fn the_cost_per_million_tokens_shares_the_start_up_among_the_launchs_results() {
        let results = [rec("a", "unified", 60.0, Some((1, 120.0))), rec("b", "unified", 60.0, Some((1, 120.0)))];
        let d = decisions(&results, &pricing());
        let c = d[0].cost.as_ref().unwrap();
        assert_eq!((c.startup_share_s, c.startup_measured, c.output_tokens), (60.0, true, 50_000.0));
        let expected = 120.0 * 2.0 * 10.49 / 3600.0 / 50_000.0 * 1e6;
        assert!((c.usd_per_mtok - expected).abs() < 1e-9, "{} vs {expected}", c.usd_per_mtok);
        assert!((c.usd_per_mtok - 13.986_666).abs() < 1e-5);
        assert_eq!(usd_per_mtok(1.0, 0.0, 1, 3600.0, 0.0), None, "no tokens, no figure");
    }

    /// A record without a measured start-up gets its scheduled launch's estimate.
    #[test]
    fn without_a_measured_start_up_the_schedules_estimate_is_shared() {
        let d = decisions(&[rec("planned", "unified", 60.0, None)], &pricing());
        let c = d[0].cost.as_ref().unwrap();
        assert_eq!((c.startup_share_s, c.startup_measured), (600.0, false));
    }

    #[test]
    fn gpus_count_both_servers_when_disaggregated() {
        let u = rec("u", "unified", 1.0, None);
        let mut d = rec("d", "disaggregated", 1.0, None);
        assert_eq!((gpus(&u), gpus(&d)), (Some(4.0), Some(8.0)));
        d.settings.insert("decode_tp".into(), "2".into());
        assert_eq!(gpus(&d), Some(6.0));
        // 1P:2D with TP-2 decode servers: 4 + 2 x 2; two unified replicas: 2 x 4.
        d.settings.insert("decode_nodes".into(), "2".into());
        assert_eq!(gpus(&d), Some(8.0));
        let mut u2 = rec("u2", "unified", 1.0, None);
        u2.settings.insert("replicas".into(), "2".into());
        assert_eq!(gpus(&u2), Some(8.0));
        let fig = &decisions(&[u], &pricing())[0];
        assert_eq!((fig.tps_per_gpu, fig.tps_per_user), (Some(250.0), Some(125.0)));
    }
}
