//! Builds the typed model from validated blocks and checks domains: the
//! instance catalogue, zones within the region, references between blocks.

use super::cidr::{Cidr, CidrError};
use super::model::*;
use super::value::Value;
use super::Globals;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, FileId, OrHelp, Span};
use crate::syntax::ast::{self, Block, StmtKind};
use std::collections::BTreeMap;

mod experiment;
mod names;
mod regions;
mod setup;

use experiment::build_experiment;
pub use names::{check_template_names, collect_free_names};
use setup::build_setup;

/// Attribute expressions of a block by name (the first one when set twice).
fn attrs(b: &Block) -> BTreeMap<&str, &ast::Expr> {
    let mut m = BTreeMap::new();
    for s in &b.body {
        if let StmtKind::Attr(id, e) = &s.kind {
            m.entry(id.name.as_str()).or_insert(e);
        }
    }
    m
}

fn label(b: &Block) -> (String, Span) {
    b.name().map(|l| (l.text().to_string(), l.span())).unwrap_or_else(|| (String::new(), b.kind.span))
}

struct Ctx<'g, 'a> {
    g: &'g Globals<'a>,
    diags: &'g mut Vec<Diagnostic>,
}

impl Ctx<'_, '_> {
    fn value(&mut self, b: &Block, name: &str) -> Option<Value> {
        let e = attrs(b).get(name).copied()?;
        self.g.eval(e).ok()
    }
    fn expr(&self, b: &Block, name: &str) -> Option<ast::Expr> {
        attrs(b).get(name).map(|e| (*e).clone())
    }
    fn str(&mut self, b: &Block, name: &str) -> Option<String> {
        // An enumeration literal stands for itself even where a definition shares its name.
        if let Some(id) = attrs(b).get(name).and_then(|e| e.as_name()) {
            if super::value::SYMBOLS.contains(&id.name.as_str()) {
                return Some(id.name.clone());
            }
        }
        match self.value(b, name)? {
            Value::Str(s) | Value::Sym(s) => Some(s),
            _ => None,
        }
    }
    fn num(&mut self, b: &Block, name: &str) -> Option<f64> {
        self.value(b, name)?.as_f64()
    }
    fn bool(&mut self, b: &Block, name: &str) -> Option<bool> {
        self.value(b, name)?.as_bool()
    }
    fn strs(&mut self, b: &Block, name: &str) -> Vec<String> {
        match self.value(b, name) {
            Some(Value::List(items)) => items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Some(Value::Str(s)) => vec![s],
            _ => vec![],
        }
    }
    /// A shell attribute of a top-level block, one script per item of a list, with every value
    /// it interpolates quoted (`check::shell`); one that does not evaluate gives nothing (its error
    /// is reported where it is evaluated as a value).
    fn commands(&mut self, b: &Block, name: &str) -> Vec<String> {
        let Some(e) = attrs(b).get(name).copied() else { return vec![] };
        let ev = super::value::Eval { scope: self.g, kv_bytes_per_token: None };
        setup::commands(&super::shell::Renderer { eval: &ev }, e, &mut vec![])
    }
    fn span_of(&self, b: &Block, name: &str) -> Span {
        attrs(b).get(name).map(|e| e.span).unwrap_or(b.kind.span)
    }
}

