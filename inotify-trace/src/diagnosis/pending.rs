//! A diagnosis between its snapshot and its release: the scan read each
//! holder at its own moment after the failure, and the calls those holders
//! made in between were still in the ring buffer when it did. The pipeline
//! shows the pending diagnosis every call that follows; once the ring is
//! drained (every call made before the last read has been seen), each
//! holder's counts are taken back to the moment of the failure: watches it
//! added since are taken away, those it removed given back. What the
//! kernel's count still has beyond the holders is said, with why.
use std::collections::HashMap;

use super::Diagnosis;
use crate::{
    event::Event,
    held::Held,
    ledger::{Effect, Seen},
    limits::Limit,
};

/// Calls remembered per holder at most (a holder adding a whole tree
/// between the failure and its read is still counted: past this, the
/// reconciliation stops short, and says nothing wrong: it counts what it
/// kept).
const CHANGES: usize = 65_536;

pub struct Pending {
    pub(super) diagnosis: Diagnosis,
    pub(super) failure_ns: u64,
    /// When the scan read each listed holder's fds (CLOCK_BOOTTIME ns).
    pub(super) read_ns: HashMap<u32, u64>,
    /// What in-scope holders cut from the list held, as read.
    pub(super) unlisted: Held,
    /// Per listed holder, each traced change after the failure: (when,
    /// watches, instances).
    changes: HashMap<u32, Vec<(u64, i64, i64)>>,
}

impl Pending {
    pub(super) fn new(
        diagnosis: Diagnosis,
        failure_ns: u64,
        read_ns: HashMap<u32, u64>,
        unlisted: Held,
    ) -> Pending {
        Pending {
            diagnosis,
            failure_ns,
            read_ns,
            unlisted,
            changes: HashMap::new(),
        }
    }

    /// Notes what a call after the failure did to a listed holder's counts.
    pub fn observe(&mut self, event: &Event<'_>, seen: Seen) {
        let h = &event.header;
        if h.time_ns <= self.failure_ns || !self.read_ns.contains_key(&h.pid) {
            return;
        }
        let (watches, instances) = match seen.effect {
            Effect::NewWatch => (1, 0),
            Effect::Removed => (-1, 0),
            Effect::NewInstance => (0, 1),
            Effect::ReAdd | Effect::Failed => return,
        };
        let changes = self.changes.entry(h.pid).or_default();
        if changes.len() < CHANGES {
            changes.push((h.time_ns, watches, instances));
        }
    }

    /// The diagnosis, each listed holder at the failure.
    pub fn finish(mut self) -> Diagnosis {
        let d = &mut self.diagnosis;
        for p in d.holders.iter_mut().filter(|p| !p.gone) {
            let Some(&read) = self.read_ns.get(&p.pid) else {
                continue;
            };
            p.read_after_ms = Some(read.saturating_sub(self.failure_ns) as f64 / 1e6);
            let (watches, instances) = self
                .changes
                .get(&p.pid)
                .into_iter()
                .flatten()
                .filter(|(at, _, _)| *at <= read)
                .fold((0i64, 0i64), |(w, i), (_, dw, di)| (w + dw, i + di));
            if (watches, instances) != (0, 0) && !p.started_after_failure {
                p.as_read = Some(Held {
                    instances: p.instances,
                    watches: p.watches,
                });
                p.watches = (p.watches as i64 - watches).max(0) as u64;
                p.instances = (p.instances as i64 - instances).max(0) as u64;
            }
        }
        let used = |held: Held| match d.limit {
            Limit::Watches => held.watches,
            Limit::Instances => held.instances,
        };
        let key = |p: &crate::usage::ProcessUsage| {
            used(Held {
                instances: p.instances,
                watches: p.watches,
            })
        };
        d.holders.sort_by(|a, b| {
            (a.started_after_failure, key(b), a.pid).cmp(&(b.started_after_failure, key(a), b.pid))
        });
        if let Some(at) = d.at_failure.filter(|at| used(*at) > 0) {
            for p in d.holders.iter_mut().filter(|p| !p.started_after_failure) {
                p.share_pct = Some((1000.0 * key(p) as f64 / used(at) as f64).round() / 10.0);
            }
        }
        // Only the kernel's count can show what the holders leave out.
        if let (false, Some(at)) = (d.charge.is_empty(), d.at_failure) {
            let held: u64 = d
                .holders
                .iter()
                .filter(|p| !p.started_after_failure)
                .map(key)
                .sum::<u64>()
                + used(self.unlisted);
            d.unexplained = Some(used(at) as i64 - held as i64);
        }
        self.diagnosis
    }
}
