//! Counting events into a summary, one event at a time, as the ledger
//! decided each, in memory that grows with the number of processes, not
//! with events or distinct paths: about 150 bytes a process with its ledger
//! entry (a test holds it under 256), distinct paths counted exactly up to
//! 128 a process and estimated (HyperLogLog, ~1.6%, 3 KiB) past that,
//! example paths kept for the first processes of each failure only.
use std::{
    collections::{BTreeMap, HashMap},
    hash::BuildHasher,
};

/// The tables every event goes through use foldhash, seeded per process:
/// std's SipHash was a quarter of the tracer's CPU per event (perf).
type FastState = foldhash::fast::RandomState;

/// See `Aggregator::path_hasher`.
#[derive(Clone)]
struct PathHasher(foldhash::quality::FixedState);

impl Default for PathHasher {
    fn default() -> Self {
        PathHasher(foldhash::quality::FixedState::with_seed(
            0x1b07_1f7a_ce00_5eed,
        ))
    }
}

impl PathHasher {
    fn hash_one(&self, path: &[u8]) -> u64 {
        self.0.hash_one(path)
    }
}

use inotify_trace_common::{Comm, Syscall};

use super::{
    FailureGroup, LimitsAtStartAndEnd, PodSummary, ProcessFailures, ProcessSummary, Summary,
    UserSummary,
};
use crate::{
    clock::WallClock,
    errno::Errno,
    event::{Event, Kind},
    held::{Held, HeldAtStart},
    ledger::{Effect, Seen},
    pods::{Attribution, Attributor},
    stream::Counts,
};

/// How many example paths a failure keeps per process.
const EXAMPLES: usize = 3;
/// How many processes of one failure (call and errno) keep example paths:
/// in a storm of failures from many pids, the rest keep their counts only.
const EXAMPLE_PROCESSES: usize = 64;

/// What one event did to a uid's budget, as the kernel charges it (a watch
/// to its instance's creator): what the timeline of a recording draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub time_ns: u64,
    pub pid: u32,
    /// The uid charged.
    pub uid: u32,
    pub what: Changed,
    /// The kernel's count after the call, when the record carries it.
    pub charged: Option<Charged>,
}

/// The innermost level of a record's charge: the budget the call was
/// charged to, as the kernel counted it right after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charged {
    /// The level's user namespace (its inode number).
    pub user_ns: u32,
    pub watches: u32,
    pub max_watches: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// A new watch (not a re-add).
    Added,
    /// A watch removed by inotify_rm_watch.
    Removed,
    /// A call of this syscall that failed with this errno.
    Failed(Syscall, Errno),
}

#[derive(Clone, Default)]
pub struct Aggregator {
    processes: ProcessTable,
    /// Per uid, as the kernel charges: an instance to the effective uid
    /// that created it, each watch to its instance's creator.
    users: BTreeMap<u32, UserSummary>,
    failures: HashMap<(Kind, Errno), HashMap<u32, FailureCounts, FastState>, FastState>,
    /// A path is kept as its 64-bit hash; the quality variant, because the
    /// paths are anyone's choice and a collision would merge two of them.
    /// Fixed keys: the distinct-path estimate past 128 paths depends on the
    /// hashes, and `report` must print what the live session printed.
    /// (A caller who can predict the hashes can make its own count wrong;
    /// it cannot reach anyone else's.)
    path_hasher: PathHasher,
}

#[derive(Clone)]
struct FailureCounts {
    count: u64,
    first_ns: u64,
    last_ns: u64,
    examples: Vec<Box<[u8]>>,
}

