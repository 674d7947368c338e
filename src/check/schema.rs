//! What each block kind may contain: labels, attributes with their types,
//! statements and child blocks. The checker, the language server's completion
//! and the docs all read this one table.

use crate::syntax::ast::Unit;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ty {
    Str,
    Bool,
    Int,
    /// An integer of at least 1.
    PosInt,
    Num,
    Quantity(Unit),
    /// One of the listed enumeration literals.
    Sym(&'static [&'static str]),
    /// One of the listed enumeration literals, or a list of them in order of preference.
    SymList(&'static [&'static str]),
    StrList,
    /// A string or a list of strings (commands).
    Commands,
    Record,
    /// A name of a top-level definition of this kind.
    Ref(&'static str),
    RefList(&'static str),
    /// Evaluated later, per pattern, by the design engine.
    Lazy,
    Any,
}

pub struct Attr {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub doc: &'static str,
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Attr {
    Attr { name, ty, required: true, doc }
}
const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Attr {
    Attr { name, ty, required: false, doc }
}

pub struct BlockSchema {
    pub kind: &'static str,
    /// Kinds this block may stand in; "" is the top level of a file.
    pub parents: &'static [&'static str],
    /// Minimum and maximum number of labels.
    pub labels: (usize, usize),
    pub attrs: &'static [Attr],
    /// Accepts attributes not listed (settings passed through to a server).
    pub open: bool,
    /// Statement keywords allowed in the body.
    pub stmts: &'static [&'static str],
    pub doc: &'static str,
}

pub const MODES: &[&str] = super::symbols::Mode::NAMES;
pub const TRANSPORTS: &[&str] = super::symbols::Transport::NAMES;
pub const DTYPES: &[&str] = super::symbols::Dtype::NAMES;
pub const PLACEMENTS: &[&str] = super::symbols::Placement::NAMES;
pub const MARKETS: &[&str] = super::symbols::Market::NAMES;
pub const TOOL_KINDS: &[&str] = super::symbols::ToolKind::NAMES;
pub const TOOL_PARSERS: &[&str] = super::symbols::ToolParser::NAMES;
pub const BUFFER_DEVICES: &[&str] = &["cuda", "cpu"];
pub const BACKENDS: &[&str] = &["libfabric", "ucx"];

use Ty::*;

