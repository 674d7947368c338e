//! The exact scripts a campaign sends to its nodes: a launch's server starts,
//! the on-node readiness watch, the stop, and a pattern's benchmark or tool
//! commands. Apply runs these, `nixl show --commands` prints them, and check
//! renders them for every pattern, so a template apply could not render is a
//! diagnostic before anything starts.

use super::render::{self, RenderVars};
use super::topology::{Role, Server, Topology};
use super::{Campaign, Pattern};
use crate::check::model::{Mode, Tool};
use crate::check::value::Value;
use crate::check::Model;
use crate::diagnostics::Diagnostic;
use crate::syntax::ast::{Expr, ExprKind};
use std::collections::{BTreeMap, BTreeSet};

/// One script and the node (index in the stack's node list) it runs on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Script {
    pub node: usize,
    /// What it is: `unified`, `prefill`, `decode`, `proxy`, `ready`, `stop`, `bench`, or a tool role.
    pub role: String,
    pub body: String,
}

/// Lines whose appearance in a server log means the launch has failed: each
/// taken from a genuine vLLM log (fixtures/tool-outputs/vllm-logs).
pub const FATAL_LOG_LINES: &[&str] = &[
    "CUDA out of memory",
    "EngineCore failed to start",
    "Engine core initialization failed",
    "KV cache is needed, which is larger than the available KV cache memory",
    "No available memory for the cache blocks",
    "NIXL transfer failure",
    "engine ID mismatch",
    "Handshake failed",
    "unrecognized arguments",
    "ValidationError",
    "Traceback (most recent call last)",
];

/// The marker the start scripts touch: only logs and pid files newer than it belong to this launch.
const LAUNCH_MARKER: &str = ".nixl-launch";

/// `--flag value` for each attribute of the server's `args` table the settings give a value;
/// true and false become `--flag` and `--no-flag` (vLLM's boolean flags take both forms).
pub fn serve_args(args: Option<&Expr>, settings: &BTreeMap<String, Value>) -> String {
    let Some(Expr { kind: ExprKind::Record(fields), .. }) = args else { return String::new() };
    let mut out = String::new();
    for f in fields {
        let Some(flag) = f.value.as_plain_str() else { continue };
        match settings.get(&f.name.name) {
            None | Some(Value::None) => {}
            Some(Value::Bool(true)) => out += &format!(" {flag}"),
            Some(Value::Bool(false)) => out += &format!(" --no-{}", flag.trim_start_matches("--")),
            Some(v @ Value::Num(..)) => out += &format!(" {flag} {}", num_text(v)),
            Some(v) => out += &format!(" {flag} {}", render::shell_quote(&v.interpolated())),
        }
    }
    out
}

/// A number in its base unit, as a command line wants it: 32768, 0.9, 5000000000.
fn num_text(v: &Value) -> String {
    match v {
        Value::Num(x, _) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
        Value::Num(x, _) => format!("{x}"),
        other => other.interpolated(),
    }
}

/// The scope of a server or bench template for one set of settings.
fn scope_of(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut scope = render::scope(settings, model, vars);
    // Built as shell here, each value quoted: the start commands take it as it is.
    scope.insert("serve_args".into(), Value::Shell(serve_args(campaign.server.get("args"), settings)));
    scope
}

fn kv_of(campaign: &Campaign) -> Option<f64> {
    campaign.design.model.as_ref().map(|m| m.kv_bytes_per_token() as f64)
}

/// A template of the server or bench, rendered; a missing one is an error naming it.
fn render_one(
    templates: &super::Templates,
    definition: &'static str,
    key: &str,
    scope: &BTreeMap<String, Value>,
    kv: Option<f64>,
) -> Result<String, Box<Diagnostic>> {
    match templates.get(key) {
        Some(e) => render::template(e, scope, kv),
        None => Err(Box::new(Diagnostic::error(
            crate::diagnostics::Code::MissingAttribute,
            crate::diagnostics::Span::default(),
            format!("the {definition} definition has no `{key}` command"),
        ))),
    }
}