impl Aggregator {
    /// Counts one event, as the ledger decided it (`seen`); returns what it
    /// did to a uid's budget, if anything.
    pub fn observe(&mut self, event: &Event<'_>, seen: Seen) -> Option<Change> {
        let h = &event.header;
        let uid = event.charged_uid();
        let process = self.processes.entry(h.pid, h.comm, uid);
        // A process renames itself after exec; the latest name is the one a
        // user will recognize.
        process.comm = h.comm;
        process.uid = uid;
        if let Some(cgroup_id) = event.cgroup_id() {
            process.cgroup_id = cgroup_id;
        }
        let failed = event.errno();
        let change = |uid: u32, what: Changed| {
            Some(Change {
                time_ns: h.time_ns,
                pid: h.pid,
                uid,
                what,
                charged: event.charge().next().map(|level| Charged {
                    user_ns: level.user_ns,
                    watches: level.watches,
                    max_watches: level.max_watches,
                }),
            })
        };
        let charged = seen.charged;
        let change = match (event.kind, failed) {
            (Kind::AddWatch, None) => {
                process.calls += 1;
                process.path(self.path_hasher.hash_one(event.path));
                match seen.effect {
                    Effect::NewWatch => {
                        process.new_watches += 1;
                        process.growth.saw(h.time_ns);
                        let user = user(&mut self.users, charged);
                        user.added();
                        user.watches_charged_to_caller += u64::from(seen.charged_to_caller);
                        change(charged, Changed::Added)
                    }
                    _ => {
                        process.re_adds += 1;
                        None
                    }
                }
            }
            (Kind::AddWatch, Some(errno)) => {
                process.calls += 1;
                process.failure(errno);
                process.path(self.path_hasher.hash_one(event.path));
                user(&mut self.users, charged).add_watch_failures += 1;
                change(charged, Changed::Failed(Syscall::AddWatch, errno))
            }
            (Kind::Init, None) => {
                process.instances += 1;
                user(&mut self.users, uid).instances_created += 1;
                None
            }
            (Kind::Init, Some(errno)) => {
                process.instance_failure();
                user(&mut self.users, uid).instance_failures += 1;
                change(
                    uid,
                    Changed::Failed(Syscall::of_record(Kind::Init, h.flags), errno),
                )
            }
            (Kind::RmWatch, None) => {
                process.removal();
                user(&mut self.users, charged).removed();
                change(charged, Changed::Removed)
            }
            (Kind::RmWatch, Some(errno)) => change(uid, Changed::Failed(Syscall::RmWatch, errno)),
        };
        if let Some(errno) = failed {
            let group = self.failures.entry((event.kind, errno)).or_default();
            let keeps_examples = group.len() < EXAMPLE_PROCESSES;
            let failure = group.entry(h.pid).or_insert(FailureCounts {
                count: 0,
                first_ns: h.time_ns,
                last_ns: h.time_ns,
                examples: Vec::new(),
            });
            failure.count += 1;
            failure.first_ns = failure.first_ns.min(h.time_ns);
            failure.last_ns = failure.last_ns.max(h.time_ns);
            if event.kind == Kind::AddWatch
                && (keeps_examples || !failure.examples.is_empty())
                && failure.examples.len() < EXAMPLES
                && !failure.examples.iter().any(|p| **p == *event.path)
            {
                failure.examples.push(event.path.into());
            }
        }
        change
    }

    /// The summary: the per-process counts are its rows, moved out of the
    /// table, and the instance table is freed first: with 200k processes,
    /// what keeps a report well under 64 MiB. `top` cuts the process table
    /// (0: no cut).
    #[allow(clippy::too_many_arguments)]
    pub fn into_summary(
        mut self,
        counts: &Counts,
        duration_s: f64,
        limits: LimitsAtStartAndEnd,
        clock: &WallClock,
        top: usize,
        places: &Attributor,
        start: &[HeldAtStart],
    ) -> Summary {
        let failures = self.failure_groups(clock);
        // The holders the session started with: a row each, beside the
        // callers (a hog that made no call is a row of its own).
        for h in start {
            let comm = inotify_trace_common::comm_key(h.comm.bytes());
            self.processes.entry(h.pid, comm, h.uid).set_at_start(Held {
                instances: h.instances,
                watches: h.watches,
            });
        }
        // The counts become the rows: moved, never copied.
        let mut processes: Vec<ProcessSummary> = self.processes.table.into_iter().collect();
        processes.sort_by(|a, b| {
            (b.most_held(), b.new_watches, b.calls, b.instances, a.pid).cmp(&(
                a.most_held(),
                a.new_watches,
                a.calls,
                a.instances,
                b.pid,
            ))
        });
        let users = std::mem::take(&mut self.users).into_values().collect();
        let pods = pods(&processes, places);
        let processes_omitted = match top {
            0 => 0,
            top => processes.len().saturating_sub(top),
        };
        processes.truncate(processes.len() - processes_omitted);
        for p in &mut processes {
            if let Some(place) = places
                .of_process(p.pid, p.cgroup_id)
                .filter(|a| **a != Attribution::default())
            {
                p.set_place(place.clone());
            }
        }
        Summary {
            kind: "summary",
            duration_s,
            events: counts.events,
            lost: counts.lost,
            processes,
            processes_omitted,
            failures,
            users,
            pods,
            limits,
            diagnoses: Vec::new(),
            utc_offset_s: clock.utc_offset_s,
            held_known: false,
            start_known: false,
        }
    }

