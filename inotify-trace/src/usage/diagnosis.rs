//! When a traced call fails because a limit is used up (ENOSPC from
//! inotify_add_watch, EMFILE from inotify_init), a usage snapshot of the
//! failing process's uid, in the scope whose limit it hit: who holds the
//! budget, right when it ran out. At most one per scope every few seconds.
use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{advice::Recommendation, scan, snapshot, ProcessUsage, Source, UserUsage};
use crate::{
    clock::{rfc3339, WallClock},
    errno::Errno,
    event::{Event, Kind},
    exact_text::ProcessName,
    limits::Limit,
    selection::Selection,
};

/// Snapshots of one scope are at least this far apart.
const EVERY: Duration = Duration::from_secs(5);
/// Holders listed.
const HOLDERS: usize = 10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC: when the failing call returned.
    pub time: String,
    pub pid: u32,
    #[serde(flatten)]
    pub comm: ProcessName,
    pub uid: u32,
    pub call: Kind,
    pub errno: Errno,
    /// The budget that ran out.
    pub limit: Limit,
    /// The failing process's user namespace, when it is not the tracer's:
    /// its own caps are the ones that apply first.
    pub user_ns: Option<u64>,
    /// The uid's usage in that scope, against its limits.
    pub usage: Option<UserUsage>,
    /// The processes of that uid in that scope, by watches (or instances).
    pub holders: Vec<ProcessUsage>,
    pub recommendations: Vec<Recommendation>,
}

/// Failing pids remembered at most: past it, the oldest are forgotten.
const KNOWN_PIDS: usize = 4096;

pub struct Diagnoser {
    /// This process's user namespace, read once.
    own_user_ns: Option<u64>,
    /// When each scope (uid, user namespace) was last diagnosed.
    last: HashMap<(u32, Option<u64>), Instant>,
    /// The user namespace of each pid that failed lately, and when it last
    /// did: a storm of failures from one process is turned away with two
    /// lookups, no /proc read and no allocation, so it costs what a
    /// success costs and the ring buffer keeps up.
    known: HashMap<u32, (Option<u64>, Instant)>,
}

impl Diagnoser {
    /// A diagnoser for this machine, as this process sees it.
    pub fn live() -> Diagnoser {
        Diagnoser {
            own_user_ns: scan::namespace_inode(Path::new("/proc/self/ns/user")),
            last: HashMap::new(),
            known: HashMap::new(),
        }
    }

    /// The failing process's user namespace when it is not ours: from
    /// memory if the pid failed lately, else one /proc read.
    fn user_ns_of(&mut self, pid: u32, now: Instant) -> Option<u64> {
        if let Some((ns, seen)) = self.known.get_mut(&pid) {
            if now.duration_since(*seen) < EVERY {
                *seen = now;
                return *ns;
            }
        }
        if self.known.len() >= KNOWN_PIDS {
            self.known
                .retain(|_, (_, seen)| now.duration_since(*seen) < EVERY);
            if self.known.len() >= KNOWN_PIDS {
                self.known.clear();
            }
        }
        let ns = scan::namespace_inode(Path::new(&format!("/proc/{pid}/ns/user")))
            .filter(|ns| Some(*ns) != self.own_user_ns);
        self.known.insert(pid, (ns, now));
        ns
    }

    /// A diagnosis for this event, if it is one of the two failures and its
    /// scope was not diagnosed in the last few seconds.
    /// Called for every event: anything but the two failures returns at
    /// once, without allocating.
    pub fn consider(&mut self, event: &Event<'_>, clock: &WallClock) -> Option<Diagnosis> {
        let h = &event.header;
        let errno = event.errno()?;
        let limit = Limit::hit_by(event.kind, errno)?;
        // The rate limit first: everything after it reads /proc.
        let now = Instant::now();
        let user_ns = self.user_ns_of(h.pid, now);
        let scope = (h.uid, user_ns);
        if self
            .last
            .get(&scope)
            .is_some_and(|at| now.duration_since(*at) < EVERY)
        {
            return None;
        }
        self.last.insert(scope, now);
        let source = Source::live(None);

        let usage = snapshot(
            &source,
            &Selection {
                uids: vec![h.uid],
                ..Selection::default()
            },
            0,
        );
        let in_scope = |ns: Option<u64>| user_ns.is_none() || ns == user_ns;
        let mut holders: Vec<ProcessUsage> = usage
            .processes
            .into_iter()
            .filter(|p| p.uid == h.uid && in_scope(p.user_ns))
            .collect();
        if limit == Limit::Instances {
            holders.sort_by(|a, b| {
                (b.instances, b.watches, a.pid).cmp(&(a.instances, a.watches, b.pid))
            });
        }
        holders.truncate(HOLDERS);
        Some(Diagnosis {
            kind: "diagnosis".to_owned(),
            time: rfc3339(clock.wall(h.time_ns)).to_string(),
            pid: h.pid,
            comm: ProcessName::from_bytes(event.comm()),
            uid: h.uid,
            call: event.kind,
            errno,
            limit,
            user_ns,
            usage: usage
                .users
                .into_iter()
                .find(|u| u.uid == h.uid && u.user_ns == user_ns),
            holders,
            recommendations: usage
                .recommendations
                .into_iter()
                .filter(|r| r.uid == h.uid && r.user_ns == user_ns)
                .collect(),
        })
    }
}
