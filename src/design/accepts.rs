//! What a real server accepts, checked before anything starts: every declared
//! setting reaches a command, every pattern's commands render, each prompt
//! and its output fit `max_model_len`, the KV cache holds one request, the
//! start-up fits the health timeout, and the instance's fabric can do the
//! backend. The figures come from the model and instance catalogues.

use super::commands;
use super::render::RenderVars;
use super::topology::{Role, Topology};
use super::{Campaign, Category, Pattern, Resolver};
use crate::check::build::collect_free_names;
use crate::check::value::Value;
use crate::check::Model;
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::ExprKind;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Settings nixl itself reads rather than passing to a command.
/// (`tp` also sizes the KV cache per GPU in the plan.)
const READ_BY_NIXL: &[&str] = &[
    "version",
    "tp",
    "health_timeout",
    "startup_unified",
    "startup_disaggregated",
    "max_failed_requests",
    "slo",
    "replicate",
    "probe",
    // The launch's layout (`topology.rs`).
    "prefill_nodes",
    "decode_nodes",
    "prefill_tp",
    "decode_tp",
    "replicas",
];

/// Names a template set reads, including the attribute names of an `args` table.
pub fn names_read(templates: &super::Templates) -> BTreeSet<String> {
    let mut ids = vec![];
    for (key, e) in templates {
        if key == "args" {
            if let ExprKind::Record(fields) = &e.kind {
                field_names(fields, &mut ids);
            }
            continue;
        }
        collect_free_names(e, &mut ids);
    }
    ids.into_iter().map(|i| i.name).collect()
}

fn field_names(fields: &[crate::syntax::ast::Field], out: &mut Vec<crate::syntax::ast::Ident>) {
    out.extend(fields.iter().map(|f| f.name.clone()));
}

/// The names the server's start commands read: a change of any of them is a new server.
pub fn server_command_names(campaign_server: &super::Templates) -> BTreeSet<String> {
    let starts: super::Templates = campaign_server
        .iter()
        .filter(|(k, _)| k.starts_with("start_") || k.as_str() == "args")
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    names_read(&starts)
}

pub fn check(model: &Model, campaign: &Campaign, diags: &mut Vec<Diagnostic>) {
    if campaign.experiment.server_def.is_none() {
        return;
    }
    unused_settings(model, campaign, diags);
    let resolver = Resolver::new(model, campaign);
    let nodes = campaign.stack.as_ref().map_or(2, |s| s.nodes.len());
    let vars = RenderVars::placeholders(nodes, ".").with_model(campaign.design.model.as_ref());
    let mut context = ContextReport::default();
    let context_checked = names_read(&campaign.server).contains("max_model_len");
    let mut fit_reported = false;
    let mut rendered_groups = HashSet::new();
    let mut rendered_bench = HashSet::new();
    let bench_names = names_read(&campaign.bench);
    let mut hardware_reported = HashSet::new();
    let shared = &campaign.experiment.settings;
    for p in campaign.design.patterns.iter().filter(|p| p.category == Category::E2e) {
        let settings = Settings { own: resolver.own_settings(p), shared };
        if context_checked {
            context.add(campaign, p, &settings);
        }
        if !fit_reported {
            if let Some(d) = kv_fit(model, campaign, p, &settings) {
                fit_reported = true;
                diags.push(d);
            }
        }
        if let Some(g) = p.group {
            if rendered_groups.insert(g) {
                render_server(model, campaign, p, &settings.all(), &vars, diags);
                hardware_e2e(model, campaign, p, &settings, &mut hardware_reported, diags);
                startup_over_health(campaign, p, g, &settings, diags);
                topology_fits(model, campaign, p, &settings.all(), diags);
            }
        }
        let key: Vec<String> = bench_names.iter().map(|n| settings.get(n).map(Value::display).unwrap_or_default()).collect();
        if rendered_bench.insert(key) {
            let extra = [("out", Value::Str("results/x.json".into())), ("id", Value::Str(p.id.to_string()))];
            if let Err(d) = commands::bench(model, campaign, &settings.all(), &vars, &extra) {
                diags.push(render_error(campaign, p, "bench `run`", *d));
            }
        }
    }
    diags.extend(context.diagnostics());
    hardware_steps(model, campaign, &mut hardware_reported, diags);
}