    /// Every (call, errno) that failed, ENOSPC first, then EMFILE.
    fn failure_groups(&self, clock: &WallClock) -> Vec<FailureGroup> {
        let mut failures: Vec<FailureGroup> = self
            .failures
            .iter()
            .map(|(&(kind, errno), by_pid)| {
                let mut list: Vec<ProcessFailures> = by_pid
                    .iter()
                    .map(|(&pid, f)| {
                        let process = self.processes.get(pid).expect("a failing pid was counted");
                        let (examples, examples_base64) =
                            ProcessFailures::examples_from(&f.examples);
                        let comm = crate::event::comm_bytes(&process.comm);
                        ProcessFailures {
                            pid,
                            comm: process.comm,
                            comm_base64: crate::exact_text::base64_if_lossy(comm),
                            uid: process.uid,
                            count: f.count,
                            first: clock.wall(f.first_ns),
                            last: clock.wall(f.last_ns),
                            examples,
                            examples_base64,
                            example_bytes: f.examples.clone(),
                        }
                    })
                    .collect();
                list.sort_by(|a, b| (b.count, a.pid).cmp(&(a.count, b.pid)));
                FailureGroup {
                    call: kind,
                    errno,
                    count: list.iter().map(|p| p.count).sum(),
                    processes: list,
                }
            })
            .collect();
        failures.sort_by(|a, b| {
            (a.errno.rank(), b.count, a.call, a.errno).cmp(&(
                b.errno.rank(),
                a.count,
                b.call,
                b.errno,
            ))
        });
        failures
    }
}

/// Processes by pid, each pid held once, inside its entry (a map keyed by
/// pid would hold it twice: 8 bytes a process with padding).
#[derive(Clone, Default)]
struct ProcessTable {
    table: hashbrown::HashTable<ProcessSummary>,
    state: FastState,
}

impl Aggregator {
    /// Whether `pid` made a call this session.
    pub fn saw(&self, pid: u32) -> bool {
        self.processes.get(pid).is_some()
    }
}

impl ProcessTable {
    /// The process's entry, made on its first call.
    fn entry(&mut self, pid: u32, comm: Comm, uid: u32) -> &mut ProcessSummary {
        let state = &self.state;
        self.table
            .entry(
                state.hash_one(pid),
                |p| p.pid == pid,
                |p| state.hash_one(p.pid),
            )
            .or_insert_with(|| ProcessSummary::new(pid, comm, uid))
            .into_mut()
    }

    fn get(&self, pid: u32) -> Option<&ProcessSummary> {
        self.table.find(self.state.hash_one(pid), |p| p.pid == pid)
    }
}

/// Per uid, from every process (before `--top` cuts the table).
/// Per pod: its processes' calls, new watches and failures, by new watches.
fn pods(processes: &[ProcessSummary], places: &Attributor) -> Vec<PodSummary> {
    let mut pods: BTreeMap<String, PodSummary> = BTreeMap::new();
    for p in processes {
        let Some(place) = places.of_process(p.pid, p.cgroup_id) else {
            continue;
        };
        let Some(id) = place.pod_id() else {
            continue;
        };
        let pod = pods.entry(id.uid.clone()).or_insert_with(|| PodSummary {
            pod: id,
            processes: 0,
            calls: 0,
            new_watches: 0,
            failures: 0,
        });
        pod.processes += 1;
        pod.calls += p.calls;
        pod.new_watches += p.new_watches;
        pod.failures += p.failed() + p.instance_failures();
    }
    let mut pods: Vec<PodSummary> = pods.into_values().collect();
    pods.sort_by(|a, b| {
        (b.new_watches, b.calls, &a.pod.uid).cmp(&(a.new_watches, a.calls, &b.pod.uid))
    });
    pods
}

