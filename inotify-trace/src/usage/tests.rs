//! Snapshots of fixture directories shaped like /proc: the fdinfo
//! interpretation, shared instances counted once, and the per-uid arithmetic.
//! The fixture serves the diagnosis's tests too.
use std::{collections::HashMap, os::unix::fs::symlink, path::Path};

use super::{identity::fake::Table, identity::FdRef, snapshot, userns::NamespaceCaps, Source};
use crate::{
    limits::Limits,
    selection::{CommName, Selection},
};

/// One fake process: its fds, each with its watches' inode numbers.
pub(crate) struct FakeProcess {
    pub pid: u32,
    pub comm: &'static str,
    pub euid: u32,
    pub user_ns: u64,
    /// (fd, file id, watched inodes); one file id across processes is one
    /// shared instance.
    pub fds: Vec<(i32, u32, Vec<u64>)>,
}

fn status(p: &FakeProcess) -> String {
    // The fields procfs requires, as the kernel writes them.
    format!(
        "Name:\t{}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t1\nTracerPid:\t0\n\
         Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t\nNStgid:\t{pid}\nNSpid:\t{pid}\nNSpgid:\t{pid}\nNSsid:\t{pid}\n\
         Threads:\t1\nSigQ:\t0/63419\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n\
         SigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
         CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n\
         Speculation_Store_Bypass:\tvulnerable\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\nMems_allowed_list:\t0\n\
         voluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t0\n",
        p.comm,
        pid = p.pid,
        uid = p.euid
    )
}

/// Writes the processes as /proc would show them; returns the kcmp table.
pub(crate) fn fixture(root: &Path, processes: &[FakeProcess]) -> Table {
    let mut files = HashMap::new();
    for p in processes {
        let dir = root.join(p.pid.to_string());
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::create_dir_all(dir.join("fdinfo")).unwrap();
        std::fs::create_dir_all(dir.join("ns")).unwrap();
        std::fs::write(dir.join("status"), status(p)).unwrap();
        std::fs::write(dir.join("comm"), format!("{}\n", p.comm)).unwrap();
        // The pod's processes (4xx) in a pod's container, the rest in a unit.
        let cgroup = match p.pid / 100 {
            4 => format!("0::/kubepods/burstable/pod{POD_UID}/{CONTAINER_ID}\n"),
            _ => "0::/system.slice/agent.service\n".to_owned(),
        };
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        std::fs::write(dir.join("stat"), format!("{} ({}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1 1 0 0 0 0 0 0 0 17 0 0 0 0 0 0", p.pid, p.comm)).unwrap();
        symlink(format!("user:[{}]", p.user_ns), dir.join("ns/user")).unwrap();
        // A regular file and a socket, which must be ignored.
        symlink("/dev/null", dir.join("fd/0")).unwrap();
        symlink("socket:[1234]", dir.join("fd/1")).unwrap();
        for (fd, file, inodes) in &p.fds {
            symlink("anon_inode:inotify", dir.join(format!("fd/{fd}"))).unwrap();
            let mut info = "pos:\t0\nflags:\t02004000\nmnt_id:\t15\nino:\t1057\n".to_string();
            for (i, ino) in inodes.iter().enumerate() {
                info.push_str(&format!(
                    "inotify wd:{:x} ino:{ino:x} sdev:800011 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:01000800bc1b8c7c\n",
                    i + 1
                ));
            }
            std::fs::write(dir.join(format!("fdinfo/{fd}")), info).unwrap();
            files.insert(
                FdRef {
                    pid: p.pid,
                    fd: *fd,
                },
                *file,
            );
        }
    }
    Table(files)
}

/// An instance as the tests compare it: (holders as (pid, fd), watches, uid).
type InstanceRow = (Vec<(u32, i32)>, u64, u32);
/// A user entry: (uid, user_ns, instances, watches, max_watches, watches_pct).
type UserRow = (u32, Option<u64>, u64, u64, Option<u64>, Option<f64>);

const HOST_NS: u64 = 4026531837;
pub(crate) const POD_UID: &str = "1b2c3d4e-0000-4a5b-8c9d-0123456789ab";
const CONTAINER_ID: &str = "4f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff";
pub(crate) const POD_NS: u64 = 4026532999;