/// Every server or bench attribute and every factor must reach a command (or be one nixl reads).
fn unused_settings(model: &Model, campaign: &Campaign, diags: &mut Vec<Diagnostic>) {
    let exp = &campaign.experiment;
    let mut used = names_read(&campaign.server);
    used.extend(names_read(&campaign.bench));
    used.extend(READ_BY_NIXL.iter().map(|s| s.to_string()));
    let mut derived_names = vec![];
    for d in exp.derived.iter().chain(exp.layers.iter().flat_map(|l| l.derived.iter())) {
        collect_free_names(&d.expr, &mut derived_names);
    }
    for e in exp.layers.iter().flat_map(|l| l.fixed.values()) {
        collect_free_names(e, &mut derived_names);
    }
    used.extend(derived_names.into_iter().map(|i| i.name));
    let mut declared: Vec<(String, Span, &str)> = vec![];
    let server = exp.server_def.as_deref().unwrap_or("server");
    for def in [&exp.server_def, &exp.bench_def].into_iter().flatten() {
        for (name, span) in model.definition_attrs.get(def).into_iter().flatten() {
            declared.push((name.clone(), *span, def));
        }
    }
    for (name, span) in &exp.overrides {
        declared.push((name.clone(), *span, "the override"));
    }
    for f in &exp.factors {
        declared.push((f.name.clone(), f.span, "factor"));
    }
    let mut seen = HashSet::new();
    for (name, span, owner) in declared {
        if used.contains(&name) || !seen.insert((name.clone(), span)) {
            continue;
        }
        let help = if owner == "factor" {
            "use the factor in a command or a `set`, or remove it: as it is, its levels would measure the same thing".to_string()
        } else {
            format!(
                "pass it to vLLM through the `args` table of server `{server}` (`{name} = \"--{}\"`), use it in a command, or remove it",
                name.replace('_', "-")
            )
        };
        diags.push(
            Diagnostic::error(Code::UnusedSetting, span, format!("`{name}` reaches no command"))
                .label(format!("set in {owner}, but no server, bench or args entry uses it"))
                .help(help)
                .subject(&name),
        );
    }
}

fn num(settings: &Settings, name: &str) -> Option<f64> {
    settings.get(name).and_then(Value::as_f64)
}

/// A pattern's settings without copying the experiment's shared ones for every pattern
/// (this runs for every pattern of every `nixl check`): its own first, then the shared.
struct Settings<'a> {
    own: BTreeMap<String, Value>,
    shared: &'a BTreeMap<String, Value>,
}

