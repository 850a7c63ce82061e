//! One process's counts: what the aggregator keeps for every pid it has
//! seen, and, unchanged, the row the summary lists. One struct for both, so
//! a summary of 200k processes holds each once, in ~90 bytes.
use cardinality_estimator::CardinalityEstimator;
use inotify_trace_common::Comm;
use serde::{ser::SerializeStruct, Serialize, Serializer};

use super::growth::{AtEnd, Growth, Leak};
use crate::{
    errno::Errno,
    event::comm_bytes,
    held::{Held, HeldNow},
    pods::Attribution,
};

/// Distinct paths of a process are counted exactly up to this many (the
/// estimator's exact representation), estimated past it.
pub const EXACT_PATHS: u64 = 128;

#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSummary {
    pub pid: u32,
    pub uid: u32,
    /// The cgroup v2 id of its latest call (0: not known).
    pub cgroup_id: u64,
    /// The kernel's 16 bytes; JSON shows the text up to the NUL (lossy).
    pub comm: Comm,
    /// inotify_add_watch calls.
    pub calls: u64,
    /// Successful add_watch calls that created a watch.
    pub new_watches: u64,
    /// Successful add_watch calls that returned a watch the instance had.
    pub re_adds: u64,
    /// Successful inotify_init/init1 calls.
    pub instances: u64,
    /// Removals and failures, which most processes never have: allocated
    /// at a process's first.
    pub(super) rare: Option<Box<RareCounts>>,
    /// The distinct paths passed to add_watch: 8 bytes for up to two, a
    /// small array up to 128, then a fixed-size sketch (~3 KiB).
    pub(super) paths: CardinalityEstimator<u64>,
    /// When its new watches came, to tell a leak from a burst.
    pub(super) growth: Growth,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RareCounts {
    pub removed: u64,
    pub failed: u64,
    pub instance_failures: u64,
    /// Failed add_watch calls by errno, in name order.
    pub errors: Vec<(Errno, u64)>,
    /// What it held at the end of the session, when it was still holding
    /// any: instances, watches, where, its command line.
    pub held: Option<HeldNow>,
    /// Its pod, container or unit (listed rows only, set at the end).
    pub place: Option<Attribution>,
    /// Its watches grew without bound over the session (set at the end).
    pub leak: Option<Leak>,
    /// What it held when the session attached (a holder of a budget the
    /// session's calls were charged to).
    pub at_start: Option<Held>,
}

static NONE: RareCounts = RareCounts {
    removed: 0,
    failed: 0,
    instance_failures: 0,
    errors: Vec::new(),
    held: None,
    place: None,
    leak: None,
    at_start: None,
};

impl ProcessSummary {
    pub fn new(pid: u32, comm: Comm, uid: u32) -> ProcessSummary {
        ProcessSummary {
            pid,
            uid,
            cgroup_id: 0,
            comm,
            calls: 0,
            new_watches: 0,
            re_adds: 0,
            instances: 0,
            rare: None,
            paths: CardinalityEstimator::new(),
            growth: Growth::default(),
        }
    }

    /// Successful inotify_rm_watch calls.
    pub fn removed(&self) -> u64 {
        self.rare().removed
    }

    /// Failed add_watch calls.
    pub fn failed(&self) -> u64 {
        self.rare().failed
    }

    /// Failed inotify_init/init1 calls.
    pub fn instance_failures(&self) -> u64 {
        self.rare().instance_failures
    }

    /// Failed add_watch calls by errno, in name order.
    pub fn errors(&self) -> &[(Errno, u64)] {
        &self.rare().errors
    }

    /// Instances and watches held at the end of the session, when it still
    /// held any.
    pub fn held(&self) -> Option<(u64, u64)> {
        self.held_now().map(|h| (h.instances, h.watches))
    }

    /// What it held at the end of the session, and where.
    pub fn held_now(&self) -> Option<&HeldNow> {
        self.rare().held.as_ref()
    }

    /// Its pod, container or unit, when known.
    pub fn place(&self) -> Option<&Attribution> {
        self.rare().place.as_ref()
    }

    /// Its watches grew without bound over the session, at this pace.
    pub fn leak(&self) -> Option<&Leak> {
        self.rare().leak.as_ref()
    }

    /// Marks it a leak if its new watches say so, in a session from
    /// `start_ns` lasting `duration_ns` (after [`Self::set_held`]).
    pub(super) fn judge_growth(&mut self, start_ns: u64, duration_ns: u64) {
        let at_end = AtEnd {
            new_watches: self.new_watches,
            removed: self.removed(),
            held: self.held().map(|(_, watches)| watches),
        };
        if let Some(leak) = self.growth.leak(&at_end, start_ns, duration_ns) {
            self.rare_mut().leak = Some(leak);
        }
    }

    /// What it held when the session attached.
    pub fn at_start(&self) -> Option<Held> {
        self.rare().at_start
    }

    pub(super) fn set_at_start(&mut self, held: Held) {
        self.rare_mut().at_start = Some(held);
    }

