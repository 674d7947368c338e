//! Commands on the nodes through SSM: the script goes to the bucket once per
//! content hash, the node fetches and runs it (AWS-RunShellScript); the
//! invocation is polled with back-off; output past SSM's inline limit is read
//! from the S3 output location.

use super::errors::{classify, with_retry};
use super::{AwsProvider, Waiting};
use crate::provider::{CommandOutput, NodeInfo, ProviderError};
use aws_sdk_ssm::types::CommandInvocationStatus;
use std::time::{Duration, Instant};

/// SSM keeps at most this many characters of output inline.
const INLINE_LIMIT: usize = 24_000;
/// Where the scripts nixl uploads live: the only keys a node may read.
pub const SCRIPTS_PREFIX: &str = "nixl/scripts";
/// Where SSM writes command output (by the node's role): a key a node may write.
pub const OUTPUT_PREFIX: &str = "nixl/ssm-output";
/// Where a node copies files nixl fetches from it: the other key a node may write.
pub const FETCH_PREFIX: &str = "nixl/fetch";
/// The node's working directory: results and server logs stay there between commands.
const WORKDIR: &str = "/opt/nixl";

pub fn script_key(script: &str) -> String {
    format!("{SCRIPTS_PREFIX}/{}.sh", crate::state::content_hash(&script))
}

pub async fn put_once(p: &AwsProvider, key: &str, bytes: &[u8]) -> Result<(), ProviderError> {
    if p.uploaded.lock().unwrap_or_else(|e| e.into_inner()).contains(key) {
        return Ok(());
    }
    let bucket = p.bucket()?;
    let present = p.s3.head_object().bucket(&bucket).key(key).send().await.is_ok();
    if !present {
        let body = bytes.to_vec();
        with_retry(&*p.sink, "PutObject", || async {
            p.s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, "", ""))
        })
        .await?;
    }
    p.uploaded.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string());
    Ok(())
}

/// The shell lines SSM runs: fetch the script by its hash, run it.
pub fn commands(bucket: &str, key: &str) -> Vec<String> {
    let local = format!("/tmp/{}", key.replace('/', "-"));
    vec![
        "set -e".into(),
        // Every command of a campaign runs in one working directory, as on the local provider.
        format!("mkdir -p {WORKDIR} && cd {WORKDIR}"),
        format!("aws s3 cp --quiet 's3://{bucket}/{key}' '{local}'"),
        format!("exec bash '{local}'"),
    ]
}

pub async fn run(
    p: &AwsProvider,
    nodes: &[NodeInfo],
    script: &str,
    timeout: Duration,
) -> Result<Vec<CommandOutput>, ProviderError> {
    let bucket = p.bucket()?;
    let key = script_key(script);
    put_once(p, &key, script.as_bytes()).await?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let secs = timeout.as_secs().max(30);
    let sent = with_retry(&*p.sink, "SendCommand", || async {
        p.ssm
            .send_command()
            .document_name("AWS-RunShellScript")
            .set_instance_ids(Some(ids.clone()))
            .parameters("commands", commands(&bucket, &key))
            .parameters("executionTimeout", vec![secs.to_string()])
            .timeout_seconds(600)
            .output_s3_bucket_name(&bucket)
            .output_s3_key_prefix(OUTPUT_PREFIX)
            .comment(format!("nixl {}", &key))
            .send()
            .await
            .map_err(|e| classify(&e, "", ""))
    })
    .await?;
    let command_id = sent.command().and_then(|c| c.command_id()).unwrap_or_default().to_string();
    let mut outs = vec![];
    for n in nodes {
        outs.push(wait_invocation(p, &bucket, &command_id, n, timeout).await?);
    }
    Ok(outs)
}