impl Settings<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.own.get(name).or_else(|| self.shared.get(name))
    }

    /// Every setting, for rendering a command.
    fn all(&self) -> BTreeMap<String, Value> {
        let mut out = self.shared.clone();
        out.extend(self.own.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// Where a setting of a pattern's layer or experiment is written, for the diagnostic's span.
fn setting_span(campaign: &Campaign, p: &Pattern, name: &str) -> Span {
    let exp = &campaign.experiment;
    let layer = exp.layers.get(p.layer as usize);
    if let Some(e) = layer.and_then(|l| l.fixed.get(name)) {
        return e.span;
    }
    let derived = layer.into_iter().flat_map(|l| l.derived.iter()).chain(exp.derived.iter());
    if let Some(d) = derived.into_iter().find(|d| d.name == name) {
        return d.expr.span;
    }
    if let Some((_, s)) = exp.overrides.iter().rev().find(|(n, _)| n == name) {
        return *s;
    }
    if let Some(f) = exp.factors.iter().find(|f| f.name == name) {
        return f.span;
    }
    exp.span
}

/// Prompt plus output tokens against `max_model_len` (vLLM answers 400 to a request
/// that does not fit), gathered per place the length is set: one diagnostic each,
/// naming the pattern that needs the most.
#[derive(Default)]
struct ContextReport {
    over: Vec<Over>,
}

/// Patterns that do not fit, for one place max_model_len is set (or not) and one value of it.
struct Over {
    span: Span,
    len: Option<u64>,
    /// The largest need, its pattern, prompt and output tokens.
    need: u64,
    id: String,
    prompt: u64,
    output: u64,
    patterns: usize,
}

impl ContextReport {
    fn add(&mut self, campaign: &Campaign, p: &Pattern, settings: &Settings) {
        let Some(prompt) = num(settings, "prompt") else { return };
        let output = num(settings, "max_tokens").unwrap_or(0.0);
        let need = (prompt + output).ceil() as u64;
        let len = num(settings, "max_model_len");
        if len.is_some_and(|l| need as f64 <= l) {
            return;
        }
        let (span, len) = (setting_span(campaign, p, "max_model_len"), len.map(|l| l as u64));
        let i = match self.over.iter().position(|o| o.span == span && o.len == len) {
            Some(i) => i,
            None => {
                self.over.push(Over { span, len, need: 0, id: String::new(), prompt: 0, output: 0, patterns: 0 });
                self.over.len() - 1
            }
        };
        let o = &mut self.over[i];
        o.patterns += 1;
        if need > o.need {
            (o.need, o.id, o.prompt, o.output) = (need, p.id.to_string(), prompt as u64, output as u64);
        }
    }

    fn diagnostics(self) -> Vec<Diagnostic> {
        let more = |n: usize| if n > 1 { format!(" (and {} more patterns)", n - 1) } else { String::new() };
        self.over
            .into_iter()
            .map(|o| match o.len {
                Some(len) => Diagnostic::error(
                    Code::ContextLength,
                    o.span,
                    format!(
                        "{} needs {} tokens ({} prompt + {} output) but max_model_len is {len}{}",
                        o.id,
                        o.need,
                        o.prompt,
                        o.output,
                        more(o.patterns)
                    ),
                )
                .label("vLLM rejects every request of these patterns")
                .help(format!("raise max_model_len to at least {}", o.need)),
                None => Diagnostic::error(
                    Code::ContextLength,
                    o.span,
                    format!("no max_model_len for {}{}: its requests need {} tokens", o.id, more(o.patterns), o.need),
                )
                .label("the server's context length is not set")
                .help(format!("set `max_model_len` to at least {} (the largest prompt plus max_tokens)", o.need)),
            })
            .collect()
    }
}

/// The KV cache left after the weights must hold at least one request of the prompt.
fn kv_fit(model: &Model, campaign: &Campaign, p: &Pattern, settings: &Settings) -> Option<Diagnostic> {
    let m = campaign.design.model.as_ref()?;
    let stack = campaign.stack.as_ref()?;
    let inst = stack.instance_types.first().and_then(|t| model.instances.get(t))?;
    // The smallest server of the launch binds: a TP-2 decode server holds less than the TP-4 prefill.
    let tp = num(settings, "tp").unwrap_or(inst.gpus as f64);
    let tp = ["prefill_tp", "decode_tp", "tp"].iter().filter_map(|n| num(settings, n)).fold(tp, f64::min);
    let util = num(settings, "gpu_memory_utilization").unwrap_or(0.9);
    let weights = m.params * m.dtype_bytes() as f64;
    let free = tp * inst.gpu_memory * util - weights;
    let tokens = num(settings, "prompt")? + num(settings, "max_tokens").unwrap_or(0.0);
    let need = tokens * m.kv_bytes_per_token() as f64;
    if m.params <= 0.0 || need <= free {
        return None;
    }
    let gb = |b: f64| format!("{:.1} GB", b / 1e9);
    Some(
        Diagnostic::error(
            Code::KvCacheFit,
            setting_span(campaign, p, "prompt"),
            format!("{}: one request needs {} of KV cache, about {} is left", p.id, gb(need), gb(free.max(0.0))),
        )
        .label(format!("{} GPUs x {} x {util} utilisation, minus {} of weights", tp as u32, gb(inst.gpu_memory), gb(weights)))
        .help("vLLM would refuse to start: raise tp or gpu_memory_utilization, or lower the prompt"),
    )
}

/// A launch whose start-up estimate exceeds its health timeout fails before it is up
/// (checked on its first pattern, in the one pass over the patterns).
fn startup_over_health(campaign: &Campaign, p: &Pattern, group: u32, settings: &Settings, diags: &mut Vec<Diagnostic>) {
    let Some(startup) = campaign.design.startup.get(group as usize) else { return };
    let Some(limit) = num(settings, "health_timeout") else { return };
    if *startup > limit {
        let span = campaign.experiment.startup.as_ref().map(|e| e.span).unwrap_or(campaign.experiment.span);
        diags.push(
            Diagnostic::error(
                Code::StartupOverHealth,
                span,
                format!(
                    "launch of {} is estimated to start in {} but the health timeout is {}",
                    p.id,
                    crate::check::value::fmt_duration(*startup),
                    crate::check::value::fmt_duration(limit)
                ),
            )
            .label("apply would give up before the server is up")
            .help("raise `health_timeout` for these launches, or check the estimate"),
        );
    }
}

/// A launch's layout the stack can run (`topology.rs`): whole numbers of servers, each
/// role's TP within one node's GPUs (a server runs on one node), a proxy for replicas.
fn topology_fits(
    model: &Model,
    campaign: &Campaign,
    p: &Pattern,
    settings: &BTreeMap<String, Value>,
    diags: &mut Vec<Diagnostic>,
) {
    let error = |name: &str, message: String, label: String, help: &str| {
        Diagnostic::error(Code::Topology, setting_span(campaign, p, name), message).label(label).help(help.to_string())
    };
    for name in ["prefill_nodes", "decode_nodes", "replicas"] {
        let Some(v) = settings.get(name).and_then(Value::as_f64) else { continue };
        if v < 1.0 || v.fract() != 0.0 {
            diags.push(error(
                name,
                format!("{}: {name} = {v} is not a number of nodes", p.id),
                "each server runs on a node of its own".into(),
                "use a whole number, 1 or more",
            ));
        }
    }
    let topo = Topology::of(settings);
    let gpus =
        campaign.stack.as_ref().and_then(|s| s.instance_types.first()).and_then(|t| model.instances.get(t).map(|i| (t, i.gpus)));
    if let Some((instance, gpus)) = gpus {
        let roles: &[(Role, &str)] = match topo.mode {
            crate::check::model::Mode::Unified => &[(Role::Unified, "tp")],
            crate::check::model::Mode::Disaggregated => &[(Role::Prefill, "prefill_tp"), (Role::Decode, "decode_tp")],
        };
        for (role, name) in roles {
            let Some(tp) = topo.tp_of(*role).filter(|tp| *tp > gpus as f64) else { continue };
            let name = if settings.get(*name).is_some_and(|v| *v != Value::None) { name } else { "tp" };
            diags.push(error(
                name,
                format!("{}: the {} servers need {tp} GPUs each, a {instance} node has {gpus}", p.id, role.as_str()),
                format!("a server runs on one node (`{name}` = {tp})"),
                "lower the TP to the node's GPUs and add servers (prefill_nodes, decode_nodes, replicas) instead, or choose an instance type with more GPUs",
            ));
        }
    }
    if topo.replicas > 1 && topo.mode == crate::check::model::Mode::Unified && !campaign.server.contains_key("start_proxy") {
        diags.push(error(
            "replicas",
            format!(
                "{}: {} unified replicas need a proxy in front, and server `{}` has no `start_proxy`",
                p.id,
                topo.replicas,
                campaign.experiment.server_def.as_deref().unwrap_or("server")
            ),
            "the benchmark would reach one replica only".into(),
            "add a `start_proxy` command to the server definition (std/vllm has one), or remove `replicas`",
        ));
    }
}

/// The instance types whose EFA has no RDMA read/write (g6e): NIXL's LIBFABRIC backend cannot run there.
fn without_rdma<'c>(model: &Model, campaign: &'c Campaign) -> Option<&'c str> {
    let stack = campaign.stack.as_ref()?;
    stack.instance_types.iter().find(|t| model.instances.get(*t).is_some_and(|i| !i.rdma)).map(String::as_str)
}

