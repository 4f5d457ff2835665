//! The send-timestamp clock shared by producers and consumers.
//!
//! Both ends run in this process, so a monotonic clock is exact for
//! end-to-end latency and immune to wall-clock steps; the epoch only has to be
//! common, not meaningful.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
