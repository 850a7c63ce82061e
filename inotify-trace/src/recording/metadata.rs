//! What a recording says about its session: enough to report on it anywhere
//! (the clock base and time zone travel with it) and to know where and how it
//! was made.
use serde::{Deserialize, Serialize};

use crate::{clock::WallClock, limits::Limits, selection::Selection};

/// The first frame of every recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `inotify-trace <version>`.
    pub tool: String,
    pub hostname: String,
    pub kernel_release: String,
    /// `/proc/sys/kernel/random/boot_id`: tells two boots of one host apart.
    pub boot_id: String,
    /// RFC 3339, UTC.
    pub start_time: String,
    /// `CLOCK_BOOTTIME` when the session started, in ns.
    pub start_boot_ns: u64,
    /// The clock base: wall-clock ns since the epoch at boot time zero. An
    /// event's time is `boot_epoch_ns + time_ns`.
    pub boot_epoch_ns: i64,
    /// The recording host's offset from UTC, in seconds, so reports show
    /// the same local times everywhere.
    pub utc_offset_s: i32,
    /// The `fs.inotify` limits when the session started.
    pub limits: Limits,
    /// The kernel filters in force: only matching events were recorded.
    pub filters: Filters,
    /// The tracer's own command line.
    pub command_line: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    /// The selection the kernel applied.
    #[serde(flatten)]
    pub selection: Selection,
    /// The command traced with `-- COMMAND`, if any.
    pub command: Option<Vec<String>>,
}

impl Metadata {
    /// A live session starting now on this host.
    pub fn of_this_session(clock: &WallClock, start_boot_ns: u64, filters: Filters) -> Metadata {
        Metadata {
            tool: format!("inotify-trace {}", env!("CARGO_PKG_VERSION")),
            hostname: host::hostname(),
            kernel_release: host::kernel_release(),
            boot_id: host::boot_id(),
            start_time: crate::clock::rfc3339(clock.wall(start_boot_ns)).to_string(),
            start_boot_ns,
            boot_epoch_ns: i64::try_from(clock.boot_epoch_ns).unwrap_or(i64::MAX),
            utc_offset_s: clock.utc_offset_s,
            limits: Limits::read(),
            filters,
            command_line: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        }
    }

    /// The clock the session's timestamps are read with.
    pub fn clock(&self) -> WallClock {
        WallClock {
            boot_epoch_ns: i128::from(self.boot_epoch_ns),
            utc_offset_s: self.utc_offset_s,
        }
    }
}

/// Reads the parts of the metadata that come from the host.
pub mod host {
    pub fn hostname() -> String {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn kernel_release() -> String {
        nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn boot_id() -> String {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_owned())
            .unwrap_or_default()
    }
}
