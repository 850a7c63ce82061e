//! What processes hold when a session starts and when it ends (one /proc
//! scan each, as `usage` counts it), for the start and the end of its
//! stream.
use std::collections::HashSet;

use super::{
    paths, places,
    scan::{self, HeldFd},
    snapshot, Source,
};
use crate::held::{HeldAtStart, HeldNow, HolderFacts};

/// What each process `chosen` picks holds now (instances shared across
/// fork counted once per process), where its watches are and its command
/// line: what a session's end records. No per-uid totals, so no user
/// namespace is entered.
pub fn holdings_now(source: &Source<'_>, chosen: impl Fn(u32) -> bool) -> Vec<HeldNow> {
    // Where each holder's watches are: every field.
    let held = scan::inotify_fds(&source.root, scan::Detail::Watches).held;
    let processes = snapshot::processes(&snapshot::instances(&held, source), &held);
    let resolver = paths::Resolver::new();
    processes
        .iter()
        .filter(|p| chosen(p.pid))
        .map(|p| HeldNow {
            pid: p.pid,
            instances: p.instances,
            watches: p.watches,
            facts: facts_of(&held, source, p.pid, &resolver),
        })
        .collect()
}

/// Every process holding an instance now, by watches: what a session
/// starts in (one scan, no paths).
pub fn holdings_at_start(source: &Source<'_>) -> Vec<HeldAtStart> {
    let held = scan::inotify_fds(&source.root, scan::Detail::Counts).held;
    snapshot::processes(&snapshot::instances(&held, source), &held)
        .into_iter()
        .map(|p| HeldAtStart {
            pid: p.pid,
            comm: p.comm,
            uid: p.uid,
            user_ns: p.user_ns,
            instances: p.instances,
            watches: p.watches,
        })
        .collect()
}

/// Where `pid`'s watches are, its command line and the known program it is,
/// from fds already read (a diagnosis passes its snapshot's: no second walk
/// of /proc, no grouping of the machine's instances).
pub(crate) fn facts_of(
    held: &[HeldFd],
    source: &Source<'_>,
    pid: u32,
    resolver: &paths::Resolver,
) -> HolderFacts {
    // An instance held through two fds is one set of watches.
    let mut seen = HashSet::new();
    let paths = held
        .iter()
        .filter(|h| h.pid == pid)
        .flat_map(|h| &h.watches)
        .filter(|w| seen.insert((w.device(), w.ino)))
        .filter_map(|w| resolver.path(w));
    let cmdline = scan::cmdline(&source.root, pid);
    HolderFacts {
        places: places::top_directories(paths),
        culprit: super::culprit_of(source, pid, &cmdline),
        cmdline,
    }
}
