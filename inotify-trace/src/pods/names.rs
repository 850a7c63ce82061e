//! Pod and container names from the node's own files, as kubelet writes
//! them (no API server, no runtime socket):
//! - `/var/log/pods/<namespace>_<pod>_<uid>/`: a pod's namespace and name;
//! - `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`: a
//!   container's name, by its id.
//!
//! Read again on a miss, at most once a second, so a pod started during the
//! session is named and a storm of unknown ids costs one scan a second.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::PodId;

/// Directory scans are at least this far apart.
const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// Entries kept at most (each directory's): a node runs a few hundred pods.
const MAX_ENTRIES: usize = 65_536;

pub struct Names {
    pods_dir: PathBuf,
    containers_dir: PathBuf,
    pods: HashMap<String, PodId>,
    containers: HashMap<String, String>,
    scanned: Option<Instant>,
}

impl Names {
    /// Names under `host_root` (`/`, or where the host is mounted).
    pub fn new(host_root: &Path) -> Names {
        Names {
            pods_dir: host_root.join("var/log/pods"),
            containers_dir: host_root.join("var/log/containers"),
            pods: HashMap::new(),
            containers: HashMap::new(),
            scanned: None,
        }
    }

    /// The pod of this uid, named, if its log directory is there.
    pub fn pod(&mut self, uid: &str) -> Option<PodId> {
        if !self.pods.contains_key(uid) {
            self.rescan();
        }
        self.pods.get(uid).cloned()
    }

    /// The container of this id, if its log link is there.
    pub fn container(&mut self, id: &str) -> Option<String> {
        if !self.containers.contains_key(id) {
            self.rescan();
        }
        self.containers.get(id).cloned()
    }

    fn rescan(&mut self) {
        if self.scanned.is_some_and(|at| at.elapsed() < RESCAN_EVERY) {
            return;
        }
        self.scanned = Some(Instant::now());
        self.pods = entries(&self.pods_dir)
            .filter_map(|name| pod_dir(&name).map(|(uid, pod)| (uid.to_owned(), pod)))
            .collect();
        self.containers = entries(&self.containers_dir)
            .filter_map(|name| {
                container_link(&name).map(|(id, container)| (id.to_owned(), container.to_owned()))
            })
            .collect();
    }
}

/// The names in a directory (none when it is missing: not a node).
fn entries(dir: &Path) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .take(MAX_ENTRIES)
}

/// `<namespace>_<pod>_<uid>`: namespaces and pod names are DNS names, with
/// no `_`.
fn pod_dir(name: &str) -> Option<(&str, PodId)> {
    let mut parts = name.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || namespace.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((
        uid,
        PodId {
            namespace: Some(namespace.to_owned()),
            name: Some(pod.to_owned()),
            uid: uid.to_owned(),
        },
    ))
}

/// `<pod>_<namespace>_<container>-<id>.log`: (id, container).
fn container_link(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    let mut parts = rest.split('_');
    let (_pod, _namespace, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || container.is_empty() || id.is_empty() {
        return None;
    }
    Some((id, container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_kubelets_log_layout() {
        let root = tempfile::tempdir().unwrap();
        let pods = root.path().join("var/log/pods");
        let containers = root.path().join("var/log/containers");
        std::fs::create_dir_all(pods.join("kube-system_coredns-7db6d8ff4d-x2x9z_0a1b-2c3d"))
            .unwrap();
        std::fs::create_dir_all(pods.join("not-a-pod")).unwrap();
        std::fs::create_dir_all(&containers).unwrap();
        std::os::unix::fs::symlink(
            "/var/log/pods/x/coredns/0.log",
            containers.join("coredns-7db6d8ff4d-x2x9z_kube-system_coredns-abc123.log"),
        )
        .unwrap();
        let mut names = Names::new(root.path());
        assert_eq!(
            names.pod("0a1b-2c3d"),
            Some(PodId {
                namespace: Some("kube-system".into()),
                name: Some("coredns-7db6d8ff4d-x2x9z".into()),
                uid: "0a1b-2c3d".into(),
            })
        );
        assert_eq!(names.container("abc123").as_deref(), Some("coredns"));
        assert_eq!(names.pod("ffff"), None);
        assert_eq!(container_link("a_b_c_d-1.log"), None);
        assert_eq!(
            container_link("a_b_sidecar-proxy-99.log"),
            Some(("99", "sidecar-proxy"))
        );
    }

    #[test]
    fn a_machine_that_is_not_a_node_has_no_names() {
        let mut names = Names::new(Path::new("/nonexistent-root"));
        assert_eq!(names.pod("x"), None);
        assert_eq!(names.container("y"), None);
    }
}