/// The settings that hold a server's port (each role's base; `topology.rs` counts up from it).
pub const PORT_SETTINGS: [&str; 4] = ["port", "prefill_port", "decode_port", "proxy_port"];

/// The mode a launch serves in, from its settings.
pub fn mode_of(settings: &BTreeMap<String, Value>) -> Mode {
    match settings.get("mode").and_then(Value::as_str).and_then(Mode::from_symbol) {
        Some(Mode::Disaggregated) => Mode::Disaggregated,
        _ => Mode::Unified,
    }
}

/// The scope of one server of a launch (`topology.rs`): its role's TP as `tp`, its own
/// address and port as its role's `*_ip` and `*_port`, `node_role`, the layout's counts, and
/// every server's address and port as lists (`prefill_hosts`, `prefill_ports`, `decode_hosts`,
/// `decode_ports`, `unified_hosts`, `unified_ports`) for the proxy.
fn server_scope(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    topo: &Topology,
    server: Server,
) -> BTreeMap<String, Value> {
    let mut own = settings.clone();
    let role_tp = match server.role {
        Role::Prefill => topo.prefill_tp,
        Role::Decode => topo.decode_tp,
        _ => None,
    };
    if let Some(tp) = role_tp {
        own.insert("tp".into(), Value::num(tp));
    }
    let mut v = vars.vars.clone();
    v.extend(layout_vars(settings, vars, topo));
    v.insert("node_role".into(), Value::Str(server.role.as_str().into()));
    match server.role {
        Role::Prefill => v.insert("prefill_ip".into(), Value::Str(vars.ip(server.node))),
        Role::Decode => v.insert("decode_ip".into(), Value::Str(vars.ip(server.node))),
        _ => None,
    };
    let port = match server.role {
        Role::Prefill => Some("prefill_port"),
        Role::Decode => Some("decode_port"),
        Role::Unified => Some("port"),
        Role::Proxy => None,
    };
    if let (Some(name), Some(p)) = (port, Topology::port(settings, server.role, server.index)) {
        v.insert(name.into(), Value::num(p));
    }
    scope_of(model, campaign, &own, &v)
}

/// The layout's counts and every server's address and port, as the templates read them.
fn layout_vars(settings: &BTreeMap<String, Value>, vars: &RenderVars, topo: &Topology) -> Vec<(String, Value)> {
    let mut out = vec![
        ("prefill_nodes".to_string(), Value::num(topo.prefill as f64)),
        ("decode_nodes".to_string(), Value::num(topo.decode as f64)),
        ("replicas".to_string(), Value::num(topo.replicas as f64)),
    ];
    for role in [Role::Prefill, Role::Decode, Role::Unified] {
        let servers: Vec<Server> = topo.servers(false).into_iter().filter(|s| s.role == role).collect();
        let hosts = servers.iter().map(|s| Value::Str(vars.ip(s.node))).collect();
        let ports = servers.iter().filter_map(|s| Topology::port(settings, role, s.index)).map(Value::num).collect();
        out.push((format!("{}_hosts", role.as_str()), Value::List(hosts)));
        out.push((format!("{}_ports", role.as_str()), Value::List(ports)));
    }
    out
}

/// Every role, for a launch that starts all its servers.
pub fn all_roles() -> BTreeSet<Role> {
    Role::ALL.into_iter().collect()
}

/// A launch's servers of the given roles, in start order.
fn servers_of(campaign: &Campaign, topo: &Topology, roles: &BTreeSet<Role>) -> Vec<Server> {
    topo.servers(campaign.server.contains_key("start_proxy")).into_iter().filter(|s| roles.contains(&s.role)).collect()
}

/// A launch's start scripts, one per server (`Topology::servers`), each on its node.
pub fn server_start(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    server_start_of(model, campaign, settings, vars, &all_roles())
}

