//! What EC2 says of instances nixl launched: whether they are alive, the state of each
//! recorded node, and terminating them until they are gone. Launching is in `nodes`.

use super::errors::{classify, with_retry};
use super::{AwsProvider, Waiting};
use crate::provider::{NodeInfo, ProviderError};
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use std::time::Duration;

/// Terminates instances and waits until they are gone, so nothing is paid for after a failure.
/// Ids EC2 no longer knows, or already terminated, count as gone (a state can outlive its
/// instances; a destroy killed mid-terminate is run again).
pub async fn terminate(p: &AwsProvider, ids: &[String]) -> Result<(), ProviderError> {
    // A NotFound means one vanished between the look and the call: look again, at most thrice.
    for _ in 0..3 {
        let live = alive(p, ids).await?;
        if live.is_empty() {
            break;
        }
        let r = with_retry(&*p.sink, "TerminateInstances", || async {
            p.ec2()
                .terminate_instances()
                .set_instance_ids(Some(live.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, "", ""))
        })
        .await;
        match r {
            Ok(()) => break,
            Err(ProviderError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    let mut waiting = Waiting::new(format!("{} to terminate", ids.join(", ")), Duration::from_secs(600));
    loop {
        let left = alive(p, ids).await?;
        if left.is_empty() {
            return Ok(());
        }
        if waiting.expired() {
            return Err(ProviderError::Other(format!("{} did not terminate in 10 minutes", left.join(", "))));
        }
        waiting.tick(&*p.sink);
        tokio::time::sleep(p.opts.poll).await;
    }
}

/// Those of `ids` EC2 knows and that are not terminated yet.
pub async fn alive(p: &AwsProvider, ids: &[String]) -> Result<Vec<String>, ProviderError> {
    Ok(describe_ids(p, ids)
        .await?
        .iter()
        .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated))
        .filter_map(|i| i.instance_id().map(String::from))
        .collect())
}

/// Each recorded node's state in EC2: running (or pending), running as another instance type than
/// recorded, stopped (or stopping), or gone.
pub async fn states(p: &AwsProvider, known: &[NodeInfo]) -> Result<Vec<crate::provider::NodeState>, ProviderError> {
    use crate::provider::NodeState;
    let ids: Vec<String> = known.iter().map(|n| n.id.clone()).collect();
    let found = describe_ids(p, &ids).await?;
    Ok(known
        .iter()
        .map(|n| {
            let instance = found.iter().find(|i| i.instance_id() == Some(n.id.as_str()));
            let state = instance.and_then(|i| i.state()).and_then(|s| s.name());
            let runs_as = instance.and_then(|i| i.instance_type()).map(|t| t.as_str().to_string());
            match state {
                Some(InstanceStateName::Running | InstanceStateName::Pending) => match (runs_as, &n.instance_type) {
                    // Stopped, resized and started again outside nixl.
                    (Some(now), Some(was)) if &now != was => NodeState::Changed(format!("runs as {now}, recorded as {was}")),
                    _ => NodeState::Running,
                },
                Some(InstanceStateName::Stopped | InstanceStateName::Stopping) => NodeState::Stopped,
                _ => NodeState::Gone,
            }
        })
        .collect())
}

/// The instances with these ids that EC2 still knows, in whatever state. A filter, not
/// InstanceIds: an id EC2 has forgotten is then absent instead of failing the whole call.
pub(super) async fn describe_ids(p: &AwsProvider, ids: &[String]) -> Result<Vec<aws_sdk_ec2::types::Instance>, ProviderError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let out = with_retry(&*p.sink, "DescribeInstances", || async {
        p.ec2()
            .describe_instances()
            .filters(Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build())
            .send()
            .await
            .map_err(|e| classify(&e, "", ""))
    })
    .await?;
    Ok(out.reservations().iter().flat_map(|r| r.instances()).cloned().collect())
}
