//! Turning the eBPF side's `CLOCK_BOOTTIME` timestamps into wall-clock time.
//!
//! Boot time counts through suspend and never jumps, so records are ordered
//! and spaced truthfully; the offset to the wall clock is taken once, when a
//! session starts, and travels with a recording (a later NTP step does not
//! move events already timed).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallClock {
    /// Wall-clock nanoseconds since the epoch at boot time zero.
    pub boot_epoch_ns: i128,
    /// The local zone's offset from UTC when the session started: people
    /// read local times, and a recording's report must show the same ones
    /// on any machine.
    pub utc_offset_s: i32,
}

impl WallClock {
    /// Reads both clocks now.
    pub fn now() -> nix::Result<Self> {
        let real = clock_gettime(ClockId::CLOCK_REALTIME)?;
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME)?;
        let ns =
            |t: nix::sys::time::TimeSpec| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128;
        let utc_offset_s = chrono::Local::now().offset().local_minus_utc();
        Ok(WallClock {
            boot_epoch_ns: ns(real) - ns(boot),
            utc_offset_s,
        })
    }

    /// The current `CLOCK_BOOTTIME`, in the eBPF side's unit.
    pub fn boot_now_ns() -> nix::Result<u64> {
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME)?;
        Ok(boot.tv_sec() as u64 * 1_000_000_000 + boot.tv_nsec() as u64)
    }

    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        let epoch_ns = (self.boot_epoch_ns + boot_ns as i128).max(0);
        let epoch_ns = u64::try_from(epoch_ns).unwrap_or(u64::MAX);
        UNIX_EPOCH + Duration::from_nanos(epoch_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_offset_to_boot_time() {
        let clock = WallClock {
            boot_epoch_ns: 1_780_000_000_000_000_000,
            utc_offset_s: 0,
        };
        let t = clock.wall(1_500);
        assert_eq!(
            humantime::format_rfc3339_nanos(t).to_string(),
            "2026-05-28T20:26:40.000001500Z"
        );
    }

    #[test]
    fn live_offset_is_plausible() {
        let clock = WallClock::now().unwrap();
        let now = clock.wall(WallClock::boot_now_ns().unwrap());
        let drift = match SystemTime::now().duration_since(now) {
            Ok(behind) => behind,
            Err(ahead) => ahead.duration(),
        };
        assert!(
            drift < Duration::from_secs(1),
            "wall clock derived from boot time is {drift:?} off"
        );
    }
}
