//! `inotify-trace usage`: who holds inotify instances and watches now, per
//! process and per uid, against the limits; and the same snapshot, scoped to
//! one uid, as the diagnosis of a failure during a live session.
//!
//! `model` is what it says (serde), `snapshot` how it is taken from /proc
//! (`scan`, `fdinfo`, `identity`, `userns`), `holdings` what a session's
//! processes hold at its end; `advice`, `diagnosis`, `paths`, `places` and
//! `render` build on those.
pub(crate) mod fdinfo;
pub(crate) mod holdings;
pub(crate) mod identity;
pub(crate) mod kept;
pub mod model;
pub(crate) mod paths;
pub mod places;
pub(crate) mod render;
pub(crate) mod scan;
pub(crate) mod snapshot;
pub(crate) mod userns;

pub use self::{
    model::{InstanceUsage, PodUsage, ProcessUsage, Usage, UserUsage},
    scan::Detail,
    snapshot::{snapshot, Source},
};

#[cfg(test)]
pub(crate) mod tests;

/// The known program `pid` is, from its executable, maps and `cmdline`.
pub(crate) fn culprit_of(
    source: &Source<'_>,
    pid: u32,
    cmdline: &[String],
) -> Option<crate::culprits::Culprit> {
    let traits = crate::culprits::Traits::of(&source.root, pid, cmdline);
    crate::culprits::recognise(&traits).cloned()
}

/// `pid`'s command line.
pub(crate) fn scan_cmdline(source: &Source<'_>, pid: u32) -> Vec<String> {
    scan::cmdline(&source.root, pid)
}

/// This process's user namespace (what tables and metrics call the host's).
pub(crate) fn own_user_ns() -> Option<u64> {
    scan::namespace_inode(std::path::Path::new("/proc/self/ns/user"))
}
