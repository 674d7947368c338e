//! Nodes with RunInstances: every node of the stack in one call (MinCount =
//! MaxCount), in the placement group, with an EFA interface and an encrypted
//! root volume. A capacity error moves to the next zone, then to the next
//! instance type, at once; zones the error message suggests go first; the ones
//! that do not offer the type are skipped up front. Nodes that exist are found by tag and kept in place.

use super::errors::{classify, jitter, with_retry};
use super::instance_states::{describe_ids, terminate};
use super::node_sets::{self, Sets, SET_TAG};
use super::template::{self, STACK_TAG};
use super::{AwsProvider, Waiting};
use crate::check::model::{Market, Stack};
use crate::provider::{attempt_table, Attempt, NodeInfo, ProviderError, StackInfo, NOT_OFFERED};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, CapacityReservationSpecification, CapacityReservationTarget, EbsBlockDevice, Filter, HttpTokensState,
    IamInstanceProfileSpecification, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceMetadataOptionsRequest,
    InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, LocationType, MarketType, Placement, ResourceType,
    SpotInstanceType, SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One instance as EC2 describes it.
#[derive(Clone, Debug)]
pub struct Found {
    pub id: String,
    pub node: Option<String>,
    pub launch_index: i32,
    pub zone: String,
    pub instance_type: String,
    pub private_ip: String,
    pub state: String,
    pub image: String,
    /// The node set's tag (`node_sets`): None for set 1's nodes.
    pub set: Option<String>,
}

pub async fn ensure(
    p: &AwsProvider,
    stack: &Stack,
    info: &StackInfo,
    existing: &[NodeInfo],
) -> Result<Vec<NodeInfo>, ProviderError> {
    let want = stack.nodes.len();
    let found = find(p, &stack.name, None).await?;
    if found.len() == want {
        return keep(p, stack, found).await;
    }
    if !found.is_empty() {
        // An interrupted launch: a partial set cannot serve, and a fresh pair lands together.
        say!(p, "  found {} of {want} nodes from an interrupted launch; terminating them first", found.len());
        terminate(p, &found.iter().map(|f| f.id.clone()).collect::<Vec<_>>()).await?;
    } else if !existing.is_empty() {
        say!(p, "  the nodes recorded in the state are gone; launching new ones");
    }
    launch_with_fallback(p, stack, info).await
}

/// Existing nodes: start stopped ones in place (never re-created elsewhere), wait, name them.
async fn keep(p: &AwsProvider, stack: &Stack, found: Vec<Found>) -> Result<Vec<NodeInfo>, ProviderError> {
    let stopped: Vec<String> =
        found.iter().filter(|f| f.state == "stopped" || f.state == "stopping").map(|f| f.id.clone()).collect();
    if !stopped.is_empty() {
        say!(p, "  starting stopped nodes {}", stopped.join(", "));
        with_retry(&*p.sink, "StartInstances", || async {
            p.ec2()
                .start_instances()
                .set_instance_ids(Some(stopped.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, "", ""))
        })
        .await?;
    }
    let ids: Vec<String> = found.iter().map(|f| f.id.clone()).collect();
    let running = wait_running(p, &stack.name, &ids).await?;
    wait_ssm_online(p, &ids).await?;
    Ok(name_nodes(stack, running))
}

