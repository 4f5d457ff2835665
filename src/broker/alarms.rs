//! Resource alarms: while the broker's memory use is above its high
//! watermark, or free disk space is below its limit, publishers are blocked
//! (RabbitMQ's memory and disk alarms).
//!
//! A monitor task samples the process's resident memory and the data
//! directory's file system every second and publishes the alarm state on a
//! watch channel; connections that publish watch it, tell their client with
//! `connection.blocked` / `connection.unblocked`, and stop reading from their
//! socket while an alarm is set. Consumers keep being served, so queues can
//! drain and memory can come back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// Which alarms are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmState {
    /// Memory use is above the high watermark.
    pub memory: bool,
    /// Free disk space is below the limit.
    pub disk: bool,
}

impl AlarmState {
    /// Whether publishers must be blocked.
    pub fn is_set(self) -> bool {
        self.memory || self.disk
    }

    /// The reason `connection.blocked` gives, as RabbitMQ words it.
    pub fn reason(self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory & disk",
            (true, false) => "low on memory",
            _ => "low on disk",
        }
    }
}

/// The broker's resource alarms.
#[derive(Debug)]
pub struct Alarms {
    disk_free_limit: AtomicU64,
    memory_limit: AtomicU64,
    state: watch::Sender<AlarmState>,
}

impl Alarms {
    /// Alarms with the given free-disk limit and memory high watermark, in bytes.
    pub fn new(disk_free_limit: u64, memory_limit: u64) -> Arc<Alarms> {
        let (state, _) = watch::channel(AlarmState::default());
        Arc::new(Alarms {
            disk_free_limit: AtomicU64::new(disk_free_limit),
            memory_limit: AtomicU64::new(memory_limit),
            state,
        })
    }

    /// Changes the free-disk limit (takes effect at the next sample).
    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.disk_free_limit.store(bytes, Ordering::Relaxed);
    }

    /// Changes the memory high watermark (takes effect at the next sample).
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    /// Watches which alarms are set.
    pub fn state(&self) -> watch::Receiver<AlarmState> {
        self.state.subscribe()
    }

    /// Samples memory and the free space under `dir` every second until the alarms are dropped.
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
                alarms.sample(&dir);
            }
        });
    }

    fn sample(&self, dir: &Path) {
        let previous = *self.state.borrow();
        let mut next = previous;
        if let Some(free) = free_bytes(dir) {
            next.disk = free < self.disk_free_limit.load(Ordering::Relaxed);
        }
        if let Some(used) = resident_bytes() {
            next.memory = used > self.memory_limit.load(Ordering::Relaxed);
        }
        if next == previous {
            return;
        }
        self.state.send_replace(next);
        for (name, was, now) in [
            ("memory", previous.memory, next.memory),
            ("disk", previous.disk, next.disk),
        ] {
            if now && !was {
                tracing::warn!(alarm = name, "resource alarm set: publishers blocked");
            } else if was && !now {
                tracing::info!(alarm = name, "resource alarm cleared");
            }
        }
    }
}

/// The memory high watermark: `fraction` of the machine's memory (RabbitMQ's
/// `vm_memory_high_watermark.relative`, default 0.4).
pub fn memory_limit_of_total(fraction: f64) -> u64 {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let total = (pages.max(0) as u64).saturating_mul(page_size.max(0) as u64);
    (total as f64 * fraction) as u64
}

/// The process's resident memory, from /proc.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads system configuration.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page_size.max(0) as u64)
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
    use super::*;

    #[test]
    fn free_space_and_memory_are_readable() {
        assert!(free_bytes(Path::new(".")).is_some_and(|free| free > 0));
        assert!(resident_bytes().is_some_and(|used| used > 0));
        assert!(memory_limit_of_total(0.4) > 0);
    }

    #[test]
    fn reasons_name_the_alarms_set() {
        let memory = AlarmState {
            memory: true,
            disk: false,
        };
        assert_eq!(memory.reason(), "low on memory");
        assert_eq!(
            AlarmState {
                disk: true,
                ..memory
            }
            .reason(),
            "low on memory & disk"
        );
        assert!(!AlarmState::default().is_set());
    }
}
