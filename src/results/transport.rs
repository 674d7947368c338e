//! Transport counters of the decode and prefill nodes around a disaggregated pattern (the
//! KV leaves the prefill nodes and enters the decode ones): the EFA devices' byte counters (`/sys/class/infiniband/<dev>/ports/<n>/hw_counters/{rx,tx}_bytes`) and the
//! kernel's per-interface ones (`/sys/class/net/<if>/statistics/{rx,tx}_bytes`, loopback
//! left out), as std/vllm's `transport_counters` prints them, and the guard that fails a
//! pattern declared over EFA whose KV crossed TCP instead (UCX and libfabric fall back
//! silently when the EFA path does not come up; the latency is then TCP's).

use super::telemetry::sample;
use crate::check::model::Transport;
use std::collections::BTreeMap;

/// The sample names `transport_counters` prints, one line per device or interface.
const EFA: [&str; 2] = ["efa_rx_bytes", "efa_tx_bytes"];
const NET: [&str; 2] = ["net_rx_bytes", "net_tx_bytes"];

/// Below this share of the KV bytes, the EFA counters "did not move": a few control
/// packets may cross the device while the KV itself goes elsewhere.
pub const EFA_STILL_SHARE: f64 = 0.01;

/// Bytes received plus sent over the sample names, or None when the node printed none.
fn total(text: &str, names: [&str; 2]) -> Option<f64> {
    let rx = sample(text, names[0], None);
    let tx = sample(text, names[1], None);
    if rx.is_none() && tx.is_none() {
        return None;
    }
    Some(rx.unwrap_or(0.0) + tx.unwrap_or(0.0))
}

/// What the counters grew by between the two reads: `efa_bytes` over every EFA device and
/// `tcp_bytes` over every network interface but loopback, received plus sent, each name
/// prefixed by `prefix` (`""` for the decode nodes, `"prefill_"` for the prefill nodes). A
/// kind the nodes have no counter of is left out (an instance without EFA prints no `efa_` line).
pub fn deltas(before: &str, after: &str, prefix: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (metric, names) in [("efa_bytes", EFA), ("tcp_bytes", NET)] {
        if let Some(post) = total(after, names) {
            out.insert(format!("{prefix}{metric}"), post - total(before, names).unwrap_or(0.0));
        }
    }
    out
}

/// The two ends of a transfer, as the metrics name their counters.
const SIDES: [(&str, &str, &str); 2] =
    [("decode", "efa_bytes", "tcp_bytes"), ("prefill", "prefill_efa_bytes", "prefill_tcp_bytes")];

/// Why one side's counters say the KV went over TCP, if they do: its TCP interfaces carried
/// at least as many bytes as the KV while its EFA counters stayed still (or it has none).
fn over_tcp(m: &BTreeMap<String, f64>, kv: f64, (side, efa, tcp): (&str, &str, &str)) -> Option<String> {
    let tcp = m.get(tcp).copied().filter(|t| *t >= kv)?;
    let efa = match m.get(efa) {
        Some(e) if *e >= EFA_STILL_SHARE * kv => return None,
        Some(e) => format!("the EFA counters moved {e} bytes"),
        None => "there are no EFA counters (/sys/class/infiniband/*/ports/*/hw_counters)".to_string(),
    };
    Some(format!("on the {side} nodes {efa} while the TCP interfaces carried {tcp} bytes"))
}