async fn launch_with_fallback(p: &AwsProvider, stack: &Stack, info: &StackInfo) -> Result<Vec<NodeInfo>, ProviderError> {
    let ami = resolve_ami(p, stack).await?;
    let group = match p.set {
        1 => placement_group(p, stack, info).await?,
        s => node_sets::ensure_group(p, stack, s).await?,
    };
    let offered = offerings(p, &stack.instance_types).await?;
    let mut attempts: Vec<Attempt> = vec![];
    let mut round = 1;
    loop {
        // Each market in the stack's order, in it each type zone by zone before the next type:
        // the first market and type are the ones the user prefers.
        let mut queue: Vec<Candidate> = vec![];
        for &market in &stack.markets {
            for t in &stack.instance_types {
                for z in &stack.zones {
                    if offered.contains(&(z.clone(), t.clone())) {
                        queue.push((z.clone(), t.clone(), market));
                    } else if round == 1 && market == stack.markets[0] {
                        say!(p, "  skipping {z}: it does not offer {t}");
                        attempts.push(Attempt { zone: z.clone(), instance_type: t.clone(), reason: NOT_OFFERED.into() });
                    }
                }
            }
        }
        if queue.is_empty() {
            return Err(ProviderError::NoCapacity {
                instance_types: stack.instance_types.clone(),
                attempts,
                retry_offered: false,
            });
        }
        while !queue.is_empty() {
            if p.opts.interrupted() {
                return Err(ProviderError::Interrupted);
            }
            let (zone, ty, market) = queue.remove(0);
            say!(p, "  launching {} x {ty}{} in {zone}{}", stack.nodes.len(), on_market(stack, market), for_set(p.set));
            match launch(p, stack, info, &Launch { ami: &ami, group: &group, zone: &zone, ty: &ty, market }).await {
                Ok(nodes) => {
                    let failed = attempts.iter().filter(|a| a.reason != NOT_OFFERED).count();
                    if failed > 0 {
                        say!(p, "  landed in {zone} after {failed} failed attempt(s):\n{}", attempt_table(&attempts));
                    }
                    return Ok(nodes);
                }
                Err(ProviderError::Capacity { message, .. }) => {
                    say!(p, "  no capacity for {ty} in {zone}: {message}");
                    attempts.push(Attempt { zone: zone.clone(), instance_type: ty.clone(), reason: first_sentence(&message) });
                    // Never leave a partial launch running while trying elsewhere.
                    let partial: Vec<String> = find(p, &stack.name, Some(&zone)).await?.into_iter().map(|f| f.id).collect();
                    if !partial.is_empty() {
                        terminate(p, &partial).await?;
                    }
                    prefer_suggested(&mut queue, &ty, market, &super::suggested_zones(&message));
                }
                // The account's spot quota: no spot anywhere, the next market may launch.
                Err(ProviderError::Quota { message, .. }) if market == Market::Spot && stack.markets.len() > 1 => {
                    say!(p, "  no spot for {ty}: {message}; trying the next market");
                    attempts.push(Attempt { zone: zone.clone(), instance_type: ty.clone(), reason: first_sentence(&message) });
                    queue.retain(|c| c.2 != Market::Spot);
                }
                Err(other) => return Err(other),
            }
        }
        if !p.opts.retry_until_up {
            return Err(ProviderError::NoCapacity {
                instance_types: stack.instance_types.clone(),
                attempts,
                retry_offered: true,
            });
        }
        // A fixed, jittered pause (not a growing back-off), with a visible countdown.
        let base = stack.retry_interval.max(1.0);
        let wait = Duration::from_millis((base * 900.0) as u64 + jitter((base * 200.0) as u64));
        countdown(p, round, wait).await?;
        round += 1;
    }
}

/// A zone, an instance type and a market to launch in.
type Candidate = (String, String, Market);

/// " (spot)" or " (on demand)" in progress lines, when the stack names a market other than on demand.
fn on_market(stack: &Stack, market: Market) -> &'static str {
    match (market, stack.markets.as_slice()) {
        (Market::OnDemand, [Market::OnDemand]) => "",
        (Market::OnDemand, _) => " (on demand)",
        (Market::Spot, _) => " (spot)",
    }
}

/// Moves the zones an error message suggests to the front, for the same type and market, in its order.
fn prefer_suggested(queue: &mut Vec<Candidate>, ty: &str, market: Market, zones: &[String]) {
    for z in zones.iter().rev() {
        if let Some(pos) = queue.iter().position(|(qz, qt, qm)| qz == z && qt == ty && *qm == market) {
            let item = queue.remove(pos);
            queue.insert(0, item);
        }
    }
}

