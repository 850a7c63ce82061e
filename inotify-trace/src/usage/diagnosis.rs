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

#[derive(Default)]
pub struct Diagnoser {
    last: HashMap<(u32, Option<u64>), Instant>,
}

impl Diagnoser {
    /// A diagnosis for this event, if it is one of the two failures and its
    /// scope was not diagnosed in the last few seconds.
    /// Called for every event: anything but the two failures returns at
    /// once, without allocating.
    pub fn consider(&mut self, event: &Event<'_>, clock: &WallClock) -> Option<Diagnosis> {
        let h = &event.header;
        let errno = event.errno()?;
        let limit = Limit::hit_by(event.kind, errno)?;
        let source = Source::live(None);
        let user_ns = scan::namespace_inode(Path::new(&format!("/proc/{}/ns/user", h.pid)))
            .filter(|ns| Some(*ns) != source.own_user_ns);
        let scope = (h.uid, user_ns);
        if self.last.get(&scope).is_some_and(|at| at.elapsed() < EVERY) {
            return None;
        }
        self.last.insert(scope, Instant::now());

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
