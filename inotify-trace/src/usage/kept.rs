//! The kept counts, counted: each inotify instance's watches as the kernel's
//! own events keep them (`tracer::kept`), turned into the same scan a /proc
//! walk gives, so that the agent's snapshot costs a map read per instance
//! instead of one fdinfo line per watch of the node.
//!
//! An instance's count is its *base* (its fdinfo count when last read,
//! less the change the programs had counted by then) plus the change the
//! programs have counted since attach. Instances made after attach have
//! base 0: the programs saw every watch they made. A slow full read of
//! every instance's fdinfo (`reconcile`) rebases them all and says by how
//! much the kept counts had drifted from the kernel's own listing (0 when
//! no event was missed).
use std::{
    cmp::Ordering,
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use anyhow::Result;
use inotify_trace_common::KeptFd;

use super::{
    identity::{FdRef, FileOrder},
    scan::{self, HeldFd, Scan},
};
use crate::tracer::kept::KernelCounts;

/// The programs, and each instance's base.
pub struct KeptCounts {
    kernel: KernelCounts,
    bases: HashMap<u64, i64>,
}

/// What a reconciliation found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Instances whose fdinfo was read.
    pub instances: u64,
    /// The sum over them of |kept count - fdinfo count|: 0 when the
    /// programs missed nothing.
    pub drift: u64,
    /// How many of them differed.
    pub drifted: u64,
}

/// Tries to read an fdinfo whose instance changes meanwhile this often.
const SETTLE_TRIES: usize = 3;

impl KeptCounts {
    /// Attaches the programs and reads every instance's fdinfo once (the
    /// first bases); the error says why the kernel cannot keep counts.
    pub fn start(root: &Path) -> Result<KeptCounts> {
        let mut kept = KeptCounts {
            kernel: KernelCounts::attach()?,
            bases: HashMap::new(),
        };
        kept.reconcile(root)?;
        Ok(kept)
    }

    /// Reads one holder's fdinfo per instance and rebases each instance on
    /// it, saying how far the kept counts had drifted.
    pub fn reconcile(&mut self, root: &Path) -> Result<Reconciled> {
        let fds = self.kernel.fds()?;
        // Bases are made anew below: what was released is of no account.
        self.kernel.take_freed();
        let mut found = Reconciled::default();
        let mut bases = HashMap::new();
        for (group, holder) in first_holders(&fds) {
            let Some((listed, change)) = self.settled_count(root, group, holder) else {
                continue;
            };
            let kept = self.bases.get(&group).copied().unwrap_or(0) + change;
            let off = (kept - listed as i64).unsigned_abs();
            found.instances += 1;
            found.drift += off;
            found.drifted += u64::from(off > 0);
            bases.insert(group, listed as i64 - change);
        }
        self.bases = bases;
        Ok(found)
    }

    /// The instance's fdinfo count and the programs' change, read so that
    /// no watch came or went between the two: the change is read before and
    /// after the fdinfo, until both agree.
    fn settled_count(&self, root: &Path, group: u64, holder: &KeptFd) -> Option<(u64, i64)> {
        for _ in 0..SETTLE_TRIES {
            let before = self.kernel.change(group);
            let listed = scan::fdinfo_count(root, holder.tgid, holder.fd)?;
            let after = self.kernel.change(group);
            if before == after {
                return Some((listed, after));
            }
        }
        None
    }

    /// Every inotify fd of the machine with its instance's kept count, and
    /// the order that tells instances apart (their kernel address): what
    /// `scan::inotify_fds` finds, without reading a watch.
    pub fn scan(&mut self, root: &Path) -> Result<(Scan, InstanceOrder)> {
        let fds = self.kernel.fds()?;
        // After the walk: an address released before it and listed by it
        // is a new instance's.
        for group in self.kernel.take_freed() {
            self.bases.remove(&group);
        }
        let live: HashSet<u64> = fds.iter().map(|f| f.group).collect();
        self.bases.retain(|group, _| live.contains(group));
        let changes = self.kernel.changes(live.iter().copied());
        let count = |group: u64| {
            let kept = self.bases.get(&group).copied().unwrap_or(0) + changes[&group];
            kept.max(0) as u64
        };
        let mut scan = Scan::default();
        let mut order = HashMap::new();
        let read_ns = crate::clock::WallClock::boot_now_ns().ok();
        let mut by_pid: BTreeMap<u32, Vec<&KeptFd>> = BTreeMap::new();
        for fd in &fds {
            by_pid.entry(fd.tgid).or_default().push(fd);
        }
        for (pid, held) in by_pid {
            // Gone since the walk: nothing held any more.
            let Some((comm, euid, user_ns)) = scan::holder_facts(&root.join(pid.to_string()))
            else {
                continue;
            };
            for fd in held {
                let fd_ref = FdRef {
                    pid,
                    fd: fd.fd as i32,
                };
                order.insert(fd_ref, fd.group);
                scan.held.push(HeldFd {
                    pid,
                    fd: fd_ref.fd,
                    comm,
                    euid,
                    user_ns,
                    count: count(fd.group),
                    watches: Vec::new(),
                    read_ns,
                });
            }
        }
        Ok((scan, InstanceOrder(order)))
    }
}

/// Each instance once, with the first of its fds (lowest pid, then fd).
fn first_holders(fds: &[KeptFd]) -> BTreeMap<u64, &KeptFd> {
    let mut first = BTreeMap::new();
    for fd in fds {
        first.entry(fd.group).or_insert(fd);
    }
    first
}

/// Instances told apart by their kernel address, as the iterator gave it
/// (kcmp's answer, without a syscall per comparison).
pub struct InstanceOrder(HashMap<FdRef, u64>);

impl FileOrder for InstanceOrder {
    fn compare(&self, a: FdRef, b: FdRef) -> Option<Ordering> {
        Some(self.0.get(&a)?.cmp(self.0.get(&b)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_listed_once_with_its_first_holder() {
        let fd = |tgid, fd, group| KeptFd { tgid, fd, group };
        let fds = [fd(10, 3, 7), fd(10, 4, 9), fd(11, 3, 7)];
        let first = first_holders(&fds);
        assert_eq!(first.len(), 2);
        assert_eq!(*first[&7], fd(10, 3, 7));
        assert_eq!(*first[&9], fd(10, 4, 9));
    }

    #[test]
    fn instances_are_ordered_by_address_and_unknown_fds_by_nothing() {
        let (a, b, c) = (
            FdRef { pid: 1, fd: 3 },
            FdRef { pid: 2, fd: 3 },
            FdRef { pid: 3, fd: 3 },
        );
        let order = InstanceOrder(HashMap::from([(a, 20), (b, 10)]));
        assert_eq!(order.compare(a, b), Some(Ordering::Greater));
        assert_eq!(order.compare(a, a), Some(Ordering::Equal));
        assert_eq!(order.compare(a, c), None);
    }
}