/// The pause between rounds, with a visible countdown; Ctrl-C ends it (and the loop) at once.
async fn countdown(p: &AwsProvider, round: u32, wait: Duration) -> Result<(), ProviderError> {
    let end = Instant::now() + wait;
    say!(p, "  round {round} found no capacity; next round in {}s (Ctrl-C to stop)", wait.as_secs());
    let mut said = wait.as_secs();
    while Instant::now() < end {
        if p.opts.interrupted() {
            return Err(ProviderError::Interrupted);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.as_secs().is_multiple_of(10) && left.as_secs() > 0 && left.as_secs() != said {
            said = left.as_secs();
            say!(p, "  next round in {}s", left.as_secs());
        }
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
    if p.opts.interrupted() {
        return Err(ProviderError::Interrupted);
    }
    Ok(())
}

/// "InsufficientInstanceCapacity: We currently do not have sufficient ... capacity in ... (us-east-1b)", for the table.
fn first_sentence(m: &str) -> String {
    match m.find(". ") {
        Some(i) => m[..=i].to_string(),
        None => m.to_string(),
    }
}

/// What one RunInstances asks for.
struct Launch<'a> {
    ami: &'a str,
    /// The stack's placement group, checked to exist.
    group: &'a str,
    zone: &'a str,
    ty: &'a str,
    market: Market,
}

async fn launch(p: &AwsProvider, stack: &Stack, info: &StackInfo, l: &Launch<'_>) -> Result<Vec<NodeInfo>, ProviderError> {
    let (ami, zone, ty) = (l.ami, l.zone, l.ty);
    let n = stack.nodes.len() as i32;
    let subnet = match &stack.subnet {
        Some(s) => s.clone(),
        None => default_subnet(p, zone).await?,
    };
    let sg = info.outputs.get(template::OUT_SECURITY_GROUP).cloned();
    let mut nic = InstanceNetworkInterfaceSpecification::builder().device_index(0).subnet_id(&subnet).delete_on_termination(true);
    if stack.efa {
        nic = nic.interface_type("efa");
    }
    if let Some(g) = &sg {
        nic = nic.groups(g);
    }
    let placement = Placement::builder().availability_zone(zone).group_name(l.group);
    let tags = node_sets::set_tags(p.set).into_iter().fold(
        TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key(STACK_TAG).value(&stack.name).build())
            .tags(Tag::builder().key("Name").value(format!("{}-node", stack.name)).build()),
        |spec, t| spec.tags(t),
    );
    let tags = tags.build();
    let vol_tags = TagSpecification::builder()
        .resource_type(ResourceType::Volume)
        .tags(Tag::builder().key(STACK_TAG).value(&stack.name).build())
        .build();
    let mut req = p
        .ec2()
        .run_instances()
        .image_id(ami)
        .instance_type(InstanceType::from(ty))
        .min_count(n)
        .max_count(n)
        .placement(placement.build())
        .network_interfaces(nic.build())
        .block_device_mappings(BlockDeviceMapping::builder().device_name("/dev/sda1").ebs(root_volume(stack)).build())
        .metadata_options(InstanceMetadataOptionsRequest::builder().http_tokens(HttpTokensState::Required).build())
        .tag_specifications(tags)
        .tag_specifications(vol_tags);
    if let Some(arn) = info.outputs.get(template::OUT_INSTANCE_PROFILE) {
        req = req.iam_instance_profile(IamInstanceProfileSpecification::builder().arn(arn).build());
    }
    if let Some(r) = &stack.capacity_reservation {
        req = req.capacity_reservation_specification(
            CapacityReservationSpecification::builder()
                .capacity_reservation_target(CapacityReservationTarget::builder().capacity_reservation_id(r).build())
                .build(),
        );
    }
    if stack.capacity_block {
        req = req.instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::CapacityBlock).build());
    }
    if l.market == Market::Spot {
        // A one-time request that ends with the instance: an interrupted node is replaced by apply.
        let spot = SpotMarketOptions::builder()
            .spot_instance_type(SpotInstanceType::OneTime)
            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
            .build();
        req = req.instance_market_options(
            InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).spot_options(spot).build(),
        );
    }
    let mut ids = run_instances(p, stack, req, zone, ty).await?;
    ids.sort();
    // Name each instance after its node, so a later apply can tell them apart.
    for ((_, id), node) in ids.iter().zip(&stack.nodes) {
        with_retry(&*p.sink, "CreateTags", || async {
            p.ec2()
                .create_tags()
                .resources(id)
                .tags(Tag::builder().key("Name").value(instance_name(stack, p.set, &node.name)).build())
                .tags(Tag::builder().key("nixl:node").value(&node.name).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, zone, ty))
        })
        .await?;
    }
    let ids: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    let running = wait_running(p, &stack.name, &ids).await?;
    wait_ssm_online(p, &ids).await?;
    Ok(name_nodes(stack, running))
}

