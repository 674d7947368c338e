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
    /// The node set these nodes belong to (`parallel = k`), 1-based.
    set: u32,
}

/// How far apart the ports of two local node sets are: every set shares 127.0.0.1.
pub const PORT_STRIDE: u32 = 1000;

impl LocalProvider {
    pub fn new(root: &Path, here: &Path) -> LocalProvider {
        LocalProvider { root: root.to_path_buf(), here: here.to_path_buf(), set: 1 }
    }

    fn node_dir(&self, name: &str) -> PathBuf {
        match self.set {
            1 => self.root.join("nodes").join(name),
            s => self.other_sets().join(s.to_string()).join(name),
        }
    }

    /// Where the nodes of sets beyond the first live, one directory per set.
    fn other_sets(&self) -> PathBuf {
        self.root.join("sets")
    }

    /// Every node directory of the sets beyond the first: what destroy stops and removes.
    fn other_set_nodes(&self) -> Vec<PathBuf> {
        let sets = std::fs::read_dir(self.other_sets()).into_iter().flatten().flatten().filter(|e| e.path().is_dir());
        sets.flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten()).map(|e| e.path()).collect()
    }
}

fn io(e: std::io::Error) -> ProviderError {
    ProviderError::Other(e.to_string())
}

impl crate::provider::NodeSets for LocalProvider {
    /// The same place for node set `set`: set 1's nodes are the campaign's own
    /// (`nodes/<name>`), set s > 1 has its own directories (`sets/<s>/<name>`).
    fn node_set(&self, set: u32) -> LocalProvider {
        LocalProvider { root: self.root.clone(), here: self.here.clone(), set: set.max(1) }
    }
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

    /// Set s listens `(s - 1) * PORT_STRIDE` ports up, so sets on this one machine never collide.
    fn port_shift(&self) -> u32 {
        (self.set - 1) * PORT_STRIDE
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
        let results = crate::join::join_all(runs).await;
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
        crate::join::join_all(runs).await.into_iter().collect()
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
        // Stop what the campaign left running: every pid file under the node directories,
        // those of the other node sets (`parallel`) included.
        let others = self.other_set_nodes().into_iter().map(|dir| NodeInfo {
            name: dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
            id: dir.display().to_string(),
            private_ip: "127.0.0.1".into(),
            zone: None,
            instance_type: None,
            image: None,
        });
        for n in nodes.iter().cloned().chain(others) {
            let _ = run_one(
                &n,
                "for f in *.pid; do [ -f \"$f\" ] && kill $(cat \"$f\") 2>/dev/null; rm -f \"$f\"; done; true",
                Duration::from_secs(30),
                &self.here,
                &[],
            )
            .await;
        }
        for dir in [self.root.join("nodes"), self.other_sets()] {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
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
