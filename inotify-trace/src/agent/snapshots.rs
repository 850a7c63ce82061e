//! The agent's snapshots. Where the kernel allows fexit, each instance's
//! watches are counted as the kernel makes and drops them
//! (`usage::kept`), so a snapshot walks the fd tables and reads a map entry
//! per instance: its cost follows the node's processes and instances, not
//! its watches. Every `--reconcile-every` the counts are read against every
//! instance's fdinfo (the drift metric, which must stay 0). Elsewhere, or
//! should the kept counts fail, every snapshot reads every watch's fdinfo.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use super::metrics::{KeptStats, SnapshotStats};
use crate::{
    kernel_btf::WatchCost,
    limits::Limits,
    notices::say,
    selection::Selection,
    usage::{
        identity::{FileOrder, Kcmp},
        kept::KeptCounts,
        snapshot::{snapshot_of, Source},
        userns, Detail, Usage,
    },
};

/// Where /proc is: the agent sees the node's processes (hostPID).
const PROC: &str = "/proc";

/// Takes the agent's snapshots, from kept counts where it can.
pub struct Snapshotter {
    taken: u64,
    host_root: PathBuf,
    /// Read once: the kernel's BTF is megabytes.
    watch_cost: Result<WatchCost, String>,
    kept: Option<Kept>,
}

struct Kept {
    counts: KeptCounts,
    every: Duration,
    last: Instant,
    stats: KeptStats,
}

impl Snapshotter {
    /// Keeps counts in the kernel where asked and possible (one full read
    /// of every instance's fdinfo sets them), and says which it does.
    pub fn start(host_root: PathBuf, reconcile_every: Option<Duration>) -> Snapshotter {
        Snapshotter {
            taken: 0,
            host_root,
            watch_cost: WatchCost::of_running_kernel(),
            kept: match reconcile_every {
                Some(every) => Kept::start(every),
                None => {
                    say(format_args!(
                        "keeping no counts in the kernel (--no-kept-counts): each snapshot reads every watch's fdinfo"
                    ));
                    None
                }
            },
        }
    }

    /// A snapshot of the whole machine (blocking: run it off the async
    /// thread).
    pub fn take(&mut self) -> (Usage, SnapshotStats) {
        let started = Instant::now();
        self.taken += 1;
        if let Some(kept) = &mut self.kept {
            match kept.snapshot(&self.host_root, &self.watch_cost) {
                Ok(usage) => {
                    let stats = stats(self.taken, started, Some(kept.stats));
                    return (usage, stats);
                }
                Err(err) => {
                    say(format_args!(
                        "warning: the kept counts failed ({err:#}): from now on each snapshot reads every watch's fdinfo"
                    ));
                    self.kept = None;
                }
            }
        }
        let source = source(&self.host_root, &self.watch_cost, &Kcmp);
        let usage = crate::usage::snapshot(&source, &Selection::default(), 0);
        (usage, stats(self.taken, started, None))
    }
}

impl Kept {
    /// Kept counts reconciled `every`, if the kernel takes their programs;
    /// says which, and why not.
    fn start(every: Duration) -> Option<Kept> {
        match KeptCounts::start(Path::new(PROC)) {
            Ok(counts) => {
                say(format_args!(
                    "keeping each instance's watches with fexit: a snapshot reads no watch; checked against fdinfo every {}",
                    humantime::format_duration(every)
                ));
                Some(Kept {
                    counts,
                    every,
                    last: Instant::now(),
                    stats: KeptStats {
                        drift: 0,
                        reconciliations: 1,
                        reconciled_at_s: unix_now(),
                    },
                })
            }
            Err(err) => {
                say(format_args!(
                    "keeping no counts in the kernel ({err:#}): each snapshot reads every watch's fdinfo"
                ));
                None
            }
        }
    }

    /// Reconciles when it is time, then counts from the map.
    fn snapshot(
        &mut self,
        host_root: &Path,
        watch_cost: &Result<WatchCost, String>,
    ) -> anyhow::Result<Usage> {
        let proc = Path::new(PROC);
        if self.last.elapsed() >= self.every {
            let found = self.counts.reconcile(proc)?;
            self.last = Instant::now();
            self.stats = KeptStats {
                drift: found.drift,
                reconciliations: self.stats.reconciliations + 1,
                reconciled_at_s: unix_now(),
            };
            if found.drift > 0 {
                say(format_args!(
                    "warning: the kept counts were {} watches off fdinfo in {} of {} instances (set anew from fdinfo; see inotify_trace_kept_drift_watches)",
                    found.drift, found.drifted, found.instances
                ));
            }
        }
        let (scan, order) = self.counts.scan(proc)?;
        let source = source(host_root, watch_cost, &order);
        Ok(snapshot_of(scan, &source, &Selection::default(), 0).0)
    }
}

/// The machine as the agent sees it, instances told apart by `order`;
/// counts are all the metrics use: no watch line is parsed.
fn source<'o>(
    host_root: &Path,
    watch_cost: &Result<WatchCost, String>,
    order: &'o dyn FileOrder,
) -> Source<'o> {
    Source {
        root: PathBuf::from(PROC),
        order,
        namespace_caps: &userns::caps_of,
        own_user_ns: crate::usage::own_user_ns(),
        limits: Limits::read(),
        detail: Detail::Counts,
        watch_cost: watch_cost.clone(),
        resolver: None,
        host_root: host_root.to_owned(),
    }
}

fn stats(taken: u64, started: Instant, kept: Option<KeptStats>) -> SnapshotStats {
    SnapshotStats {
        taken,
        duration_s: started.elapsed().as_secs_f64(),
        taken_at_s: unix_now(),
        kept,
    }
}

fn unix_now() -> f64 {
    super::state::unix_seconds(SystemTime::now())
}