/// The root volume: gp3 of the stack's size, always encrypted (with `kms_key` when the stack
/// names one, else the account's default EBS key), gone with the node.
fn root_volume(stack: &Stack) -> EbsBlockDevice {
    EbsBlockDevice::builder()
        .volume_size((stack.volume / 1e9).round() as i32)
        .volume_type(VolumeType::Gp3)
        .encrypted(true)
        .set_kms_key_id(stack.kms_key.clone())
        .delete_on_termination(true)
        .build()
}

/// RunInstances, retried on throttling and lost answers, never blindly: every try carries the
/// same ClientToken (EC2 answers a repeated token with the first launch), and before a retry the
/// stack's tagged instances are looked for (the tags are part of the launch request),
/// so a launch whose answer was lost is adopted, and a partial one terminated, not doubled.
/// Returns (launch index, instance id) of the nodes.
async fn run_instances(
    p: &AwsProvider,
    stack: &Stack,
    req: aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder,
    zone: &str,
    ty: &str,
) -> Result<Vec<(i32, String)>, ProviderError> {
    let want = stack.nodes.len();
    let token = std::sync::Mutex::new(new_token(stack, zone, ty));
    let tried = std::sync::atomic::AtomicBool::new(false);
    with_retry(&*p.sink, "RunInstances", || async {
        if tried.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // Any zone: `ensure` left none of the stack's instances before this launch, and the
            // availability-zone filter is not one every EC2 implementation honours.
            let found = find(p, &stack.name, None).await?;
            if found.len() == want {
                say!(
                    p,
                    "  RunInstances: the answer was lost but the {want} nodes are up; adopting {}",
                    ids_of(&found).join(", ")
                );
                return Ok(found.iter().map(|f| (f.launch_index, f.id.clone())).collect());
            }
            if !found.is_empty() {
                say!(p, "  RunInstances: the answer was lost and {} of {want} nodes are up; terminating them", found.len());
                terminate(p, &ids_of(&found)).await?;
                *token.lock().unwrap_or_else(|e| e.into_inner()) = new_token(stack, zone, ty);
            }
        }
        let t = token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let out = req.clone().client_token(t).send().await.map_err(|e| classify(&e, zone, ty))?;
        Ok(out
            .instances()
            .iter()
            .filter_map(|i| Some((i.ami_launch_index().unwrap_or(0), i.instance_id()?.to_string())))
            .collect())
    })
    .await
}

/// A fresh idempotency token for one launch (a hex hash: within EC2's 64 ASCII characters).
fn new_token(stack: &Stack, zone: &str, ty: &str) -> String {
    crate::state::content_hash(&(&stack.name, zone, ty, std::process::id(), jitter(u64::MAX)))
}

fn ids_of(found: &[Found]) -> Vec<String> {
    found.iter().map(|f| f.id.clone()).collect()
}

