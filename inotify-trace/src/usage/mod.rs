//! `inotify-trace usage`: who holds inotify instances and watches now, per
//! process and per uid, against the limits; and the same snapshot, scoped to
//! one uid, as the diagnosis of a failure during a live session.
pub(crate) mod advice;
pub mod diagnosis;
pub(crate) mod fdinfo;
pub(crate) mod identity;
pub(crate) mod paths;
pub mod places;
pub(crate) mod render;
pub(crate) mod scan;
pub(crate) mod userns;

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use self::{
    advice::{Observed, Recommendation},
    identity::{FdRef, FileOrder},
    scan::HeldFd,
    userns::NamespaceCaps,
};
use crate::{
    exact_text::{PathName, ProcessName},
    limits::{Limits, NO_CAP},
    pods::{self, names::Names, Attribution},
    selection::Selection,
    stream::HeldNow,
};

/// Where a snapshot looks, and how it tells instances and namespaces apart.
pub struct Source<'a> {
    /// `/proc`, or a fixture shaped like it.
    pub root: PathBuf,
    pub order: &'a dyn FileOrder,
    /// The caps of the user namespace a process is in.
    pub namespace_caps: &'a dyn Fn(u32) -> Option<NamespaceCaps>,
    /// Our own user namespace: processes elsewhere are marked.
    pub own_user_ns: Option<u64>,
    pub limits: Limits,
    /// Set with `--paths`.
    pub resolver: Option<&'a paths::Resolver>,
    /// Where the node's files are (`--host-root`), to name pods.
    pub host_root: PathBuf,
}

impl Source<'static> {
    /// The machine, as seen from this process.
    pub fn live(resolver: Option<&'static paths::Resolver>) -> Source<'static> {
        Source {
            root: PathBuf::from("/proc"),
            order: &identity::Kcmp,
            namespace_caps: &userns::caps_of,
            own_user_ns: scan::namespace_inode(std::path::Path::new("/proc/self/ns/user")),
            limits: Limits::read(),
            resolver,
            host_root: PathBuf::from("/"),
        }
    }
}

/// The snapshot, as `usage --json` prints it (docs/json.md).
#[derive(Clone, Debug, Serialize)]
pub struct Usage {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub limits: Limits,
    pub instances: Vec<InstanceUsage>,
    pub processes: Vec<ProcessUsage>,
    pub users: Vec<UserUsage>,
    /// Per pod, from each holder's cgroup (`/proc/PID/cgroup`).
    pub pods: Vec<PodUsage>,
    pub recommendations: Vec<Recommendation>,
    /// Some processes could not be read: the counts are lower bounds.
    pub partial: bool,
    /// How many (without root: every other user's).
    pub unreadable_processes: u64,
    /// The first few of them.
    pub unreadable_pids: Vec<u32>,
}

