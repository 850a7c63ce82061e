//! When a traced call fails because a limit is used up (ENOSPC from
//! inotify_add_watch, EMFILE from inotify_init), a usage snapshot of the
//! failing process's uid, in the scope whose limit it hit: who holds the
//! budget, right when it ran out. At most one per scope every few seconds.
//!
//! The scope (the charged uid and user namespace) comes from the kernel's
//! record, so it is right even when the failing process is gone by the time
//! the snapshot is taken (a program that exits at its first ENOSPC, as
//! `inotifywait -r` does). What the snapshot cannot see is made up from the
//! session: the gone process's traced watches are counted, and holders that
//! started after the failure are marked and left out of the estimate.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use inotify_trace_common::ChargeLevel;
use serde::{Deserialize, Serialize};

mod pending;
mod text;

pub use self::{pending::Pending, text::diagnosis as write_text};
use crate::{
    advice::{self, Observed, Recommendation},
    clock::{rfc3339, WallClock},
    errno::Errno,
    event::{Event, Kind},
    exact_text::{PathName, ProcessName},
    held::Held,
    limits::Limit,
    pods::Attribution,
    selection::Selection,
    usage::{
        holdings::facts_of,
        scan::{self, HeldFd},
        snapshot, ProcessUsage, Source, UserUsage,
    },
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
    /// Where the failing process runs (pod, container, unit), from its
    /// record's cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Attribution>,
    /// How long after the failing call the snapshot was taken (absent from
    /// recordings made before it was given).
    #[serde(default)]
    pub snapshot_after_ms: Option<f64>,
    /// The uid's holdings in that scope at the failure: the kernel's own
    /// count, from the failing record's charge (its innermost level); for
    /// a record without one, as best known: the snapshot's, less what
    /// holders started after the failure hold, plus what the failing
    /// process had taken in this session when it was gone by the snapshot.
    #[serde(default)]
    pub at_failure: Option<Held>,
    /// The failing call's charge as the kernel counted it right after the
    /// call, innermost level first (absent from recordings made before it
    /// was read, and where the kernel's BTF does not say where it is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charge: Vec<ChargeLevel>,
    /// Which of those levels was full (0: the innermost): the one whose cap
    /// the call ran into. Absent with a charge: no level was full (said as
    /// such: counts freed between the refusal and the read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_level: Option<usize>,
    /// With the kernel's count: how many of what ran out it counts beyond
    /// the holders (listed or not), each taken back to the failure; below
    /// 0, how many more the holders hold than it counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexplained: Option<i64>,
    /// The failing add_watch's path, as the caller gave it (`path`, and
    /// `path_base64` when it is not UTF-8).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathName>,
    /// For a relative path: the caller's working directory then (from
    /// /proc at the diagnosis; absent when the caller was gone), as
    /// `{"path": ..., "path_base64": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathName>,
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
    /// Where the node's files are, to name the holders' pods.
    host_root: PathBuf,
    /// The working directory of each caller that passed a relative path,
    /// read at its first such call (the caller may be gone by a failure's
    /// diagnosis: inotifywait exits at once).
    cwds: HashMap<u32, PathBuf>,
}

impl Diagnoser {
    /// A diagnoser for this machine, as this process sees it.
    pub fn live(host_root: &Path) -> Diagnoser {
        Diagnoser {
            own_user_ns: crate::usage::own_user_ns(),
            last: HashMap::new(),
            known: HashMap::new(),
            host_root: host_root.to_owned(),
            cwds: HashMap::new(),
        }
    }

