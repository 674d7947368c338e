//! Action addresses, as terraform has resource addresses: one typed id per
//! action, written the same way in the plan text, the plan JSON, the state
//! file and `--target`/`--replace`. Nothing takes an id apart by hand.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionId {
    /// The base resources (CloudFormation stack): `stack`.
    Stack,
    /// The nodes: `nodes`.
    Nodes,
    /// Generated scripts to the bucket: `upload`.
    Upload,
    /// One setup step on one node: `setup.<node>.<step>` (boxed, so that the ids of a
    /// million patterns stay as small as a string).
    Setup(Box<SetupAddress>),
    /// A service a tool needs (etcd): `service.<name>`.
    Service(Box<str>),
    /// Server launch N (1-based, in run order): `server.<N>.start`.
    ServerStart(u32),
    /// The stop after launch N: `server.<N>.stop`.
    ServerStop(u32),
    /// A pattern, step or analysis, by its id: `p2-efa-12k-c1`.
    Pattern(Box<str>),
}

/// The node and step of a setup action.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetupAddress {
    pub node: String,
    pub step: String,
}

impl ActionId {
    pub fn setup(node: &str, step: &str) -> ActionId {
        ActionId::Setup(Box::new(SetupAddress { node: node.to_string(), step: step.to_string() }))
    }

    /// The step of a setup action.
    pub fn setup_step(&self) -> Option<&str> {
        match self {
            ActionId::Setup(s) => Some(&s.step),
            _ => None,
        }
    }

    /// Actions whose outcome is not kept in the state: they are redone whenever work needs them.
    pub fn is_transient(&self) -> bool {
        matches!(self, ActionId::Upload | ActionId::Service(_) | ActionId::ServerStart(_) | ActionId::ServerStop(_))
    }

    /// Actions that create infrastructure or prepare it; what `destroy` forgets.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, ActionId::Stack | ActionId::Nodes | ActionId::Setup(_))
    }

    /// The pattern id, for pattern, step and analysis actions.
    pub fn pattern(&self) -> Option<&str> {
        match self {
            ActionId::Pattern(id) => Some(id),
            _ => None,
        }
    }

    /// The launch number of a server start or stop.
    pub fn launch(&self) -> Option<u32> {
        match self {
            ActionId::ServerStart(n) | ActionId::ServerStop(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionId::Stack => f.write_str("stack"),
            ActionId::Nodes => f.write_str("nodes"),
            ActionId::Upload => f.write_str("upload"),
            ActionId::Setup(s) => write!(f, "setup.{}.{}", s.node, s.step),
            ActionId::Service(name) => write!(f, "service.{name}"),
            ActionId::ServerStart(n) => write!(f, "server.{n}.start"),
            ActionId::ServerStop(n) => write!(f, "server.{n}.stop"),
            ActionId::Pattern(id) => f.write_str(id),
        }
    }
}

impl FromStr for ActionId {
    type Err = std::convert::Infallible;

    /// Every string is an address: what is not a reserved form is a pattern id
    /// (pattern ids cannot take those forms: they contain no dots).
    fn from_str(s: &str) -> Result<ActionId, Self::Err> {
        let parts: Vec<&str> = s.splitn(3, '.').collect();
        Ok(match parts.as_slice() {
            ["stack"] => ActionId::Stack,
            ["nodes"] => ActionId::Nodes,
            ["upload"] => ActionId::Upload,
            ["setup", node, step] => ActionId::setup(node, step),
            ["service", name] => ActionId::Service((*name).into()),
            ["server", n, "start"] if n.parse::<u32>().is_ok() => ActionId::ServerStart(n.parse().unwrap_or(0)),
            ["server", n, "stop"] if n.parse::<u32>().is_ok() => ActionId::ServerStop(n.parse().unwrap_or(0)),
            _ => ActionId::Pattern(s.into()),
        })
    }
}

impl From<&str> for ActionId {
    fn from(s: &str) -> ActionId {
        match s.parse() {
            Ok(id) => id,
            Err(never) => match never {},
        }
    }
}

impl Serialize for ActionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ActionId, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ActionId::from(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips_through_its_text() {
        let ids = [
            ActionId::Stack,
            ActionId::Nodes,
            ActionId::Upload,
            ActionId::setup("node1", "05-nixl"),
            ActionId::Service("etcd".into()),
            ActionId::ServerStart(3),
            ActionId::ServerStop(12),
            ActionId::Pattern("p2-efa-12k-c1".into()),
        ];
        for id in ids {
            let text = id.to_string();
            assert_eq!(ActionId::from(text.as_str()), id, "{text}");
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<ActionId>(&json).unwrap(), id);
        }
        // Malformed reserved forms are not silently something else.
        assert_eq!(ActionId::from("server.x.start"), ActionId::Pattern("server.x.start".into()));
    }
}
