//! How one server launch is laid out over the stack's nodes: how many prefill and
//! decode servers (`prefill_nodes`, `decode_nodes`) with which tensor parallelism
//! (`prefill_tp`, `decode_tp`, else `tp`), or how many unified replicas (`replicas`),
//! one server per node; which node runs each server and the proxy; the GPUs a launch
//! uses; and which server roles a change of restart key restarts.
//!
//! Layout: prefill servers on nodes 0..P, decode servers on nodes P..P+D, unified
//! replicas on nodes 0..R; the proxy and the benchmark on node 0. The i-th server of a
//! role listens on its role's port + i, so servers never share a port even where the
//! nodes share an address (the local provider's nodes are all 127.0.0.1).

use crate::check::model::Mode;
use crate::check::value::Value;
use crate::check::Model;
use crate::design::{Campaign, Category, Pattern, Resolver};
use std::collections::{BTreeMap, BTreeSet};

/// The settings nixl reads to lay a launch out; patterns that differ in one run on different servers.
pub const SETTINGS: [&str; 5] = ["prefill_nodes", "decode_nodes", "prefill_tp", "decode_tp", "replicas"];

/// What a server process of a launch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Unified,
    Prefill,
    Decode,
    Proxy,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Unified, Role::Prefill, Role::Decode, Role::Proxy];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Unified => "unified",
            Role::Prefill => "prefill",
            Role::Decode => "decode",
            Role::Proxy => "proxy",
        }
    }

    /// The server definition's command that starts it (`start_prefill`, ...).
    pub fn start_key(self) -> String {
        format!("start_{}", self.as_str())
    }

    /// The port setting its servers count up from.
    fn port_setting(self) -> &'static str {
        match self {
            Role::Unified => "port",
            Role::Prefill => "prefill_port",
            Role::Decode => "decode_port",
            Role::Proxy => "proxy_port",
        }
    }
}

/// One server process of a launch: its role, its index among that role's servers, its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    pub role: Role,
    pub index: u32,
    pub node: usize,
}

/// A launch's layout, read from its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub mode: Mode,
    pub prefill: u32,
    pub decode: u32,
    pub replicas: u32,
    /// `tp`, and the per-role values that replace it when set.
    pub tp: Option<f64>,
    pub prefill_tp: Option<f64>,
    pub decode_tp: Option<f64>,
}

fn count(settings: &BTreeMap<String, Value>, name: &str) -> u32 {
    settings.get(name).and_then(Value::as_f64).map_or(1, |x| x.max(1.0) as u32)
}

fn number(settings: &BTreeMap<String, Value>, name: &str) -> Option<f64> {
    settings.get(name).and_then(Value::as_f64)
}

impl Topology {
    pub fn of(settings: &BTreeMap<String, Value>) -> Topology {
        Topology {
            mode: super::commands::mode_of(settings),
            prefill: count(settings, "prefill_nodes"),
            decode: count(settings, "decode_nodes"),
            replicas: count(settings, "replicas"),
            tp: number(settings, "tp"),
            prefill_tp: number(settings, "prefill_tp"),
            decode_tp: number(settings, "decode_tp"),
        }
    }

    /// Nodes the launch runs servers on.
    pub fn nodes(&self) -> usize {
        match self.mode {
            Mode::Unified => self.replicas as usize,
            Mode::Disaggregated => (self.prefill + self.decode) as usize,
        }
    }

    /// A proxy fans requests out: always between prefill and decode (when the server
    /// definition has one), and over unified replicas when there are several.
    pub fn has_proxy(&self, declared: bool) -> bool {
        match self.mode {
            Mode::Unified => self.replicas > 1,
            Mode::Disaggregated => declared,
        }
    }

    /// The server processes in the order apply starts them: consumers first (so a
    /// producer's handshake finds them), then producers; or the replicas; then the proxy.
    pub fn servers(&self, proxy_declared: bool) -> Vec<Server> {
        let mut out = vec![];
        match self.mode {
            Mode::Unified => out.extend((0..self.replicas).map(|i| Server { role: Role::Unified, index: i, node: i as usize })),
            Mode::Disaggregated => {
                let p = self.prefill as usize;
                out.extend((0..self.decode).map(|i| Server { role: Role::Decode, index: i, node: p + i as usize }));
                out.extend((0..self.prefill).map(|i| Server { role: Role::Prefill, index: i, node: i as usize }));
            }
        }
        if self.has_proxy(proxy_declared) {
            out.push(Server { role: Role::Proxy, index: 0, node: 0 });
        }
        out
    }

