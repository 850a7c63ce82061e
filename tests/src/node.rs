//! A pretend Kubernetes node for the tests: real cgroups under this
//! machine's cgroup2 mount, in kubelet's layouts, and kubelet's log
//! directories under a temporary host root.
use std::path::PathBuf;

use crate::unique_comm;

/// Where cgroup v2 is mounted here (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid host like this one).
pub fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            (fs == "cgroup2").then(|| PathBuf::from(point))
        })
        .expect("a cgroup2 mount (the tests make real cgroups)")
}

/// One pod's container, as the test lays it out.
pub struct Container {
    pub namespace: &'static str,
    pub pod: String,
    pub pod_uid: String,
    pub name: &'static str,
    pub id: String,
    /// Relative to the node's cgroup root.
    pub cgroup: String,
}

/// A pretend node: a cgroup tree of its own under the real cgroup2 mount,
/// and kubelet's log directories under a temporary host root. Cgroups are
/// removed when it is dropped.
pub struct Node {
    pub root: PathBuf,
    pub host_root: tempfile::TempDir,
    made: Vec<PathBuf>,
}

impl Default for Node {
    fn default() -> Node {
        Node::new()
    }
}

impl Node {
    pub fn new() -> Node {
        let root = cgroup2_mount().join(unique_comm("node"));
        std::fs::create_dir(&root).unwrap();
        Node {
            made: vec![root.clone()],
            root,
            host_root: tempfile::tempdir().unwrap(),
        }
    }

    pub fn host_root(&self) -> &str {
        self.host_root.path().to_str().unwrap()
    }

    /// `n` new directories to watch, `PREFIX0` .. in the scratch directory.
    pub fn dirs(&self, prefix: &str, n: usize) -> Vec<String> {
        let scratch = self.scratch();
        (0..n)
            .map(|i| {
                let dir = format!("{scratch}/{prefix}{i}");
                std::fs::create_dir_all(&dir).unwrap();
                dir
            })
            .collect()
    }

    /// A directory for the workloads to watch (and recordings to go).
    pub fn scratch(&self) -> String {
        let dir = self.host_root.path().join("scratch");
        let _ = std::fs::create_dir(&dir);
        dir.to_str().unwrap().to_owned()
    }

    /// The cgroup (made, with its parents) at `relative`.
    pub fn cgroup(&mut self, relative: &str) -> PathBuf {
        let mut dir = self.root.clone();
        for part in relative.split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).unwrap();
                self.made.push(dir.clone());
            }
        }
        dir
    }

    /// A container of a new pod, its cgroup in `layout`, its names in the
    /// log directories unless `logged` is false.
    pub fn container(&mut self, layout: Layout, name: &'static str, logged: bool) -> Container {
        let n = self.made.len();
        let pod_uid = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n);
        let id = format!("{:016x}{:048x}", std::process::id(), n);
        let under = pod_uid.replace('-', "_");
        let cgroup = match layout {
            Layout::SystemdContainerd => format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{under}.slice/cri-containerd-{id}.scope"
            ),
            Layout::SystemdCrioGuaranteed => {
                format!("kubepods.slice/kubepods-pod{under}.slice/crio-{id}.scope")
            }
            Layout::SystemdDocker => format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{under}.slice/docker-{id}.scope"
            ),
            Layout::CgroupfsContainerd => format!("kubepods/burstable/pod{pod_uid}/{id}"),
            Layout::CgroupfsCrio => format!("kubepods/besteffort/pod{pod_uid}/crio-{id}"),
        };
        self.cgroup(&cgroup);
        let pod = format!("web-{n}");
        let namespace = "shop";
        if logged {
            let logs = self.host_root.path().join("var/log");
            std::fs::create_dir_all(logs.join(format!("pods/{namespace}_{pod}_{pod_uid}/{name}")))
                .unwrap();
            std::fs::create_dir_all(logs.join("containers")).unwrap();
            std::os::unix::fs::symlink(
                format!("/var/log/pods/{namespace}_{pod}_{pod_uid}/{name}/0.log"),
                logs.join(format!("containers/{pod}_{namespace}_{name}-{id}.log")),
            )
            .unwrap();
        }
        Container {
            namespace,
            pod,
            pod_uid,
            name,
            id,
            cgroup,
        }
    }

    /// A wrapper that moves the process into the cgroup, then runs it.
    pub fn inside(&self, relative: &str) -> Vec<String> {
        let procs = self.root.join(relative).join("cgroup.procs");
        vec![
            "sh".into(),
            "-c".into(),
            format!("echo $$ > {} && exec \"$@\"", procs.display()),
            "sh".into(),
        ]
    }

    /// The cgroup's path as the tool reports it (from the mount's root).
    pub fn reported(&self, relative: &str) -> String {
        let mount = cgroup2_mount();
        let under = self.root.strip_prefix(&mount).unwrap();
        format!("/{}/{relative}", under.display())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Layout {
    SystemdContainerd,
    SystemdCrioGuaranteed,
    SystemdDocker,
    CgroupfsContainerd,
    CgroupfsCrio,
}

pub const LAYOUTS: [Layout; 5] = [
    Layout::SystemdContainerd,
    Layout::SystemdCrioGuaranteed,
    Layout::SystemdDocker,
    Layout::CgroupfsContainerd,
    Layout::CgroupfsCrio,
];

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
