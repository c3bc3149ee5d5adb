//! The hard limits of the format and the API (DESIGN.md §3.3), in one leaf
//! so that every layer can name them; and the one place where a duration the
//! API takes becomes a deadline.

use std::time::{Duration, Instant};

/// Smallest allowed segment size.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest allowed segment size (positions in indexes are `u32`).
pub const SEGMENT_BYTES_LIMIT: u64 = 1 << 30;
/// Most priority levels a stream can have.
pub const PRIORITIES_MAX: u8 = 16;

/// The longest wait the engine keeps: a lease, nack delay or sync interval
/// at least this long (up to `Duration::MAX`) means "never", and is held as
/// this long (about 100 years), so that no deadline overflows `Instant`.
pub(crate) const WAIT_NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturating: `d` is cut to [`WAIT_NEVER`] (and further, should
/// the platform's `Instant` not reach that far), so this never panics.
/// Every deadline computed from a duration the API takes goes through here.
#[inline]
pub(crate) fn saturating_deadline(now: Instant, d: Duration) -> Instant {
    let mut d = d.min(WAIT_NEVER);
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        // Unreachable on Linux (`Instant` counts seconds in an `i64`);
        // `now + 0` always succeeds, so this ends.
        d /= 2;
    }
}

/// `d` in whole microseconds, saturating at `u64::MAX` (about 584,542
/// years) instead of wrapping.
#[inline]
pub(crate) fn micros_saturating(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_micros_saturate() {
        let now = Instant::now();
        assert_eq!(saturating_deadline(now, Duration::MAX), now + WAIT_NEVER);
        assert_eq!(
            saturating_deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert_eq!(micros_saturating(Duration::MAX), u64::MAX);
        assert_eq!(
            micros_saturating(Duration::from_micros(u64::MAX) + Duration::from_micros(2)),
            u64::MAX
        );
        assert_eq!(micros_saturating(Duration::from_millis(3)), 3000);
    }
}