    /// The tensor parallelism a role's servers run with.
    pub fn tp_of(&self, role: Role) -> Option<f64> {
        match role {
            Role::Prefill => self.prefill_tp.or(self.tp),
            Role::Decode => self.decode_tp.or(self.tp),
            _ => self.tp,
        }
    }

    /// GPUs the launch serves with: replicas x tp, or P x prefill TP + D x decode TP;
    /// `per_node` (the instance's GPUs) stands in for a TP left unset.
    pub fn gpus(&self, per_node: f64) -> f64 {
        let tp = |r: Role| self.tp_of(r).unwrap_or(per_node);
        match self.mode {
            Mode::Unified => self.replicas as f64 * tp(Role::Unified),
            Mode::Disaggregated => self.prefill as f64 * tp(Role::Prefill) + self.decode as f64 * tp(Role::Decode),
        }
    }

    /// "2P:1D, TP 4/2" or "2 replicas, TP 4": the layout in a few words.
    pub fn label(&self) -> String {
        let tp = |r: Role| self.tp_of(r).map_or("?".to_string(), |t| format!("{t}"));
        match self.mode {
            Mode::Unified if self.replicas == 1 => format!("1 server, TP {}", tp(Role::Unified)),
            Mode::Unified => format!("{} replicas, TP {}", self.replicas, tp(Role::Unified)),
            Mode::Disaggregated => {
                format!("{}P:{}D, TP {}/{}", self.prefill, self.decode, tp(Role::Prefill), tp(Role::Decode))
            }
        }
    }

    /// A layout setting's value as the launch runs it (a count left unset is 1, a role's
    /// TP left unset is `tp`); None for other names or an unknown TP.
    fn effective(&self, name: &str) -> Option<String> {
        let n = |x: f64| format!("{x}");
        match name {
            "prefill_nodes" => Some(n(self.prefill as f64)),
            "decode_nodes" => Some(n(self.decode as f64)),
            "replicas" => Some(n(self.replicas as f64)),
            "prefill_tp" => self.tp_of(Role::Prefill).map(n),
            "decode_tp" => self.tp_of(Role::Decode).map(n),
            _ => None,
        }
    }

    /// The port of a role's i-th server, from the base port in the settings.
    pub fn port(settings: &BTreeMap<String, Value>, role: Role, index: u32) -> Option<f64> {
        number(settings, role.port_setting()).map(|p| p + index as f64)
    }
}

/// The first scheduled E2E pattern of each restart group (a group shares its layout).
pub fn launch_patterns(campaign: &Campaign) -> Vec<&Pattern> {
    let mut seen = BTreeSet::new();
    campaign
        .design
        .patterns
        .iter()
        .filter(|p| p.category == Category::E2e)
        .filter(|p| p.group.is_some_and(|g| seen.insert(g)))
        .collect()
}

/// Nodes the largest launch of a campaign runs servers on (0 without E2E patterns).
pub fn largest_launch(model: &Model, campaign: &Campaign) -> usize {
    let resolver = Resolver::new(model, campaign);
    launch_patterns(campaign).into_iter().map(|p| Topology::of(&resolver.settings(p)).nodes()).max().unwrap_or(0)
}

/// Whether an experiment sets any layout setting (as a factor, in a layer, a pattern, a
/// `set` or the experiment); only then does the plan describe each launch's layout.
pub fn declared(exp: &crate::check::model::Experiment) -> bool {
    let named = |n: &str| SETTINGS.contains(&n);
    exp.factors.iter().any(|f| named(&f.name))
        || exp.settings.keys().any(|n| named(n))
        || exp.derived.iter().any(|d| d.setting && named(&d.name))
        || exp.layers.iter().any(|l| l.fixed.keys().any(|n| named(n)) || l.derived.iter().any(|d| d.setting && named(&d.name)))
        || exp.patterns.iter().any(|p| p.values.keys().any(|n| named(n)))
}