fn libfabric_error(p: &Pattern, span: Span, instance: &str) -> Diagnostic {
    Diagnostic::error(Code::Hardware, span, format!("{} uses NIXL's LIBFABRIC backend, which {instance} cannot run", p.id))
        .label(format!("{instance} has EFA without RDMA read/write (rdma = false in std/aws)"))
        .help("use backend = ucx (UCX emulates RMA over SRD), or an instance type with RDMA")
}

/// A disaggregated launch on LIBFABRIC (checked once per launch: the backend is in its restart key).
fn hardware_e2e(
    model: &Model,
    campaign: &Campaign,
    p: &Pattern,
    settings: &Settings,
    reported: &mut HashSet<u32>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(instance) = without_rdma(model, campaign) else { return };
    let disaggregated = settings.get("mode").and_then(Value::as_str) == Some("disaggregated");
    let libfabric = settings.get("backend").and_then(Value::as_str) == Some("libfabric");
    if p.adhoc || !disaggregated || !libfabric || !reported.insert(p.layer) {
        return;
    }
    diags.push(libfabric_error(p, setting_span(campaign, p, "backend"), instance));
}

/// A scheduled tool step on LIBFABRIC (nixlbench, or kvbench whose profile runs it):
/// any step whose `backend` parameter says so, whatever the tool's name.
fn hardware_steps(model: &Model, campaign: &Campaign, reported: &mut HashSet<u32>, diags: &mut Vec<Diagnostic>) {
    let Some(instance) = without_rdma(model, campaign) else { return };
    for p in campaign.design.scheduled().filter(|p| p.tool().is_some()) {
        let libfabric = p.values().get("backend").and_then(Value::as_str) == Some("libfabric");
        if libfabric && reported.insert(p.layer) {
            diags.push(libfabric_error(p, p.span, instance));
        }
    }
}

fn render_server(
    model: &Model,
    campaign: &Campaign,
    p: &Pattern,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    diags: &mut Vec<Diagnostic>,
) {
    let r = commands::server_start(model, campaign, settings, vars)
        .and_then(|_| commands::server_ready(model, campaign, settings, vars))
        .and_then(|_| commands::server_stop(model, campaign, vars, None));
    if let Err(d) = r {
        diags.push(render_error(campaign, p, "server commands", *d));
    }
}

fn render_error(campaign: &Campaign, p: &Pattern, what: &str, d: Diagnostic) -> Diagnostic {
    let mut out = Diagnostic::error(Code::Render, campaign.experiment.span, format!("the {what} of {} cannot be rendered", p.id))
        .label(format!("apply would fail here: {}", d.message))
        .help(d.help.clone().unwrap_or_else(|| "set the missing value in the experiment, a layer or the definition".into()));
    if d.primary.span != Span::default() {
        out = out.with(d.primary.span, d.message.clone());
    }
    out
}
