//! What a session's processes hold when it ends (one /proc scan, as
//! `usage` counts it), for the end of its stream.
use std::collections::{BTreeMap, HashSet};

use super::{model::HeldNow, paths, places, scan, scan::HeldFd, snapshot, Source};

/// What each process `chosen` picks holds now (instances shared across
/// fork counted once per process), where its watches are and its command
/// line: what a session's end records. No per-uid totals, so no user
/// namespace is entered.
pub fn holdings_now(source: &Source<'_>, chosen: impl Fn(u32) -> bool) -> Vec<HeldNow> {
    let held = scan::inotify_fds(&source.root).held;
    let processes = snapshot::processes(&snapshot::instances(&held, source), &held);
    let resolver = paths::Resolver::new();
    let mut fds_of: BTreeMap<u32, Vec<&HeldFd>> = BTreeMap::new();
    for h in &held {
        fds_of.entry(h.pid).or_default().push(h);
    }
    processes
        .iter()
        .filter(|p| chosen(p.pid))
        .map(|p| {
            // An instance held through two fds is one set of watches.
            let mut seen = HashSet::new();
            let paths = fds_of[&p.pid]
                .iter()
                .flat_map(|h| &h.watches)
                .filter(|w| seen.insert((w.device(), w.ino)))
                .filter_map(|w| resolver.path(w));
            HeldNow {
                pid: p.pid,
                instances: p.instances,
                watches: p.watches,
                places: places::top_directories(paths),
                cmdline: scan::cmdline(&source.root, p.pid),
            }
        })
        .collect()
}