/// The start scripts of a launch's servers of `roles` only (the others keep running).
pub fn server_start_of(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    roles: &BTreeSet<Role>,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    let topo = Topology::of(settings);
    let kv = kv_of(campaign);
    let mut out: Vec<Script> = vec![];
    for server in servers_of(campaign, &topo, roles) {
        let scope = server_scope(model, campaign, settings, vars, &topo, server);
        let body = render_one(&campaign.server, "server", &server.role.start_key(), &scope, kv)?;
        // The node's first script marks the launch; a second mark would hide the first's pid file.
        let first = !out.iter().any(|s| s.node == server.node);
        let body = if first { format!("touch {LAUNCH_MARKER}\n{body}") } else { body };
        out.push(Script { node: server.node, role: server.role.as_str().into(), body });
    }
    Ok(out)
}

/// The readiness watch, one per node that runs a server: one command that waits on
/// the node until the `health` check of each of its servers passes (rendered with
/// `node_role` and the server's port), and fails at once when a server process of this
/// launch has died or its log shows a fatal line, printing the last 40 log lines.
/// Exit codes: 3 died, 4 fatal line, 5 timed out.
pub fn server_ready(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    server_ready_of(model, campaign, settings, vars, &all_roles())
}

/// The readiness watches of a launch's servers of `roles` only.
pub fn server_ready_of(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    roles: &BTreeSet<Role>,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    let timeout = settings.get("health_timeout").and_then(Value::as_f64).unwrap_or(600.0).ceil() as u64;
    let mut checks: Vec<(usize, Vec<String>)> = vec![];
    for (_, script) in server_health(model, campaign, settings, vars, roles)? {
        let (node, health) = (script.node, script.body);
        match checks.iter_mut().find(|(n, _)| *n == node) {
            Some((_, hs)) if hs.contains(&health) => {}
            Some((_, hs)) => hs.push(health),
            None => checks.push((node, vec![health])),
        }
    }
    Ok(checks
        .into_iter()
        .map(|(node, hs)| Script { node, role: "ready".into(), body: watch_script(&hs.join(" && "), timeout) })
        .collect())
}

/// One `health` check per server of `roles` (rendered with its `node_role` and port), on
/// its node: how apply checks that servers kept from the launch before are still up.
pub fn server_health(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    roles: &BTreeSet<Role>,
) -> Result<Vec<(Role, Script)>, Box<Diagnostic>> {
    let topo = Topology::of(settings);
    let mut out = vec![];
    for server in servers_of(campaign, &topo, roles) {
        let scope = server_scope(model, campaign, settings, vars, &topo, server);
        let body = render_one(&campaign.server, "server", "health", &scope, kv_of(campaign))?;
        out.push((server.role, Script { node: server.node, role: "health".into(), body }));
    }
    Ok(out)
}

/// Every server's metrics read of `role` (prefill or decode), for a disaggregated pattern
/// whose server definition has a `metrics` command (rendered with that `node_role` and the
/// server's port); empty otherwise. Apply sums each role's reads (`results::telemetry::sample`
/// adds every line of a name), so the KV figures and guards are over all servers of a role.
pub fn server_metrics(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    role: Role,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    role_reads(model, campaign, settings, vars, role, "metrics")
}

/// The EFA and network-interface byte counters of every node serving `role` (prefill or
/// decode), read like `server_metrics` from the server definition's `transport_counters`
/// command and summed the same way: the KV leaves the prefill nodes and enters the decode ones.
pub fn transport_counters(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    role: Role,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    role_reads(model, campaign, settings, vars, role, "transport_counters")
}

/// The server definition's `gpu_memory` command, on the node whose GPUs hold the KV
/// cache the pattern fills: the decode server's, or the unified server's.
pub fn gpu_memory(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
) -> Result<Option<Script>, Box<Diagnostic>> {
    let role = match mode_of(settings) {
        Mode::Disaggregated => Role::Decode,
        Mode::Unified => Role::Unified,
    };
    first_server_read(model, campaign, settings, vars, role, "gpu_memory")
}

