//! The state lock: a file beside the state holding the holder's pid, host,
//! start time and command, with an OS lock (flock) on it for the holder's
//! lifetime. Invariants:
//! - the file is never visible empty: the content is written to a temp file,
//!   which is OS-locked, then hard-linked into place (a fresh lock) or renamed
//!   over a file nobody holds (a takeover);
//! - at most one process holds the OS lock on the inode the path names: a taker
//!   checks, once locked, that the path still names its inode, else starts over;
//! - a holder that dies releases its OS lock with it, so its file is taken over
//!   by the next apply without asking, and its details are reported.
//!
//! A second apply or destroy fails with the holder's details; `nixl
//! force-unlock` removes a lock nobody holds.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
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

/// Held until dropped; the lock file is removed then, and the OS lock released.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// The locked file: the OS lock lives as long as this descriptor.
    _file: File,
    /// The holder of a lock left behind by a process that is gone, taken over by this one.
    pub took_over: Option<Holder>,
}

#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock; its details when it has written them.
    Held(PathBuf, Option<Holder>),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(p, Some(h)) => write!(
                f,
                "the state is locked by {h}; wait for it to finish (the lock is released when that process ends; lock file `{}`)",
                p.display()
            ),
            LockError::Held(p, None) => write!(
                f,
                "the state is locked by another nixl process whose details are unreadable; wait for it to finish (lock file `{}`)",
                p.display()
            ),
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
    /// Takes the lock, or takes over one whose holder is gone; fails with the holder's details
    /// when a live process holds it.
    pub fn acquire(state: &Path, command: &str) -> Result<Lock, LockError> {
        let path = lock_path(state);
        let io = |e: std::io::Error| LockError::Io(path.clone(), e);
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let holder = Holder { pid: std::process::id(), host: hostname(), started: now_rfc3339(), command: command.into() };
        let (temp, file) = prepared(&path, &holder).map_err(io)?;
        let taken = take(&path, &temp);
        let _ = std::fs::remove_file(&temp);
        let took_over = taken?;
        Ok(Lock { path, _file: file, took_over })
    }

    /// Removes a lock left by a process that died; returns who held it. A lock a live
    /// process holds is refused (removing it would let a second apply in).
    pub fn force_unlock(state: &Path) -> std::io::Result<Option<Holder>> {
        let path = lock_path(state);
        let f = File::open(&path)?;
        let holder = read_holder(&path);
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = holder.map(|h| h.to_string()).unwrap_or_else(|| "a nixl process".into());
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("{who} holds it and is running; it is released when that process ends"),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        std::fs::remove_file(&path)?;
        Ok(holder)
    }
}

/// The holder's details in a temp file beside the lock, written, synced and OS-locked, ready to
/// be put in place whole.
fn prepared(path: &Path, holder: &Holder) -> std::io::Result<(PathBuf, File)> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.{nanos}.tmp", std::process::id()));
    let temp = PathBuf::from(name);
    let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(&temp)?;
    f.write_all(serde_json::to_string(holder).expect("holder serialises").as_bytes())?;
    f.sync_all()?;
    // A fresh file: nobody else can hold it.
    f.try_lock().map_err(std::io::Error::from)?;
    Ok((temp, f))
}

/// Puts `temp` (locked by us) in place at `path`: linked when there is no lock, renamed over
/// one nobody holds. Returns the holder of a lock taken over.
fn take(path: &Path, temp: &Path) -> Result<Option<Holder>, LockError> {
    let io = |e: std::io::Error| LockError::Io(path.to_path_buf(), e);
    // Bounded: each round loses only to another taker that then holds the lock.
    for _ in 0..100 {
        let current = match File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::hard_link(temp, path) {
                Ok(()) => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            },
            Err(e) => return Err(io(e)),
            Ok(f) => f,
        };
        match current.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(LockError::Held(path.into(), read_holder(path))),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Locked, but the path may name another inode by now (its holder removed or replaced it).
        if !same_file(&current, path) {
            continue;
        }
        let stale = read_holder(path);
        std::fs::rename(temp, path).map_err(io)?;
        return Ok(stale);
    }
    Err(LockError::Held(path.into(), read_holder(path)))
}

fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok())
}

impl Drop for Lock {
    fn drop(&mut self) {
        // The path names our inode while we hold it: nobody replaces a held lock.
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

    /// A lock file nobody holds, as a process that died leaves it.
    fn stale(state: &Path) {
        let h = Holder { pid: 4_000_000, host: hostname(), started: now_rfc3339(), command: "apply".into() };
        std::fs::write(lock_path(state), serde_json::to_string(&h).unwrap()).unwrap();
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over_and_named() {
        let dir = std::env::temp_dir().join(format!("nixl-lock-stale-{}", std::process::id()));
        let state = dir.join("state.json");
        std::fs::create_dir_all(&dir).unwrap();
        stale(&state);
        let l = Lock::acquire(&state, "apply").unwrap();
        assert_eq!(l.took_over.as_ref().map(|h| h.pid), Some(4_000_000));
        let mine: Holder = serde_json::from_str(&std::fs::read_to_string(lock_path(&state)).unwrap()).unwrap();
        assert_eq!(mine.pid, std::process::id());
        // A held lock cannot be forced open.
        assert!(Lock::force_unlock(&state).is_err());
        drop(l);
        assert!(!lock_path(&state).exists());
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Run in a child process by the test below: takes the lock once (no waiting), and while
    /// holding it creates a marker that must not exist (a second holder would find it).
    #[test]
    fn child_takes_the_lock_once() {
        let Some(state) = std::env::var_os("NIXL_LOCK_CHILD") else { return };
        let state = PathBuf::from(state);
        let marker = state.with_extension("holder");
        match Lock::acquire(&state, "apply") {
            Ok(lock) => {
                let text = std::fs::read_to_string(lock_path(&state)).unwrap_or_default();
                assert!(text.contains(&format!("\"pid\":{}", std::process::id())), "lock content: {text:?}");
                let mine = std::fs::OpenOptions::new().write(true).create_new(true).open(&marker);
                assert!(mine.is_ok(), "TWO HOLDERS");
                std::thread::sleep(std::time::Duration::from_millis(15));
                std::fs::remove_file(&marker).unwrap();
                drop(lock);
                println!("NIXL-LOCK-HELD");
            }
            Err(LockError::Held(_, h)) => {
                // What a refused taker reads is never an empty or half-written lock.
                assert!(h.is_some(), "the lock was visible without its holder's details");
                println!("NIXL-LOCK-REFUSED");
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn three_processes_taking_over_a_stale_lock_never_hold_it_together_in_200_rounds() {
        let dir = std::env::temp_dir().join(format!("nixl-lock-race-{}", std::process::id()));
        let state = dir.join("state.json");
        std::fs::create_dir_all(&dir).unwrap();
        let exe = std::env::current_exe().unwrap();
        let (mut held, mut refused) = (0, 0);
        let started = std::time::Instant::now();
        for round in 0..200 {
            stale(&state);
            let children: Vec<_> = (0..3)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .args(["--exact", "state::lock::tests::child_takes_the_lock_once", "--nocapture", "--test-threads=1"])
                        .env("NIXL_LOCK_CHILD", &state)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let mut got = 0;
            for c in children {
                let out = c.wait_with_output().unwrap();
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(out.status.success(), "round {round}: {text}");
                if text.contains("NIXL-LOCK-HELD") {
                    got += 1;
                } else {
                    assert!(text.contains("NIXL-LOCK-REFUSED"), "round {round}: {text}");
                    refused += 1;
                }
            }
            assert!(got >= 1, "round {round}: nobody took over the stale lock");
            held += got;
            assert!(!lock_path(&state).exists(), "round {round}: the last holder left its lock behind");
        }
        eprintln!("200 rounds of 3 takers in {:?}: {held} holds (one at a time), {refused} refusals", started.elapsed());
        let _ = std::fs::remove_dir_all(dir);
    }
}
