//! The state file: what exists and what has run, with the content hash of
//! what produced it. Versioned JSON, written atomically (temp file, fsync,
//! rename) and guarded by a lock file. A corrupt or newer state is refused,
//! never overwritten.

pub mod lock;
mod records;

pub use crate::address::ActionId;
pub use records::{Infrastructure, NodeRecord, StackRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format version this build reads and writes.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    /// Incremented on every write, so a saved plan can tell the state moved on.
    pub serial: u64,
    /// Actions that finished (or failed), by action id.
    pub actions: BTreeMap<ActionId, ActionRecord>,
    /// The stack and nodes apply created; written as the `resources` map
    /// (`stack`, `node.node1`) that every earlier release wrote.
    #[serde(default, rename = "resources", with = "records::as_resources")]
    pub infra: Infrastructure,
    /// The provider (`aws`, `local`) whose resources and results this state holds:
    /// another provider's apply is refused, so local figures never pass for AWS ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Servers a launch's stop left running for the next launch, which changes only other
    /// roles: after an interruption, the next apply checks them and restarts any that are down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_servers: Option<KeptServers>,
}

/// The servers left running between two launches: each one's role and node index, and the
/// restart key values of the launch that started them (what the next launch's key is compared with).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeptServers {
    pub servers: Vec<(crate::design::topology::Role, usize)>,
    pub key: Vec<(String, crate::check::value::Value)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActionRecord {
    /// Content hash of what produced it (settings, rendered commands).
    pub hash: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The node set it ran on, when the campaign ran on several (`parallel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<u32>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

#[derive(Debug)]
pub enum StateError {
    Io(PathBuf, std::io::Error),
    Corrupt(PathBuf, String),
    Newer(PathBuf, u32),
    /// The state holds another provider's resources or results.
    OtherProvider {
        path: PathBuf,
        holder: String,
        wanted: String,
    },
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Io(p, e) => write!(f, "cannot read or write state `{}`: {e}", p.display()),
            StateError::Corrupt(p, e) => write!(
                f,
                "state `{}` is not valid nixl state ({e}); it was left untouched. Restore it from `{}.backup` or move it away to start afresh",
                p.display(),
                p.display()
            ),
            StateError::Newer(p, v) => write!(
                f,
                "state `{}` has format version {v}, newer than this nixl understands ({VERSION}); upgrade nixl, it was left untouched",
                p.display()
            ),
            StateError::OtherProvider { path, holder, wanted } => write!(
                f,
                "state `{}` holds what `--provider {holder}` created and measured; `--provider {wanted}` would take its \
                 results for its own. Give this campaign its own state (`--state FILE`), or `nixl destroy --provider {holder}` \
                 and move the state away",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StateError {}

impl State {
    pub fn new() -> State {
        State { version: VERSION, ..State::default() }
    }

    /// Forgets the recorded nodes and what was set up on them: they are gone, or are no longer
    /// the machines that were set up, so the next plan launches new ones and sets them up.
    /// (The pair is one unit: launched, placed and set up together.)
    pub fn forget_nodes(&mut self) {
        self.infra.nodes.clear();
        self.actions.retain(|id, _| !matches!(id, ActionId::Nodes | ActionId::Setup(_)));
    }

    /// Claims the state for a provider; an error when it holds another provider's work.
    pub fn claim(&mut self, provider: &str, path: &Path) -> Result<(), StateError> {
        match &self.provider {
            Some(p) if p != provider && !(self.infra.is_empty() && self.actions.is_empty()) => {
                Err(StateError::OtherProvider { path: path.into(), holder: p.clone(), wanted: provider.into() })
            }
            _ => {
                self.provider = Some(provider.to_string());
                Ok(())
            }
        }
    }

    /// Reads a state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::new()),
            Err(e) => return Err(StateError::Io(path.into(), e)),
        };
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StateError::Corrupt(path.into(), e.to_string()))?;
        let version = probe
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| StateError::Corrupt(path.into(), "no `version` field".into()))?;
        if version as u32 > VERSION {
            return Err(StateError::Newer(path.into(), version as u32));
        }
        serde_json::from_value(probe).map_err(|e| StateError::Corrupt(path.into(), e.to_string()))
    }

    /// Writes atomically: a temp file beside the target, fsync, rename, fsync the directory.
    pub fn save(&mut self, path: &Path) -> Result<(), StateError> {
        self.serial += 1;
        self.version = VERSION;
        let text = serde_json::to_string_pretty(self).expect("state serialises");
        // Keep the previous version as a backup: a bad write can always be undone by hand.
        if path.exists() {
            let mut backup = path.as_os_str().to_owned();
            backup.push(".backup");
            let _ = std::fs::copy(path, backup);
        }
        write_atomic(path, text.as_bytes()).map_err(|e| StateError::Io(path.into(), e))
    }

    pub fn is_done(&self, action: &ActionId, hash: &str) -> bool {
        self.actions.get(action).is_some_and(|r| r.status == Status::Done && r.hash == hash)
    }
}

/// Temp file in the same directory, fsync, rename over the target, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        // Owner only: states, plans and results name hosts, buckets and figures.
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    remove_stale_temps(dir, &name);
    Ok(())
}

/// Temp files of this target left by a writer that was killed mid-write: its
/// target is intact (the rename never happened), only the litter goes.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp.");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        let alive = pid.parse::<u32>().is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// sha256 of a value's canonical JSON, hex, first 16 bytes.
pub fn content_hash<T: Serialize>(v: &T) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in content_digest(v) {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// The 16 bytes `content_hash` writes as hex (a plan keeps them as they are).
pub fn content_digest<T: Serialize>(v: &T) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    /// The JSON goes straight into the hash, in the serialiser's small writes, never whole in memory.
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    serde_json::to_writer(&mut h, v).expect("hashable value serialises");
    let digest = h.0.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hashes_are_the_sha256_of_the_compact_json_as_recorded_in_states() {
        // Recorded hashes must not move: python3 -c "import hashlib; print(hashlib.sha256(b'[\"a\",1,{\"k\":[true,null]}]').hexdigest()[:32])"
        let mut m = std::collections::BTreeMap::new();
        m.insert("k", (true, None::<u8>));
        assert_eq!(content_hash(&("a", 1, m)), "fb37a04c1f5b52f256be8fe559df1550");
    }

    #[test]
    fn files_written_atomically_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nixl-perm-{}", std::process::id()));
        let f = dir.join("state.json");
        write_atomic(&f, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