/// The `gpu_memory` read on every prefill and every decode server's node of a disaggregated
/// pattern, with the role each node serves (apply records each role's sum); empty otherwise.
pub fn role_gpu_memory(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
) -> Result<Vec<(Role, Script)>, Box<Diagnostic>> {
    if mode_of(settings) != Mode::Disaggregated || !campaign.server.contains_key("gpu_memory") {
        return Ok(vec![]);
    }
    let topo = Topology::of(settings);
    let servers = topo.servers(false).into_iter().filter(|s| matches!(s.role, Role::Prefill | Role::Decode));
    servers.map(|s| Ok((s.role, server_read(model, campaign, settings, vars, &topo, s, "gpu_memory")?))).collect()
}

/// A read on every `role` server's node of a disaggregated pattern, from the server
/// template `key`; empty for a unified pattern or a definition without the command.
fn role_reads(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    role: Role,
    key: &str,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    if mode_of(settings) != Mode::Disaggregated || !campaign.server.contains_key(key) {
        return Ok(vec![]);
    }
    let topo = Topology::of(settings);
    let servers = topo.servers(false).into_iter().filter(|s| s.role == role);
    servers.map(|server| server_read(model, campaign, settings, vars, &topo, server, key)).collect()
}

/// The server template `key` rendered for one server (its scope: the role's TP, address
/// and port), on that server's node. A failed read fails the script (`pipefail`), so a
/// filter cannot hide it.
fn server_read(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    topo: &Topology,
    server: Server,
    key: &str,
) -> Result<Script, Box<Diagnostic>> {
    let scope = server_scope(model, campaign, settings, vars, topo, server);
    let body = render_one(&campaign.server, "server", key, &scope, kv_of(campaign))?;
    Ok(Script { node: server.node, role: key.into(), body: format!("set -o pipefail\n{body}") })
}

/// The server template `key` rendered for the first server of `role` (its scope: the
/// role's TP, address and port), on that server's node. A failed read fails the script
/// (`pipefail`), so a filter cannot hide it.
fn first_server_read(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    role: Role,
    key: &str,
) -> Result<Option<Script>, Box<Diagnostic>> {
    if !campaign.server.contains_key(key) {
        return Ok(None);
    }
    let topo = Topology::of(settings);
    let Some(server) = topo.servers(false).into_iter().find(|s| s.role == role) else { return Ok(None) };
    server_read(model, campaign, settings, vars, &topo, server, key).map(Some)
}

/// The readiness watch of one node (see `server_ready`).
pub fn watch_script(health: &str, timeout: u64) -> String {
    // Most specific first: a traceback line comes before the error that explains it.
    let fatal = FATAL_LOG_LINES.iter().map(|l| render::shell_quote(l)).collect::<Vec<_>>().join(" ");
    let any = FATAL_LOG_LINES.iter().map(|l| format!("-e {}", render::shell_quote(l))).collect::<Vec<_>>().join(" ");
    format!(
        r#"# nixl: wait for this node's servers: health, live processes, fatal log lines
logs() {{ find . -maxdepth 1 -name '*.log' -newer {LAUNCH_MARKER} 2>/dev/null; }}
tail_logs() {{ for l in $(logs); do echo "==> $l <=="; tail -n 40 "$l"; done; }}
deadline=$((SECONDS + {timeout}))
while :; do
  if ( {health} ) >/dev/null 2>&1; then echo NIXL_READY; exit 0; fi
  for f in $(find . -maxdepth 1 -name '*.pid' -newer {LAUNCH_MARKER} 2>/dev/null); do
    if ! kill -0 "$(cat "$f")" 2>/dev/null; then echo "NIXL_DIED: the process of $f exited"; tail_logs; exit 3; fi
  done
  if [ -n "$(logs)" ] && grep -q -F {any} $(logs) 2>/dev/null; then
    sleep 2  # let the process finish writing the error that explains the first line seen
    for p in {fatal}; do
      for l in $(logs); do
        if line=$(grep -m1 -F "$p" "$l"); then echo "NIXL_FATAL: $l: $line"; tail_logs; exit 4; fi
      done
    done
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then echo "NIXL_TIMEOUT: not healthy after {timeout} s"; tail_logs; exit 5; fi
  sleep 1
done"#
    )
}

