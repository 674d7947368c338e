//! Node sets on AWS (`parallel = k`): every set's nodes belong to the one CloudFormation
//! stack (its security group, role and bucket), launched with RunInstances like set 1's, and
//! each set beyond the first carries its number in a tag and has its own placement group.
//!
//! Why node groups of one stack and not one stack per set: nodes are not in the template
//! (`template.rs`), so a set needs nothing from CloudFormation that set 1's stack does not
//! already give; k stacks would mean k buckets for one store of scripts and results, and k
//! rollbacks to wait for. Why a placement group per set: a cluster placement group lives in
//! one zone, so sets that fall back to different zones cannot share one. Set 1 keeps the
//! stack's own group and untagged nodes, so a campaign that never had sets reads as before.

use super::errors::{classify, with_retry};
use super::template::STACK_TAG;
use super::AwsProvider;
use crate::check::model::Stack;
use crate::provider::ProviderError;
use aws_sdk_ec2::types::{Filter, PlacementStrategy, ResourceType, Tag, TagSpecification};

/// The tag that says which node set (beyond the first) an instance or placement group is for.
pub const SET_TAG: &str = "nixl:set";

/// Whose instances a look-up wants: one set's, or every set's (destroy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sets {
    One(u32),
    All,
}

impl Sets {
    /// Whether an instance whose set tag is `tag` (None for set 1's) is one of these.
    pub fn holds(self, tag: Option<&str>) -> bool {
        match (self, tag) {
            (Sets::All, _) => true,
            (Sets::One(1), None) => true,
            (Sets::One(s), Some(t)) => t == s.to_string(),
            (Sets::One(_), None) => false,
        }
    }

    /// The server-side filter for set s > 1 (set 1's nodes have no set tag, so they are
    /// told apart after the answer, with `holds`).
    pub fn filter(self) -> Option<Filter> {
        match self {
            Sets::One(s) if s > 1 => Some(Filter::builder().name(format!("tag:{SET_TAG}")).values(s.to_string()).build()),
            _ => None,
        }
    }
}

/// The tags that mark what set s > 1 launches; none for set 1.
pub fn set_tags(set: u32) -> Vec<Tag> {
    match set {
        1 => vec![],
        s => vec![Tag::builder().key(SET_TAG).value(s.to_string()).build()],
    }
}

/// The name of set s's own placement group (s > 1).
pub fn group_name(stack: &Stack, set: u32) -> String {
    format!("{}-set{set}", stack.name)
}

/// Set s's placement group (s > 1), created with the stack's strategy and tags when it does
/// not exist yet; one that exists with another strategy is an error, as for the stack's own.
pub async fn ensure_group(p: &AwsProvider, stack: &Stack, set: u32) -> Result<String, ProviderError> {
    let name = group_name(stack, set);
    let want = stack.placement.as_str();
    let found = with_retry(&*p.sink, "DescribePlacementGroups", || async {
        p.ec2().describe_placement_groups().group_names(&name).send().await.map_err(|e| classify(&e, "", ""))
    })
    .await;
    match found {
        Ok(o) => {
            let strategy = o.placement_groups().first().and_then(|g| g.strategy()).map(|s| s.as_str().to_string());
            match strategy.as_deref() {
                Some(s) if s == want => return Ok(name),
                Some(s) => {
                    return Err(ProviderError::Other(format!(
                        "placement group `{name}` of node set {set} has strategy `{s}`, the stack declares `{want}`: delete it or run `nixl destroy`"
                    )))
                }
                None => {}
            }
        }
        Err(ProviderError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    say!(p, "  creating placement group `{name}` ({want}) for node set {set}");
    let tags = set_tags(set).into_iter().fold(
        TagSpecification::builder()
            .resource_type(ResourceType::PlacementGroup)
            .tags(Tag::builder().key(STACK_TAG).value(&stack.name).build()),
        |spec, t| spec.tags(t),
    );
    let tags = tags.build();
    let created = with_retry(&*p.sink, "CreatePlacementGroup", || async {
        p.ec2()
            .create_placement_group()
            .group_name(&name)
            .strategy(PlacementStrategy::from(want))
            .tag_specifications(tags.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, "", ""))
    })
    .await;
    match created {
        // A retry after a lost answer, or another apply: the group is there.
        Ok(()) | Err(ProviderError::AlreadyExists(_)) => Ok(name),
        Err(e) => Err(e),
    }
}

/// Deletes the placement groups of the stack's node sets beyond the first (tagged with the
/// stack and a set); returns their names. The stack's own group goes with the stack.
pub async fn delete_groups(p: &AwsProvider, stack: &Stack) -> Result<Vec<String>, ProviderError> {
    let out = with_retry(&*p.sink, "DescribePlacementGroups", || async {
        p.ec2()
            .describe_placement_groups()
            .filters(Filter::builder().name(format!("tag:{STACK_TAG}")).values(&stack.name).build())
            .send()
            .await
            .map_err(|e| classify(&e, "", ""))
    })
    .await?;
    let of_sets = out.placement_groups().iter().filter(|g| g.tags().iter().any(|t| t.key() == Some(SET_TAG)));
    let names: Vec<String> = of_sets.filter_map(|g| g.group_name().map(String::from)).collect();
    for name in &names {
        let deleted = with_retry(&*p.sink, "DeletePlacementGroup", || async {
            p.ec2().delete_placement_group().group_name(name).send().await.map(|_| ()).map_err(|e| classify(&e, "", ""))
        })
        .await;
        match deleted {
            Ok(()) | Err(ProviderError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_one_holds_only_untagged_nodes_a_later_set_only_its_own_and_all_holds_every_one() {
        assert!(Sets::One(1).holds(None));
        assert!(!Sets::One(1).holds(Some("2")));
        assert!(Sets::One(2).holds(Some("2")));
        assert!(!Sets::One(2).holds(Some("3")) && !Sets::One(2).holds(None));
        assert!(Sets::All.holds(None) && Sets::All.holds(Some("3")));
        assert!(Sets::One(1).filter().is_none() && Sets::All.filter().is_none() && Sets::One(2).filter().is_some());
    }
}