pub fn build(g: &Globals, files: &[(FileId, ast::File)], model: &mut Model, diags: &mut Vec<Diagnostic>) {
    let mut cx = Ctx { g, diags };
    let blocks: Vec<&Block> = files
        .iter()
        .flat_map(|(_, f)| f.items.iter())
        .filter_map(|s| match &s.kind {
            StmtKind::Block(b) => Some(b),
            _ => None,
        })
        .collect();
    // Catalogue entries first: stacks and experiments are checked against them.
    for b in &blocks {
        let (name, span) = label(b);
        match b.kind.name.as_str() {
            "instance" => {
                let inst = Instance {
                    gpu: cx.str(b, "gpu").unwrap_or_default(),
                    gpus: cx.num(b, "gpus").unwrap_or(0.0) as u32,
                    gpu_memory: cx.num(b, "gpu_memory").unwrap_or(0.0),
                    efa: cx.bool(b, "efa").unwrap_or(false),
                    efa_bandwidth: cx.num(b, "efa_bandwidth"),
                    rdma: cx.bool(b, "rdma").unwrap_or(false),
                    price_per_hour: cx.num(b, "price").unwrap_or(0.0),
                    spot_price_per_hour: cx.num(b, "spot_price"),
                    volume: cx.num(b, "volume").unwrap_or(0.0),
                    name: name.clone(),
                    span,
                };
                model.instances.insert(name, inst);
            }
            "region" => {
                let zones = cx.strs(b, "zones");
                model.regions.insert(name, zones);
            }
            "model" => {
                let m = LlmModel {
                    hf_id: cx.str(b, "hf_id").unwrap_or_default(),
                    layers: cx.num(b, "layers").unwrap_or(0.0) as u32,
                    kv_heads: cx.num(b, "kv_heads").unwrap_or(0.0) as u32,
                    head_dim: cx.num(b, "head_dim").unwrap_or(0.0) as u32,
                    // The schema admits only the symbols of `Dtype`; the default is bf16.
                    dtype: cx.str(b, "dtype").and_then(|s| Dtype::from_symbol(&s)).unwrap_or(Dtype::Bf16),
                    max_position_embeddings: cx.num(b, "max_position_embeddings").unwrap_or(0.0) as u32,
                    params: cx.num(b, "params").unwrap_or(0.0),
                    name: name.clone(),
                    span,
                };
                model.models.insert(name, m);
            }
            "service" => {
                let s = Service {
                    run: cx.commands(b, "run"),
                    health: cx.commands(b, "health").pop(),
                    port: cx.num(b, "port").map(|p| p as u32),
                    name: name.clone(),
                    span,
                };
                model.services.insert(name, s);
            }
            "tool" => {
                let tool = build_tool(&mut cx, b, name.clone(), span);
                model.tools.insert(name, tool);
            }
            "server" | "bench" => {
                let keys = [
                    "args",
                    "start_unified",
                    "start_prefill",
                    "start_decode",
                    "start_proxy",
                    "health",
                    "metrics",
                    "transport_counters",
                    "gpu_memory",
                    "stop",
                    "run",
                ];
                let t: BTreeMap<String, ast::Expr> =
                    attrs(b).into_iter().filter(|(k, _)| keys.contains(k)).map(|(k, e)| (k.to_string(), e.clone())).collect();
                let settings =
                    attrs(b).into_iter().filter(|(k, _)| !keys.contains(k)).map(|(k, e)| (k.to_string(), e.span)).collect();
                model.definition_attrs.insert(name.clone(), settings);
                model.templates.insert(name, t);
            }
            _ => {}
        }
    }
    for b in &blocks {
        let (name, span) = label(b);
        match b.kind.name.as_str() {
            "setup" => {
                let s = build_setup(&mut cx, b, name, span);
                model.setups.push(s);
            }
            "stack" => {
                let s = build_stack(&mut cx, b, name, span, model);
                model.stacks.push(s);
            }
            "experiment" => {
                let e = build_experiment(&mut cx, b, name, span, model);
                model.experiments.push(e);
            }
            _ => {}
        }
    }
    experiment::check_layer_overrides(model, cx.diags);
    let late = g.take_errors();
    cx.diags.extend(late);
}

/// Names a command template may use besides the tool's params.
pub const RENDER_VARS: &[&str] = &["peer", "self_ip", "out", "node", "etcd"];