/// Why a pattern declared over EFA did not use it, if it did not: KV bytes moved and, on
/// either end (the decode nodes that received it, the prefill nodes that sent it), the EFA
/// counters stayed still (or the nodes have none) while the TCP interfaces carried at least
/// as many bytes as the KV. Each end is judged on its own counters, so a fallback shows
/// wherever it is read, and the reason names every end that shows it. Patterns over TCP,
/// or with counters missing, pass.
pub fn wrong_interface(transport: Transport, m: &BTreeMap<String, f64>) -> Option<String> {
    if !transport.uses_efa() {
        return None;
    }
    let kv = m.get("kv_bytes").copied().filter(|b| *b > 0.0)?;
    let sides: Vec<String> = SIDES.into_iter().filter_map(|side| over_tcp(m, kv, side)).collect();
    if sides.is_empty() {
        return None;
    }
    Some(format!("transport = {transport} was declared, but the KV went over TCP: {}, for {kv} KV bytes", sides.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `transport_counters` prints on a g6e node: one EFA device, one ENI, loopback left out.
    fn read(efa_rx: u64, efa_tx: u64, net_rx: u64, net_tx: u64) -> String {
        format!(
            "efa_rx_bytes{{device=\"rdmap0s31\",port=\"1\"}} {efa_rx}\n\
             efa_tx_bytes{{device=\"rdmap0s31\",port=\"1\"}} {efa_tx}\n\
             net_rx_bytes{{interface=\"ens5\"}} {net_rx}\n\
             net_tx_bytes{{interface=\"ens5\"}} {net_tx}\n"
        )
    }

    fn with_kv(mut m: BTreeMap<String, f64>, kv: f64) -> BTreeMap<String, f64> {
        m.insert("kv_bytes".into(), kv);
        m
    }

    #[test]
    fn deltas_sum_received_and_sent_per_kind() {
        let m = deltas(&read(1000, 50, 7000, 3000), &read(1000 + 4096, 50 + 64, 7000 + 900, 3000 + 100), "");
        assert_eq!(m["efa_bytes"], 4160.0);
        assert_eq!(m["tcp_bytes"], 1000.0);
        // The prefill nodes' counters, named apart.
        let p = deltas(&read(0, 0, 0, 0), &read(0, 4096, 10, 20), "prefill_");
        assert_eq!((p["prefill_efa_bytes"], p["prefill_tcp_bytes"]), (4096.0, 30.0));
        // No EFA device: no efa_bytes, rather than a zero that would look measured.
        let no_efa = "net_rx_bytes{interface=\"ens5\"} 10\nnet_tx_bytes{interface=\"ens5\"} 5\n";
        assert_eq!(deltas(no_efa, no_efa, "").keys().collect::<Vec<_>>(), ["tcp_bytes"]);
    }

    #[test]
    fn kv_over_tcp_fails_an_efa_pattern_and_only_that() {
        let fallback = with_kv(deltas(&read(0, 0, 0, 0), &read(0, 0, 2_000_000, 40_000), ""), 1_900_000.0);
        let why = wrong_interface(Transport::Srd, &fallback).expect("fails");
        assert!(
            why.contains("transport = srd")
                && why.contains("on the decode nodes the EFA counters moved 0 bytes")
                && why.contains("2040000 bytes"),
            "{why}"
        );
        assert!(wrong_interface(Transport::Efa, &fallback).is_some());
        // Declared TCP: the same counters are what it should be.
        assert_eq!(wrong_interface(Transport::Tcp, &fallback), None);
        // Healthy EFA: the device carried the KV, TCP only the requests.
        let healthy = with_kv(deltas(&read(0, 0, 0, 0), &read(1_900_000, 9_000, 3_000, 2_000), ""), 1_900_000.0);
        assert_eq!(wrong_interface(Transport::Srd, &healthy), None);
        // No EFA counters at all on a node that moved the KV over TCP.
        let mut none = fallback.clone();
        none.remove("efa_bytes");
        assert!(wrong_interface(Transport::Efa, &none).unwrap().contains("there are no EFA counters"));
        // Counters not read: nothing to judge.
        assert_eq!(wrong_interface(Transport::Efa, &with_kv(BTreeMap::new(), 1e6)), None);
    }

    #[test]
    fn each_end_of_the_transfer_is_judged_on_its_own_counters() {
        let kv = 1_900_000.0;
        let sent_over_efa = deltas(&read(0, 0, 0, 0), &read(0, 1_900_000, 3_000, 2_000), "prefill_");
        let sent_over_tcp = deltas(&read(0, 0, 0, 0), &read(0, 0, 3_000, 2_000_000), "prefill_");
        let received_over_efa = deltas(&read(0, 0, 0, 0), &read(1_900_000, 9_000, 3_000, 2_000), "");
        let received_over_tcp = deltas(&read(0, 0, 0, 0), &read(0, 0, 2_000_000, 40_000), "");
        let both = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            with_kv(a.iter().chain(b).map(|(k, v)| (k.clone(), *v)).collect(), kv)
        };
        // Both ends over EFA: healthy.
        assert_eq!(wrong_interface(Transport::Efa, &both(&received_over_efa, &sent_over_efa)), None);
        // The KV left the prefill nodes over TCP: failed, and the reason names that end only.
        let why = wrong_interface(Transport::Efa, &both(&received_over_efa, &sent_over_tcp)).expect("fails");
        assert!(
            why.contains("on the prefill nodes the EFA counters moved 0 bytes while the TCP interfaces carried 2003000 bytes"),
            "{why}"
        );
        assert!(!why.contains("decode nodes"), "{why}");
        // Both ends over TCP: both named.
        let why = wrong_interface(Transport::Efa, &both(&received_over_tcp, &sent_over_tcp)).expect("fails");
        assert!(
            why.contains("on the decode nodes")
                && why.contains("; on the prefill nodes")
                && why.ends_with("for 1900000 KV bytes"),
            "{why}"
        );
        // Only the prefill side read: it alone decides.
        assert_eq!(wrong_interface(Transport::Efa, &with_kv(sent_over_efa.clone(), kv)), None);
        assert!(wrong_interface(Transport::Efa, &with_kv(sent_over_tcp.clone(), kv)).is_some());
    }
}