/// The stop script, the same on every node: of one role's servers (`node_role` is the
/// role), or with `role` None of every server on the node (`node_role = "all"`).
pub fn server_stop(
    model: &Model,
    campaign: &Campaign,
    vars: &RenderVars,
    role: Option<Role>,
) -> Result<Option<String>, Box<Diagnostic>> {
    let Some(e) = campaign.server.get("stop") else { return Ok(None) };
    let mut v = vars.vars.clone();
    v.insert("node_role".into(), Value::Str(role.map_or("all", Role::as_str).into()));
    let scope = scope_of(model, campaign, &BTreeMap::new(), &v);
    render::template(e, &scope, kv_of(campaign)).map(Some)
}

/// The benchmark of one E2E pattern, run on the first node; `out` is its result file.
pub fn bench(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    extra: &[(&str, Value)],
) -> Result<Script, Box<Diagnostic>> {
    let mut v = vars.with(extra);
    v.extend(layout_vars(settings, vars, &Topology::of(settings)));
    let scope = scope_of(model, campaign, settings, &v);
    let body = render_one(&campaign.bench, "bench", "run", &scope, kv_of(campaign))?;
    Ok(Script { node: 0, role: "bench".into(), body: format!("mkdir -p results\n{body}") })
}

/// A tool step's scripts: `run` on the first node, or `server` on the first and `client` on the second.
pub fn tool(tool: &Tool, p: &Pattern, vars: &BTreeMap<String, Value>, kv: Option<f64>) -> Result<Vec<Script>, Box<Diagnostic>> {
    let cmds = render::tool_commands(tool, p.values(), vars, kv)?;
    Ok(cmds
        .into_iter()
        .map(|(role, body)| Script { node: usize::from(role == "client"), role, body: format!("mkdir -p results\n{body}") })
        .collect())
}

/// Everything apply sends for one pattern, in order, with what it needs first:
/// for an E2E pattern its launch's server starts and readiness watches, the
/// telemetry reads around the benchmark (`metrics`, `transport_counters`, `gpu_memory`),
/// the benchmark and the stop; for a tool step, the setup steps that install the
/// tool, its scripts and the node whose output holds the result.
#[derive(Debug, serde::Serialize)]
pub struct PatternCommands {
    pub pattern: String,
    pub launch: Option<u32>,
    /// Setup steps that install the pattern's tool (`provides`), by id.
    pub needs_setup: Vec<String>,
    /// Services the tool needs (etcd), started once on the first node before it.
    pub needs_services: Vec<String>,
    pub scripts: Vec<Script>,
    /// The node whose result file apply fetches.
    pub reads: usize,
}

pub fn for_pattern(
    model: &Model,
    campaign: &Campaign,
    p: &Pattern,
    vars: &RenderVars,
) -> Result<PatternCommands, Box<Diagnostic>> {
    let settings = super::Resolver::new(model, campaign).settings(p);
    let kv = kv_of(campaign);
    let out = format!("results/{}.out", p.id);
    let index = campaign.design.patterns.iter().position(|x| x.id == p.id);
    let launch = index.and_then(|i| campaign.schedule.launch_of(i)).map(|l| l.number);
    let mut scripts = vec![];
    let mut needs_setup = vec![];
    let mut needs_services = vec![];
    let mut reads = 0;
    if let Some(tool) = p.tool().and_then(|t| model.tools.get(t)) {
        let steps = campaign.setup.iter().flat_map(|s| s.steps.iter());
        needs_setup = steps.filter(|s| s.provides.iter().any(|x| x == &tool.name)).map(|s| s.id.clone()).collect();
        needs_services = tool.needs.clone();
        let v = vars.with(&[
            ("out", Value::Str(out)),
            ("self_ip", vars.vars["prefill_ip"].clone()),
            ("node", Value::Str("node1".into())),
        ]);
        scripts = tool_scripts(tool, p, &v, kv)?;
        reads = usize::from(tool.nodes >= 2 && !tool.result_on_server);
    } else if p.group.is_some() {
        scripts.extend(server_start(model, campaign, &settings, vars)?);
        scripts.extend(server_ready(model, campaign, &settings, vars)?);
        scripts.extend(telemetry_reads(model, campaign, &settings, vars, false)?);
        scripts.push(bench(model, campaign, &settings, vars, &[("out", Value::Str(out)), ("id", Value::Str(p.id.to_string()))])?);
        scripts.extend(telemetry_reads(model, campaign, &settings, vars, true)?);
        if let Some(body) = server_stop(model, campaign, vars, None)? {
            scripts.extend((0..campaign.stack.as_ref().map_or(2, |s| s.nodes.len())).map(|node| Script {
                node,
                role: "stop".into(),
                body: body.clone(),
            }));
        }
    }
    Ok(PatternCommands { pattern: p.id.to_string(), launch, needs_setup, needs_services, scripts, reads })
}

