//! The closed sets of symbols the schema allows (`placement = cluster`,
//! `dtype = bf16`, `kind = lowlevel`, `mode = disaggregated`) as enums, each
//! with the one list of names the schema, completion and docs read.

use serde::Serialize;

/// An enum whose variants are written as these symbols in a `.nixl` file.
macro_rules! symbols {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every symbol, in declaration order: what the schema accepts.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn from_symbol(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

symbols!(
    /// How the placement group places the nodes (EC2's strategies).
    Placement { Cluster = "cluster", Spread = "spread", Partition = "partition" }
);

symbols!(
    /// How EC2 sells the nodes: spot (interruptible, cheaper) or on demand.
    Market { Spot = "spot", OnDemand = "on_demand" }
);

symbols!(
    /// The KV cache's data type.
    Dtype { Bf16 = "bf16", Fp16 = "fp16", Fp32 = "fp32", Fp8 = "fp8" }
);

impl Dtype {
    pub fn bytes(self) -> u32 {
        match self {
            Dtype::Fp32 => 4,
            Dtype::Fp8 => 1,
            Dtype::Bf16 | Dtype::Fp16 => 2,
        }
    }
}

symbols!(
    /// What a tool measures: the nodes' baseline, or the transfer path below vLLM.
    ToolKind { Baseline = "baseline", LowLevel = "lowlevel" }
);

symbols!(
    /// How a tool's output is read: one parser per output format, in `src/results/tools`.
    ToolParser {
        /// fabtests' perf table (fi_pingpong, fi_rdm_bw, fi_rdm_pingpong, fi_rma_pingpong...).
        Fabtests = "fabtests",
        /// NIXLBench's statistics table (current and legacy column layouts).
        Nixlbench = "nixlbench",
        /// KVBench's `plan` block, plus the nixlbench table `profile` prints.
        Kvbench = "kvbench",
        /// ucx_perftest's `Final:` line.
        UcxPerftest = "ucx_perftest",
        /// `iperf3 -J`, one JSON document per run.
        Iperf3 = "iperf3",
        /// nccl-tests' table (all_reduce_perf and its siblings).
        NcclTests = "nccl_tests",
        /// The plain `nvidia-smi` table.
        NvidiaSmi = "nvidia_smi",
        /// `nvidia-smi --query-gpu=... --format=csv`.
        NvidiaSmiCsv = "nvidia_smi_csv",
        /// `nvidia-smi dmon`.
        NvidiaSmiDmon = "nvidia_smi_dmon",
        /// `nvidia-smi topo -m`.
        NvidiaSmiTopo = "nvidia_smi_topo",
        /// `fi_info`, short or verbose.
        FiInfo = "fi_info",
    }
);

symbols!(
    /// How a pattern serves: one server, or prefill and decode on two nodes with KV transfer.
    Mode { Unified = "unified", Disaggregated = "disaggregated" }
);

symbols!(
    /// The network a disaggregated pattern's KV cache crosses: the EFA device (libfabric's
    /// efa provider, or UCX over SRD) or the kernel's TCP stack.
    Transport { Efa = "efa", Srd = "srd", Tcp = "tcp" }
);

symbols!(
    /// What a saturation search decides each probe on (`saturation(metric = ...)`).
    SaturationMetric {
        /// Every bound of the SLO holds (`slo_met`): the default.
        SloMet = "slo_met",
        /// The goodput keeps up with the offered rate: `goodput_rps` >= (1 - tolerance) x rate.
        Goodput = "goodput",
    }
);

impl Transport {
    /// The KV is meant to cross the EFA device, so its counters must move.
    pub fn uses_efa(self) -> bool {
        matches!(self, Transport::Efa | Transport::Srd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_reads_back_as_itself() {
        for n in Placement::NAMES {
            assert_eq!(Placement::from_symbol(n).map(Placement::as_str), Some(*n));
        }
        for n in Transport::NAMES {
            assert_eq!(Transport::from_symbol(n).map(Transport::as_str), Some(*n));
        }
        for n in Mode::NAMES {
            assert_eq!(Mode::from_symbol(n).unwrap().to_string(), *n);
        }
        assert_eq!(serde_json::to_string(&ToolKind::LowLevel).unwrap(), "\"lowlevel\"");
        assert_eq!(Dtype::from_symbol("fp8").map(Dtype::bytes), Some(1));
        assert_eq!(Dtype::from_symbol("int4"), None);
    }
}