fn name_nodes(stack: &Stack, mut found: Vec<Found>) -> Vec<NodeInfo> {
    found.sort_by_key(|f| {
        (
            f.node.as_ref().and_then(|n| stack.nodes.iter().position(|s| &s.name == n)).unwrap_or(usize::MAX),
            f.launch_index,
            f.id.clone(),
        )
    });
    found
        .into_iter()
        .zip(&stack.nodes)
        .map(|(f, n)| NodeInfo {
            name: n.name.clone(),
            id: f.id,
            private_ip: f.private_ip,
            zone: Some(f.zone),
            instance_type: Some(f.instance_type),
            image: Some(f.image).filter(|i| !i.is_empty()),
        })
        .collect()
}

/// Instances of this node set's that are not terminated (optionally in one zone).
pub async fn find(p: &AwsProvider, stack: &str, zone: Option<&str>) -> Result<Vec<Found>, ProviderError> {
    find_in(p, stack, zone, Sets::One(p.set)).await
}

/// Instances of the stack's node sets `sets` that are not terminated (optionally in one zone).
pub async fn find_in(p: &AwsProvider, stack: &str, zone: Option<&str>, sets: Sets) -> Result<Vec<Found>, ProviderError> {
    let states = ["pending", "running", "stopping", "stopped"];
    let out = with_retry(&*p.sink, "DescribeInstances", || async {
        let mut req = p
            .ec2()
            .describe_instances()
            .filters(Filter::builder().name(format!("tag:{STACK_TAG}")).values(stack).build())
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                    .build(),
            );
        if let Some(z) = zone {
            req = req.filters(Filter::builder().name("availability-zone").values(z).build());
        }
        if let Some(f) = sets.filter() {
            req = req.filters(f);
        }
        req.send().await.map_err(|e| classify(&e, "", ""))
    })
    .await?;
    let found = describe_found(out.reservations().iter().flat_map(|r| r.instances()));
    Ok(found.into_iter().filter(|f| sets.holds(f.set.as_deref())).collect())
}

/// " for node set s" in progress lines, for sets beyond the first.
fn for_set(set: u32) -> String {
    match set {
        1 => String::new(),
        s => format!(" for node set {s}"),
    }
}

/// The Name tag of an instance: `<stack>-<node>`, `<stack>-set<s>-<node>` beyond set 1.
fn instance_name(stack: &Stack, set: u32, node: &str) -> String {
    match set {
        1 => format!("{}-{node}", stack.name),
        s => format!("{}-set{s}-{node}", stack.name),
    }
}

fn describe_found<'a>(instances: impl Iterator<Item = &'a aws_sdk_ec2::types::Instance>) -> Vec<Found> {
    instances
        .filter(|i| {
            !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown))
        })
        .map(|i| Found {
            id: i.instance_id().unwrap_or_default().into(),
            node: i.tags().iter().find(|t| t.key() == Some("nixl:node")).and_then(|t| t.value()).map(String::from),
            launch_index: i.ami_launch_index().unwrap_or(0),
            zone: i.placement().and_then(|p| p.availability_zone()).unwrap_or_default().into(),
            instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
            private_ip: i.private_ip_address().unwrap_or_default().into(),
            state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
            image: i.image_id().unwrap_or_default().into(),
            set: i.tags().iter().find(|t| t.key() == Some(SET_TAG)).and_then(|t| t.value()).map(String::from),
        })
        .collect()
}

