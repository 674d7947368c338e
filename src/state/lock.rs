//! The state lock: a file created exclusively beside the state, holding the
//! holder's pid, host and start time. A second apply or destroy fails with
//! the holder's details; `nixl force-unlock` removes a stale lock.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub started: String,
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {} ({})", self.pid, self.host, self.started, self.command)
    }
}

/// Held until dropped; the lock file is removed then.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

#[derive(Debug)]
pub enum LockError {
    Held(PathBuf, Option<Holder>),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(p, Some(h)) => write!(
                f,
                "the state is locked by {h}; wait for it to finish, or if that process is gone run `nixl force-unlock` (lock file `{}`)",
                p.display()
            ),
            LockError::Held(p, None) => write!(f, "the state is locked (lock file `{}` is unreadable); run `nixl force-unlock` if no apply is running", p.display()),
            LockError::Io(p, e) => write!(f, "cannot create lock `{}`: {e}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

pub fn lock_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

/// Seconds since the epoch to `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// The seconds since the epoch of a time `format_utc` wrote (`YYYY-MM-DDTHH:MM:SSZ`);
/// None for any other text. Days-from-civil, the inverse of `format_utc`.
pub fn parse_utc(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let shape =
        b.len() == 20 && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'Z')].iter().all(|&(i, c)| b[i] == c);
    let field = |from: usize, to: usize| -> Option<i64> {
        let digits = text.get(from..to)?;
        digits.bytes().all(|d| d.is_ascii_digit()).then(|| digits.parse().ok())?
    };
    if !shape {
        return None;
    }
    let (y, m, d) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
    let (hh, mm, ss) = (field(11, 13)?, field(14, 16)?, field(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3_600 + mm * 60 + ss).ok()
}

impl Lock {
    pub fn acquire(state: &Path, command: &str) -> Result<Lock, LockError> {
        let path = lock_path(state);
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LockError::Io(path.clone(), e))?;
        }
        let holder = Holder { pid: std::process::id(), host: hostname(), started: now_rfc3339(), command: command.into() };
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let text = serde_json::to_string(&holder).expect("holder serialises");
                f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| LockError::Io(path.clone(), e))?;
                Ok(Lock { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
                Err(LockError::Held(path, holder))
            }
            Err(e) => Err(LockError::Io(path, e)),
        }
    }

    /// Removes a lock left by a process that died; returns who held it.
    pub fn force_unlock(state: &Path) -> std::io::Result<Option<Holder>> {
        let path = lock_path(state);
        let holder = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
        std::fs::remove_file(&path)?;
        Ok(holder)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_772_409_600), "2026-03-02T00:00:00Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for secs in [0, 59, 86_399, 951_782_400, 1_772_409_600, 1_772_495_999, 4_102_444_800] {
            assert_eq!(parse_utc(&format_utc(secs)), Some(secs), "{}", format_utc(secs));
        }
        for bad in
            ["", "2026-03-02", "2026-03-02T00:00:00", "2026-13-02T00:00:00Z", "2026-03-02 00:00:00Z", "+026-03-02T00:00:00Z"]
        {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn second_lock_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("nixl-lock-{}", std::process::id()));
        let state = dir.join("state.json");
        let first = Lock::acquire(&state, "apply").unwrap();
        match Lock::acquire(&state, "apply") {
            Err(LockError::Held(_, Some(h))) => assert_eq!(h.pid, std::process::id()),
            other => panic!("expected a held lock, got {other:?}"),
        }
        drop(first);
        assert!(Lock::acquire(&state, "apply").is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
