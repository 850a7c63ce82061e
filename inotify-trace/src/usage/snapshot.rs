//! A usage snapshot: every inotify fd in /proc grouped into instances,
//! counted per process, per uid and scope (host or user namespace) and per
//! pod, against the limits, with advice.
use std::{collections::BTreeMap, path::PathBuf};

use super::{
    fdinfo,
    identity::{self, FdRef, FileOrder},
    model::{Holder, InstanceUsage, PodUsage, ProcessUsage, Usage, UserUsage, WatchTarget},
    paths,
    scan::{self, HeldFd},
    userns::{self, NamespaceCaps},
};
use crate::{
    advice::{self, Observed},
    exact_text::{PathName, ProcessName},
    kernel_btf::WatchCost,
    limits::{Limits, NO_CAP},
    pods::{self, names::Names, Attribution},
    selection::Selection,
};

/// Unreadable processes named at most.
const UNREADABLE_NAMED: usize = 10;

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
    /// How much of each watch is read: counts, or every field (where the
    /// watches are, `--paths`).
    pub detail: scan::Detail,
    /// What a watch pins, by the kernel's own estimate (or why unknown).
    pub watch_cost: Result<WatchCost, String>,
    /// Set with `--paths`.
    pub resolver: Option<&'a paths::Resolver>,
    /// Where the node's files are (`--host-root`), to name pods.
    pub host_root: PathBuf,
}

impl Source<'_> {
    /// What a watch pins, by this kernel's estimate or a typical one's.
    pub fn watch_cost_bytes(&self) -> u64 {
        self.watch_cost
            .as_ref()
            .map_or(advice::TYPICAL_WATCH_COST_BYTES, |c| c.bytes)
    }

    /// Whether this is a Kubernetes node: kubelet's directories are under
    /// the host root (its state, or the pod logs an agent's DaemonSet
    /// mounts).
    pub fn kubernetes_node(&self) -> bool {
        ["var/lib/kubelet", "var/log/pods"]
            .iter()
            .any(|dir| self.host_root.join(dir).is_dir())
    }
}

impl Source<'static> {
    /// The machine, as seen from this process.
    pub fn live(resolver: Option<&'static paths::Resolver>) -> Source<'static> {
        Source {
            root: PathBuf::from("/proc"),
            order: &identity::Kcmp,
            namespace_caps: &userns::caps_of,
            own_user_ns: super::own_user_ns(),
            limits: Limits::read(),
            watch_cost: WatchCost::of_running_kernel(),
            // Every field whenever paths are resolved; the rest ask for
            // counts where that is all they use.
            detail: scan::Detail::Watches,
            resolver,
            host_root: PathBuf::from("/"),
        }
    }
}

/// Why the kernel refused to list a process's fds: this process lacks the
/// capabilities, or (with them) the process is one ptrace access cannot
/// reach.
fn unreadable_why() -> String {
    use caps::Capability;
    let missing = crate::preflight::missing_of(&[
        Capability::CAP_SYS_PTRACE,
        Capability::CAP_DAC_READ_SEARCH,
    ]);
    match missing.is_empty() {
        false => format!(
            "{} missing: other users' processes are closed to this one",
            missing.join(" and ")
        ),
        true => "the kernel refused ptrace access to them: a process with privileges this one lacks (in an enclosing user namespace, or under a security module)".to_owned(),
    }
}

/// Takes a snapshot of the processes `selection` chooses (its uids: the
/// instances charged to them), listing `top` of each (0: all).
pub fn snapshot(source: &Source<'_>, selection: &Selection, top: usize) -> Usage {
    snapshot_and_fds(source, selection, top).0
}

/// The same, with the inotify fds it read: a diagnosis explains its
/// holders from them rather than walk /proc again (a storm of failures
/// must not stall the reader).
pub(crate) fn snapshot_and_fds(
    source: &Source<'_>,
    selection: &Selection,
    top: usize,
) -> (Usage, Vec<HeldFd>) {
    snapshot_of(
        scan::inotify_fds(&source.root, source.detail),
        source,
        selection,
        top,
    )
}