/// One launch's layout as the plan shows it, and what it restarts after the launch before it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchLayout {
    /// "1P:2D, TP 4/2", "2 replicas, TP 4".
    pub servers: String,
    pub nodes: usize,
    pub gpus: f64,
    /// Roles whose servers this launch restarts after the previous launch (all for the first).
    pub restarts: Vec<Role>,
    /// Roles of this launch whose servers keep running from the launch before.
    pub keeps: Vec<Role>,
    /// The settings whose change does it (`decode_tp 4 -> 2`); empty for the first launch.
    pub changed: Vec<String>,
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let s = String::deserialize(d)?;
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| serde::de::Error::custom(format!("unknown role {s}")))
    }
}

/// The layout of every launch along the schedule, by launch number, with the roles each
/// restarts after the one before it. Empty unless the experiment sets a layout setting.
pub fn launch_layouts(model: &Model, campaign: &Campaign) -> BTreeMap<u32, LaunchLayout> {
    if !declared(&campaign.experiment) {
        return BTreeMap::new();
    }
    let resolver = Resolver::new(model, campaign);
    let per_node = campaign
        .stack
        .as_ref()
        .and_then(|s| s.instance_types.first())
        .and_then(|t| model.instances.get(t))
        .map_or(0.0, |i| i.gpus as f64);
    let reads = start_reads(&campaign.server);
    let mut out = BTreeMap::new();
    let mut previous: Option<BTreeMap<String, Value>> = None;
    let mut previous_topo: Option<Topology> = None;
    for launch in &campaign.schedule.segments {
        let Some(p) = launch.patterns.first().and_then(|&i| campaign.design.patterns.get(i)) else { continue };
        let settings = resolver.settings(p);
        let topo = Topology::of(&settings);
        let present = roles_present(campaign, &topo);
        let key = &campaign.design.groups[launch.group as usize];
        let (restarts, changed) = match &previous {
            None => (present.clone(), vec![]),
            Some(before) => {
                let changed_names = changed_settings(before, key);
                let changed = changed_names
                    .iter()
                    .map(|name| {
                        let old = before.get(name).cloned().unwrap_or(Value::None).display();
                        let new = key.values.iter().find(|(n, _)| n == name).map_or(String::new(), |(_, v)| v.display());
                        let (was, is) = previous_topo
                            .as_ref()
                            .and_then(|t| t.effective(name).zip(topo.effective(name)))
                            .unwrap_or((old, new));
                        format!("{name} {was} -> {is}")
                    })
                    .collect();
                (roles_to_start(before, key, &reads, &present), changed)
            }
        };
        let keeps = present.difference(&restarts).copied().collect();
        let restarts = restarts.into_iter().collect();
        let layout =
            LaunchLayout { servers: topo.label(), nodes: topo.nodes(), gpus: topo.gpus(per_node), restarts, keeps, changed };
        previous = Some(key_values(key));
        previous_topo = Some(topo);
        out.insert(launch.number, layout);
    }
    out
}

/// A restart key's values by name: what `roles_to_start` compares a next launch's key with.
pub fn key_values(key: &super::RestartKey) -> BTreeMap<String, Value> {
    key.values.iter().cloned().collect()
}

/// The settings of a restart key whose values differ from `before` (another launch's key values).
fn changed_settings(before: &BTreeMap<String, Value>, key: &super::RestartKey) -> Vec<String> {
    let differs = |name: &String, value: &Value| before.get(name).unwrap_or(&Value::None).display() != value.display();
    key.values.iter().filter(|(n, v)| differs(n, v)).map(|(n, _)| n.clone()).collect()
}

/// The roles a launch of restart key `key`, whose servers are `present`, must start when
/// the servers of a launch with key values `before` are up: those its changed settings need.
/// The other roles it has keep running.
pub fn roles_to_start(
    before: &BTreeMap<String, Value>,
    key: &super::RestartKey,
    reads: &BTreeMap<Role, BTreeSet<String>>,
    present: &BTreeSet<Role>,
) -> BTreeSet<Role> {
    let roles: BTreeSet<Role> = changed_settings(before, key).iter().flat_map(|n| roles_changed_by(n, reads)).collect();
    roles.intersection(present).copied().collect()
}

/// The roles of a launch's servers.
pub fn roles_present(campaign: &Campaign, topo: &Topology) -> BTreeSet<Role> {
    topo.servers(campaign.server.contains_key("start_proxy")).iter().map(|s| s.role).collect()
}

