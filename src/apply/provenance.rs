//! The provenance every result carries: the provider, the machines as they
//! were launched (zone, instance type, image) and the vLLM and NIXL versions
//! read on the first node, once per apply.

use super::Exec;
use crate::provider::Provider;
use crate::results::Provenance;
use std::collections::BTreeSet;
use std::time::Duration;

/// Prints `vllm=VERSION` and `nixl=VERSION` (empty when not installed): the first
/// node's Python packages, as the servers and tools import them.
const VERSIONS: &str = r#"v=$(python3 -c 'import importlib.metadata as m; print(m.version("vllm"))' 2>/dev/null)
n=$(python3 -c 'import importlib.metadata as m
for p in ("nixl", "nixl-cu12", "nixl-cu13"):
    try:
        print(m.version(p)); break
    except m.PackageNotFoundError:
        pass' 2>/dev/null)
echo "vllm=$v"
echo "nixl=$n""#;

impl<P: Provider> Exec<'_, P> {
    /// Reads the versions on the first node the first time a measurement runs.
    pub(super) async fn read_provenance(&mut self) {
        if self.provenance.is_some() {
            return;
        }
        let Some(node) = self.nodes.first().cloned() else { return };
        let out = self.provider.run(std::slice::from_ref(&node), VERSIONS, Duration::from_secs(60)).await;
        let text = out.ok().and_then(|mut o| o.pop()).map(|o| o.stdout).unwrap_or_default();
        let read = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        self.provenance = Some(self.provenance_here(Some((read("vllm"), read("nixl")))));
    }

    /// What is known without asking the nodes, with the versions when they were read.
    pub(super) fn provenance_here(&self, versions: Option<(Option<String>, Option<String>)>) -> Provenance {
        let distinct = |f: fn(&crate::provider::NodeInfo) -> Option<&String>| {
            let all: BTreeSet<&String> = self.nodes.iter().filter_map(f).collect();
            (!all.is_empty()).then(|| all.into_iter().cloned().collect::<Vec<_>>().join(","))
        };
        let (vllm_version, nixl_version) = versions.unwrap_or_default();
        let provider = self.provider.name().to_string();
        Provenance {
            synthetic: provider == "local",
            provider,
            stack: self.campaign.stack.as_ref().map(|s| s.name.clone()),
            zone: distinct(|n| n.zone.as_ref()),
            instance_type: distinct(|n| n.instance_type.as_ref()),
            image: distinct(|n| n.image.as_ref()),
            model: self.campaign.design.model.as_ref().map(|m| m.hf_id.clone()),
            vllm_version,
            nixl_version,
            nixl_cli: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
