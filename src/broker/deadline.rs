//! When a message expires, in eight bytes.
//!
//! A [`Deadline`] counts nanoseconds on a process-wide monotonic clock that
//! starts at its first use. Unlike `Option<Instant>` (16 bytes), an
//! `Option<Deadline>` takes eight, which matters for something every queued
//! message carries twice: once in the shared [`Message`] and once in the
//! queue's own entry for it. Nanoseconds keep the same precision as
//! [`Instant`], so a message expires exactly when it would with one.
//!
//! [`Message`]: crate::broker::message::Message

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The moment the clock reads zero.
static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// A point on the process's monotonic clock, to the nanosecond.
///
/// Stored as nanoseconds since the clock's base plus one, so that it is never
/// zero and `Option<Deadline>` needs no more room than the deadline itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(NonZeroU64);

impl Deadline {
    /// The current time.
    pub fn now() -> Deadline {
        Deadline::of_instant(Instant::now())
    }

    /// `wait` from now (saturating, some five centuries out).
    pub fn after(wait: Duration) -> Deadline {
        Deadline::now().saturating_add(wait)
    }

    /// The deadline at `instant`; an instant before the clock's base is its base.
    pub fn of_instant(instant: Instant) -> Deadline {
        let since = instant.saturating_duration_since(base());
        Deadline::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The same moment as an [`Instant`], for timers.
    pub fn instant(self) -> Instant {
        base() + Duration::from_nanos(self.0.get() - 1)
    }

    /// The deadline `wait` later, saturating.
    pub fn saturating_add(self, wait: Duration) -> Deadline {
        let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        Deadline(self.0.saturating_add(wait))
    }

    /// How long from `earlier` until this deadline (zero if already past).
    pub fn saturating_duration_since(self, earlier: Deadline) -> Duration {
        Duration::from_nanos(self.0.get().saturating_sub(earlier.0.get()))
    }

    /// Whether the deadline is at or before `now`.
    pub fn has_passed(self, now: Deadline) -> bool {
        self <= now
    }

    /// The deadline matching a stored expiry in milliseconds since the Unix
    /// epoch (0: never); one already past is now.
    pub fn of_unix_ms(unix_ms: u64) -> Option<Deadline> {
        if unix_ms == 0 {
            return None;
        }
        let at = UNIX_EPOCH + Duration::from_millis(unix_ms);
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        Some(Deadline::after(left))
    }

    /// The deadline as milliseconds since the Unix epoch, for the store (never 0).
    pub fn unix_ms(self) -> u64 {
        let left = self.saturating_duration_since(Deadline::now());
        (SystemTime::now() + left)
            .duration_since(UNIX_EPOCH)
            .map_or(1, |since| since.as_millis().max(1) as u64)
    }

    /// The deadline `nanos` after the clock's base.
    fn from_nanos(nanos: u64) -> Deadline {
        Deadline(NonZeroU64::MIN.saturating_add(nanos))
    }
}

/// The earlier of two optional deadlines (`None`: never).
pub fn earliest(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_deadline_takes_eight_bytes() {
        assert_eq!(size_of::<Option<Deadline>>(), 8);
    }

    #[test]
    fn a_deadline_of_now_has_passed_at_once() {
        let at = Deadline::after(Duration::ZERO);
        assert!(at.has_passed(Deadline::now()));
        assert!(at.has_passed(at));
    }

    #[test]
    fn a_later_deadline_has_not_passed() {
        let now = Deadline::now();
        let at = now.saturating_add(Duration::from_millis(1));
        assert!(!at.has_passed(now));
        assert_eq!(at.saturating_duration_since(now), Duration::from_millis(1));
        assert_eq!(now.saturating_duration_since(at), Duration::ZERO);
    }

    #[test]
    fn deadlines_convert_to_instants_and_back() {
        let instant = Instant::now() + Duration::from_millis(250);
        let at = Deadline::of_instant(instant);
        assert_eq!(at.instant(), instant);
        assert_eq!(Deadline::of_instant(at.instant()), at);
    }

    #[test]
    fn far_deadlines_saturate() {
        let at = Deadline::now().saturating_add(Duration::MAX);
        assert_eq!(at, Deadline(NonZeroU64::MAX));
        assert!(!at.has_passed(Deadline::now()));
    }

    #[test]
    fn unix_milliseconds_round_trip() {
        assert_eq!(Deadline::of_unix_ms(0), None);
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let unix_ms = in_a_minute.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let at = Deadline::of_unix_ms(unix_ms).unwrap();
        let left = at.saturating_duration_since(Deadline::now());
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert!(at.unix_ms().abs_diff(unix_ms) <= 1);
    }

    #[test]
    fn a_past_unix_expiry_is_now() {
        let at = Deadline::of_unix_ms(1).unwrap();
        assert!(at.has_passed(Deadline::now()));
        assert!(at.unix_ms() > 1);
    }
}
