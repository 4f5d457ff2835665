//! Resource alarms: when free disk space falls below its limit, publishers
//! are blocked until it returns (RabbitMQ's disk alarm).
//!
//! A monitor task samples the data directory's file system every second and
//! flips a watch channel; connections that publish watch it, tell their
//! client with `connection.blocked` / `connection.unblocked`, and stop reading
//! from their socket while it is set. Consumers keep being served, so queues
//! can drain.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The broker's resource alarms.
#[derive(Debug)]
pub struct Alarms {
    disk_free_limit: AtomicU64,
    blocked: watch::Sender<bool>,
}

impl Alarms {
    /// Alarms with the given free-disk limit in bytes.
    pub fn new(disk_free_limit: u64) -> Arc<Alarms> {
        let (blocked, _) = watch::channel(false);
        Arc::new(Alarms {
            disk_free_limit: AtomicU64::new(disk_free_limit),
            blocked,
        })
    }

    /// Changes the free-disk limit (takes effect at the next sample).
    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.disk_free_limit.store(bytes, Ordering::Relaxed);
    }

    /// Watches whether publishers must be blocked.
    pub fn blocked(&self) -> watch::Receiver<bool> {
        self.blocked.subscribe()
    }

    /// Samples free space under `dir` every second until the alarms are dropped.
    pub fn monitor(self: &Arc<Self>, dir: &Path) {
        let alarms = Arc::downgrade(self);
        let dir: PathBuf = dir.to_path_buf();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(alarms) = alarms.upgrade() else {
                    return;
                };
                let Some(free) = free_bytes(&dir) else {
                    continue;
                };
                let low = free < alarms.disk_free_limit.load(Ordering::Relaxed);
                let changed = alarms
                    .blocked
                    .send_if_modified(|blocked| std::mem::replace(blocked, low) != low);
                if changed && low {
                    tracing::warn!(free, "free disk space below the limit: publishers blocked");
                } else if changed {
                    tracing::info!(
                        free,
                        "free disk space back above the limit: publishers unblocked"
                    );
                }
            }
        });
    }
}

/// Bytes available to unprivileged users on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a writable statvfs.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    (result == 0).then(|| stats.f_bavail as u64 * stats.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_space_is_readable() {
        assert!(super::free_bytes(std::path::Path::new(".")).is_some_and(|free| free > 0));
    }
}