async fn wait_invocation(
    p: &AwsProvider,
    bucket: &str,
    command_id: &str,
    node: &NodeInfo,
    timeout: Duration,
) -> Result<CommandOutput, ProviderError> {
    let deadline = Instant::now() + timeout + Duration::from_secs(60);
    let mut waiting = Waiting::new(format!("command {command_id} on {}", node.name), timeout + Duration::from_secs(60));
    let mut pause = p.opts.poll.min(Duration::from_secs(1));
    loop {
        let r = p.ssm.get_command_invocation().command_id(command_id).instance_id(&node.id).send().await;
        match r {
            Ok(inv) => {
                let status = inv.status().cloned().unwrap_or(CommandInvocationStatus::Pending);
                let done = matches!(
                    status,
                    CommandInvocationStatus::Success
                        | CommandInvocationStatus::Failed
                        | CommandInvocationStatus::Cancelled
                        | CommandInvocationStatus::TimedOut
                );
                if done {
                    if status == CommandInvocationStatus::TimedOut {
                        return Err(ProviderError::Timeout { node: node.name.clone(), seconds: timeout.as_secs() });
                    }
                    let mut stdout = inv.standard_output_content().unwrap_or_default().to_string();
                    let mut stderr = inv.standard_error_content().unwrap_or_default().to_string();
                    if stdout.len() >= INLINE_LIMIT {
                        stdout = read_output(p, bucket, command_id, &node.id, "stdout").await.unwrap_or(stdout);
                    }
                    if stderr.len() >= INLINE_LIMIT {
                        stderr = read_output(p, bucket, command_id, &node.id, "stderr").await.unwrap_or(stderr);
                    }
                    let code = match status {
                        CommandInvocationStatus::Success => 0,
                        _ if inv.response_code() > 0 => inv.response_code(),
                        _ => 1,
                    };
                    return Ok(CommandOutput { node: node.name.clone(), exit_code: code, stdout, stderr });
                }
            }
            Err(e) => match classify(&e, "", "") {
                // Right after SendCommand the invocation may not exist yet.
                ProviderError::Other(m) if m.contains("InvocationDoesNotExist") => {}
                ProviderError::Transient(_) => {}
                other => return Err(other),
            },
        }
        if Instant::now() > deadline {
            let _ = p.ssm.cancel_command().command_id(command_id).instance_ids(&node.id).send().await;
            return Err(ProviderError::Timeout { node: node.name.clone(), seconds: timeout.as_secs() });
        }
        waiting.tick(&*p.sink);
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(p.opts.poll.max(Duration::from_millis(50)) * 4).min(Duration::from_secs(10));
    }
}

/// SSM writes full output to `<prefix>/<command>/<instance>/awsrunShellScript/0.awsrunShellScript/<stream>`.
async fn read_output(p: &AwsProvider, bucket: &str, command_id: &str, instance: &str, stream: &str) -> Option<String> {
    let key = format!("{OUTPUT_PREFIX}/{command_id}/{instance}/awsrunShellScript/0.awsrunShellScript/{stream}");
    let o = p.s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    let bytes = o.body.collect().await.ok()?.into_bytes();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A file on a node: the node copies it to the bucket, then it is read from there.
pub async fn fetch(p: &AwsProvider, node: &NodeInfo, path: &str) -> Result<Vec<u8>, ProviderError> {
    let bucket = p.bucket()?;
    let key = format!("{FETCH_PREFIX}/{}/{}", node.name, crate::state::content_hash(&path));
    let script = format!("aws s3 cp --quiet '{path}' 's3://{bucket}/{key}'\n");
    let out = run(p, std::slice::from_ref(node), &script, Duration::from_secs(300)).await?;
    if let Some(o) = out.first().filter(|o| o.exit_code != 0) {
        return Err(ProviderError::Other(format!("could not copy {path} from {}: {}", node.name, o.tail(5))));
    }
    let o = p.s3.get_object().bucket(&bucket).key(&key).send().await.map_err(|e| {
        ProviderError::Other(format!("{path} from {} did not reach the bucket: {}", node.name, classify(&e, "", "")))
    })?;
    let bytes = o.body.collect().await.map_err(|e| ProviderError::Transient(e.to_string()))?.into_bytes();
    Ok(bytes.to_vec())
}