    /// The most of its budget it can have held over the session, as far as
    /// the session knows: what it held at the start, or that plus what it
    /// added less what it removed (the summary's order: whoever holds the
    /// most of a charged budget first, not whoever called most).
    pub fn most_held(&self) -> u64 {
        let start = self.at_start().map_or(0, |h| h.watches);
        start.max((start + self.new_watches).saturating_sub(self.removed()))
    }

    pub(super) fn set_place(&mut self, place: Attribution) {
        self.rare_mut().place = Some(place);
    }

    pub(super) fn set_held(&mut self, held: &HeldNow) {
        self.rare_mut().held = Some(held.clone());
    }

    /// Distinct paths passed to add_watch: exact up to 128, estimated
    /// (within ~2%) past that.
    pub fn distinct_paths(&self) -> u64 {
        self.paths.estimate() as u64
    }

    /// Whether [`ProcessSummary::distinct_paths`] is an estimate.
    pub fn distinct_paths_estimated(&self) -> bool {
        self.distinct_paths() > EXACT_PATHS
    }

    pub(super) fn path(&mut self, hash: u64) {
        self.paths.insert_hash(hash);
    }

    pub(super) fn removal(&mut self) {
        self.rare_mut().removed += 1;
    }

    pub(super) fn instance_failure(&mut self) {
        self.rare_mut().instance_failures += 1;
    }

    pub(super) fn failure(&mut self, errno: Errno) {
        let rare = self.rare_mut();
        rare.failed += 1;
        match rare.errors.binary_search_by(|(e, _)| e.cmp(&errno)) {
            Ok(at) => rare.errors[at].1 += 1,
            Err(at) => rare.errors.insert(at, (errno, 1)),
        }
    }

    fn rare(&self) -> &RareCounts {
        self.rare.as_deref().unwrap_or(&NONE)
    }

    fn rare_mut(&mut self) -> &mut RareCounts {
        self.rare.get_or_insert_default()
    }
}

/// The documented keys (docs/json.md), in the order they have always had.
impl Serialize for ProcessSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let estimated = self.distinct_paths_estimated();
        let held = self.held_now();
        let comm = comm_bytes(&self.comm);
        let comm_exact = crate::exact_text::base64_if_lossy(comm);
        let fields = 22
            + usize::from(estimated)
            + usize::from(comm_exact.is_some())
            + 4 * usize::from(held.is_some())
            + usize::from(held.is_some_and(|h| h.facts.culprit.is_some()))
            + usize::from(self.leak().is_some())
            + usize::from(self.at_start().is_some());
        let mut row = s.serialize_struct("ProcessSummary", fields)?;
        row.serialize_field("pid", &self.pid)?;
        row.serialize_field("comm", &String::from_utf8_lossy(comm))?;
        if let Some(exact) = &comm_exact {
            row.serialize_field("comm_base64", exact)?;
        }
        row.serialize_field("uid", &self.uid)?;
        row.serialize_field("calls", &self.calls)?;
        row.serialize_field("new_watches", &self.new_watches)?;
        row.serialize_field("re_adds", &self.re_adds)?;
        row.serialize_field("removed", &self.removed())?;
        row.serialize_field("failed", &self.failed())?;
        row.serialize_field("errors", &Errors(self.errors()))?;
        row.serialize_field("distinct_paths", &self.distinct_paths())?;
        if estimated {
            row.serialize_field("distinct_paths_estimated", &true)?;
        }
        // `instances_created`: init calls that succeeded (`usage`'s
        // `instances` are instances held). `instances` is the old name, kept
        // for one release (docs/json.md).
        row.serialize_field("instances_created", &self.instances)?;
        row.serialize_field("instances", &self.instances)?;
        row.serialize_field("instance_failures", &self.instance_failures())?;
        if self.cgroup_id != 0 {
            row.serialize_field("cgroup_id", &self.cgroup_id)?;
        }
        if let Some(place) = self.place() {
            for (key, value) in place.fields() {
                row.serialize_field(key, value)?;
            }
        }
        if let Some(held) = held {
            row.serialize_field("held_instances", &held.instances)?;
            row.serialize_field("held_watches", &held.watches)?;
            if !held.facts.places.is_empty() {
                row.serialize_field("held_where", &held.facts.places)?;
            }
            if !held.facts.cmdline.is_empty() {
                row.serialize_field("cmdline", &held.facts.cmdline)?;
            }
            if let Some(culprit) = &held.facts.culprit {
                row.serialize_field("culprit", culprit)?;
            }
        }
        if let Some(leak) = self.leak() {
            row.serialize_field("leak", leak)?;
        }
        if let Some(at_start) = self.at_start() {
            row.serialize_field("held_at_start", &at_start)?;
        }
        row.end()
    }
}

/// Failed calls by errno, as a JSON object `{"ENOSPC": 3}`.
struct Errors<'a>(&'a [(Errno, u64)]);

impl Serialize for Errors<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(errno, n)| (errno, n)))
    }
}
