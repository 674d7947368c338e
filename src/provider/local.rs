//! The local provider: nodes are working directories, commands are local
//! processes (with the same timeouts, output capture and exit codes), objects
//! are files. A whole campaign runs on one machine, with no cloud account.

use super::{CommandOutput, NodeInfo, Provider, ProviderError, SecretEnv, StackInfo};
use crate::check::model::Stack;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct LocalProvider {
    /// `.nixl/<experiment>/local` beside the file.
    root: PathBuf,
    /// The directory of the .nixl file, exported as NIXL_HERE for stand-in scripts.
    here: PathBuf,
}

impl LocalProvider {
    pub fn new(root: &Path, here: &Path) -> LocalProvider {
        LocalProvider { root: root.to_path_buf(), here: here.to_path_buf() }
    }

    fn node_dir(&self, name: &str) -> PathBuf {
        self.root.join("nodes").join(name)
    }
}

fn io(e: std::io::Error) -> ProviderError {
    ProviderError::Other(e.to_string())
}

impl Provider for LocalProvider {
    /// A node is its directory: gone when the directory is.
    async fn node_states(&self, nodes: &[NodeInfo]) -> Result<Vec<super::NodeState>, ProviderError> {
        Ok(nodes
            .iter()
            .map(|n| if Path::new(&n.id).is_dir() { super::NodeState::Running } else { super::NodeState::Gone })
            .collect())
    }

    fn name(&self) -> &'static str {
        "local"
    }

    async fn ensure_stack(&self, stack: &Stack) -> Result<StackInfo, ProviderError> {
        let objects = self.root.join("objects");
        tokio::fs::create_dir_all(&objects).await.map_err(io)?;
        Ok(StackInfo {
            id: format!("local:{}", self.root.display()),
            bucket: stack.buckets.first().map(|b| objects.join(b).display().to_string()),
            outputs: Default::default(),
        })
    }

    async fn ensure_nodes(
        &self,
        stack: &Stack,
        _info: &StackInfo,
        _existing: &[NodeInfo],
    ) -> Result<Vec<NodeInfo>, ProviderError> {
        let mut nodes = vec![];
        for n in &stack.nodes {
            let dir = self.node_dir(&n.name);
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            nodes.push(NodeInfo {
                name: n.name.clone(),
                id: dir.display().to_string(),
                private_ip: "127.0.0.1".into(),
                zone: Some("local".into()),
                instance_type: Some("local".into()),
                image: None,
            });
        }
        Ok(nodes)
    }

    async fn run(&self, nodes: &[NodeInfo], script: &str, timeout: Duration) -> Result<Vec<CommandOutput>, ProviderError> {
        let runs = nodes.iter().map(|n| run_one(n, script, timeout, &self.here, &[]));
        let results = futures_join(runs).await;
        results.into_iter().collect()
    }

    /// The secrets go into the environment of the script's process, as they do on a node.
    async fn run_with_secrets(
        &self,
        _stack: &Stack,
        nodes: &[NodeInfo],
        script: &str,
        timeout: Duration,
        secrets: &[SecretEnv],
    ) -> Result<Vec<CommandOutput>, ProviderError> {
        let runs = nodes.iter().map(|n| run_one(n, script, timeout, &self.here, secrets));
        futures_join(runs).await.into_iter().collect()
    }

    async fn read_parameter(&self, name: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Other(format!(
            "the local provider reads no SSM parameters (`{name}`): give the secret as secret(\"env:NAME\") for local runs"
        )))
    }

    async fn fetch(&self, node: &NodeInfo, path: &str) -> Result<Vec<u8>, ProviderError> {
        let p = Path::new(path);
        let full = if p.is_absolute() { p.to_path_buf() } else { PathBuf::from(&node.id).join(p) };
        tokio::fs::read(&full)
            .await
            .map_err(|e| ProviderError::Other(format!("cannot read {} on {}: {e}", full.display(), node.name)))
    }

    async fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), ProviderError> {
        let path = self.root.join("objects").join(key);
        if path.exists() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        crate::state::write_atomic(&path, bytes).map_err(io)
    }

    async fn destroy_nodes(&self, _stack: &Stack, nodes: &[NodeInfo]) -> Result<(), ProviderError> {
        // Stop what the campaign left running: every pid file under the node directories.
        for n in nodes {
            let _ = run_one(
                n,
                "for f in *.pid; do [ -f \"$f\" ] && kill $(cat \"$f\") 2>/dev/null; rm -f \"$f\"; done; true",
                Duration::from_secs(30),
                &self.here,
                &[],
            )
            .await;
        }
        match tokio::fs::remove_dir_all(self.root.join("nodes")).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn destroy(&self, stack: &Stack, _info: Option<&StackInfo>, nodes: &[NodeInfo]) -> Result<(), ProviderError> {
        self.destroy_nodes(stack, nodes).await?;
        match tokio::fs::remove_dir_all(&self.root).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

/// Runs the futures concurrently on the current task and collects their results in order.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().map(|d| d.expect("every future finished")));
    out
}

async fn run_one(
    node: &NodeInfo,
    script: &str,
    timeout: Duration,
    here: &Path,
    secrets: &[SecretEnv],
) -> Result<CommandOutput, ProviderError> {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.envs(secrets.iter().map(|s| (&s.var, s.value.expose())));
    cmd.arg("-c")
        .arg(script)
        .current_dir(&node.id)
        .env("NIXL_NODE", &node.name)
        .env("NIXL_HERE", here)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so a timeout stops the whole script and what it started.
    cmd.process_group(0);
    let child = cmd.spawn().map_err(|e| ProviderError::Other(format!("cannot start bash on {}: {e}", node.name)))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(CommandOutput {
            node: node.name.clone(),
            exit_code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(ProviderError::Other(format!("command on {} failed to run: {e}", node.name))),
        Err(_) => {
            if let Some(pid) = pid {
                // Negative pid: the whole process group.
                let _ = std::process::Command::new("kill").arg("-TERM").arg(format!("-{pid}")).status();
            }
            Err(ProviderError::Timeout { node: node.name.clone(), seconds: timeout.as_secs() })
        }
    }
}
