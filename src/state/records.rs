//! Typed records of the infrastructure apply created. On disk they keep the
//! `resources` map every earlier release wrote (`"stack"` and `"node.<name>"`
//! entries with `kind`, `id`, `hash` and string `attributes`), so a state
//! written by an older nixl is read, and one written now reads the same.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Infrastructure {
    /// The stack the nodes run in (in the region apply last used).
    pub stack: Option<StackRecord>,
    /// Stacks of regions apply fell back from and could not delete then (`regions = [...]`):
    /// `destroy` removes them with the rest. On disk as `stack.<region>`.
    pub left_stacks: Vec<StackRecord>,
    /// In the order the stack declares them (node 0 serves prefill).
    pub nodes: Vec<NodeRecord>,
}

/// The base resources: the provider's stack id and its outputs (the bucket,
/// and per-resource hashes that let an offline plan name what a change set touches).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackRecord {
    pub id: String,
    pub hash: String,
    pub outputs: BTreeMap<String, String>,
    /// The stack's name and region when it was created (None in states of earlier
    /// releases): a file that names another is refused, not silently orphaning this one.
    pub name: Option<String>,
    pub region: Option<String>,
}

impl StackRecord {
    pub fn bucket(&self) -> Option<&str> {
        self.outputs.get("bucket").map(String::as_str)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeRecord {
    pub name: String,
    /// Instance id, or the working directory for the local provider.
    pub id: String,
    pub hash: String,
    pub private_ip: String,
    pub zone: Option<String>,
    /// The region the node runs in (None in states of earlier releases: the stack's).
    pub region: Option<String>,
    pub instance_type: Option<String>,
    pub image: Option<String>,
    /// What the machine was launched as (`plan::machine_spec`): when the file asks for
    /// another, the nodes are replaced. None in states of earlier releases.
    pub spec: Option<String>,
}

impl Infrastructure {
    pub fn is_empty(&self) -> bool {
        self.stack.is_none() && self.nodes.is_empty() && self.left_stacks.is_empty()
    }
}

/// One entry of the on-disk `resources` map.
#[derive(Serialize, Deserialize)]
struct Resource {
    kind: String,
    id: String,
    hash: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

pub(super) mod as_resources {
    use super::*;
    use serde::{Deserializer, Serializer};

    const NODE: &str = "node.";
    const LEFT_STACK: &str = "stack.";
    const STACK_NAME: &str = "stack_name";
    const STACK_REGION: &str = "stack_region";

    fn stack_resource(st: &StackRecord) -> Resource {
        let mut attributes = st.outputs.clone();
        if let Some(n) = &st.name {
            attributes.insert(STACK_NAME.into(), n.clone());
        }
        if let Some(r) = &st.region {
            attributes.insert(STACK_REGION.into(), r.clone());
        }
        Resource { kind: "stack".into(), id: st.id.clone(), hash: st.hash.clone(), attributes }
    }

    fn stack_record(mut r: Resource) -> StackRecord {
        let name = r.attributes.remove(STACK_NAME);
        let region = r.attributes.remove(STACK_REGION);
        StackRecord { id: r.id, hash: r.hash, outputs: r.attributes, name, region }
    }

    pub fn serialize<S: Serializer>(infra: &Infrastructure, s: S) -> Result<S::Ok, S::Error> {
        let mut map: BTreeMap<String, Resource> = BTreeMap::new();
        if let Some(st) = &infra.stack {
            map.insert("stack".into(), stack_resource(st));
        }
        for st in &infra.left_stacks {
            map.insert(format!("{LEFT_STACK}{}", st.region.as_deref().unwrap_or_default()), stack_resource(st));
        }
        for n in &infra.nodes {
            let mut attributes = BTreeMap::new();
            attributes.insert("private_ip".to_string(), n.private_ip.clone());
            if let Some(z) = &n.zone {
                attributes.insert("zone".into(), z.clone());
            }
            if let Some(r) = &n.region {
                attributes.insert("region".into(), r.clone());
            }
            if let Some(i) = &n.image {
                attributes.insert("image".into(), i.clone());
            }
            if let Some(s) = &n.spec {
                attributes.insert("spec".into(), s.clone());
            }
            if let Some(t) = &n.instance_type {
                attributes.insert("instance_type".into(), t.clone());
            }
            let r = Resource { kind: "node".into(), id: n.id.clone(), hash: n.hash.clone(), attributes };
            map.insert(format!("{NODE}{}", n.name), r);
        }
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Infrastructure, D::Error> {
        let map: BTreeMap<String, Resource> = BTreeMap::deserialize(d)?;
        let mut infra = Infrastructure::default();
        for (address, mut r) in map {
            match (r.kind.as_str(), address.strip_prefix(NODE)) {
                ("stack", _) if address.starts_with(LEFT_STACK) => infra.left_stacks.push(stack_record(r)),
                ("stack", _) => infra.stack = Some(stack_record(r)),
                ("node", Some(name)) => infra.nodes.push(NodeRecord {
                    name: name.to_string(),
                    id: r.id,
                    hash: r.hash,
                    private_ip: r.attributes.remove("private_ip").unwrap_or_default(),
                    zone: r.attributes.remove("zone"),
                    region: r.attributes.remove("region"),
                    instance_type: r.attributes.remove("instance_type"),
                    image: r.attributes.remove("image"),
                    spec: r.attributes.remove("spec"),
                }),
                (kind, _) => {
                    return Err(serde::de::Error::custom(format!("unknown resource `{address}` of kind `{kind}`")));
                }
            }
        }
        Ok(infra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct OnDisk(#[serde(with = "as_resources")] Infrastructure);

    #[test]
    fn stacks_left_in_other_regions_and_each_nodes_region_survive_a_save() {
        let st = |region: &str| StackRecord { id: format!("id-{region}"), region: Some(region.into()), ..Default::default() };
        let infra = Infrastructure {
            stack: Some(st("us-west-2")),
            left_stacks: vec![st("us-east-1")],
            nodes: vec![NodeRecord { name: "node1".into(), region: Some("us-west-2".into()), ..Default::default() }],
        };
        let json = serde_json::to_value(OnDisk(infra.clone())).unwrap();
        assert_eq!(json["stack"]["attributes"]["stack_region"], "us-west-2");
        assert_eq!(json["stack.us-east-1"]["id"], "id-us-east-1");
        assert_eq!(json["node.node1"]["attributes"]["region"], "us-west-2");
        let back: OnDisk = serde_json::from_value(json).unwrap();
        assert_eq!(back.0, infra);
    }
}