async fn wait_running(p: &AwsProvider, stack: &str, ids: &[String]) -> Result<Vec<Found>, ProviderError> {
    let mut waiting = Waiting::new(format!("nodes {} to be `running`", ids.join(", ")), Duration::from_secs(900));
    loop {
        let all = describe_ids(p, ids).await?;
        let all: Vec<&aws_sdk_ec2::types::Instance> = all.iter().collect();
        if let Some(dead) = all.iter().find(|i| {
            matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown))
        }) {
            // A launch can fail after RunInstances returned: the state reason says why.
            let reason = dead.state_reason().and_then(|r| r.message()).unwrap_or("terminated during launch").to_string();
            let zone = dead.placement().and_then(|p| p.availability_zone()).unwrap_or_default();
            let ty = dead.instance_type().map(|t| t.as_str()).unwrap_or_default();
            let others: Vec<String> = ids.iter().filter(|i| Some(i.as_str()) != dead.instance_id()).cloned().collect();
            terminate(p, &others).await?;
            return Err(super::classify_reason(&reason, zone, ty)
                .unwrap_or(ProviderError::Other(format!("node of {stack} ended: {reason}"))));
        }
        let running = all.iter().filter(|i| i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Running)).count();
        if running == ids.len() {
            return Ok(describe_found(all.into_iter()));
        }
        if waiting.expired() {
            return Err(ProviderError::Other(format!("nodes {} did not reach `running` in 15 minutes", ids.join(", "))));
        }
        waiting.tick(&*p.sink);
        tokio::time::sleep(p.opts.poll).await;
    }
}

/// The stack's placement group, as its stack outputs name it, checked to exist with the
/// strategy the file declares: nodes launch into it or not at all (EC2 would otherwise
/// launch them wherever, and EFA between them would be slow without a word).
async fn placement_group(p: &AwsProvider, stack: &Stack, info: &StackInfo) -> Result<String, ProviderError> {
    let want = stack.placement.as_str();
    let Some(name) = info.outputs.get(template::OUT_PLACEMENT_GROUP).filter(|s| !s.is_empty()) else {
        return Err(ProviderError::Other(format!(
            "stack `{}` names no placement group (output {} missing); nodes are not launched outside a `{want}` group: run `nixl apply --replace stack`",
            stack.name,
            template::OUT_PLACEMENT_GROUP
        )));
    };
    let out = with_retry(&*p.sink, "DescribePlacementGroups", || async {
        p.ec2().describe_placement_groups().group_names(name).send().await.map_err(|e| classify(&e, "", ""))
    })
    .await;
    let missing = || {
        ProviderError::Other(format!(
            "placement group `{name}` of stack `{}` does not exist (deleted outside nixl?); nodes are not launched without it: run `nixl apply --replace stack`",
            stack.name
        ))
    };
    let groups = match out {
        Ok(o) => o.placement_groups().to_vec(),
        Err(ProviderError::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e),
    };
    let Some(g) = groups.iter().find(|g| g.group_name() == Some(name.as_str())) else { return Err(missing()) };
    let strategy = g.strategy().map(|s| s.as_str()).unwrap_or("");
    if strategy != want {
        return Err(ProviderError::Other(format!(
            "placement group `{name}` has strategy `{strategy}`, the stack declares `{want}`: run `nixl apply --replace stack`"
        )));
    }
    Ok(name.clone())
}

/// What keeps an SSM agent offline, most likely first.
const SSM_CHECK: &str = "that the AMI runs the SSM agent, that the instance profile has AmazonSSMManagedInstanceCore, and that the subnet reaches ssm.<region>.amazonaws.com (a public IP, a NAT gateway or VPC endpoints)";