pub const BLOCKS: &[BlockSchema] = &[
    BlockSchema {
        kind: "instance",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "An EC2 instance type of the catalogue.",
        attrs: &[
            req("gpu", Str, "GPU model"),
            req("gpus", PosInt, "GPUs per instance"),
            req("gpu_memory", Quantity(Unit::Bytes), "memory per GPU"),
            req("efa", Bool, "whether the type supports EFA"),
            opt("efa_bandwidth", Quantity(Unit::Bandwidth), "EFA network bandwidth"),
            opt("rdma", Bool, "EFA hardware RDMA read/write"),
            req("price", Quantity(Unit::Money), "on-demand price per hour (us-east-1)"),
            opt("spot_price", Quantity(Unit::Money), "spot price per hour the estimate uses when the stack prefers spot (a figure you enter: spot prices move)"),
            req("volume", Quantity(Unit::Bytes), "recommended root volume"),
            opt("vcpus", PosInt, "vCPUs"),
            opt("memory", Quantity(Unit::Bytes), "host memory"),
        ],
    },
    BlockSchema {
        kind: "region",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "An AWS region and its availability zones.",
        attrs: &[req("zones", StrList, "availability zones")],
    },
    BlockSchema {
        kind: "model",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "A model's shape, for KV-cache sizes.",
        attrs: &[
            req("hf_id", Str, "Hugging Face model id"),
            req("layers", PosInt, "transformer layers"),
            req("kv_heads", PosInt, "key/value heads"),
            req("head_dim", PosInt, "dimension per head"),
            req("dtype", Sym(DTYPES), "KV-cache data type"),
            req("max_position_embeddings", PosInt, "native context length"),
            opt("params", Num, "parameter count"),
        ],
    },
    BlockSchema {
        kind: "service",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "A long-running helper such as etcd, started once and reused.",
        attrs: &[
            req("run", Commands, "command that starts it"),
            opt("health", Str, "command that succeeds when it is up"),
            opt("port", PosInt, "port it listens on"),
        ],
    },
    BlockSchema {
        kind: "tool",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "A baseline or low-level measurement tool.",
        attrs: &[
            req("kind", Sym(TOOL_KINDS), "baseline or lowlevel"),
            req("nodes", PosInt, "1 or 2 nodes"),
            req("slug", Lazy, "id fragment of its patterns; may interpolate params"),
            req("duration", Quantity(Unit::Duration), "estimated time of one run"),
            opt("run", Lazy, "command on one node"),
            opt("server", Lazy, "command on the first node"),
            opt("client", Lazy, "command on the second node; `{peer}` is the first node's IP"),
            opt("result", Str, "which role's output holds the figures of a two-node tool: \"client\" (default) or \"server\" (nixlbench: only rank 0, the first node, prints them)"),
            opt("params", Record, "parameters and their defaults"),
            opt("needs", RefList("service"), "services that must run first"),
            opt("parser", Sym(TOOL_PARSERS), "how its output is read: the parser of its output format (docs/results.md lists what each yields); without one, the output must be a JSON object of figures"),
            opt("metrics", StrList, "metrics its results must report: a step whose output lacks one fails"),
            opt("description", Str, "what it measures"),
        ],
    },
    BlockSchema {
        kind: "server",
        parents: &[""],
        labels: (1, 1),
        open: true,
        stmts: &[],
        doc: "Inference server settings (vLLM); any attribute is passed to the server.",
        attrs: &[
            opt("version", Str, "server version"),
            opt("tp", PosInt, "tensor parallel size"),
            opt("health_timeout", Quantity(Unit::Duration), "how long to wait for health"),
            opt("args", Lazy, "each attribute the server passes as a command-line flag, and the flag (`tp = \"--tensor-parallel-size\"`); `{serve_args}` in the start commands renders them"),
            opt("start_unified", Lazy, "command starting the unified server on the first node"),
            opt("start_prefill", Lazy, "command starting the prefill (producer) server on the first node"),
            opt("start_decode", Lazy, "command starting the decode (consumer) server on the second node"),
            opt("start_proxy", Lazy, "command starting the disaggregation proxy on the first node"),
            opt("health", Lazy, "command that succeeds once the server answers"),
            opt("metrics", Lazy, "command printing a server's Prometheus metrics (run for every decode and every prefill server, `node_role` saying which, before and after each disaggregated pattern: KV-transfer telemetry, prefill_* figures and guards)"),
            opt("transport_counters", Lazy, "command printing the node's EFA and network-interface byte counters as `efa_rx_bytes{device=..,port=..} N` and `net_rx_bytes{interface=..} N` lines (`_tx_` too; run on every decode and every prefill node before and after each disaggregated pattern: efa_bytes, tcp_bytes, prefill_efa_bytes, prefill_tcp_bytes and the wrong-interface guard)"),
            opt("gpu_memory", Lazy, "command printing `memory.used, memory.total` in MiB per GPU, as `nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits` does (run after each E2E pattern on the decode or unified server's node)"),
            opt("stop", Lazy, "command stopping the servers on a node and checking the GPUs are free"),
        ],
    },
    BlockSchema {
        kind: "bench",
        parents: &[""],
        labels: (1, 1),
        open: true,
        stmts: &[],
        doc: "Benchmark client settings.",
        attrs: &[
            opt("warmup", Int, "warm-up requests"),
            opt("iterations", PosInt, "measured requests"),
            opt("max_tokens", PosInt, "output tokens per request"),
            opt("run", Lazy, "command running one pattern's benchmark; writes its result JSON to `{out}`"),
        ],
    },
    BlockSchema {
        kind: "setup",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &["let"],
        doc: "Idempotent node setup: ordered steps with skip conditions.",
        attrs: &[],
    },
    BlockSchema {
        kind: "step",
        parents: &["setup"],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "One setup step, run on every node unless `nodes` says otherwise.",
        attrs: &[
            req("name", Str, "what the step does"),
            req("run", Commands, "shell commands, run as one script"),
            opt("skip_if", Str, "shell condition; the step is skipped when it succeeds"),
            opt("provides", StrList, "tools this step installs, e.g. [\"nixlbench\"]: `nixl show --commands` names the step for them"),
            opt("timeout", Quantity(Unit::Duration), "limit for the step (default 30min)"),
            opt("nodes", StrList, "nodes to run on (default all)"),
            opt("env", Record, "environment variables"),
        ],
    },
    BlockSchema {
        kind: "stack",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "The cloud resources: nodes, placement group, bucket, zones to fall back across.",
        attrs: &[
            opt("region", Str, "AWS region (or `regions`)"),
            opt("zones", StrList, "availability zones, tried in order on capacity errors"),
            opt("regions", Any, "regions in fallback order, each with its zones: [{ region = \"us-east-1\", zones = [...] }, { region = \"us-west-2\", zones = [...], ami = \"ami-...\" }]"),
            req("instance_type", Any, "instance type, or a list tried in order"),
            opt("placement", Sym(PLACEMENTS), "placement group strategy (default cluster)"),
            opt("volume", Quantity(Unit::Bytes), "root volume (default: the catalogue's recommendation)"),
            opt("efa", Bool, "attach an EFA interface (default true)"),
            opt("ami", Str, "explicit AMI id"),
            opt("ami_parameter", Str, "SSM public parameter naming the AMI"),
            opt("subnet", Str, "subnet id (default: the zone's default subnet)"),
            opt("ssh_cidr", Str, "CIDR block allowed to SSH, IPv4 or IPv6 (default: none)"),
            opt("ssh_reason", Str, "why SSH must be open to the whole internet: required with `0.0.0.0/0` or `::/0`"),
            opt("kms_key", Str, "KMS key (id, ARN or alias) encrypting the nodes' volumes (default: the account's EBS key)"),
            opt("capacity_reservation", Str, "capacity reservation id"),
            opt("capacity_block", Bool, "launch into a capacity block"),
            opt("market", SymList(MARKETS), "spot or on_demand, or a list tried in order, e.g. [spot, on_demand] (default on_demand)"),
            opt("setup", Ref("setup"), "setup run on every node"),
            opt("retry_interval", Quantity(Unit::Duration), "pause between rounds with --retry-until-up (default 30s)"),
        ],
    },
    BlockSchema {
        kind: "node",
        parents: &["stack"],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "A node of the stack.",
        attrs: &[opt("role", Str, "what runs there, for people reading the plan")],
    },
    BlockSchema {
        kind: "bucket",
        parents: &["stack"],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "An S3 bucket for scripts and results.",
        attrs: &[opt("versioned", Bool, "keep object versions (old ones expire with the command output)")],
    },
    BlockSchema {
        kind: "experiment",
        parents: &[""],
        labels: (1, 1),
        open: false,
        stmts: &["factor", "let", "set", "prune", "when"],
        doc: "Factors, layers, pruning rules, designs and analyses.",
        attrs: &[
            opt("prefix", Str, "prefix of pattern ids"),
            opt("model", Ref("model"), "the model served"),
            opt("server", Any, "server settings (a `server` definition, optionally with overrides)"),
            opt("bench", Any, "benchmark settings"),
            opt(
                "stack",
                Str,
                "the stack it runs on (default: the only stack of its file, else the only one; required when there are several)",
            ),
            opt("restart_on", Lazy, "settings whose change forces a server restart"),
            opt("duration", Lazy, "estimated time of one pattern"),
            opt("startup", Lazy, "estimated server start-up time of a restart group"),
            opt("order", Lazy, "restart groups in a pinned order"),
            opt("parallel", PosInt, "node sets the campaign is spread over (default 1): `nixl plan` shows the schedule per set, makespan and cost; apply runs the sets at once on the local provider, one set on AWS for now"),
            opt("mlflow", Record, "MLflow settings: experiment, timestamp_suffix, tracking_uri"),
            opt("description", Str, "what the experiment is for"),
            opt("hand_estimate", Quantity(Unit::Duration), "an earlier hand-made estimate, shown beside the computed one"),
            opt("slo", Record, "latency bounds, e.g. { ttft_p99 = 2s, tpot_p99 = 50ms }: goodput and SLO attainment are measured against them"),
            opt("discard_first_run", Bool, "run the first pattern after each server start once more first, and drop that run as warm-up"),
            opt("shuffle", Int, "seed of the shuffled run order inside each server launch (1 when a layer has replicates)"),
        ],
    },
    BlockSchema {
        kind: "layer",
        parents: &["experiment"],
        labels: (1, 1),
        open: true,
        stmts: &["prune", "let", "set"],
        doc: "A group of patterns that fixes some settings (mode, transport...).",
        attrs: &[
            opt("id", Lazy, "pattern id template"),
            opt("mode", Sym(MODES), "unified or disaggregated"),
            opt("transport", Sym(TRANSPORTS), "KV transport"),
            opt("design", Lazy, "full (default), points(...) or d_optimal(...)"),
            opt("steps", Lazy, "tool runs instead of factorial patterns"),
            opt("keep", Lazy, "in an extending experiment: the steps kept"),
            opt("adhoc", Bool, "patterns run only when a rule or the user asks"),
            opt("new", Bool, "in an extending experiment: a layer its parent does not have"),
            opt("schedule", StrList, "the ids scheduled; the layer's other patterns become ad hoc"),
            opt("name", Str, "a readable name"),
            opt("priority", Str, "P0, P1, ..."),
            opt("description", Str, "what the layer measures"),
            opt("slo", Record, "latency bounds for this layer's patterns, replacing the experiment's"),
            opt("until", Lazy, "ci(METRIC) < FRACTION: stop replicating once the 95 % interval is that narrow"),
            opt("replicates", PosInt, "runs of each pattern (ids end in -rep1, -rep2...), shuffled within each server launch"),
            opt("prefill_nodes", PosInt, "prefill servers, one per node (default 1); the proxy sends each request to the next"),
            opt("decode_nodes", PosInt, "decode servers, one per node (default 1); the proxy sends each request to the next"),
            opt("prefill_tp", PosInt, "tensor parallelism of the prefill servers (default: tp)"),
            opt("decode_tp", PosInt, "tensor parallelism of the decode servers (default: tp)"),
            opt("replicas", PosInt, "unified servers, one per node behind a round-robin proxy (default 1): an equal-GPU baseline"),
        ],
    },
    BlockSchema {
        kind: "pattern",
        parents: &["experiment"],
        labels: (1, 1),
        open: true,
        stmts: &[],
        doc: "A single extra pattern in a layer: `pattern \"id\" in \"layer\" { factor = level ... }`.",
        attrs: &[],
    },
    BlockSchema {
        kind: "analysis",
        parents: &["layer"],
        labels: (1, 1),
        open: false,
        stmts: &[],
        doc: "An analysis run on the local machine over stored results.",
        attrs: &[
            req("inputs", StrList, "layers whose results it reads"),
            req("method", Lazy, "dip_test(...), compare(...), correlation(...), tpot_separation(), tpot_spread(), disaggregation_overhead(), pareto(...)"),
            opt("metrics", StrList, "metrics it reports"),
            opt("description", Str, "the question it answers"),
            opt("duration", Quantity(Unit::Duration), "estimated time"),
        ],
    },
];

pub fn block(kind: &str) -> Option<&'static BlockSchema> {
    BLOCKS.iter().find(|b| b.kind == kind)
}

/// Settings a layer or pattern may fix besides the schema's own attributes.
pub const PATTERN_SETTINGS: &[&str] =
    &["mode", "transport", "cross_layers", "prefill_nodes", "decode_nodes", "prefill_tp", "decode_tp", "replicas"];
