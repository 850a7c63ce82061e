//! The two inotify budgets a uid has ([`Limit`]), and their values in the
//! initial user namespace (the `fs.inotify` sysctls), read at the start and
//! at the end of a session.
use inotify_trace_common::Kind;
use serde::{Deserialize, Serialize};

use crate::errno::Errno;

const SYSCTL_DIR: &str = "/proc/sys/fs/inotify";

/// A per-uid inotify budget; everything said about one (its sysctl, a user
/// namespace's file, the call that fails when it is used up) is here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `fs.inotify.max_user_watches`: `inotify_add_watch` fails with ENOSPC.
    Watches,
    /// `fs.inotify.max_user_instances`: `inotify_init`/`init1` fail with
    /// EMFILE.
    Instances,
}

impl Limit {
    /// The limit a failed call ran into, if it is one of the two failures
    /// this tool is about.
    pub fn hit_by(kind: Kind, errno: Errno) -> Option<Limit> {
        match (kind, errno) {
            (Kind::AddWatch, Errno::ENOSPC) => Some(Limit::Watches),
            (Kind::Init, Errno::EMFILE) => Some(Limit::Instances),
            _ => None,
        }
    }

    /// `watches` or `instances`.
    pub fn noun(self) -> &'static str {
        match self {
            Limit::Watches => "watches",
            Limit::Instances => "instances",
        }
    }

    /// The host's sysctl.
    pub fn sysctl(self) -> &'static str {
        match self {
            Limit::Watches => "fs.inotify.max_user_watches",
            Limit::Instances => "fs.inotify.max_user_instances",
        }
    }

    /// A user namespace's own cap, in `/proc/sys/user/`.
    pub fn namespace_file(self) -> &'static str {
        match self {
            Limit::Watches => "max_inotify_watches",
            Limit::Instances => "max_inotify_instances",
        }
    }

    /// What a failure against it means, said where the failure shows up.
    pub fn exhausted(self) -> &'static str {
        match self {
            Limit::Watches => "the uid's fs.inotify.max_user_watches is used up",
            Limit::Instances => {
                "the uid's fs.inotify.max_user_instances is used up, or the process's fd limit"
            }
        }
    }

    /// Recommended values are multiples of this.
    pub fn step(self) -> u64 {
        match self {
            Limit::Watches => 8192,
            Limit::Instances => 128,
        }
    }
}

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
            max_user_watches: read_number(&sysctl_file(Limit::Watches)),
            max_user_instances: read_number(&sysctl_file(Limit::Instances)),
        }
    }
}

/// `/proc/sys/fs/inotify/max_user_watches` for `fs.inotify.max_user_watches`.
fn sysctl_file(limit: Limit) -> String {
    let name = limit.sysctl().rsplit('.').next().unwrap_or_default();
    format!("{SYSCTL_DIR}/{name}")
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_failures_name_their_limits_and_nothing_else_does() {
        let (enospc, emfile) = (Errno::ENOSPC, Errno::EMFILE);
        assert_eq!(Limit::hit_by(Kind::AddWatch, enospc), Some(Limit::Watches));
        assert_eq!(Limit::hit_by(Kind::Init, emfile), Some(Limit::Instances));
        assert_eq!(Limit::hit_by(Kind::Init, enospc), None);
        assert_eq!(Limit::hit_by(Kind::RmWatch, emfile), None);
        assert_eq!(
            sysctl_file(Limit::Watches),
            "/proc/sys/fs/inotify/max_user_watches"
        );
        // One name per limit: what people read is what JSON says.
        for limit in [Limit::Watches, Limit::Instances] {
            let json = serde_json::to_string(&limit).unwrap();
            assert_eq!(json, format!("\"{}\"", limit.noun()));
        }
    }

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
