//! The two inotify budgets a uid has ([`Limit`]), and their values in the
//! initial user namespace (the `fs.inotify` sysctls), read at the start and
//! at the end of a session.
use inotify_trace_common::Kind;
use serde::{Deserialize, Serialize};

use crate::errno::Errno;

const SYSCTL_DIR: &str = "/proc/sys/fs/inotify";

/// A user namespace's `user.max_inotify_*` at INT_MAX: the namespace has no
/// cap of its own (only its ancestors' apply). New namespaces start so.
pub const NO_CAP: u64 = i32::MAX as u64;

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

    /// One of what it counts (`watch`, `instance`).
    pub fn unit(self) -> &'static str {
        match self {
            Limit::Watches => "watch",
            Limit::Instances => "instance",
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

    /// What a failure against it means, said where the failure shows up
    /// (a diagnosis says which scope's cap it was).
    pub fn exhausted(self) -> &'static str {
        match self {
            Limit::Watches => {
                "a watch budget is used up: the uid's fs.inotify.max_user_watches, or its user namespace's user.max_inotify_watches"
            }
            Limit::Instances => {
                "an instance budget is used up: the uid's fs.inotify.max_user_instances, or its user namespace's user.max_inotify_instances, or the process's fd limit"
            }
        }
    }

    /// The cap that was hit, in words: the host's sysctl, or a user
    /// namespace's own cap (`cap` as read there; [`NO_CAP`]: it has none of
    /// its own, so an ancestor's, ultimately the host's, was hit).
    pub fn which_hit(self, user_ns: Option<u64>, cap: Option<u64>) -> String {
        let cap_text = cap.map_or_else(|| "unreadable".to_owned(), |c| c.to_string());
        match (user_ns, cap) {
            (None, _) => format!("the host's {} ({cap_text})", self.sysctl()),
            (Some(ns), Some(NO_CAP)) => format!(
                "user namespace {ns} has no {} of its own: an ancestor's was hit, ultimately the host's {}",
                self.namespace_file(),
                self.sysctl()
            ),
            (Some(ns), _) => format!(
                "user namespace {ns}'s user.{} ({cap_text})",
                self.namespace_file()
            ),
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
    fn the_cap_that_was_hit_is_named_with_its_scope() {
        assert_eq!(
            Limit::Watches.which_hit(None, Some(8192)),
            "the host's fs.inotify.max_user_watches (8192)"
        );
        assert_eq!(
            Limit::Watches.which_hit(Some(4026532000), Some(600)),
            "user namespace 4026532000's user.max_inotify_watches (600)"
        );
        assert_eq!(
            Limit::Instances.which_hit(Some(7), Some(NO_CAP)),
            "user namespace 7 has no max_inotify_instances of its own: an ancestor's was hit, ultimately the host's fs.inotify.max_user_instances"
        );
        assert_eq!(
            Limit::Watches.which_hit(Some(7), None),
            "user namespace 7's user.max_inotify_watches (unreadable)"
        );
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