/// The names each role's start command reads (its `start_<role>` template, and the `args`
/// table's names where it renders `{serve_args}`).
pub fn start_reads(server: &super::Templates) -> BTreeMap<Role, BTreeSet<String>> {
    let args: BTreeSet<String> =
        server.get("args").map(|e| super::accepts::names_read(&[("args".to_string(), e.clone())].into())).unwrap_or_default();
    let mut out = BTreeMap::new();
    for role in Role::ALL {
        let Some(e) = server.get(&role.start_key()) else { continue };
        let mut names = super::accepts::names_read(&[(role.start_key(), e.clone())].into());
        if names.contains("serve_args") {
            names.extend(args.iter().cloned());
        }
        out.insert(role, names);
    }
    out
}

/// Which roles a change of one setting restarts, given the names each role's start
/// command reads: the per-role TP and counts name their role (a count also changes the
/// proxy's server lists); `mode` restarts everything; any other setting restarts the
/// roles whose start command reads it, or every role when none does.
pub fn roles_changed_by(name: &str, reads: &BTreeMap<Role, BTreeSet<String>>) -> BTreeSet<Role> {
    let set = |r: &[Role]| r.iter().copied().collect::<BTreeSet<Role>>();
    match name {
        "prefill_tp" => set(&[Role::Prefill]),
        "decode_tp" => set(&[Role::Decode]),
        // Decode servers follow the prefill servers' nodes, so they move too.
        "prefill_nodes" => set(&[Role::Prefill, Role::Decode, Role::Proxy]),
        "decode_nodes" => set(&[Role::Decode, Role::Proxy]),
        "replicas" => set(&[Role::Unified, Role::Proxy]),
        "mode" => set(&Role::ALL),
        _ => {
            let readers: BTreeSet<Role> = reads.iter().filter(|(_, n)| n.contains(name)).map(|(r, _)| *r).collect();
            if readers.is_empty() {
                set(&Role::ALL)
            } else {
                readers
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Unit;

    fn settings(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn two_prefill_one_decode_lays_out_over_three_nodes_with_the_decode_last() {
        let t = Topology::of(&settings(&[
            ("mode", Value::Sym("disaggregated".into())),
            ("prefill_nodes", Value::num(2.0)),
            ("tp", Value::num(4.0)),
            ("decode_tp", Value::num(2.0)),
        ]));
        assert_eq!(t.nodes(), 3);
        let s = t.servers(true);
        let layout: Vec<(Role, u32, usize)> = s.iter().map(|s| (s.role, s.index, s.node)).collect();
        assert_eq!(layout, vec![(Role::Decode, 0, 2), (Role::Prefill, 0, 0), (Role::Prefill, 1, 1), (Role::Proxy, 0, 0)]);
        assert_eq!(t.gpus(4.0), 10.0);
        assert_eq!(t.label(), "2P:1D, TP 4/2");
    }

    #[test]
    fn unified_replicas_get_a_proxy_and_one_server_does_not() {
        let one = Topology::of(&settings(&[("mode", Value::Sym("unified".into()))]));
        assert_eq!((one.nodes(), one.servers(true).len()), (1, 1));
        let three = Topology::of(&settings(&[("mode", Value::Sym("unified".into())), ("replicas", Value::num(3.0))]));
        assert_eq!(three.servers(false).iter().filter(|s| s.role == Role::Proxy).count(), 1);
        assert_eq!(three.gpus(4.0), 12.0);
    }

    #[test]
    fn ports_count_up_from_the_role_base() {
        let s = settings(&[("decode_port", Value::Num(8200.0, Unit::None))]);
        assert_eq!(Topology::port(&s, Role::Decode, 1), Some(8201.0));
    }

    #[test]
    fn a_role_specific_setting_restarts_only_its_role() {
        let reads: BTreeMap<Role, BTreeSet<String>> =
            [(Role::Prefill, ["transport".to_string()].into()), (Role::Decode, ["transport".to_string()].into())].into();
        assert_eq!(roles_changed_by("decode_tp", &reads), [Role::Decode].into());
        assert_eq!(roles_changed_by("prefill_nodes", &reads), [Role::Prefill, Role::Decode, Role::Proxy].into());
        assert_eq!(roles_changed_by("decode_nodes", &reads), [Role::Decode, Role::Proxy].into());
        assert_eq!(roles_changed_by("transport", &reads), [Role::Prefill, Role::Decode].into());
        assert_eq!(roles_changed_by("something_else", &reads).len(), 4);
    }
}