fn build_tool(cx: &mut Ctx, b: &Block, name: String, span: Span) -> Tool {
    let params = match cx.value(b, "params") {
        Some(Value::Record(m)) => m,
        _ => BTreeMap::new(),
    };
    let nodes = cx.num(b, "nodes").unwrap_or(1.0) as u32;
    let a = attrs(b);
    if nodes == 2 && (!a.contains_key("server") || !a.contains_key("client")) {
        cx.diags.push(
            Diagnostic::error(
                Code::MissingAttribute,
                b.kind.span,
                format!("two-node tool `{name}` needs `server` and `client` commands"),
            )
            .help("the server runs on the first node, the client on the second with `{peer}` set to the server's IP"),
        );
    }
    if nodes == 1 && !a.contains_key("run") {
        cx.diags.push(
            Diagnostic::error(Code::MissingAttribute, b.kind.span, format!("one-node tool `{name}` needs a `run` command"))
                .help("add `run = \"...\"`"),
        );
    }
    if nodes > 2 {
        cx.diags.push(Diagnostic::error(Code::Domain, cx.span_of(b, "nodes"), format!("`nodes` must be 1 or 2, found {nodes}")));
    }
    // Templates may only name params and render variables.
    let mut allowed: Vec<String> = params.keys().cloned().collect();
    allowed.extend(RENDER_VARS.iter().map(|s| s.to_string()));
    for key in ["slug", "run", "server", "client"] {
        if let Some(e) = a.get(key) {
            check_template_names(e, &allowed, cx.diags);
        }
    }
    Tool {
        // Required by the schema; a missing or unknown kind is reported there.
        kind: cx.str(b, "kind").and_then(|s| ToolKind::from_symbol(&s)).unwrap_or(ToolKind::LowLevel),
        nodes,
        slug: cx.expr(b, "slug").unwrap_or(ast::Expr { kind: ast::ExprKind::Str(vec![]), span }),
        duration: cx.num(b, "duration").unwrap_or(0.0),
        run: cx.expr(b, "run"),
        server: cx.expr(b, "server"),
        client: cx.expr(b, "client"),
        result_on_server: cx.str(b, "result").as_deref() == Some("server"),
        // Checked against ToolParser::NAMES by the schema.
        parser: cx.str(b, "parser").and_then(|s| ToolParser::from_symbol(&s)),
        params,
        needs: cx.strs_of_names(b, "needs"),
        metrics: cx.strs(b, "metrics"),
        name,
        span,
    }
}

impl Ctx<'_, '_> {
    fn strs_of_names(&self, b: &Block, name: &str) -> Vec<String> {
        match attrs(b).get(name).map(|e| &e.kind) {
            Some(ast::ExprKind::List(items)) => items.iter().filter_map(|i| i.as_name().map(|n| n.name.clone())).collect(),
            _ => vec![],
        }
    }
}

