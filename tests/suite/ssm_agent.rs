//! A stand-in for the SSM agent on moto's instances: moto records SendCommand but runs
//! nothing, so the proxy hands each command to this agent, which runs the document's lines
//! as AWS-RunShellScript would on the node (one bash script), here, in a directory of the
//! instance's own (the node's /opt/nixl and /var/lib/nixl/scripts moved under it), with the
//! real aws CLI against moto. GetCommandInvocation is answered from what it ran: InProgress
//! until the script ends, then its exit code and output, as SSM reports them.
//!
//! An instance terminated through the proxy (`terminate`) is gone as on EC2: what runs there
//! is killed (its invocation ends Failed), and SendCommand to it is refused (`InvalidInstanceId`).
//!
//! Every instance is on 127.0.0.1 here, so each gets its own NODE_PORT_OFFSET (0, 10, 20, ...
//! by first command) for campaigns whose servers add it to their ports.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What one instance's run of a command came to: None while it runs.
type Outcome = Option<(i32, String, String)>;

pub struct Agent {
    root: PathBuf,
    moto_port: u16,
    runs: Mutex<HashMap<(String, String), Outcome>>,
    offsets: Mutex<Vec<String>>,
    /// Instances terminated, and the process group of each command running on an instance.
    terminated: Mutex<HashSet<String>>,
    running: Mutex<HashMap<(String, String), u32>>,
}

impl Agent {
    pub fn new(root: &Path, moto_port: u16) -> Arc<Agent> {
        std::fs::create_dir_all(root).unwrap();
        Arc::new(Agent {
            root: root.to_path_buf(),
            moto_port,
            runs: Mutex::default(),
            offsets: Mutex::default(),
            terminated: Mutex::default(),
            running: Mutex::default(),
        })
    }

    /// The working directory of an instance's commands (its /opt/nixl).
    pub fn work_dir(&self, instance: &str) -> PathBuf {
        self.root.join(instance).join("opt-nixl")
    }

    /// Instances that ran at least one command, in the order they first did.
    pub fn instances(&self) -> Vec<String> {
        self.offsets.lock().unwrap().clone()
    }

    /// Whether any instance a SendCommand request (its JSON body) names is terminated.
    pub fn refuses(&self, request: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(request).unwrap_or_default();
        let gone = self.terminated.lock().unwrap();
        let ids = v["InstanceIds"].as_array().cloned().unwrap_or_default();
        ids.iter().filter_map(|i| i.as_str()).find(|i| gone.contains(*i)).map(String::from)
    }

    /// The instances are terminated: whatever their commands run is killed, as the machine goes.
    pub fn terminate(&self, ids: &[String]) {
        self.terminated.lock().unwrap().extend(ids.iter().cloned());
        let running = self.running.lock().unwrap().clone();
        for ((_, iid), pgid) in running {
            if ids.contains(&iid) {
                let _ = std::process::Command::new("kill").arg("-KILL").arg(format!("-{pgid}")).status();
            }
        }
        // Servers started in the background left their own process groups' pid files.
        for id in ids {
            stop_servers_in(&self.work_dir(id));
        }
    }

    /// Starts the command's lines on each instance of a SendCommand request (its JSON body),
    /// under the command id moto gave it.
    pub fn start(self: &Arc<Self>, command_id: &str, request: &str) {
        let v: serde_json::Value = serde_json::from_str(request).unwrap_or_default();
        let lines: Vec<String> =
            v["Parameters"]["commands"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(String::from)).collect();
        let ids: Vec<String> =
            v["InstanceIds"].as_array().into_iter().flatten().filter_map(|i| i.as_str().map(String::from)).collect();
        for id in ids {
            self.runs.lock().unwrap().insert((command_id.to_string(), id.clone()), None);
            let (me, cmd, script) = (self.clone(), command_id.to_string(), lines.join("\n"));
            std::thread::spawn(move || {
                let outcome = me.run(&cmd, &id, &script);
                me.runs.lock().unwrap().insert((cmd, id), Some(outcome));
            });
        }
    }

    fn offset(&self, instance: &str) -> usize {
        let mut seen = self.offsets.lock().unwrap();
        let i = seen.iter().position(|s| s == instance).unwrap_or_else(|| {
            seen.push(instance.to_string());
            seen.len() - 1
        });
        i * 10
    }

    fn run(&self, command_id: &str, instance: &str, script: &str) -> (i32, String, String) {
        let work = self.work_dir(instance);
        let scripts = self.root.join(instance).join("var-lib-nixl-scripts");
        let script =
            script.replace("/opt/nixl", work.to_str().unwrap()).replace("/var/lib/nixl/scripts", scripts.to_str().unwrap());
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.moto_port))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.root.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.root.join("no-aws-credentials"))
            .env("NODE_PORT_OFFSET", self.offset(instance).to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let key = (command_id.to_string(), instance.to_string());
        if let Ok(c) = &child {
            self.running.lock().unwrap().insert(key.clone(), c.id());
        }
        let out = child.and_then(|c| c.wait_with_output());
        self.running.lock().unwrap().remove(&key);
        match out {
            Ok(o) => (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
            Err(e) => (127, String::new(), e.to_string()),
        }
    }

    /// SSM's answer to GetCommandInvocation (its JSON body), or None for a command not run here.
    pub fn invocation(&self, request: &str) -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(request).ok()?;
        let (cmd, iid) = (v["CommandId"].as_str()?.to_string(), v["InstanceId"].as_str()?.to_string());
        let outcome = self.runs.lock().unwrap().get(&(cmd.clone(), iid.clone()))?.clone();
        let cut = |s: &str| s.chars().take(24_000).collect::<String>();
        Some(match outcome {
            None => {
                serde_json::json!({"CommandId": cmd, "InstanceId": iid, "Status": "InProgress", "StatusDetails": "InProgress", "ResponseCode": -1})
            }
            Some((code, out, err)) => {
                let status = if code == 0 { "Success" } else { "Failed" };
                serde_json::json!({
                    "CommandId": cmd, "InstanceId": iid, "Status": status, "StatusDetails": status,
                    "ResponseCode": code, "StandardOutputContent": cut(&out), "StandardErrorContent": cut(&err),
                })
            }
        })
    }
}

impl Agent {
    /// Stops what the commands left running (servers write pid files in their working directory).
    pub fn stop_servers(&self) {
        let dirs = std::fs::read_dir(&self.root).into_iter().flatten().flatten().map(|e| e.path().join("opt-nixl"));
        for dir in dirs {
            stop_servers_in(&dir);
        }
    }
}

/// Kills the processes whose pid files a working directory holds.
fn stop_servers_in(dir: &Path) {
    let _ = std::process::Command::new("bash")
        .arg("-c")
        .arg("for f in *.pid; do [ -f \"$f\" ] && kill $(cat \"$f\") 2>/dev/null; done; true")
        .current_dir(dir)
        .output();
}
