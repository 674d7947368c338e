//! Region fallback (`regions = [...]`): the region apply works in, and the move to the next
//! one when every zone of the current one refuses capacity. Each region used has its own
//! CloudFormation stack; the state records the one the nodes run in, and the region of each node.

use super::{ActionError, Exec};
use crate::check::model::{RegionChoice, Stack};
use crate::provider::{NodeInfo, Provider, ProviderError, StackInfo};
use crate::state::{StackRecord, State};

/// The region the state's stack is in, when the stack still declares it (else apply starts
/// with the first region).
pub fn recorded_region<'s>(state: &State, st: &'s Stack) -> Option<&'s RegionChoice> {
    let region = state.infra.stack.as_ref()?.region.as_deref()?;
    st.region_choice(region)
}

/// The declared stack in the region apply works in: the state's, else the first.
pub fn active(state: &State, st: &Stack) -> Stack {
    recorded_region(state, st).map_or_else(|| st.clone(), |c| st.in_region(c))
}

impl<P: Provider> Exec<'_, P> {
    /// The stack in the region apply works in.
    pub(super) fn active_stack(&self) -> Result<Stack, ActionError> {
        Ok(active(&self.state, &self.stack_decl()?))
    }

    /// Points the provider at the region the state records, before anything reads it.
    pub(super) async fn enter_recorded_region(&self) -> Result<(), ProviderError> {
        match self.campaign.stack.as_ref().and_then(|st| recorded_region(&self.state, st)) {
            Some(c) => self.provider.use_region(&c.region).await,
            None => Ok(()),
        }
    }

    /// The region after `current` in the stack's order, if any.
    pub(super) fn region_after(&self, current: &str) -> Option<RegionChoice> {
        let st = self.campaign.stack.as_ref()?;
        let i = st.regions.iter().position(|r| r.region == current)?;
        st.regions.get(i + 1).cloned()
    }

    /// Every zone of `from` refused capacity: its stack (which holds no node) is deleted, and
    /// the stack is made in `to`, whose record replaces it. A stack that cannot be deleted now
    /// stays in the state for `destroy`.
    pub(super) async fn fall_back(&mut self, from: &Stack, to: &RegionChoice) -> Result<Stack, ActionError> {
        let hash = self.state.infra.stack.as_ref().map(|r| r.hash.clone()).unwrap_or_default();
        self.log(&format!("       no zone of {} has capacity; falling back to {}", from.region, to.region));
        let info = self.stack_info.take();
        if let Err(e) = self.provider.destroy(from, info.as_ref(), &[]).await {
            self.log(&format!("       the stack in {} stays for destroy: {e}", from.region));
            self.state.infra.left_stacks.extend(self.state.infra.stack.take());
        }
        self.provider.use_region(&to.region).await?;
        let st = self.stack_decl()?.in_region(to);
        let info = self.provider.ensure_stack(&st).await?;
        let mut outputs = info.outputs.clone();
        if let Some(b) = &info.bucket {
            outputs.insert("bucket".into(), b.clone());
        }
        let name = Some(st.name.clone());
        let region = Some(st.region.clone());
        self.state.infra.stack = Some(StackRecord { id: info.id.clone(), hash, outputs, name, region });
        self.stack_info = Some(info);
        Ok(st)
    }
}

/// What `destroy` removes in one region: the stack of that name there (if any), its bucket as
/// the state knows it, and the nodes the state records there.
pub struct Teardown {
    pub stack: Stack,
    pub info: Option<StackInfo>,
    pub nodes: Vec<NodeInfo>,
}

