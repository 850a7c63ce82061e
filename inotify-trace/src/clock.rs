//! Turning the eBPF side's `CLOCK_BOOTTIME` timestamps into wall-clock time.
//!
//! Boot time counts through suspend and never jumps, so records are ordered
//! and spaced truthfully; the offset to the wall clock is taken once, when a
//! session starts, and travels with a recording (a later NTP step does not
//! move events already timed).
use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, FixedOffset};
use nix::time::{clock_gettime, ClockId};
use serde::Serializer;

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

/// A time as RFC 3339 in UTC with nanoseconds, as every JSON time and
/// recording is written.
pub fn rfc3339(time: SystemTime) -> impl fmt::Display {
    humantime::format_rfc3339_nanos(time)
}

/// serde's `serialize_with` for [`rfc3339`].
pub fn serialize_rfc3339<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&rfc3339(*time))
}

/// A time in the recording host's zone (the session's, when live), as
/// `HH:MM:SS.micros`, the way people read it; formatted where it is
/// written, without allocating.
pub fn local_time(time: SystemTime, utc_offset_s: i32) -> impl fmt::Display {
    let utc = FixedOffset::east_opt(0).expect("zero is a valid offset");
    let offset = FixedOffset::east_opt(utc_offset_s).unwrap_or(utc);
    DateTime::<chrono::Utc>::from(time)
        .with_timezone(&offset)
        .format("%H:%M:%S%.6f")
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
        assert_eq!(rfc3339(t).to_string(), "2026-05-28T20:26:40.000001500Z");
        assert_eq!(local_time(t, 3600).to_string(), "21:26:40.000001");
        assert_eq!(
            local_time(t, i32::MAX).to_string(),
            "20:26:40.000001",
            "an impossible offset shows UTC"
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