/// A uid's row of the Users table, made on its first charge.
fn user(users: &mut BTreeMap<u32, UserSummary>, uid: u32) -> &mut UserSummary {
    users.entry(uid).or_insert(UserSummary {
        uid,
        watches_added: 0,
        watches_charged_to_caller: 0,
        watches_removed: 0,
        instances_created: 0,
        instance_failures: 0,
        add_watch_failures: 0,
        peak_watches: 0,
        held_seen: 0,
    })
}

#[cfg(test)]
mod tests {
    use inotify_trace_common::{EventHeader, FLAG_INIT1};

    use super::*;
    use crate::{
        event::fixtures::{add_watch, record},
        ledger::Ledger,
        limits::Limits,
    };

    struct Feed {
        ledger: Ledger,
        aggregator: Aggregator,
        time_ns: u64,
        places: Attributor,
    }

    /// The Users table counts as the kernel charges: each watch for the
    /// effective uid that created its instance (a process that changed its
    /// euid after inotify_init still charges the creator), and for the
    /// caller's euid, said apart, when the instance's creation was not traced.
    #[test]
    fn users_are_counted_as_the_kernel_charges() {
        let mut feed = Feed::new();
        let as_euid = |euid: u32, kind: Kind, fd: i32, ret: i64| {
            let mut h = add_watch("setuid-prog", ret);
            (h.pid, h.tid, h.kind, h.fd, h.uid, h.euid) = (10, 10, kind as u32, fd, 4321, euid);
            h
        };
        feed.send(as_euid(1000, Kind::Init, -1, 3), b"");
        feed.send(as_euid(0, Kind::AddWatch, 3, 1), b"/a");
        feed.send(as_euid(0, Kind::AddWatch, 3, 2), b"/b");
        // An instance made before the session: the caller's euid.
        feed.send(as_euid(0, Kind::AddWatch, 7, 1), b"/c");
        let summary = feed.aggregator.into_summary(
            &Counts::default(),
            1.0,
            LimitsAtStartAndEnd {
                start: Limits::default(),
                end: Limits::default(),
            },
            &WallClock {
                boot_epoch_ns: 0,
                utc_offset_s: 0,
            },
            0,
            &Attributor::recorded(),
            &[],
        );
        let users: Vec<(u32, u64, u64, u64)> = summary
            .users
            .iter()
            .map(|u| {
                (
                    u.uid,
                    u.watches_added,
                    u.watches_charged_to_caller,
                    u.instances_created,
                )
            })
            .collect();
        assert_eq!(users, [(0, 1, 1, 0), (1000, 2, 0, 1)]);
        // The process row shows the euid, as ps does.
        assert_eq!(summary.processes[0].uid, 0);
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                ledger: Ledger::default(),
                aggregator: Aggregator::default(),
                time_ns: 1_000_000_000,
                places: Attributor::recorded(),
            }
        }

        fn send(&mut self, mut header: EventHeader, path: &[u8]) {
            self.time_ns += 1_000_000;
            header.time_ns = self.time_ns;
            let bytes = record(&header, path);
            let event = Event::decode(&bytes).unwrap();
            let seen = self.ledger.observe(&event);
            self.aggregator.observe(&event, seen);
        }

        fn add(&mut self, pid: u32, comm: &str, fd: i32, ret: i64, path: &str) {
            let mut h = add_watch(comm, ret);
            (h.pid, h.tid, h.fd) = (pid, pid, fd);
            self.send(h, path.as_bytes());
        }

        /// An add_watch with a comm and a path that need not be UTF-8.
        fn add_bytes(&mut self, pid: u32, comm: &[u8], fd: i32, ret: i64, path: &[u8]) {
            let mut h = add_watch("", ret);
            (h.pid, h.tid, h.fd, h.comm) = (pid, pid, fd, inotify_trace_common::comm_key(comm));
            self.send(h, path);
        }

        fn init(&mut self, pid: u32, comm: &str, ret: i64) {
            let mut h = add_watch(comm, ret);
            (h.pid, h.tid, h.kind, h.flags, h.fd) = (pid, pid, Kind::Init as u32, FLAG_INIT1, -1);
            self.send(h, b"");
        }

        fn rm(&mut self, pid: u32, comm: &str, fd: i32, wd: u32, ret: i64) {
            let mut h = add_watch(comm, ret);
            (h.pid, h.tid, h.kind, h.fd, h.arg) = (pid, pid, Kind::RmWatch as u32, fd, wd);
            self.send(h, b"");
        }

        fn summary(&self, top: usize) -> Summary {
            let limits = LimitsAtStartAndEnd {
                start: Limits::default(),
                end: Limits::default(),
            };
            let counts = Counts {
                events: 99,
                lost: 1,
                ..Counts::default()
            };
            self.aggregator.clone().into_summary(
                &counts,
                2.5,
                limits,
                &WallClock {
                    boot_epoch_ns: 1_780_000_000_000_000_000,
                    utc_offset_s: 0,
                },
                top,
                &self.places,
                &[],
            )
        }
    }

    /// The Pods table adds up each pod's processes (from their cgroups, as
    /// the session resolved them); the listed rows carry their pod.
    #[test]
    fn pods_add_up_their_processes() {
        let mut feed = Feed::new();
        feed.places.learn(crate::pods::CgroupAttribution {
            cgroup_id: 7777,
            pid: None,
            attribution: Attribution {
                namespace: Some("shop".into()),
                pod: Some("cart-7".into()),
                pod_uid: Some("0a1b".into()),
                container: Some("app".into()),
                ..Attribution::default()
            },
        });
        feed.init(10, "a", 3);
        feed.add(10, "a", 3, 1, "/x");
        feed.add(11, "b", 3, 1, "/y");
        feed.add(11, "b", 3, -28, "/z");
        let summary = feed.summary(0);
        assert_eq!(
            summary.pods,
            [PodSummary {
                pod: crate::pods::PodId {
                    namespace: Some("shop".into()),
                    name: Some("cart-7".into()),
                    uid: "0a1b".into(),
                },
                processes: 2,
                calls: 3,
                new_watches: 2,
                failures: 1,
            }]
        );
        assert_eq!(
            summary.processes[0].place().unwrap().container.as_deref(),
            Some("app")
        );
        let row = serde_json::to_value(&summary.processes[0]).unwrap();
        assert_eq!(
            (&row["cgroup_id"], &row["pod"]),
            (&7777.into(), &"cart-7".into())
        );
    }

    #[test]
    fn new_watches_and_re_adds_follow_the_instances_descriptors() {
        let mut feed = Feed::new();
        feed.init(10, "kubelet", 3);
        feed.add(10, "kubelet", 3, 1, "/a");
        feed.add(10, "kubelet", 3, 2, "/b");
        feed.add(10, "kubelet", 3, 1, "/a"); // same inode again
        feed.add(10, "kubelet", 3, 3, "/c");
        feed.add(10, "kubelet", 3, 2, "/b/../b"); // another path, same inode
        feed.rm(10, "kubelet", 3, 3, 0);
        feed.add(10, "kubelet", 3, 4, "/c"); // re-added after removal: a new wd
                                             // A second instance of the same process starts again at 1.
        feed.init(10, "kubelet", 4);
        feed.add(10, "kubelet", 4, 1, "/a");
        let p = &feed.summary(0).processes[0];
        assert_eq!(
            (p.calls, p.new_watches, p.re_adds, p.removed()),
            (7, 5, 2, 1)
        );
        assert_eq!((p.instances, p.distinct_paths()), (2, 4));
    }

    #[test]
    fn a_reused_fd_number_is_a_new_instance() {
        let mut feed = Feed::new();
        feed.init(10, "x", 3);
        feed.add(10, "x", 3, 1, "/a");
        feed.add(10, "x", 3, 2, "/b");
        // fd 3 closed and handed out again by the next init.
        feed.init(10, "x", 3);
        feed.add(10, "x", 3, 1, "/a");
        let p = &feed.summary(0).processes[0];
        assert_eq!((p.new_watches, p.re_adds), (3, 0));
    }

    #[test]
    fn failures_are_counted_by_errno_with_enospc_and_emfile_first() {
        let mut feed = Feed::new();
        for _ in 0..5 {
            feed.add(20, "other", 3, -2, "/missing");
        }
        feed.add(30, "kubelet", 3, -28, "/sys/fs/cgroup/a");
        feed.add(30, "kubelet", 3, -28, "/sys/fs/cgroup/b");
        feed.add(30, "kubelet", 3, -28, "/sys/fs/cgroup/a");
        feed.add(31, "kubelet", 3, -28, "/sys/fs/cgroup/c");
        feed.init(40, "containerd", -24);
        let summary = feed.summary(0);
        let groups: Vec<(&str, &str, u64)> = summary
            .failures
            .iter()
            .map(|g| (g.call.name(), g.errno.name(), g.count))
            .collect();
        assert_eq!(
            groups,
            [
                ("add_watch", "ENOSPC", 4),
                ("init", "EMFILE", 1),
                ("add_watch", "ENOENT", 5)
            ]
        );
        let enospc = &summary.failures[0].processes;
        assert_eq!((enospc[0].pid, enospc[0].count), (30, 3));
        assert_eq!(enospc[0].examples, ["/sys/fs/cgroup/a", "/sys/fs/cgroup/b"]);
        assert!(enospc[0].first < enospc[0].last);
        assert_eq!((enospc[1].pid, enospc[1].count), (31, 1));
        let kubelet = summary.processes.iter().find(|p| p.pid == 30).unwrap();
        assert_eq!(
            (kubelet.calls, kubelet.failed(), kubelet.errors()[0].1),
            (3, 3, 3)
        );
        let containerd = summary.processes.iter().find(|p| p.pid == 40).unwrap();
        assert_eq!(
            (containerd.instances, containerd.instance_failures()),
            (0, 1)
        );
    }

    #[test]
    fn processes_are_sorted_by_new_watches_and_cut_to_top() {
        let mut feed = Feed::new();
        feed.add(1, "few", 3, 1, "/a");
        for wd in 1..=3 {
            feed.add(2, "many", 3, wd, &format!("/{wd}"));
        }
        feed.add(3, "failing", 3, -28, "/x");
        feed.add(3, "failing", 3, -28, "/y");
        let all = feed.summary(0);
        let order: Vec<u32> = all.processes.iter().map(|p| p.pid).collect();
        assert_eq!(order, [2, 1, 3]);
        let top = feed.summary(1);
        assert_eq!((top.processes.len(), top.processes_omitted), (1, 2));
        // Per-uid totals still count every process.
        assert_eq!(top.users[0].watches_added, 4);
        assert_eq!(top.users[0].add_watch_failures, 2);
    }

    /// The tables' bytes per process when every process made two calls
    /// (an init and an add_watch): what the hash tables hold, at their
    /// allocated capacity, the ledger's instances included.
    #[test]
    fn a_process_costs_under_256_bytes_in_the_tables() {
        let mut feed = Feed::new();
        let n = 50_000;
        for pid in 1..=n {
            feed.init(pid, "short-lived", 3);
            feed.add(pid, "short-lived", 3, 1, &format!("/srv/{pid}"));
        }
        let a = &feed.aggregator;
        let slot = |entry: usize| entry + 1; // hashbrown: one control byte a slot
        let bytes =
            a.processes.table.capacity() * slot(size_of::<ProcessSummary>()) + feed.ledger.bytes();
        let per_process = bytes / n as usize;
        assert!(per_process <= 256, "{per_process} bytes a process");
    }

    #[test]
    fn distinct_paths_are_exact_up_to_128_then_estimated_in_fixed_memory() {
        let mut feed = Feed::new();
        for i in 0..super::super::process::EXACT_PATHS {
            feed.add(1, "few", 3, 1, &format!("/few/{i}"));
        }
        for i in 0..20_000 {
            feed.add(2, "many", 3, -2, &format!("/many/{i}"));
        }
        let summary = feed.summary(0);
        let few = summary.processes.iter().find(|p| p.pid == 1).unwrap();
        assert_eq!(
            (few.distinct_paths(), few.distinct_paths_estimated()),
            (128, false)
        );
        let many = summary.processes.iter().find(|p| p.pid == 2).unwrap();
        assert!(many.distinct_paths_estimated());
        let error = (many.distinct_paths() as f64 - 20_000.0).abs() / 20_000.0;
        assert!(
            error < 0.05,
            "estimated {} for 20000",
            many.distinct_paths()
        );
        assert!(
            feed.aggregator.processes.get(2).unwrap().paths.size_of() <= 4096,
            "a sketch of fixed size"
        );
    }

    /// A failing path or comm that is not UTF-8 keeps its exact bytes: JSON
    /// carries base64 beside the lossy text, the text view escapes them.
    #[test]
    fn non_utf8_failing_paths_and_comms_keep_their_bytes() {
        let mut feed = Feed::new();
        feed.add(7, "ok", 3, -28, "/plain");
        feed.add_bytes(8, b"w\xffx", 3, -28, b"/odd-\xff\x1b[31mred");
        let summary = feed.summary(0);
        let json = serde_json::to_value(&summary.failures[0].processes).unwrap();
        let (plain, odd) = (&json[0], &json[1]);
        assert_eq!(plain["examples"], serde_json::json!(["/plain"]));
        assert!(plain.get("examples_base64").is_none() && plain.get("comm_base64").is_none());
        assert_eq!(
            odd["examples_base64"],
            serde_json::json!(["L29kZC3/G1szMW1yZWQ="])
        );
        assert_eq!(odd["comm_base64"], "d/94");
        let mut text = Vec::new();
        super::super::human::write_summary(&mut text, &summary).unwrap();
        let text = String::from_utf8(text).unwrap();
        // The one escaping every text view uses, as live lines print it.
        assert!(text.contains("/odd-\\xff\\u{1b}[31mred"), "{text}");
        assert!(
            !text.contains('\u{fffd}') && !text.contains('\x1b'),
            "{text}"
        );
    }

    /// The estimate past 128 paths is the same in every run (and so in a
    /// report of the recording): the path hashes have fixed keys.
    #[test]
    fn the_distinct_path_estimate_is_the_same_in_every_run() {
        let estimate = || {
            let mut feed = Feed::new();
            for i in 0..851 {
                feed.add(1, "watcher", 3, i + 1, &format!("/tree/d{i}"));
            }
            let summary = feed.summary(0);
            let p = &summary.processes[0];
            assert!(p.distinct_paths_estimated());
            p.distinct_paths()
        };
        let first = estimate();
        for _ in 0..3 {
            assert_eq!(estimate(), first);
        }
        // And across processes of the tool: a fixed figure for these paths.
        assert_eq!(first, 845, "the path hash changed");
    }

    #[test]
    fn a_storm_of_failing_pids_keeps_examples_for_the_first_few_only() {
        let mut feed = Feed::new();
        for pid in 1..=1000 {
            feed.add(pid, "stormy", 3, -28, &format!("/storm/{pid}"));
        }
        let summary = feed.summary(0);
        let group = &summary.failures[0];
        assert_eq!((group.count, group.processes.len()), (1000, 1000));
        let with_examples = group
            .processes
            .iter()
            .filter(|p| !p.examples.is_empty())
            .count();
        assert_eq!(with_examples, EXAMPLE_PROCESSES);
    }

    #[test]
    fn json_rendering_has_the_documented_keys() {
        let mut feed = Feed::new();
        feed.init(10, "kubelet", 3);
        feed.add(10, "kubelet", 3, 1, "/a");
        feed.add(10, "kubelet", 3, -28, "/b");
        let json = serde_json::to_value(feed.summary(0)).unwrap();
        insta::assert_json_snapshot!(json, @r#"
        {
          "diagnoses": [],
          "duration_s": 2.5,
          "events": 99,
          "failures": [
            {
              "call": "add_watch",
              "count": 1,
              "errno": "ENOSPC",
              "processes": [
                {
                  "comm": "kubelet",
                  "count": 1,
                  "examples": [
                    "/b"
                  ],
                  "first": "2026-05-28T20:26:41.003000000Z",
                  "last": "2026-05-28T20:26:41.003000000Z",
                  "pid": 10,
                  "uid": 1000
                }
              ]
            }
          ],
          "limits": {
            "end": {
              "max_user_instances": null,
              "max_user_watches": null
            },
            "start": {
              "max_user_instances": null,
              "max_user_watches": null
            }
          },
          "lost": 1,
          "pods": [],
          "processes": [
            {
              "calls": 2,
              "cgroup_id": 7777,
              "comm": "kubelet",
              "distinct_paths": 2,
              "errors": {
                "ENOSPC": 1
              },
              "failed": 1,
              "instance_failures": 0,
              "instances": 1,
              "instances_created": 1,
              "new_watches": 1,
              "pid": 10,
              "re_adds": 0,
              "removed": 0,
              "uid": 1000
            }
          ],
          "processes_omitted": 0,
          "type": "summary",
          "users": [
            {
              "add_watch_failures": 1,
              "instance_failures": 0,
              "instances_created": 1,
              "peak_watches": 1,
              "uid": 1000,
              "watches_added": 1,
              "watches_charged_to_caller": 0,
              "watches_removed": 0
            }
          ]
        }
        "#);
    }
}