/// Every region `destroy` visits, each once: the state's stack's region (`st.region`, the
/// recorded one), the regions apply fell back from and could not clean, then every other
/// region the stack lists (a stack made there by an apply stopped mid-fallback is found by
/// its name; a region with nothing costs a few describe calls).
pub fn teardown(state: &State, st: &Stack) -> Vec<Teardown> {
    let main = st.region.clone();
    let mut regions: Vec<String> = vec![main.clone()];
    let left = state.infra.left_stacks.iter().filter_map(|r| r.region.clone());
    for r in left.chain(st.regions.iter().map(|c| c.region.clone())) {
        if !regions.contains(&r) {
            regions.push(r);
        }
    }
    let stack_in = |region: &str| {
        let main_record = state.infra.stack.iter().filter(|r| r.region.as_deref().unwrap_or(&main) == region);
        let left = state.infra.left_stacks.iter().filter(|r| r.region.as_deref() == Some(region));
        main_record.chain(left).next().map(info_of)
    };
    regions
        .into_iter()
        .map(|region| {
            let nodes = state
                .infra
                .nodes
                .iter()
                .filter(|n| n.region.as_deref().unwrap_or(&main) == region)
                .map(super::infra::node_info)
                .collect();
            let mut stack = st.region_choice(&region).map_or_else(|| st.clone(), |c| st.in_region(c));
            stack.region = region.clone();
            Teardown { info: stack_in(&region), stack, nodes }
        })
        .collect()
}

fn info_of(r: &StackRecord) -> StackInfo {
    StackInfo { id: r.id.clone(), bucket: r.bucket().map(str::to_string), outputs: r.outputs.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeRecord;

    fn stack() -> Stack {
        let text = r#"import "std/aws"
stack "s" {
  regions = [
    { region = "us-east-1", zones = ["us-east-1a"] },
    { region = "us-west-2", zones = ["us-west-2a", "us-west-2b"], ami = "ami-west" },
    { region = "eu-west-1", zones = ["eu-west-1a"] },
  ]
  instance_type = "g6e.12xlarge"
  ami_parameter = "/aws/service/x"
  node "node1" {}
}
"#;
        crate::check::clean_model(text).stacks.into_iter().next().unwrap()
    }

    fn record(region: &str) -> StackRecord {
        StackRecord { id: format!("id-{region}"), region: Some(region.into()), ..Default::default() }
    }

    #[test]
    fn apply_works_in_the_recorded_region_with_its_zones_and_ami() {
        let st = stack();
        let mut state = State::default();
        assert_eq!(active(&state, &st).region, "us-east-1");
        state.infra.stack = Some(record("us-west-2"));
        let a = active(&state, &st);
        assert_eq!(
            (a.region.as_str(), a.zones.clone(), a.ami.as_deref()),
            ("us-west-2", vec!["us-west-2a".to_string(), "us-west-2b".into()], Some("ami-west"))
        );
        // A region the file no longer lists: the first (plan refuses the move).
        state.infra.stack = Some(record("ap-south-1"));
        assert_eq!(active(&state, &st).region, "us-east-1");
    }

    #[test]
    fn destroy_visits_the_recorded_region_first_then_every_other_once_with_its_own_nodes() {
        let mut st = stack();
        let mut state = State::default();
        state.infra.stack = Some(record("us-west-2"));
        state.infra.left_stacks = vec![record("us-east-1")];
        let node = |name: &str, region: Option<&str>| NodeRecord {
            name: name.into(),
            id: format!("i-{name}"),
            region: region.map(str::to_string),
            ..Default::default()
        };
        state.infra.nodes = vec![node("node1", Some("us-west-2")), node("old", None)];
        st.region = "us-west-2".into(); // as destroy sets it from the record
        let t = teardown(&state, &st);
        let regions: Vec<&str> = t.iter().map(|t| t.stack.region.as_str()).collect();
        assert_eq!(regions, ["us-west-2", "us-east-1", "eu-west-1"]);
        assert_eq!(t[0].info.as_ref().map(|i| i.id.as_str()), Some("id-us-west-2"));
        assert_eq!(t[1].info.as_ref().map(|i| i.id.as_str()), Some("id-us-east-1"));
        assert!(t[2].info.is_none());
        // A node without a region is in the stack's (records of earlier releases).
        let names: Vec<&str> = t[0].nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node1", "old"]);
        assert!(t[1].nodes.is_empty() && t[2].nodes.is_empty());
    }
}