/// Commands go through SSM, so a node is usable only once its agent reports online.
async fn wait_ssm_online(p: &AwsProvider, ids: &[String]) -> Result<(), ProviderError> {
    use aws_sdk_ssm::types::{InstanceInformationStringFilter, PingStatus};
    let bound = p.opts.ssm_online_timeout;
    say!(
        p,
        "  waiting up to {}s for the SSM agent of {} to come online (ssm_online_timeout under [aws] in nixl.toml)",
        bound.as_secs(),
        ids.join(", ")
    );
    let mut waiting = Waiting::new(format!("the SSM agent of {} ({SSM_CHECK})", ids.join(", ")), bound);
    let filter = InstanceInformationStringFilter::builder()
        .key("InstanceIds")
        .set_values(Some(ids.to_vec()))
        .build()
        .map_err(|e| ProviderError::Other(e.to_string()))?;
    loop {
        let out = with_retry(&*p.sink, "DescribeInstanceInformation", || async {
            p.ssm().describe_instance_information().filters(filter.clone()).send().await.map_err(|e| classify(&e, "", ""))
        })
        .await?;
        let online: BTreeSet<&str> = out
            .instance_information_list()
            .iter()
            .filter(|i| i.ping_status() == Some(&PingStatus::Online))
            .filter_map(|i| i.instance_id())
            .collect();
        if ids.iter().all(|i| online.contains(i.as_str())) {
            return Ok(());
        }
        if waiting.expired() {
            return Err(ProviderError::Other(format!(
                "the SSM agent of {} did not come online in {}s (the nodes are running; `nixl destroy` removes them): check {SSM_CHECK}",
                ids.join(", "),
                bound.as_secs()
            )));
        }
        waiting.tick(&*p.sink);
        tokio::time::sleep(p.opts.poll).await;
    }
}

async fn default_subnet(p: &AwsProvider, zone: &str) -> Result<String, ProviderError> {
    let out = with_retry(&*p.sink, "DescribeSubnets", || async {
        p.ec2()
            .describe_subnets()
            .filters(Filter::builder().name("availability-zone").values(zone).build())
            .filters(Filter::builder().name("default-for-az").values("true").build())
            .send()
            .await
            .map_err(|e| classify(&e, zone, ""))
    })
    .await?;
    out.subnets()
        .iter()
        .find_map(|s| s.subnet_id())
        .map(String::from)
        .ok_or_else(|| ProviderError::Credentials(format!("{zone} has no default subnet; set `subnet` in the stack block")))
}

/// (zone, type) pairs EC2 offers, for the types the stack names.
async fn offerings(p: &AwsProvider, types: &[String]) -> Result<BTreeSet<(String, String)>, ProviderError> {
    let out = with_retry(&*p.sink, "DescribeInstanceTypeOfferings", || async {
        p.ec2()
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .filters(Filter::builder().name("instance-type").set_values(Some(types.to_vec())).build())
            .send()
            .await
            .map_err(|e| classify(&e, "", ""))
    })
    .await?;
    Ok(out
        .instance_type_offerings()
        .iter()
        .filter_map(|o| Some((o.location()?.to_string(), o.instance_type()?.as_str().to_string())))
        .collect())
}

/// The AMI: an explicit id, or the one an SSM public parameter names (the Deep Learning AMIs publish one).
async fn resolve_ami(p: &AwsProvider, stack: &Stack) -> Result<String, ProviderError> {
    if let Some(a) = &stack.ami {
        return Ok(a.clone());
    }
    let Some(param) = &stack.ami_parameter else {
        return Err(ProviderError::Credentials("the stack names no `ami` and no `ami_parameter`".into()));
    };
    let out = with_retry(&*p.sink, "GetParameter", || async {
        p.ssm().get_parameter().name(param).send().await.map_err(|e| classify(&e, "", ""))
    })
    .await?;
    out.parameter()
        .and_then(|x| x.value())
        .map(String::from)
        .ok_or_else(|| ProviderError::Other(format!("SSM parameter {param} has no value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_zones_move_to_the_front_for_the_same_type() {
        let q = |z: &str, t: &str| (z.to_string(), t.to_string(), Market::OnDemand);
        let mut queue = vec![q("b", "x"), q("c", "x"), q("d", "x"), q("a", "y"), q("d", "y")];
        prefer_suggested(&mut queue, "x", Market::OnDemand, &["d".into(), "c".into()]);
        assert_eq!(queue, vec![q("d", "x"), q("c", "x"), q("b", "x"), q("a", "y"), q("d", "y")]);
    }
}