    /// Notes the caller's working directory at its first relative path
    /// (one readlink per such process; bounded like `known`).
    fn note_cwd(&mut self, event: &Event<'_>) {
        let pid = event.header.pid;
        if event.kind != Kind::AddWatch
            || event.path.is_empty()
            || event.path.starts_with(b"/")
            || self.cwds.contains_key(&pid)
        {
            return;
        }
        if self.cwds.len() >= KNOWN_PIDS {
            self.cwds.clear();
        }
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            self.cwds.insert(pid, cwd);
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
    /// scope was not diagnosed in the last few seconds. `traced` says what
    /// the session saw a pid take.
    /// Called for every event: anything but the two failures returns at
    /// once, without allocating, and a failure whose scope was diagnosed
    /// lately costs a hash lookup.
    pub fn consider(
        &mut self,
        event: &Event<'_>,
        clock: &WallClock,
        traced: impl Fn(u32) -> Option<Held>,
        place: Option<&Attribution>,
    ) -> Option<Pending> {
        self.note_cwd(event);
        let errno = event.errno()?;
        let limit = Limit::hit_by(event.kind, errno)?;
        let now = Instant::now();
        let user_ns = match event.user_ns() {
            Some(ns) => Some(ns).filter(|ns| Some(*ns) != self.own_user_ns),
            // A record without credentials (no BTF): ask /proc.
            None => self.user_ns_of(event.header.pid, now),
        };
        let scope = (event.charged_uid(), user_ns);
        if self
            .last
            .get(&scope)
            .is_some_and(|at| now.duration_since(*at) < EVERY)
        {
            return None;
        }
        self.last.insert(scope, now);
        let failure = Failure {
            event,
            limit,
            errno,
            user_ns,
            place: place.cloned(),
        };
        let snapshot_ns = WallClock::boot_now_ns().ok();
        let source = Source {
            host_root: self.host_root.clone(),
            ..Source::live(None)
        };
        let mut pending = diagnose(
            &source,
            &failure,
            clock,
            snapshot_ns,
            traced(event.header.pid),
        );
        let diagnosis = &mut pending.diagnosis;
        if diagnosis.path.is_some() && diagnosis.cwd.is_none() {
            diagnosis.cwd = self
                .cwds
                .get(&event.header.pid)
                .map(|dir| PathName::from_path(dir));
        }
        Some(pending)
    }
}

/// A call that failed for a limit, and the scope it failed in.
pub struct Failure<'e, 'a> {
    pub event: &'e Event<'a>,
    pub limit: Limit,
    pub errno: Errno,
    /// The failing process's user namespace when it is not ours.
    pub user_ns: Option<u64>,
    /// Where it runs, from its record's cgroup.
    pub place: Option<Attribution>,
}

/// The diagnosis of `failure` from a snapshot of `source` taken at
/// `snapshot_ns` (CLOCK_BOOTTIME), `traced` being what the session saw the
/// failing process take. Pending: its holders are reconciled with the calls
/// that follow (`Pending::finish`).
pub fn diagnose(
    source: &Source<'_>,
    failure: &Failure<'_, '_>,
    clock: &WallClock,
    snapshot_ns: Option<u64>,
    traced: Option<Held>,
) -> Pending {
    let (event, user_ns) = (failure.event, failure.user_ns);
    let (h, uid) = (&event.header, event.charged_uid());
    let (usage, held) = snapshot::snapshot_and_fds(
        source,
        &Selection {
            uids: vec![uid],
            ..Selection::default()
        },
        0,
    );
    let in_scope = |ns: Option<u64>| user_ns.is_none() || ns == user_ns;
    let mut holders: Vec<ProcessUsage> = usage
        .processes
        .into_iter()
        .filter(|p| p.uid == uid && in_scope(p.user_ns))
        .collect();
    let mut later = Held::default();
    for p in &mut holders {
        p.started_after_failure =
            scan::start_boot_ns(&source.root, p.pid).is_some_and(|started| started > h.time_ns);
        if p.started_after_failure {
            later.instances += p.instances;
            later.watches += p.watches;
        }
    }
    // Exited (maybe not yet reaped: its fds are closed all the same) or
    // closed its instances: what it held at the failure is what the session
    // saw it take.
    let failing_gone = !holders.iter().any(|p| p.pid == h.pid);
    let gone = traced.filter(|held| failing_gone && !held.is_empty());
    if let Some(held) = gone {
        holders.push(ProcessUsage {
            user_ns,
            instances: held.instances,
            watches: held.watches,
            place: failure.place.clone(),
            gone: true,
            ..ProcessUsage::new(h.pid, ProcessName::from_bytes(event.comm()), uid)
        });
    }
    // Those that could have held the budget first, by what ran out.
    holders.sort_by(|a, b| {
        let (a_key, b_key) = match failure.limit {
            Limit::Watches => ((a.watches, a.instances), (b.watches, b.instances)),
            Limit::Instances => ((a.instances, a.watches), (b.instances, b.watches)),
        };
        (a.started_after_failure, b_key, a.pid).cmp(&(b.started_after_failure, a_key, b.pid))
    });
    let unlisted = holders
        .iter()
        .skip(HOLDERS)
        .filter(|p| !p.started_after_failure)
        .fold(Held::default(), |sum, p| Held {
            instances: sum.instances + p.instances,
            watches: sum.watches + p.watches,
        });
    holders.truncate(HOLDERS);
    // When the scan read each listed holder: its last fd.
    let mut read_ns: HashMap<u32, u64> = HashMap::new();
    for fd in &held {
        if let (Some(at), true) = (
            fd.read_ns,
            holders.iter().any(|p| p.pid == fd.pid && !p.gone),
        ) {
            let read = read_ns.entry(fd.pid).or_insert(at);
            *read = (*read).max(at);
        }
    }
    let user = usage
        .users
        .into_iter()
        .find(|u| u.uid == uid && u.user_ns == user_ns);
    let at_failure = (user.is_some() || gone.is_some()).then(|| {
        let (now, gone) = (
            user.as_ref().map_or(Held::default(), |u| Held {
                instances: u.instances,
                watches: u.watches,
            }),
            gone.unwrap_or_default(),
        );
        Held {
            instances: now.instances.saturating_sub(later.instances) + gone.instances,
            watches: now.watches.saturating_sub(later.watches) + gone.watches,
        }
    });
    // The kernel's count, where the record carries it, is what was held.
    let charge: Vec<ChargeLevel> = event.charge().collect();
    let full_level = full_level(&charge, failure.limit);
    let at_failure = charge
        .first()
        .map(|level| Held {
            instances: u64::from(level.instances),
            watches: u64::from(level.watches),
        })
        .or(at_failure);
    // Shares are given once the holders are taken back to the failure
    // (`Pending::finish`).
    explain_holders(source, &held, &mut holders);
    // The advice is for what ran out: the holdings at the failure, not
    // the snapshot's (the failer may have gone, later holders come).
    let recommendations = match (&user, at_failure) {
        (Some(u), Some(at)) => {
            let top = holders
                .iter()
                .filter(|p| !p.started_after_failure)
                .max_by_key(|p| (p.watches, std::cmp::Reverse(p.pid)));
            // The fix is run after the diagnosis is read: enter the
            // namespace through a process still alive, the failer last (it
            // is the one that tends to exit at its failure).
            let alive = |pid: u32| source.root.join(pid.to_string()).exists();
            let member = holders
                .iter()
                .filter(|p| !p.gone)
                .map(|p| p.pid)
                .filter(|pid| alive(*pid))
                .min_by_key(|pid| *pid == h.pid);
            let mut recommendations = advice::advise(&[Observed {
                kubernetes_node: source.kubernetes_node(),
                uid,
                user_ns,
                watches: at.watches,
                instances: at.instances,
                max_watches: u.max_watches,
                max_instances: u.max_instances,
                top_holder: top.map(|p| (p.pid, p.comm, p.watches)),
                ns_member: user_ns.and(member),
                watch_cost_bytes: source.watch_cost_bytes(),
            }]);
            // Advice about what ran out, not about the other budget.
            recommendations.retain(|r| r.resource == Some(failure.limit));
            recommendations
        }
        _ => Vec::new(),
    };
    let path = (event.kind == Kind::AddWatch && !event.path.is_empty())
        .then(|| PathName(event.path.to_vec()));
    let cwd = path
        .as_ref()
        .filter(|p| !p.0.starts_with(b"/"))
        .and_then(|_| std::fs::read_link(source.root.join(format!("{}/cwd", h.pid))).ok())
        .map(|dir| PathName::from_path(&dir));
    let diagnosis = Diagnosis {
        kind: "diagnosis".to_owned(),
        time: rfc3339(clock.wall(h.time_ns)).to_string(),
        pid: h.pid,
        comm: ProcessName::from_bytes(event.comm()),
        uid,
        call: event.kind,
        errno: failure.errno,
        limit: failure.limit,
        user_ns,
        usage: user,
        holders,
        recommendations,
        place: failure.place.clone(),
        snapshot_after_ms: snapshot_ns.map(|at| at.saturating_sub(h.time_ns) as f64 / 1e6),
        at_failure,
        charge,
        full_level,
        unexplained: None,
        path,
        cwd,
    };
    Pending::new(diagnosis, h.time_ns, read_ns, unlisted)
}

/// The first level of `charge` whose count of `limit`'s resource reached its
/// cap: where the kernel refused the call.
pub fn full_level(charge: &[ChargeLevel], limit: Limit) -> Option<usize> {
    charge.iter().position(|level| match limit {
        Limit::Watches => level.watches >= level.max_watches,
        Limit::Instances => level.instances >= level.max_instances,
    })
}

/// Holders given where their watches are and their command line, as the
/// summary gives them: the first [`EXPLAINED`] still running.
fn explain_holders(source: &Source<'_>, held: &[HeldFd], holders: &mut [ProcessUsage]) {
    let chosen: Vec<u32> = holders
        .iter()
        .filter(|p| !p.gone)
        .take(EXPLAINED)
        .map(|p| p.pid)
        .collect();
    if chosen.is_empty() {
        return;
    }
    let resolver = crate::usage::paths::Resolver::new();
    for p in holders.iter_mut().filter(|p| chosen.contains(&p.pid)) {
        p.facts = facts_of(held, source, p.pid, &resolver);
    }
}

/// Holders whose places and command line a diagnosis looks up (each costs
/// a walk of their watches' file handles).
const EXPLAINED: usize = 3;

#[cfg(test)]
mod tests;
