//! The inotify limits of the initial user namespace (the `fs.inotify`
//! sysctls), read at the start and at the end of a session.
use serde::{Deserialize, Serialize};

const SYSCTL_DIR: &str = "/proc/sys/fs/inotify";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `fs.inotify.max_user_watches`: watches per uid.
    pub max_user_watches: Option<u64>,
    /// `fs.inotify.max_user_instances`: instances per uid.
    pub max_user_instances: Option<u64>,
}

impl Limits {
    /// Reads both sysctls; one that cannot be read is `None` (a container
    /// without /proc/sys, say), which the report shows as unknown.
    pub fn read() -> Limits {
        Limits {
            max_user_watches: read_number(&format!("{SYSCTL_DIR}/max_user_watches")),
            max_user_instances: read_number(&format!("{SYSCTL_DIR}/max_user_instances")),
        }
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machines_limits() {
        let limits = Limits::read();
        // Every kernel since 2.6.13 has both; their floors are far above 0.
        assert!(
            limits.max_user_watches.is_some_and(|n| n >= 8192),
            "{limits:?}"
        );
        assert!(
            limits.max_user_instances.is_some_and(|n| n >= 1),
            "{limits:?}"
        );
    }
}
