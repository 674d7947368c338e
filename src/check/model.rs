//! The resolved model: plain data handed to the design engine and the planner.
//! Values are evaluated; expressions that depend on a pattern's factor levels
//! stay as expressions (with spans) for the design engine to evaluate.

pub use super::secret::{SecretRef, SecretSource};
pub use super::symbols::{Dtype, Market, Mode, Placement, ToolKind, ToolParser, Transport};
use super::value::Value;
use crate::diagnostics::Span;
use crate::syntax::ast::Expr;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Model {
    pub instances: BTreeMap<String, Instance>,
    pub regions: BTreeMap<String, Vec<String>>,
    pub models: BTreeMap<String, LlmModel>,
    pub tools: BTreeMap<String, Tool>,
    pub services: BTreeMap<String, Service>,
    pub setups: Vec<Setup>,
    /// Command templates of `server` and `bench` definitions, by definition name.
    pub templates: BTreeMap<String, BTreeMap<String, Expr>>,
    /// The other attributes of `server` and `bench` definitions (settings), with their spans.
    pub definition_attrs: BTreeMap<String, Vec<(String, Span)>>,
    pub stacks: Vec<Stack>,
    pub experiments: Vec<Experiment>,
    /// Top-level `let` values.
    pub globals: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Instance {
    pub name: String,
    pub gpu: String,
    pub gpus: u32,
    pub gpu_memory: f64,
    pub efa: bool,
    pub efa_bandwidth: Option<f64>,
    pub rdma: bool,
    pub price_per_hour: f64,
    /// The spot price per hour the catalogue states, if any (the estimate's, for a stack that prefers spot).
    pub spot_price_per_hour: Option<f64>,
    pub volume: f64,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct LlmModel {
    pub name: String,
    pub hf_id: String,
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub dtype: Dtype,
    pub max_position_embeddings: u32,
    /// Parameter count (0 when not declared): the weights' memory is this x dtype bytes.
    pub params: f64,
    pub span: Span,
}

impl LlmModel {
    pub fn dtype_bytes(&self) -> u32 {
        self.dtype.bytes()
    }
    /// 2 (K and V) x layers x kv_heads x head_dim x dtype bytes.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.layers as u64 * self.kv_heads as u64 * self.head_dim as u64 * self.dtype_bytes() as u64
    }
    /// The KV bytes per token held over all `tp` ranks of one server: each rank holds
    /// `max(1, kv_heads / tp)` heads (vLLM's `ModelConfig.get_num_kv_heads`, integer division),
    /// so above `kv_heads` ranks the heads are replicated and the ranks together hold more
    /// than [`Self::kv_bytes_per_token`]. What NixlConnector reads per token, summed over a
    /// decode server's ranks: each rank reads its own heads.
    pub fn kv_bytes_per_token_over_ranks(&self, tp: u32) -> u64 {
        let tp = tp.max(1);
        let per_rank = (self.kv_heads / tp).max(1) as u64;
        self.kv_bytes_per_token() / self.kv_heads.max(1) as u64 * per_rank * tp as u64
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    pub name: String,
    pub kind: ToolKind,
    pub nodes: u32,
    pub slug: Expr,
    pub duration: f64,
    pub run: Option<Expr>,
    pub server: Option<Expr>,
    pub client: Option<Expr>,
    /// A two-node tool whose figures are in the first node's (`server`) output, such as
    /// nixlbench, where only rank 0 prints them; otherwise the client's output is read.
    pub result_on_server: bool,
    /// How its output is read (`parser = "nixlbench"`); None reads a JSON object of figures.
    pub parser: Option<ToolParser>,
    pub params: BTreeMap<String, Value>,
    pub needs: Vec<String>,
    pub metrics: Vec<String>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Service {
    pub name: String,
    pub run: Vec<String>,
    pub health: Option<String>,
    pub port: Option<u32>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub name: String,
    pub vars: BTreeMap<String, Value>,
    pub steps: Vec<SetupStep>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct SetupStep {
    pub id: String,
    pub name: String,
    /// Commands with variables interpolated, run as one script.
    pub run: Vec<String>,
    pub skip_if: Option<String>,
    pub timeout: f64,
    /// Nodes to run on; empty means all.
    pub nodes: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    /// Tools this step installs (`provides = ["nixlbench"]`): what `nixl show --commands` names as a tool's build.
    pub provides: Vec<String>,
    pub span: Span,
}

/// The value of a setup step's environment variable.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// Written into the step's script (quoted); hashed as the text, as before secrets existed.
    Text(String),
    /// Read when apply runs and handed to the step's process, never written into its script.
    Secret(SecretRef),
}

impl SetupStep {
    /// The secrets the step's environment reads, by variable.
    pub fn secrets(&self) -> impl Iterator<Item = (&str, &SecretRef)> {
        self.env.iter().filter_map(|(k, v)| match v {
            EnvValue::Secret(s) => Some((k.as_str(), s)),
            EnvValue::Text(_) => None,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Stack {
    pub name: String,
    /// The region apply launches in: the first of `regions` (or the one apply fell back to, in
    /// a copy made by `in_region`).
    pub region: String,
    /// That region's zones, tried in order on capacity errors.
    pub zones: Vec<String>,
    /// Every region in fallback order, each with its zones: one entry for `region` and `zones`,
    /// several for `regions = [...]`.
    pub regions: Vec<RegionChoice>,
    /// Candidate instance types, tried in order.
    pub instance_types: Vec<String>,
    pub placement: Placement,
    pub volume: f64,
    pub efa: bool,
    pub ami: Option<String>,
    pub ami_parameter: Option<String>,
    pub subnet: Option<String>,
    /// Who may reach port 22; checked to be a CIDR block EC2 accepts.
    pub ssh_cidr: Option<super::cidr::Cidr>,
    /// Why SSH is open to the whole internet (required for `0.0.0.0/0` and `::/0`).
    pub ssh_reason: Option<String>,
    /// The KMS key that encrypts the nodes' volumes (default: the account's EBS key).
    pub kms_key: Option<String>,
    /// A `bucket` block asks for object versions to be kept.
    pub versioned: bool,
    pub capacity_reservation: Option<String>,
    pub capacity_block: bool,
    /// The markets to launch in, tried in order (`market = [spot, on_demand]`); default on demand.
    pub markets: Vec<Market>,
    pub setup: Option<String>,
    pub retry_interval: f64,
    pub nodes: Vec<Node>,
    pub buckets: Vec<String>,
    pub span: Span,
    /// Where each attribute's value is written, so a runtime error can point at
    /// the attribute that caused it (`zones` for no capacity, `instance_type` for a quota).
    pub spans: BTreeMap<String, Span>,
}

impl Stack {
    /// The span of an attribute's value, or of the whole block when it is not written.
    pub fn span_of(&self, attribute: &str) -> Span {
        self.spans.get(attribute).copied().unwrap_or(self.span)
    }

    /// This stack as launched in `choice`: its region, its zones, and its AMI id when the
    /// entry names one (an AMI id belongs to one region; `ami_parameter` resolves in each).
    pub fn in_region(&self, choice: &RegionChoice) -> Stack {
        let mut st = self.clone();
        st.region = choice.region.clone();
        st.zones = choice.zones.clone();
        if choice.ami.is_some() {
            st.ami = choice.ami.clone();
        }
        st
    }

    /// The entry for `region`, if the stack lists it.
    pub fn region_choice(&self, region: &str) -> Option<&RegionChoice> {
        self.regions.iter().find(|r| r.region == region)
    }
}

/// One region a stack may launch in, with its zones in order (`regions = [{ region, zones, ami }]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionChoice {
    pub region: String,
    pub zones: Vec<String>,
    /// The AMI id to launch in this region (ids differ between regions).
    pub ami: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub name: String,
    pub role: Option<String>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Experiment {
    pub name: String,
    pub extends: Option<String>,
    pub prefix: String,
    pub model: Option<String>,
    pub stack: Option<String>,
    /// Where `stack = ...` is written (the block's span when it is not).
    pub stack_span: Span,
    /// The `server` and `bench` definitions used (their templates render the commands).
    pub server_def: Option<String>,
    pub bench_def: Option<String>,
    /// Attributes overridden where the definitions are taken (`server = vllm { tp = 2 }`), with their spans.
    pub overrides: Vec<(String, Span)>,
    /// Server, benchmark and other fixed settings shared by every pattern.
    pub settings: BTreeMap<String, Value>,
    pub factors: Vec<Factor>,
    /// `let` and `set` statements in order; `set` ones become pattern settings.
    pub derived: Vec<Derived>,
    pub restart_on: Option<Expr>,
    /// Settings the server's start commands read that patterns can change: part of the
    /// restart key besides `restart_on` (filled when the campaign is resolved).
    pub restart_implied: Vec<String>,
    pub duration: Option<Expr>,
    pub startup: Option<Expr>,
    pub order: Option<Expr>,
    /// `parallel = k`: node sets the planner spreads the restart groups over (default 1).
    pub parallel: u32,
    /// Where `parallel` is written, when it is (apply points at it to refuse k > 1).
    pub parallel_span: Option<Span>,
    pub prunes: Vec<Prune>,
    pub layers: Vec<Layer>,
    pub patterns: Vec<ExtraPattern>,
    pub rules: Vec<RuleDecl>,
    pub mlflow: BTreeMap<String, Value>,
    pub hand_estimate: Option<f64>,
    /// Seed of the shuffled run order inside each launch.
    pub shuffle: Option<u64>,
    /// Run the first pattern after each server start once more before it counts, and drop
    /// that run (a cold server's first figures: CUDA graphs, caches, the allocator).
    pub discard_first_run: Option<bool>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Factor {
    pub name: String,
    pub levels: Vec<Value>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Derived {
    pub name: String,
    pub expr: Expr,
    /// `set` (a pattern setting) rather than `let` (a helper name).
    pub setting: bool,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prune {
    pub cond: Expr,
    pub reason: String,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    pub name: String,
    pub id: Option<Expr>,
    /// Settings the layer fixes (mode, transport, server overrides).
    pub fixed: BTreeMap<String, Expr>,
    pub design: Option<Expr>,
    pub steps: Option<Expr>,
    pub keep: Option<Expr>,
    pub adhoc: bool,
    /// In an extending experiment: a layer the parent does not have (not an override).
    pub new: bool,
    pub schedule: Option<Vec<(String, Span)>>,
    /// Runs of each E2E pattern (`replicates = N`); None when not declared (one run).
    pub replicates: Option<u32>,
    /// A saturation search (`design = saturation(...)`): probes per point instead of one run.
    pub saturation: Option<super::saturation::Saturation>,
    /// When to stop replicating early (`until = ci(METRIC) < FRACTION`).
    pub until: Option<super::until::Until>,
    pub derived: Vec<Derived>,
    pub prunes: Vec<Prune>,
    pub analyses: Vec<Analysis>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExtraPattern {
    pub id: String,
    pub layer: String,
    pub layer_span: Span,
    pub values: BTreeMap<String, Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    pub name: String,
    pub inputs: Vec<(String, Span)>,
    pub method: Expr,
    pub metrics: Vec<String>,
    pub duration: Option<f64>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleDecl {
    pub cond: Expr,
    pub action: Expr,
    pub reason: Option<String>,
    pub span: Span,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(kv_heads: u32) -> LlmModel {
        LlmModel {
            name: "m".into(),
            hf_id: "m".into(),
            layers: 28,
            kv_heads,
            head_dim: 128,
            dtype: Dtype::Bf16,
            max_position_embeddings: 32768,
            params: 0.0,
            span: Span::default(),
        }
    }

    #[test]
    fn kv_over_ranks_is_the_model_s_until_the_heads_are_replicated() {
        // Qwen2.5-7B: 4 KV heads, 57,344 B per token.
        let m = model(4);
        assert_eq!(m.kv_bytes_per_token(), 57_344);
        // 1, 2 or 4 ranks split the 4 heads: together they hold the model's KV.
        for tp in [1, 2, 4] {
            assert_eq!(m.kv_bytes_per_token_over_ranks(tp), 57_344, "tp {tp}");
        }
        // 8 ranks hold one head each (vLLM replicates): twice the model's KV over the ranks.
        assert_eq!(m.kv_bytes_per_token_over_ranks(8), 2 * 57_344);
        assert_eq!(model(8).kv_bytes_per_token_over_ranks(8), model(8).kv_bytes_per_token());
        assert_eq!(model(2).kv_bytes_per_token_over_ranks(4), 2 * model(2).kv_bytes_per_token());
        assert_eq!(m.kv_bytes_per_token_over_ranks(0), 57_344, "a TP of 0 is taken as 1");
    }
}
