//! `/proc/PID/cgroup`, the one reader of it: its cgroup v2 line, or where
//! that says nothing (a host whose controllers are on v1), its v1 paths.
use std::path::Path;

use super::{names::Names, Attribution};

/// A process's `/proc/PID/cgroup`, as read.
pub struct ProcCgroup {
    text: Vec<u8>,
}

impl ProcCgroup {
    /// `None` when the process is gone (or `proc_root` has no such file).
    pub fn read(proc_root: &Path, pid: u32) -> Option<ProcCgroup> {
        let text = std::fs::read(proc_root.join(format!("{pid}/cgroup"))).ok()?;
        Some(ProcCgroup { text })
    }

    /// The cgroup v2 path (`0::/path`).
    pub fn v2(&self) -> Option<&[u8]> {
        self.text
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"0::"))
    }

    /// The cgroup v1 path kubelet names the pod by.
    pub fn v1(&self) -> Option<&[u8]> {
        v1_path(&self.text)
    }
}

/// The cgroup v1 path of a `/proc/PID/cgroup`: systemd's named hierarchy,
/// else the first controller's (kubelet makes the same pod path in each).
fn v1_path(text: &[u8]) -> Option<&[u8]> {
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"0::"))
        .collect();
    lines
        .iter()
        .filter_map(|line| controllers_and_path(line))
        .find(|(controllers, _)| *controllers == b"name=systemd")
        .or_else(|| lines.first().and_then(|line| controllers_and_path(line)))
        .map(|(_, path)| path)
}

/// `ID:CONTROLLERS:PATH` -> (CONTROLLERS, PATH).
fn controllers_and_path(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = line.iter().position(|&b| b == b':')?;
    let rest = &line[first + 1..];
    let second = rest.iter().position(|&b| b == b':')?;
    Some((&rest[..second], &rest[second + 1..]))
}

/// The attribution of a process from its `/proc/PID/cgroup`: for `usage`,
/// which has pids, not cgroup ids. The v2 line (`0::/path`); when that is
/// missing or the root, its v1 paths.
pub fn of_process(proc_root: &Path, pid: u32, names: &mut Names) -> Option<Attribution> {
    let cgroups = ProcCgroup::read(proc_root, pid)?;
    let v2 = cgroups.v2().map(|path| Attribution::of_path(path, names));
    match v2 {
        Some(place) if !place.says_nothing() => Some(place),
        v2 => cgroups
            .v1()
            .map(|path| Attribution::of_path(path, names))
            .filter(|place| !place.says_nothing())
            .or(v2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `usage` places a process from /proc/PID/cgroup: the v2 line, or on
    /// a host with cgroup v1 only, systemd's hierarchy or a controller's.
    #[test]
    fn a_process_is_placed_from_its_cgroup_file_v2_or_v1() {
        let root = tempfile::tempdir().unwrap();
        let uid = "1b2c3d4e-0000-4a5b-8c9d-0123456789ab";
        let pod = format!("/kubepods/burstable/pod{uid}/4f1e2d3c4b5a6978");
        for (pid, text) in [
            (1, format!("1:name=systemd:/\n0::{pod}\n")),
            (2, format!("5:memory:/other\n1:name=systemd:{pod}\n")),
            (3, format!("4:memory:{pod}\n3:cpu,cpuacct:{pod}\n")),
        ] {
            std::fs::create_dir_all(root.path().join(pid.to_string())).unwrap();
            std::fs::write(root.path().join(format!("{pid}/cgroup")), text).unwrap();
        }
        let mut names = Names::new(root.path());
        for pid in 1..=3 {
            let place = of_process(root.path(), pid, &mut names).unwrap();
            assert_eq!(place.pod_uid.as_deref(), Some(uid), "pid {pid}");
            assert_eq!(place.cgroup.as_deref(), Some(pod.as_str()), "pid {pid}");
        }
        assert_eq!(of_process(root.path(), 4, &mut names), None);
    }
}