/// Unreadable processes named at most.
const UNREADABLE_NAMED: usize = 10;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub fd: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceUsage {
    /// Every process and fd through which the instance is held.
    pub holders: Vec<Holder>,
    /// The first holder's comm.
    #[serde(flatten)]
    pub comm: ProcessName,
    /// The effective uid of the first (lowest-pid) holder: the kernel
    /// charges the instance's creator, which /proc does not show; for an
    /// instance inherited across fork that is the parent.
    pub uid: u32,
    pub watches: u64,
    /// The holder's user namespace, when it is not ours.
    pub user_ns: Option<u64>,
    /// With `--paths`: each watch's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<WatchTarget>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WatchTarget {
    pub wd: i32,
    /// `path`, and `path_base64` when it is not UTF-8.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathName>,
    /// `major:minor`, when the path could not be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    pub pid: u32,
    #[serde(flatten)]
    pub comm: ProcessName,
    pub uid: u32,
    pub user_ns: Option<u64>,
    pub instances: u64,
    pub watches: u64,
    /// In a diagnosis: the process started after the failing call, so what
    /// it holds was not part of the budget that ran out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub started_after_failure: bool,
    /// Where the process runs (pod, container, unit), from its cgroup.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Attribution>,
    /// In a diagnosis: the failing process, gone by the snapshot (exited,
    /// or its instances closed); its counts are what the session saw it
    /// take.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gone: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One pod's inotify instances and watches: each instance counts for the
/// pod of its first (lowest-pid) holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub pod_uid: String,
    pub instances: u64,
    pub watches: u64,
    /// The pod's process holding the most watches.
    pub top_holder: Option<ProcessUsage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserUsage {
    pub uid: u32,
    /// None: counted against the host's `fs.inotify` limits (everything is,
    /// since a namespace's charges go to its ancestors too); Some: against
    /// that user namespace's own caps.
    pub user_ns: Option<u64>,
    pub instances: u64,
    pub watches: u64,
    pub max_instances: Option<u64>,
    pub max_watches: Option<u64>,
    pub watches_pct: Option<f64>,
    pub instances_pct: Option<f64>,
    /// The process holding the most of this uid's watches in this scope.
    pub top_holder: Option<ProcessUsage>,
}

/// What each process `chosen` picks holds now (instances shared across
/// fork counted once per process), where its watches are and its command
/// line: what a session's end records. No per-uid totals, so no user
/// namespace is entered.
pub fn holdings_now(source: &Source<'_>, chosen: impl Fn(u32) -> bool) -> Vec<HeldNow> {
    let held = scan::inotify_fds(&source.root).held;
    let processes = processes(&instances(&held, source), &held);
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
            let mut seen = std::collections::HashSet::new();
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

/// Takes a snapshot of the processes `selection` chooses (its uids: the
/// instances charged to them), listing `top` of each (0: all).
pub fn snapshot(source: &Source<'_>, selection: &Selection, top: usize) -> Usage {
    let scan = scan::inotify_fds(&source.root);
    let held = scan.held;
    let instances = instances(&held, source);
    let mut processes = processes(&instances, &held);
    let mut names = Names::new(&source.host_root);
    for p in &mut processes {
        p.place = pods::of_process(&source.root, p.pid, &mut names);
    }
    let users = users(&instances, &processes, source, &selection.uids);
    let pods = pods_of(&instances, &processes);
    let recommendations = advice::advise(&users.iter().map(observed).collect::<Vec<_>>());
    let (mut instances, mut processes) = select(instances, processes, &held, selection);
    if top > 0 {
        instances.truncate(top);
        processes.truncate(top);
    }
    Usage {
        kind: "usage",
        limits: source.limits,
        instances,
        processes,
        users,
        pods,
        recommendations,
        partial: !scan.unreadable.is_empty(),
        unreadable_processes: scan.unreadable.len() as u64,
        unreadable_pids: scan.unreadable.into_iter().take(UNREADABLE_NAMED).collect(),
    }
}

fn instances(held: &[HeldFd], source: &Source<'_>) -> Vec<InstanceUsage> {
    let refs: Vec<FdRef> = held
        .iter()
        .map(|h| FdRef {
            pid: h.pid,
            fd: h.fd,
        })
        .collect();
    let by_ref: BTreeMap<FdRef, &HeldFd> = refs.iter().copied().zip(held).collect();
    let mut instances: Vec<InstanceUsage> = identity::group(&refs, source.order)
        .into_iter()
        .map(|mut group| {
            group.sort();
            let first = by_ref[&group[0]];
            let watches = group
                .iter()
                .map(|r| by_ref[r].watches.len())
                .max()
                .unwrap_or(0);
            InstanceUsage {
                holders: group
                    .iter()
                    .map(|r| Holder {
                        pid: r.pid,
                        fd: r.fd,
                    })
                    .collect(),
                comm: first.comm,
                uid: first.euid,
                watches: watches as u64,
                user_ns: first.user_ns.filter(|ns| Some(*ns) != source.own_user_ns),
                paths: source.resolver.map(|resolver| targets(first, resolver)),
            }
        })
        .collect();
    instances.sort_by(|a, b| {
        (b.watches, &a.holders[0].pid, a.holders[0].fd).cmp(&(
            a.watches,
            &b.holders[0].pid,
            b.holders[0].fd,
        ))
    });
    instances
}

fn targets(held: &HeldFd, resolver: &paths::Resolver) -> Vec<WatchTarget> {
    let mut watches: Vec<&fdinfo::Watch> = held.watches.iter().collect();
    watches.sort_by_key(|w| w.wd);
    watches
        .into_iter()
        .map(|watch| match resolver.path(watch) {
            Some(path) => WatchTarget {
                wd: watch.wd,
                path: Some(PathName::from_path(&path)),
                dev: None,
                ino: None,
            },
            None => {
                let (major, minor) = watch.device();
                WatchTarget {
                    wd: watch.wd,
                    path: None,
                    dev: Some(format!("{major}:{minor}")),
                    ino: Some(watch.ino),
                }
            }
        })
        .collect()
}

fn processes(instances: &[InstanceUsage], held: &[HeldFd]) -> Vec<ProcessUsage> {
    let mut by_pid: BTreeMap<u32, ProcessUsage> = BTreeMap::new();
    for h in held {
        by_pid.entry(h.pid).or_insert_with(|| ProcessUsage {
            pid: h.pid,
            comm: h.comm,
            uid: h.euid,
            user_ns: None,
            instances: 0,
            watches: 0,
            place: None,
            started_after_failure: false,
            gone: false,
        });
    }
    for instance in instances {
        // A process holding one instance through two fds holds it once.
        let mut pids: Vec<u32> = instance.holders.iter().map(|h| h.pid).collect();
        pids.dedup();
        for pid in pids {
            let p = by_pid.get_mut(&pid).expect("every holder was scanned");
            p.instances += 1;
            p.watches += instance.watches;
            p.user_ns = instance.user_ns;
        }
    }
    let mut processes: Vec<ProcessUsage> = by_pid.into_values().collect();
    processes.sort_by(|a, b| (b.watches, b.instances, a.pid).cmp(&(a.watches, a.instances, b.pid)));
    processes
}

fn users(
    instances: &[InstanceUsage],
    processes: &[ProcessUsage],
    source: &Source<'_>,
    uids: &[u32],
) -> Vec<UserUsage> {
    let mut scopes: BTreeMap<(Option<u64>, u32), UserUsage> = BTreeMap::new();
    let mut ns_caps: BTreeMap<u64, Option<NamespaceCaps>> = BTreeMap::new();
    for instance in instances
        .iter()
        .filter(|i| uids.is_empty() || uids.contains(&i.uid))
    {
        let mut scope_keys = vec![None];
        if let Some(ns) = instance.user_ns {
            scope_keys.push(Some(ns));
            let holder = instance.holders[0].pid;
            ns_caps
                .entry(ns)
                .or_insert_with(|| (source.namespace_caps)(holder));
        }
        for ns in scope_keys {
            let (max_watches, max_instances) = match ns {
                None => (
                    source.limits.max_user_watches,
                    source.limits.max_user_instances,
                ),
                Some(ns) => {
                    let caps = ns_caps[&ns].unwrap_or_default();
                    (caps.max_watches, caps.max_instances)
                }
            };
            let user = scopes.entry((ns, instance.uid)).or_insert(UserUsage {
                uid: instance.uid,
                user_ns: ns,
                instances: 0,
                watches: 0,
                max_instances,
                max_watches,
                watches_pct: None,
                instances_pct: None,
                top_holder: None,
            });
            user.instances += 1;
            user.watches += instance.watches;
        }
    }
    let mut users: Vec<UserUsage> = scopes.into_values().collect();
    for user in &mut users {
        let pct = |used: u64, max: Option<u64>| {
            max.filter(|m| *m > 0 && *m != NO_CAP)
                .map(|m| (1000.0 * used as f64 / m as f64).round() / 10.0)
        };
        user.watches_pct = pct(user.watches, user.max_watches);
        user.instances_pct = pct(user.instances, user.max_instances);
        user.top_holder = processes
            .iter()
            .filter(|p| p.uid == user.uid && (user.user_ns.is_none() || p.user_ns == user.user_ns))
            .max_by_key(|p| (p.watches, std::cmp::Reverse(p.pid)))
            .cloned();
    }
    users.sort_by(|a, b| {
        (a.user_ns.is_some(), b.watches, a.uid).cmp(&(b.user_ns.is_some(), a.watches, b.uid))
    });
    users
}

/// Per pod: the instances whose first holder is in it, and its top holder.
fn pods_of(instances: &[InstanceUsage], processes: &[ProcessUsage]) -> Vec<PodUsage> {
    let by_pid: BTreeMap<u32, &ProcessUsage> = processes.iter().map(|p| (p.pid, p)).collect();
    let mut pods: BTreeMap<String, PodUsage> = BTreeMap::new();
    for instance in instances {
        let Some(place) = by_pid
            .get(&instance.holders[0].pid)
            .and_then(|p| p.place.as_ref())
        else {
            continue;
        };
        let Some(uid) = &place.pod_uid else {
            continue;
        };
        let pod = pods.entry(uid.clone()).or_insert_with(|| PodUsage {
            namespace: place.namespace.clone(),
            pod: place.pod.clone(),
            pod_uid: uid.clone(),
            instances: 0,
            watches: 0,
            top_holder: None,
        });
        pod.instances += 1;
        pod.watches += instance.watches;
    }
    let mut pods: Vec<PodUsage> = pods.into_values().collect();
    for pod in &mut pods {
        pod.top_holder = processes
            .iter()
            .filter(|p| {
                p.place
                    .as_ref()
                    .is_some_and(|a| a.pod_uid.as_deref() == Some(&pod.pod_uid))
            })
            .max_by_key(|p| (p.watches, std::cmp::Reverse(p.pid)))
            .cloned();
    }
    pods.sort_by(|a, b| {
        (b.watches, b.instances, &a.pod_uid).cmp(&(a.watches, a.instances, &b.pod_uid))
    });
    pods
}

fn observed(user: &UserUsage) -> Observed {
    Observed {
        uid: user.uid,
        user_ns: user.user_ns,
        watches: user.watches,
        instances: user.instances,
        max_watches: user.max_watches,
        max_instances: user.max_instances,
        top_holder: user.top_holder.as_ref().map(|p| (p.pid, p.comm, p.watches)),
    }
}

/// The instances and processes that `--pid`, `--comm`, `--uid` and the pod
/// filters ask for.
fn select(
    instances: Vec<InstanceUsage>,
    processes: Vec<ProcessUsage>,
    held: &[HeldFd],
    selection: &Selection,
) -> (Vec<InstanceUsage>, Vec<ProcessUsage>) {
    let places: BTreeMap<u32, Option<Attribution>> =
        processes.iter().map(|p| (p.pid, p.place.clone())).collect();
    let process_matches = |pid: u32, comm: &ProcessName, uid: u32| {
        selection.matches_process(pid, comm.bytes(), uid)
            && selection.matches_place(places.get(&pid).and_then(Option::as_ref))
    };
    let nameless = ProcessName::from_bytes(b"");
    let comm_of = |pid: u32| {
        held.iter()
            .find(|h| h.pid == pid)
            .map_or(nameless, |h| h.comm)
    };
    let instances = instances
        .into_iter()
        .filter(|i| {
            i.holders
                .iter()
                .any(|h| process_matches(h.pid, &comm_of(h.pid), i.uid))
        })
        .collect();
    let processes = processes
        .into_iter()
        .filter(|p| process_matches(p.pid, &p.comm, p.uid))
        .collect();
    (instances, processes)
}

#[cfg(test)]
mod tests;