fn build_stack(cx: &mut Ctx, b: &Block, name: String, span: Span, model: &Model) -> Stack {
    let regions = regions::regions(cx, b, model);
    let (region, zones) = regions.first().map(|r| (r.region.clone(), r.zones.clone())).unwrap_or_default();
    if let (Some(_), true) = (attrs(b).get("ami"), regions.len() > 1 && regions.iter().any(|r| r.ami.is_none())) {
        cx.diags.push(
            Diagnostic::error(Code::Domain, cx.span_of(b, "ami"), "an AMI id belongs to one region, and the stack lists several")
                .help("give each entry of `regions` its own `ami`, or name the AMI with `ami_parameter`, which resolves in every region"),
        );
    }
    let instance_types = cx.strs(b, "instance_type");
    let itype_span = cx.span_of(b, "instance_type");
    if instance_types.is_empty() && attrs(b).contains_key("instance_type") {
        cx.diags.push(Diagnostic::error(Code::Type, itype_span, "`instance_type` must be a string or a list of strings"));
    }
    let mut node_names: BTreeMap<String, Span> = BTreeMap::new();
    let mut nodes = vec![];
    let mut buckets = vec![];
    let mut versioned = false;
    for s in &b.body {
        if let StmtKind::Block(c) = &s.kind {
            let (cname, cspan) = label(c);
            match c.kind.name.as_str() {
                "node" => {
                    if let Some(prev) = node_names.insert(cname.clone(), cspan) {
                        cx.diags.push(
                            Diagnostic::error(Code::Duplicate, cspan, format!("node `{cname}` is defined twice"))
                                .with(prev, "first defined here")
                                .help("node names must be unique in a stack"),
                        );
                    }
                    nodes.push(Node { role: cx.str(c, "role"), name: cname, span: cspan });
                }
                "bucket" => {
                    versioned |= cx.bool(c, "versioned").unwrap_or(false);
                    buckets.push(cname);
                }
                _ => {}
            }
        }
    }
    let broken = b.body.iter().any(|s| matches!(s.kind, StmtKind::Error(_)));
    if nodes.is_empty() && !broken {
        cx.diags.push(
            Diagnostic::error(Code::MissingAttribute, b.kind.span, format!("stack `{name}` has no nodes"))
                .help("add `node \"node1\" {}` (and `node \"node2\" {}` for disaggregated serving)"),
        );
    }
    // Instance types must be in the catalogue and support EFA when EFA is asked for.
    let efa = cx.bool(b, "efa").unwrap_or(true);
    if model.instances.is_empty() && !instance_types.is_empty() {
        cx.diags.push(
            Diagnostic::error(
                Code::Domain,
                itype_span,
                "no instance catalogue is loaded, so the instance type cannot be checked",
            )
            .help("add `import \"std/aws\"`"),
        );
    }
    for t in &instance_types {
        if model.instances.is_empty() {
            break;
        }
        match model.instances.get(t) {
            None => {
                let mut d = Diagnostic::error(Code::Domain, itype_span, format!("instance type `{t}` is not in the catalogue"));
                d = d.help(
                    did_you_mean(t, model.instances.keys().map(String::as_str))
                        .or_help(|| "see std/aws for the EFA-capable GPU types, or add an `instance` block".into()),
                );
                cx.diags.push(d);
            }
            Some(i) if efa && !i.efa => cx.diags.push(
                Diagnostic::error(Code::Domain, itype_span, format!("instance type `{t}` does not support EFA"))
                    .help("choose an EFA-capable type or set `efa = false`"),
            ),
            _ => {}
        }
    }
    if let (Some(reason), true) = (capacity_bound(cx, b), markets(cx, b).contains(&Market::Spot)) {
        cx.diags.push(
            Diagnostic::error(Code::Domain, cx.span_of(b, "market"), format!("spot nodes cannot launch into {reason}"))
                .label("spot declared here")
                .help("EC2 launches reserved capacity on demand only: remove `spot` from `market`, or the reservation"),
        );
    }
    let volume = cx
        .num(b, "volume")
        .unwrap_or_else(|| instance_types.first().and_then(|t| model.instances.get(t)).map(|i| i.volume).unwrap_or(200e9));
    let ssh_reason = cx.str(b, "ssh_reason").filter(|r| !r.trim().is_empty());
    let ssh_cidr = ssh_cidr(cx, b, ssh_reason.is_some());
    if let (Some(c), Some(_)) = (ssh_cidr.filter(Cidr::is_world), &ssh_reason) {
        cx.diags.push(world_open_warning(c, cx.span_of(b, "ssh_cidr"), cx.span_of(b, "ssh_reason")));
    }
    Stack {
        region,
        zones,
        regions,
        placement: cx.str(b, "placement").and_then(|s| Placement::from_symbol(&s)).unwrap_or(Placement::Cluster),
        volume,
        efa,
        ami: cx.str(b, "ami"),
        ami_parameter: cx.str(b, "ami_parameter"),
        subnet: cx.str(b, "subnet"),
        ssh_cidr,
        ssh_reason,
        kms_key: cx.str(b, "kms_key"),
        versioned,
        capacity_reservation: cx.str(b, "capacity_reservation"),
        capacity_block: cx.bool(b, "capacity_block").unwrap_or(false),
        markets: markets(cx, b),
        setup: attrs(b).get("setup").and_then(|e| e.as_name()).map(|i| i.name.clone()),
        retry_interval: cx.num(b, "retry_interval").unwrap_or(30.0),
        instance_types,
        nodes,
        buckets,
        name,
        span,
        spans: attrs(b).iter().map(|(k, e)| (k.to_string(), e.span)).collect(),
    }
}

