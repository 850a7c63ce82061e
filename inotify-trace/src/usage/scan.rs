//! Finding every inotify fd on the machine, from a /proc-shaped directory
//! (the real /proc, or a fixture in tests): `PID/fd/*` links that read
//! `anon_inode:inotify`, their `PID/fdinfo/FD`, and the holder's comm, uid
//! and user namespace.
use std::path::Path;

use procfs::process::{FDTarget, Process};

use super::fdinfo::{self, Watch};

/// One inotify fd of one process.
#[derive(Clone, Debug)]
pub struct HeldFd {
    pub pid: u32,
    pub fd: i32,
    pub comm: String,
    /// The effective uid, as seen from our user namespace.
    pub euid: u32,
    /// The holder's user namespace (the inode of `PID/ns/user`).
    pub user_ns: Option<u64>,
    pub watches: Vec<Watch>,
}

/// Every inotify fd under `root`. Processes that exit while being read, or
/// that cannot be read, are skipped: a snapshot is of what could be seen.
pub fn inotify_fds(root: &Path) -> Vec<HeldFd> {
    let Ok(processes) = procfs::process::all_processes_with_root(root) else {
        return Vec::new();
    };
    let mut held = Vec::new();
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        let inotify: Vec<i32> = fds
            .flatten()
            .filter(|fd| matches!(&fd.target, FDTarget::AnonInode(kind) if kind == "inotify"))
            .map(|fd| fd.fd)
            .collect();
        if inotify.is_empty() {
            continue;
        }
        let Some((comm, euid)) = identity(&process) else {
            continue;
        };
        let pid = process.pid() as u32;
        let dir = root.join(pid.to_string());
        let user_ns = namespace_inode(&dir.join("ns/user"));
        for fd in inotify {
            let Ok(info) = std::fs::read_to_string(dir.join(format!("fdinfo/{fd}"))) else {
                continue;
            };
            held.push(HeldFd {
                pid,
                fd,
                comm: comm.clone(),
                euid,
                user_ns,
                watches: fdinfo::parse(&info),
            });
        }
    }
    held
}

fn identity(process: &Process) -> Option<(String, u32)> {
    let status = process.status().ok()?;
    Some((status.name, status.euid))
}

/// `user:[4026531837]` -> 4026531837.
pub fn namespace_inode(link: &Path) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let text = target.to_str()?;
    text.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}
