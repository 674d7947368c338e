//! The push lock: an exclusive OS lock (`flock`) on `mlflow.lock` beside the
//! results, held while one result's run is found or created and written. Two
//! pushes of one machine, or an apply and a push, therefore never both create
//! a run for one result; the second waits, then finds the run complete. The OS
//! releases the lock when its process ends, so it is never stale. The file
//! itself stays: removing a lock file while another process waits on it would
//! let a third lock a new file.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The lock file of a results directory.
pub fn path_in(results_dir: &Path) -> PathBuf {
    results_dir.join("mlflow.lock")
}

/// Held until dropped.
#[derive(Debug)]
pub struct PushLock {
    _file: File,
}

/// Waits for the lock (off the async threads: another process may hold it for
/// the seconds one result takes to log).
pub async fn acquire(path: &Path) -> std::io::Result<PushLock> {
    let path = path.to_path_buf();
    let take = move || -> std::io::Result<PushLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).write(true).truncate(false).open(&path)?;
        file.lock()?;
        Ok(PushLock { _file: file })
    };
    tokio::task::spawn_blocking(take).await.map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_for_the_first() {
        let dir = std::env::temp_dir().join(format!("nixl-push-lock-{}", std::process::id()));
        let path = path_in(&dir);
        let first = acquire(&path).await.unwrap();
        let second = tokio::spawn({
            let path = path.clone();
            async move { acquire(&path).await.map(|_| std::time::Instant::now()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the lock was taken twice");
        let released = std::time::Instant::now();
        drop(first);
        let got = second.await.unwrap().unwrap();
        assert!(got >= released);
        let _ = std::fs::remove_dir_all(dir);
    }
}
