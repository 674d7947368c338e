//! Commands on the nodes through SSM: the script goes to the bucket once per
//! content hash, the node fetches it into a private directory, checks its
//! SHA-256 and runs it (AWS-RunShellScript); the
//! invocation is polled with back-off; output past SSM's inline limit is read
//! from the S3 output location.

use super::errors::{classify, with_retry};
use super::{AwsProvider, Waiting};
use crate::design::render::shell_quote;
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
/// Where a command runs on a node, and where the node keeps the scripts it fetched.
pub struct NodeDirs<'a> {
    /// The working directory: results and server logs stay there between commands.
    pub work: &'a str,
    /// Root's alone (0700), outside the shared /tmp.
    pub scripts: &'a str,
}

pub const NODE_DIRS: NodeDirs<'static> = NodeDirs { work: "/opt/nixl", scripts: "/var/lib/nixl/scripts" };

pub fn script_key(script: &str) -> String {
    format!("{SCRIPTS_PREFIX}/{}.sh", crate::state::content_hash(&script))
}

pub async fn put_once(p: &AwsProvider, key: &str, bytes: &[u8]) -> Result<(), ProviderError> {
    if p.uploaded.lock().unwrap_or_else(|e| e.into_inner()).contains(key) {
        return Ok(());
    }
    let bucket = p.bucket()?;
    let present = p.s3().head_object().bucket(&bucket).key(key).send().await.is_ok();
    if !present {
        let body = bytes.to_vec();
        with_retry(&*p.sink, "PutObject", || async {
            p.s3()
                .put_object()
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

/// The SHA-256 of a script's bytes, as `sha256sum` prints it: what the node checks before running it.
pub fn script_sha256(script: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(script.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The shell lines SSM runs: fetch the script into a private directory, refuse it unless its
/// SHA-256 is the one nixl computed before uploading it, run it. Every value goes through the one
/// quoting function: the bucket is AWS's name and the key and hash are hex, but nothing relies on that.
/// `env` are lines that set the script's environment first (the secrets it reads, `secrets::exports`).
pub fn commands(dirs: &NodeDirs, bucket: &str, key: &str, sha256: &str, env: &[String]) -> Vec<String> {
    let local = format!("{}/{sha256}.sh", dirs.scripts);
    let (work, dir, local_q) = (shell_quote(dirs.work), shell_quote(dirs.scripts), shell_quote(&local));
    let mut lines: Vec<String> = vec![
        "set -e".into(),
        // Every command of a campaign runs in one working directory, as on the local provider.
        format!("mkdir -p {work} && cd {work}"),
        format!("(umask 077 && mkdir -p {dir}) && chmod 0700 {dir}"),
        format!("aws s3 cp --quiet {} {local_q}", shell_quote(&format!("s3://{bucket}/{key}"))),
        format!(
            "echo {} | sha256sum --check --status - || {{ echo {} >&2; rm -f {local_q}; exit 126; }}",
            shell_quote(&format!("{sha256}  {local}")),
            shell_quote(&format!("nixl: s3://{bucket}/{key} is not the script nixl uploaded (sha256 differs); not running it")),
        ),
    ];
    lines.extend(env.iter().cloned());
    lines.push(format!("exec bash {local_q}"));
    lines
}

/// `env`: lines that set the script's environment on the node before it runs (`commands`).
pub async fn run(
    p: &AwsProvider,
    nodes: &[NodeInfo],
    script: &str,
    timeout: Duration,
    env: &[String],
) -> Result<Vec<CommandOutput>, ProviderError> {
    let bucket = p.bucket()?;
    let key = script_key(script);
    put_once(p, &key, script.as_bytes()).await?;
    let sha256 = script_sha256(script);
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let secs = timeout.as_secs().max(30);
    let sent = with_retry(&*p.sink, "SendCommand", || async {
        p.ssm()
            .send_command()
            .document_name("AWS-RunShellScript")
            .set_instance_ids(Some(ids.clone()))
            .parameters("commands", commands(&NODE_DIRS, &bucket, &key, &sha256, env))
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
        let r = p.ssm().get_command_invocation().command_id(command_id).instance_id(&node.id).send().await;
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
            let _ = p.ssm().cancel_command().command_id(command_id).instance_ids(&node.id).send().await;
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
    let o = p.s3().get_object().bucket(bucket).key(key).send().await.ok()?;
    let bytes = o.body.collect().await.ok()?.into_bytes();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A file on a node: the node copies it to the bucket, then it is read from there.
pub async fn fetch(p: &AwsProvider, node: &NodeInfo, path: &str) -> Result<Vec<u8>, ProviderError> {
    let bucket = p.bucket()?;
    let key = format!("{FETCH_PREFIX}/{}/{}", node.name, crate::state::content_hash(&path));
    // The path is a result file nixl names, but it goes through the one quoting function all the same.
    let script = format!("aws s3 cp --quiet {} {}\n", shell_quote(path), shell_quote(&format!("s3://{bucket}/{key}")));
    let out = run(p, std::slice::from_ref(node), &script, Duration::from_secs(300), &[]).await?;
    if let Some(o) = out.first().filter(|o| o.exit_code != 0) {
        return Err(ProviderError::Other(format!("could not copy {path} from {}: {}", node.name, o.tail(5))));
    }
    let o = p.s3().get_object().bucket(&bucket).key(&key).send().await.map_err(|e| {
        ProviderError::Other(format!("{path} from {} did not reach the bucket: {}", node.name, classify(&e, "", "")))
    })?;
    let bytes = o.body.collect().await.map_err(|e| ProviderError::Transient(e.to_string()))?.into_bytes();
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    /// A node in a directory: `aws s3 cp s3://B/K DEST` copies `bucket/K` (the real CLI's
    /// effect on success), and the SSM document's lines run as one bash script, as
    /// AWS-RunShellScript runs them.
    fn run_on_node(root: &Path, lines: &[String]) -> std::process::Output {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let aws = bin.join("aws");
        std::fs::write(
            &aws,
            format!(
                "#!/bin/bash\n[ \"$1 $2 $3\" = 's3 cp --quiet' ] || exit 2\ncp \"{}/${{4#s3://*/}}\" \"$5\"\n",
                root.join("bucket").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        Command::new("bash").arg("-c").arg(lines.join("\n")).env("PATH", path).output().unwrap()
    }

    #[test]
    fn the_node_runs_a_script_only_when_its_sha256_is_the_one_nixl_computed() {
        let root = std::env::temp_dir().join(format!("nixl-ssm-sha-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (work, scripts) = (root.join("work"), root.join("private/scripts"));
        let dirs = NodeDirs { work: work.to_str().unwrap(), scripts: scripts.to_str().unwrap() };
        let script = "echo ran > marker\n";
        let key = script_key(script);
        let sha = script_sha256(script);
        let in_bucket = root.join("bucket").join(&key);
        std::fs::create_dir_all(in_bucket.parent().unwrap()).unwrap();
        let lines = commands(&dirs, "nixl-test-bucket", &key, &sha, &[]);
        assert!(lines.iter().any(|l| l.contains(&sha) && l.contains("sha256sum --check")), "{lines:?}");

        // The script as uploaded: it runs, in the working directory, from a directory only root reads.
        std::fs::write(&in_bucket, script).unwrap();
        let out = run_on_node(&root, &lines);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read_to_string(work.join("marker")).unwrap(), "ran\n");
        assert_eq!(std::fs::metadata(&scripts).unwrap().permissions().mode() & 0o777, 0o700);

        // Rewritten in the bucket: refused, not run, not left behind.
        std::fs::remove_file(work.join("marker")).unwrap();
        std::fs::write(&in_bucket, "echo ran > marker; echo owned\n").unwrap();
        let out = run_on_node(&root, &lines);
        assert_eq!(out.status.code(), Some(126));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not the script nixl uploaded"));
        assert!(!work.join("marker").exists(), "a script with another hash ran");
        assert!(!scripts.join(format!("{sha}.sh")).exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_hash_is_sha256_of_the_bytes_as_sha256sum_prints_it() {
        // sha256("abc"), FIPS 180-2's first example.
        assert_eq!(script_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
