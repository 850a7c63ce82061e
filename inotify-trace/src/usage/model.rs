//! What a usage snapshot says, as `usage --json` prints it (docs/json.md),
//! and what a session's processes hold at its end: the serde model only.
use serde::{Deserialize, Serialize};

use crate::{
    advice::Recommendation,
    held::{Held, HolderFacts},
    kernel_btf::WatchCost,
};
use crate::{
    exact_text::{PathName, ProcessName},
    limits::Limits,
    pods::{Attribution, PodId},
};

/// The snapshot, as `usage --json` prints it (docs/json.md).
#[derive(Clone, Debug, Serialize)]
pub struct Usage {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub limits: Limits,
    /// What one watch pins in kernel memory, by the kernel's own estimate
    /// from its BTF (`watches x bytes` is a uid's or a pod's).
    pub watch_cost: Option<WatchCost>,
    /// Why the cost is unknown (no BTF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_cost_unknown: Option<String>,
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
    /// Their names, in the same order (as /proc/PID/comm says; empty when
    /// that too was refused).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_comms: Vec<String>,
    /// Why they could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_why: Option<String>,
}

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
    /// Its cgroup v2 id (the inode of its cgroup's directory), as events
    /// carry it; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    /// Where the process runs (pod, container, unit), from its cgroup.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Attribution>,
    /// In a diagnosis: the failing process, gone by the snapshot (exited,
    /// or its instances closed); its counts are what the session saw it
    /// take.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gone: bool,
    /// In a diagnosis: how long after the failing call the scan read its
    /// fds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_after_ms: Option<f64>,
    /// In a diagnosis: what the scan read, when it differs from the counts
    /// above, which are at the failure: the calls traced between the
    /// failure and the read are undone (watches it added taken away, those
    /// it removed given back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_read: Option<Held>,
    /// In a diagnosis: its share, in percent, of what the uid held at the
    /// failure in the limit that ran out (watches or instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_pct: Option<f64>,
    /// In a diagnosis, for the first holders: where its watches are (as the
    /// summary's `held_where`), its command line and the known program it
    /// is; in `usage`, the known program.
    #[serde(flatten)]
    pub facts: HolderFacts,
}

impl ProcessUsage {
    /// A holder as /proc shows it, with nothing a diagnosis adds.
    pub fn new(pid: u32, comm: ProcessName, uid: u32) -> ProcessUsage {
        ProcessUsage {
            pid,
            comm,
            uid,
            user_ns: None,
            instances: 0,
            watches: 0,
            started_after_failure: false,
            cgroup_id: None,
            place: None,
            gone: false,
            read_after_ms: None,
            as_read: None,
            share_pct: None,
            facts: HolderFacts::default(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One pod's inotify instances and watches: each instance counts for the
/// pod of its first (lowest-pid) holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodUsage {
    #[serde(flatten)]
    pub pod: PodId,
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
