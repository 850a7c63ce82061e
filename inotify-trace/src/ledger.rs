//! The session's inotify instances, as the calls it traced show them: the
//! watch descriptors each has handed out and who created it. Each call is
//! decided here once, for everyone downstream: a new watch or a re-add, and
//! the uid the kernel charges. The summary counts with the verdict; the
//! diagnosis asks what a process that failed and exited had taken. The
//! pipeline keeps the ledger whether or not it keeps a summary (the agent's
//! continuous session has none), so the diagnosis works the same in both.
use std::collections::HashMap;

use crate::{
    event::{Event, Kind},
    held::Held,
};

/// Every event goes through this table: foldhash, seeded per process (std's
/// SipHash was a quarter of the tracer's CPU per event).
type FastState = foldhash::fast::RandomState;

/// Past this many instances, a live ledger forgets those of processes that
/// are gone (a session without end, the agent's, must not grow with the
/// node's pid churn).
const LIVE_INSTANCES: usize = 1 << 16;

#[derive(Clone, Default)]
pub struct Ledger {
    /// Keyed by (pid, fd). The kernel hands out an instance's descriptors in
    /// increasing order (cyclic IDR), so a descriptor at or below the
    /// highest seen is one the instance already had: a re-add, which costs
    /// no watch.
    instances: HashMap<(u32, i32), Instance, FastState>,
    /// Live: forget the instances of gone processes past
    /// [`LIVE_INSTANCES`]. A recording's ledger never looks at /proc.
    live: bool,
}

/// What the session knows of one instance: 12 bytes (a report of 200,000
/// processes keeps one each).
#[derive(Clone, Copy)]
struct Instance {
    highest_wd: i32,
    /// The effective uid that created it, when its init was traced;
    /// [`UNKNOWN_CREATOR`] when not (uid -1 is no uid: `setuid(-1)` means
    /// "unchanged").
    creator: u32,
    /// Its new watches less those removed, as traced.
    watches: u32,
}

const UNKNOWN_CREATOR: u32 = u32::MAX;

impl Instance {
    fn creator(&self) -> Option<u32> {
        (self.creator != UNKNOWN_CREATOR).then_some(self.creator)
    }
}

/// What one call did, as the ledger decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub effect: Effect,
    /// The uid the kernel charges: an instance's creator when its init was
    /// traced, else (an instance made before the session, or inherited
    /// across fork) the caller.
    pub charged: u32,
    /// The instance's creator is not known: the caller was charged.
    pub charged_to_caller: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    NewWatch,
    ReAdd,
    Removed,
    NewInstance,
    Failed,
}

impl Ledger {
    /// A ledger for a live session (see [`LIVE_INSTANCES`]).
    pub fn live() -> Ledger {
        Ledger {
            live: true,
            ..Ledger::default()
        }
    }

    /// Decides what `event` did, and remembers it.
    pub fn observe(&mut self, event: &Event<'_>) -> Seen {
        let h = &event.header;
        let caller = event.charged_uid();
        let key = (h.pid, h.fd);
        let creator = self.instances.get(&key).and_then(Instance::creator);
        let seen = |effect, charged: Option<u32>| Seen {
            effect,
            charged: charged.unwrap_or(caller),
            charged_to_caller: charged.is_none(),
        };
        match (event.kind, event.errno()) {
            (Kind::AddWatch, None) => {
                let instance = self.instances.entry(key).or_insert(Instance {
                    highest_wd: 0,
                    creator: UNKNOWN_CREATOR,
                    watches: 0,
                });
                // A watch descriptor is an int in the kernel.
                let effect = match h.ret > i64::from(instance.highest_wd) {
                    true => {
                        instance.highest_wd = h.ret as i32;
                        instance.watches = instance.watches.saturating_add(1);
                        Effect::NewWatch
                    }
                    false => Effect::ReAdd,
                };
                seen(effect, creator)
            }
            (Kind::Init, None) => {
                self.make_room();
                // A new instance: its fd number may have served an older
                // one, which was closed with its watches.
                let instance = Instance {
                    highest_wd: 0,
                    creator: caller,
                    watches: 0,
                };
                self.instances.insert((h.pid, h.ret as i32), instance);
                seen(Effect::NewInstance, Some(caller))
            }
            (Kind::RmWatch, None) => {
                if let Some(instance) = self.instances.get_mut(&key) {
                    instance.watches = instance.watches.saturating_sub(1);
                }
                seen(Effect::Removed, creator)
            }
            (Kind::Init, Some(_)) => seen(Effect::Failed, Some(caller)),
            (_, Some(_)) => seen(Effect::Failed, creator),
        }
    }