pub(crate) fn machine() -> Vec<FakeProcess> {
    vec![
        // A parent and its forked child share instance 1 (5 watches).
        FakeProcess {
            pid: 100,
            comm: "agent",
            euid: 0,
            user_ns: HOST_NS,
            fds: vec![(3, 1, (1..=5).collect())],
        },
        FakeProcess {
            pid: 101,
            comm: "agent-child",
            euid: 0,
            user_ns: HOST_NS,
            fds: vec![(3, 1, (1..=5).collect())],
        },
        // One process with many watches.
        FakeProcess {
            pid: 200,
            comm: "kubelet",
            euid: 0,
            user_ns: HOST_NS,
            fds: vec![(7, 2, (10..110).collect())],
        },
        // One with several empty instances, as uid 1000.
        FakeProcess {
            pid: 300,
            comm: "editor",
            euid: 1000,
            user_ns: HOST_NS,
            fds: vec![(4, 3, vec![]), (5, 4, vec![]), (6, 5, vec![])],
        },
        // In a pod's user namespace: 3 watches against a cap of 4.
        FakeProcess {
            pid: 400,
            comm: "pod-app",
            euid: 100000,
            user_ns: POD_NS,
            fds: vec![(3, 6, vec![1, 2, 3])],
        },
    ]
}

fn take(selection: &Selection) -> super::Usage {
    take_top(selection, 0)
}

fn take_top(selection: &Selection, top: usize) -> super::Usage {
    let root = tempfile::tempdir().unwrap();
    let table = fixture(root.path(), &machine());
    let logs = root.path().join("host/var/log");
    std::fs::create_dir_all(logs.join(format!("pods/shop_cart-7_{POD_UID}"))).unwrap();
    std::fs::create_dir_all(logs.join("containers")).unwrap();
    symlink(
        "x",
        logs.join(format!("containers/cart-7_shop_app-{CONTAINER_ID}.log")),
    )
    .unwrap();
    snapshot(&source(root.path(), &table), selection, top)
}

/// The pod's user namespace caps its uid at 4 watches; seen through any of
/// its processes (pids 4xx).
fn pod_caps(pid: u32) -> Option<NamespaceCaps> {
    (pid / 100 == 4).then_some(NamespaceCaps {
        max_watches: Some(4),
        max_instances: Some(128),
    })
}

pub(crate) fn source<'a>(root: &Path, table: &'a Table) -> Source<'a> {
    Source {
        root: root.to_owned(),
        order: table,
        namespace_caps: &pod_caps,
        own_user_ns: Some(HOST_NS),
        limits: Limits {
            max_user_watches: Some(120),
            max_user_instances: Some(128),
        },
        // As a kernel without BTF: the typical cost stands in.
        watch_cost: Err("no BTF in the fixture".to_owned()),
        detail: super::scan::Detail::Watches,
        resolver: None,
        // kubelet's log directories, beside the fixture's processes.
        host_root: root.join("host"),
    }
}

/// The process's start, in clock ticks after boot (`stat` field 22).
pub(crate) fn set_start_ticks(root: &Path, pid: u32, ticks: u64) {
    let path = root.join(format!("{pid}/stat"));
    let stat = std::fs::read_to_string(&path).unwrap();
    let mut fields: Vec<String> = stat.split(' ').map(str::to_owned).collect();
    fields[21] = ticks.to_string();
    std::fs::write(&path, fields.join(" ")).unwrap();
}