/// The telemetry reads apply takes around a pattern's benchmark, as apply's `probes.rs`
/// takes them: the server metrics and transport counters before the run, and again after
/// it with the GPU memory; each labelled with when it runs.
fn telemetry_reads(
    model: &Model,
    campaign: &Campaign,
    settings: &BTreeMap<String, Value>,
    vars: &RenderVars,
    after: bool,
) -> Result<Vec<Script>, Box<Diagnostic>> {
    let mut reads = vec![];
    for role in [Role::Decode, Role::Prefill] {
        let of_role = server_metrics(model, campaign, settings, vars, role)?.into_iter();
        let of_role = of_role.chain(transport_counters(model, campaign, settings, vars, role)?);
        reads.extend(of_role.map(|s| Script { role: format!("{} of {}", s.role, role.as_str()), ..s }));
    }
    if after {
        reads.extend(gpu_memory(model, campaign, settings, vars)?);
        let per_role = role_gpu_memory(model, campaign, settings, vars)?;
        reads.extend(per_role.into_iter().map(|(role, s)| Script { role: format!("{} of {}", s.role, role.as_str()), ..s }));
    }
    let when = if after { "after the benchmark" } else { "before the benchmark" };
    Ok(reads.into_iter().map(|s| Script { role: format!("{} ({when})", s.role), ..s }).collect())
}

fn tool_scripts(t: &Tool, p: &Pattern, vars: &BTreeMap<String, Value>, kv: Option<f64>) -> Result<Vec<Script>, Box<Diagnostic>> {
    tool(t, p, vars, kv)
}

/// The text `nixl show FILE PATTERN --commands` prints.
pub fn text(c: &PatternCommands, node_names: &[String]) -> String {
    let name = |i: usize| node_names.get(i).cloned().unwrap_or_else(|| format!("node{}", i + 1));
    let mut s = format!("# {}: the scripts apply sends, in order", c.pattern);
    if let Some(l) = c.launch {
        s += &format!(" (server launch {l})");
    }
    let ips: Vec<String> = (1..=node_names.len().max(2)).map(|i| format!("10.0.0.{i}")).collect();
    s += &format!("\n# Node addresses are placeholders ({}) until apply knows the nodes.\n", ips.join(", "));
    if !c.needs_setup.is_empty() {
        s += &format!("# Installed by setup step {}\n", c.needs_setup.join(", "));
    }
    for svc in &c.needs_services {
        s += &format!("# Needs service {svc}, started once on {} before it\n", name(0));
    }
    for sc in &c.scripts {
        s += &format!("\n## {} on {}\n{}\n", sc.role, name(sc.node), sc.body.trim_end());
    }
    s += &format!("\n# The result is read from {}.\n", name(c.reads));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_script_escapes_parentheses_for_grep() {
        let s = watch_script("curl -sf http://127.0.0.1:8100/health", 600);
        assert!(s.contains("'Traceback (most recent call last)'"), "{s}");
        assert!(s.contains("deadline=$((SECONDS + 600))"));
    }

    #[test]
    fn numbers_render_as_plain_integers_or_decimals() {
        use crate::syntax::ast::Unit;
        assert_eq!(num_text(&Value::Num(32768.0, Unit::Tokens)), "32768");
        assert_eq!(num_text(&Value::Num(0.9, Unit::None)), "0.9");
        assert_eq!(num_text(&Value::Num(5e9, Unit::Bytes)), "5000000000");
    }
}