/// The snapshot of what a scan found: from /proc (above), or from the
/// agent's kept counts (`usage::kept`).
pub(crate) fn snapshot_of(
    scan: scan::Scan,
    source: &Source<'_>,
    selection: &Selection,
    top: usize,
) -> (Usage, Vec<HeldFd>) {
    let held = scan.held;
    let instances = instances(&held, source);
    let mut processes = processes(&instances, &held);
    let mut names = Names::new(&source.host_root);
    let cgroup2 = pods::cgroupfs::CgroupFs::find(std::path::Path::new("/"));
    for p in &mut processes {
        p.place = pods::of_process(&source.root, p.pid, &mut names);
        // The id events carry: the inode of the cgroup's directory.
        let path = p.place.as_ref().and_then(|place| place.cgroup.as_ref());
        p.cgroup_id = cgroup2.as_ref().zip(path).and_then(|(fs, path)| {
            use std::os::unix::fs::MetadataExt as _;
            let dir = fs.mount_point().join(path.trim_start_matches('/'));
            std::fs::metadata(dir).ok().map(|m| m.ino())
        });
    }
    let users = users(&instances, &processes, source, &selection.uids);
    let pods = pods_of(&instances, &processes);
    let kubernetes = source.kubernetes_node();
    let recommendations = advice::advise(
        &users
            .iter()
            .map(|u| observed(u, kubernetes, source.watch_cost_bytes()))
            .collect::<Vec<_>>(),
    );
    let (mut instances, mut processes) = select(instances, processes, &held, selection);
    if top > 0 {
        instances.truncate(top);
        processes.truncate(top);
    }
    let usage = Usage {
        kind: "usage",
        limits: source.limits,
        watch_cost: source.watch_cost.as_ref().ok().copied(),
        watch_cost_unknown: source.watch_cost.as_ref().err().cloned(),
        instances,
        processes,
        users,
        pods,
        recommendations,
        partial: !scan.unreadable.is_empty(),
        unreadable_processes: scan.unreadable.len() as u64,
        unreadable_comms: scan
            .unreadable
            .iter()
            .take(UNREADABLE_NAMED)
            .map(|pid| scan::comm_text(&source.root, *pid))
            .collect(),
        unreadable_why: (!scan.unreadable.is_empty()).then(unreadable_why),
        unreadable_pids: scan.unreadable.into_iter().take(UNREADABLE_NAMED).collect(),
    };
    (usage, held)
}

pub(super) fn instances(held: &[HeldFd], source: &Source<'_>) -> Vec<InstanceUsage> {
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
            let watches = group.iter().map(|r| by_ref[r].count).max().unwrap_or(0);
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
                watches,
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

pub(super) fn processes(instances: &[InstanceUsage], held: &[HeldFd]) -> Vec<ProcessUsage> {
    let mut by_pid: BTreeMap<u32, ProcessUsage> = BTreeMap::new();
    for h in held {
        by_pid
            .entry(h.pid)
            .or_insert_with(|| ProcessUsage::new(h.pid, h.comm, h.euid));
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
        let Some(id) = place.pod_id() else {
            continue;
        };
        let pod = pods.entry(id.uid.clone()).or_insert_with(|| PodUsage {
            pod: id,
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
                    .is_some_and(|a| a.pod_uid.as_deref() == Some(&pod.pod.uid))
            })
            .max_by_key(|p| (p.watches, std::cmp::Reverse(p.pid)))
            .cloned();
    }
    pods.sort_by(|a, b| {
        (b.watches, b.instances, &a.pod.uid).cmp(&(a.watches, a.instances, &b.pod.uid))
    });
    pods
}

fn observed(user: &UserUsage, kubernetes_node: bool, watch_cost_bytes: u64) -> Observed {
    let top = user.top_holder.as_ref();
    Observed {
        kubernetes_node,
        uid: user.uid,
        user_ns: user.user_ns,
        watches: user.watches,
        instances: user.instances,
        max_watches: user.max_watches,
        max_instances: user.max_instances,
        top_holder: top.map(|p| (p.pid, p.comm, p.watches)),
        ns_member: top.map(|p| p.pid),
        watch_cost_bytes,
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