#[test]
fn instances_are_counted_once_with_all_their_holders() {
    let usage = take(&Selection::default());
    let summary: Vec<InstanceRow> = usage
        .instances
        .iter()
        .map(|i| {
            (
                i.holders.iter().map(|h| (h.pid, h.fd)).collect(),
                i.watches,
                i.uid,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (vec![(200, 7)], 100, 0),
            (vec![(100, 3), (101, 3)], 5, 0),
            (vec![(400, 3)], 3, 100000),
            (vec![(300, 4)], 0, 1000),
            (vec![(300, 5)], 0, 1000),
            (vec![(300, 6)], 0, 1000),
        ]
    );
    assert_eq!(usage.instances[2].user_ns, Some(POD_NS));
    assert_eq!(
        usage.instances[0].user_ns, None,
        "our own namespace is not marked"
    );
}

#[test]
fn processes_are_sorted_by_watches() {
    let usage = take(&Selection::default());
    let rows: Vec<(u32, &[u8], u64, u64)> = usage
        .processes
        .iter()
        .map(|p| (p.pid, p.comm.bytes(), p.instances, p.watches))
        .collect();
    assert_eq!(
        rows,
        [
            (200, &b"kubelet"[..], 1, 100),
            (100, b"agent", 1, 5),
            (101, b"agent-child", 1, 5),
            (400, b"pod-app", 1, 3),
            (300, b"editor", 3, 0)
        ]
    );
}

#[test]
fn per_uid_totals_against_the_host_limits_and_the_namespace_caps() {
    let usage = take(&Selection::default());
    let rows: Vec<UserRow> = usage
        .users
        .iter()
        .map(|u| {
            (
                u.uid,
                u.user_ns,
                u.instances,
                u.watches,
                u.max_watches,
                u.watches_pct,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            // 100 + 5 (the shared instance once) against 120: 87.5%.
            (0, None, 2, 105, Some(120), Some(87.5)),
            (100000, None, 1, 3, Some(120), Some(2.5)),
            (1000, None, 3, 0, Some(120), Some(0.0)),
            (100000, Some(POD_NS), 1, 3, Some(4), Some(75.0)),
        ]
    );
    assert_eq!(usage.users[0].top_holder.as_ref().unwrap().pid, 200);
    // uid 0 is above 80% of its limit, and kubelet holds 95% of it: raising
    // the limit is not the first fix, whatever the count (advice.rs).
    assert_eq!(usage.recommendations.len(), 1);
    let r = &usage.recommendations[0];
    assert_eq!(
        (r.uid, r.current, r.observed, r.recommended),
        // Half again of 105, above 120, as a power of two.
        (0, 120, 105, 256)
    );
    assert!(
        r.wrong_fix
            .as_deref()
            .is_some_and(|why| why.starts_with("pid 200 (kubelet) holds 95% of uid 0's watches")),
        "{r:?}"
    );
}

#[test]
fn filters_narrow_the_lists_but_not_the_uid_totals() {
    let usage = take(&Selection {
        comms: vec![CommName::new("agent-child".into())],
        ..Selection::default()
    });
    assert_eq!(
        usage.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        [101]
    );
    assert_eq!(usage.instances.len(), 1);
    assert_eq!(
        usage
            .users
            .iter()
            .find(|u| u.uid == 0 && u.user_ns.is_none())
            .unwrap()
            .watches,
        105
    );

    let usage = take(&Selection {
        uids: vec![1000],
        ..Selection::default()
    });
    assert_eq!(
        usage.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        [300]
    );
    assert_eq!(usage.users.len(), 1);
    assert_eq!((usage.users[0].uid, usage.users[0].instances), (1000, 3));

    let usage = take_top(&Selection::default(), 2);
    assert_eq!((usage.processes.len(), usage.instances.len()), (2, 2));

    let usage = take(&Selection {
        pids: vec![400],
        ..Selection::default()
    });
    assert_eq!(
        usage
            .instances
            .iter()
            .map(|i| i.holders[0].pid)
            .collect::<Vec<_>>(),
        [400]
    );
}

/// Each holder is named by its cgroup: the pod's process by its pod and
/// container, the others by their unit; the pods table counts the pod's
/// instances; the pod filters narrow the lists.
#[test]
fn holders_are_named_by_pod_and_the_pods_table_counts_them() {
    let usage = take(&Selection::default());
    let pod_app = usage.processes.iter().find(|p| p.pid == 400).unwrap();
    let place = pod_app.place.as_ref().unwrap();
    assert_eq!(
        (
            place.namespace.as_deref(),
            place.pod.as_deref(),
            place.container.as_deref(),
            place.container_id.as_deref()
        ),
        (
            Some("shop"),
            Some("cart-7"),
            Some("app"),
            Some(CONTAINER_ID)
        )
    );
    let kubelet = usage.processes.iter().find(|p| p.pid == 200).unwrap();
    assert_eq!(
        kubelet.place.as_ref().unwrap().unit.as_deref(),
        Some("agent.service")
    );
    assert_eq!(usage.pods.len(), 1);
    let pod = &usage.pods[0];
    assert_eq!(
        (
            pod.pod.namespace.as_deref(),
            pod.pod.name.as_deref(),
            pod.pod.uid.as_str()
        ),
        (Some("shop"), Some("cart-7"), POD_UID)
    );
    assert_eq!((pod.instances, pod.watches), (1, 3));
    assert_eq!(pod.top_holder.as_ref().map(|p| p.pid), Some(400));
    let json = serde_json::to_value(&usage).unwrap();
    assert_eq!(json["pods"][0]["pod"], "cart-7");
    let row = json["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 400)
        .unwrap();
    assert_eq!(
        (&row["namespace"], &row["container"]),
        (&"shop".into(), &"app".into())
    );

    let only = take(&Selection {
        pods: vec![crate::selection::PodPattern::parse("shop/cart-7")],
        ..Selection::default()
    });
    let pids: Vec<u32> = only.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [400]);
    let none = take(&Selection {
        namespaces: vec!["default".into()],
        ..Selection::default()
    });
    assert!(none.processes.is_empty() && none.instances.is_empty());
}