/// W0210: a world-open rule with its reason is allowed, but every check says what it opens, so
/// a workshop's exception does not quietly outlive the workshop.
fn world_open_warning(c: Cidr, cidr_span: Span, reason_span: Span) -> Diagnostic {
    let family = if c.is_v6() { "IPv6" } else { "IPv4" };
    Diagnostic::error(
        Code::WorldOpenSsh,
        cidr_span,
        format!("`ssh_cidr = \"{c}\"` opens SSH (port 22 of every node) to every {family} address on the internet"),
    )
    .label(format!("any {family} host may try to log in to the nodes"))
    .with(reason_span, "allowed for this reason")
    .help("narrow it to the addresses that need it (\"203.0.113.0/24\") once the reason no longer holds")
}

/// `ssh_cidr` as a CIDR block EC2 accepts (E0206 otherwise, with the block that was meant),
/// and open to the whole internet only with a stated `ssh_reason`.
fn ssh_cidr(cx: &mut Ctx, b: &Block, has_reason: bool) -> Option<Cidr> {
    let text = cx.str(b, "ssh_cidr")?;
    let span = cx.span_of(b, "ssh_cidr");
    let refuse = |message: String, help: String| Diagnostic::error(Code::Domain, span, message).help(help);
    match Cidr::parse(&text) {
        Ok(c) if c.is_world() && !has_reason => {
            cx.diags.push(refuse(
                format!("`ssh_cidr = \"{c}\"` opens SSH to the whole internet"),
                "narrow it to your own address (\"203.0.113.7/32\"), or say why it must be open in `ssh_reason = \"...\"`".into(),
            ));
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            let (message, help) = match e {
                CidrError::Syntax => (
                    format!("`{text}` is not a CIDR block"),
                    "write an address and a prefix length: \"203.0.113.7/32\" (IPv4) or \"2001:db8::/64\" (IPv6)".into(),
                ),
                CidrError::NoPrefix(one) => {
                    (format!("`{text}` has no prefix length"), format!("for this one address, write \"{one}\""))
                }
                CidrError::PrefixTooLong { bits } => {
                    (format!("the prefix of `{text}` is longer than the address"), format!("the prefix is at most /{bits}"))
                }
                CidrError::HostBits(net) => (
                    format!("`{text}` has address bits set past its prefix, which EC2 refuses"),
                    format!("the block it names is \"{net}\""),
                ),
            };
            cx.diags.push(refuse(message, help));
            None
        }
    }
}

/// The stack's markets in order of preference (`market = spot`, `market = [spot, on_demand]`),
/// on demand when it names none (its errors are the checker's).
fn markets(cx: &mut Ctx, b: &Block) -> Vec<Market> {
    let named = match cx.str(b, "market") {
        Some(one) => vec![one],
        None => cx.strs(b, "market"),
    };
    let mut markets: Vec<Market> = named.iter().filter_map(|m| Market::from_symbol(m)).collect();
    markets.dedup();
    if markets.is_empty() {
        markets.push(Market::OnDemand);
    }
    markets
}

/// The reserved capacity a stack launches into, if any: spot cannot use it.
fn capacity_bound(cx: &mut Ctx, b: &Block) -> Option<&'static str> {
    if cx.str(b, "capacity_reservation").is_some() {
        Some("a capacity reservation (`capacity_reservation`)")
    } else if cx.bool(b, "capacity_block") == Some(true) {
        Some("a capacity block (`capacity_block`)")
    } else {
        None
    }
}