    /// What the session saw `pid` take and still hold: the instances it
    /// created and the watches it added, less those it removed (None: no
    /// instance of it was traced).
    pub fn taken_by(&self, pid: u32) -> Option<Held> {
        let mut taken = None::<Held>;
        for (_, instance) in self.instances.iter().filter(|((p, _), _)| *p == pid) {
            let held = taken.get_or_insert_with(Held::default);
            held.instances += u64::from(instance.creator().is_some());
            held.watches += u64::from(instance.watches);
        }
        taken
    }

    /// Frees the table (before a summary is built: with 200k processes,
    /// what keeps a report well under 64 MiB).
    pub fn clear(&mut self) {
        self.instances = HashMap::default();
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.instances.capacity() * (size_of::<((u32, i32), Instance)>() + 1)
    }

    /// Live, past [`LIVE_INSTANCES`]: forgets the instances of processes
    /// that are gone (one stat per pid, once per that many new instances).
    fn make_room(&mut self) {
        if !self.live || self.instances.len() < LIVE_INSTANCES {
            return;
        }
        let mut alive: HashMap<u32, bool, FastState> = HashMap::default();
        self.instances.retain(|(pid, _), _| {
            *alive
                .entry(*pid)
                .or_insert_with(|| std::path::Path::new(&format!("/proc/{pid}")).exists())
        });
    }
}

#[cfg(test)]
mod tests {
    use inotify_trace_common::{EventHeader, Kind as WireKind};

    use super::*;
    use crate::event::fixtures::{add_watch, record};

    fn observe(ledger: &mut Ledger, header: EventHeader) -> Seen {
        ledger.observe(&Event::decode(&record(&header, b"/d")).unwrap())
    }

    fn init(comm: &str, fd: i64) -> EventHeader {
        let mut h = add_watch(comm, fd);
        (h.kind, h.fd) = (WireKind::Init as u32, -1);
        h
    }

    fn rm_watch(comm: &str, ret: i64) -> EventHeader {
        let mut h = add_watch(comm, ret);
        (h.kind, h.arg) = (WireKind::RmWatch as u32, 1);
        h
    }

    #[test]
    fn a_descriptor_at_or_below_the_highest_is_a_re_add_charged_to_the_creator() {
        let mut ledger = Ledger::default();
        let mut made = init("w", 3);
        made.euid = 1000;
        assert_eq!(observe(&mut ledger, made).effect, Effect::NewInstance);
        let mut add = |wd: i64| {
            let mut h = add_watch("w", wd);
            (h.fd, h.euid) = (3, 0);
            observe(&mut ledger, h)
        };
        let first = add(1);
        assert_eq!(
            (first.effect, first.charged, first.charged_to_caller),
            (Effect::NewWatch, 1000, false)
        );
        assert_eq!(add(2).effect, Effect::NewWatch);
        assert_eq!(add(1).effect, Effect::ReAdd);
        let mut rm = rm_watch("w", 0);
        rm.fd = 3;
        assert_eq!(observe(&mut ledger, rm).effect, Effect::Removed);
        assert_eq!(
            ledger.taken_by(made.pid),
            Some(Held {
                instances: 1,
                watches: 1
            })
        );
        assert_eq!(ledger.taken_by(made.pid + 1), None);
    }

    #[test]
    fn an_instance_made_before_the_session_charges_the_caller_and_counts_no_instance() {
        let mut ledger = Ledger::default();
        let mut h = add_watch("w", 7);
        (h.fd, h.euid) = (9, 1000);
        let seen = observe(&mut ledger, h);
        assert_eq!(
            (seen.effect, seen.charged, seen.charged_to_caller),
            (Effect::NewWatch, 1000, true)
        );
        assert_eq!(
            ledger.taken_by(h.pid),
            Some(Held {
                instances: 0,
                watches: 1
            })
        );
    }

    #[test]
    fn a_reused_descriptor_starts_a_new_instance_without_the_closed_ones_watches() {
        let mut ledger = Ledger::default();
        observe(&mut ledger, init("w", 3));
        let mut h = add_watch("w", 1);
        h.fd = 3;
        observe(&mut ledger, h);
        observe(&mut ledger, init("w", 3));
        assert_eq!(
            ledger.taken_by(h.pid),
            Some(Held {
                instances: 1,
                watches: 0
            })
        );
        // The new instance's first descriptor is new, not a re-add.
        assert_eq!(observe(&mut ledger, h).effect, Effect::NewWatch);
    }
}
