//! Which pod, container or systemd unit a process belongs to, from the
//! node's own files: each record's cgroup id is resolved to the cgroup's
//! path (`cgroupfs`), the path read for a pod uid, a container id or a unit
//! (`layout`), and those named from kubelet's log directories (`names`).
//! No API server, no runtime socket (docs/pods.md).
pub mod cgroupfs;
pub mod layout;
pub mod names;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use self::{
    cgroupfs::{CgroupFs, Unresolved},
    names::Names,
};

/// Where a process runs, as far as the node's files tell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The cgroup's path under the cgroup2 mount (invalid UTF-8 replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The cgroup was removed before it could be resolved: only its id is
    /// known.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cgroup_gone: bool,
    /// On a host without cgroup v2: the process was gone before its
    /// `/proc/PID/cgroup` could be read.
    #[serde(default, skip_serializing_if = "is_false")]
    pub process_gone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Attribution {
    /// What a cgroup path says, with the names `names` knows.
    pub fn of_path(path: &[u8], names: &mut Names) -> Attribution {
        let cgroup = String::from_utf8_lossy(path).into_owned();
        let placement = layout::placement(&cgroup);
        let pod = placement.pod_uid.as_deref().and_then(|uid| names.pod(uid));
        let container = placement
            .container_id
            .as_deref()
            .and_then(|id| names.container(id));
        let (namespace, pod) = pod.map(|p| (p.namespace, p.name)).unzip();
        Attribution {
            cgroup: Some(cgroup),
            cgroup_gone: false,
            process_gone: false,
            namespace,
            pod,
            pod_uid: placement.pod_uid,
            container,
            container_id: placement.container_id,
            unit: placement.unit,
        }
    }

    /// The known fields by their JSON keys, in the documented order (for
    /// rows serialized by hand).
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("cgroup", &self.cgroup),
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("pod_uid", &self.pod_uid),
            ("container", &self.container),
            ("container_id", &self.container_id),
            ("unit", &self.unit),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value.as_ref()?)))
    }

    /// Whether it places the process nowhere: no cgroup known, or the root
    /// (every process is there on a host whose controllers are on v1).
    pub fn says_nothing(&self) -> bool {
        !self.cgroup_gone
            && !self.process_gone
            && self.pod_uid.is_none()
            && self.container_id.is_none()
            && self.unit.is_none()
            && self.cgroup.as_deref().is_none_or(|c| c == "/")
    }

    /// Whether a name the node will give later is still missing (a pod
    /// whose log directory kubelet has not made yet).
    fn unnamed(&self) -> bool {
        self.pod_uid.is_some() && self.pod.is_none()
            || self.container_id.is_some() && self.container.is_none()
    }

    /// The pod as people name it: `namespace/pod`, or `pod <uid>` when its
    /// name is not known; `None` outside a pod.
    pub fn pod_label(&self) -> Option<String> {
        let uid = self.pod_uid.as_deref()?;
        Some(pod_name(
            self.namespace.as_deref(),
            self.pod.as_deref(),
            uid,
        ))
    }

    /// The compact label of the live view's POD/UNIT column: the pod (and
    /// container), else the unit, else a container id's first 12 digits.
    pub fn label(&self) -> String {
        if let Some(pod) = self.pod_label() {
            return match &self.container {
                Some(container) => format!("{pod}/{container}"),
                None => pod,
            };
        }
        if let Some(unit) = &self.unit {
            return unit.clone();
        }
        if let Some(id) = &self.container_id {
            return id.chars().take(12).collect();
        }
        if self.cgroup_gone {
            return "(cgroup gone)".to_owned();
        }
        if self.process_gone {
            return "(process gone)".to_owned();
        }
        "-".to_owned()
    }
}

/// A pod as people name it: `namespace/pod`, or `pod <uid>` when its name
/// is not known (no log directory).
pub fn pod_name(namespace: Option<&str>, pod: Option<&str>, uid: &str) -> String {
    match (namespace, pod) {
        (Some(namespace), Some(pod)) => format!("{namespace}/{pod}"),
        _ => format!("pod {uid}"),
    }
}

/// One attribution as a recording carries it: the session resolved this
/// cgroup id (or, with `pid`, this process) so, and `report` shows the same
/// names on any machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupAttribution {
    pub cgroup_id: u64,
    /// Set when the attribution is a process's, from its cgroup v1 paths
    /// (its cgroup v2 said nothing: see [`Attributor::place`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub attribution: Attribution,
}

/// What an attribution is known by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A cgroup v2 id, from the kernel's record.
    Cgroup(u64),
    /// A process, placed by its `/proc/PID/cgroup` v1 lines.
    Pid(u32),
}

/// Keys remembered at most; past it, all are forgotten and resolved again
/// (a node has a few thousand cgroups; pids churn).
const KNOWN: usize = 65_536;

struct Entry {
    attribution: Attribution,
    /// Handed to the outputs (and so recorded) as it is now.
    told: bool,
}

/// Cgroup ids (and processes) to attributions: resolved from the machine
/// on first sight (live), or learned from a recording's frames (report).
pub struct Attributor {
    live: Option<Live>,
    known: HashMap<Key, Entry, foldhash::fast::RandomState>,
    /// The last caller placed, and where: a storm of calls from one
    /// process is placed with one comparison.
    last: Option<(Option<u64>, u32, Option<Key>)>,
}

struct Live {
    cgroupfs: Option<CgroupFs>,
    names: Names,
    proc_root: PathBuf,
}

impl Attributor {
    /// Resolving from this machine, its files under `host_root`.
    pub fn live(host_root: &Path) -> Attributor {
        Attributor {
            live: Some(Live {
                cgroupfs: CgroupFs::find(host_root),
                names: Names::new(host_root),
                proc_root: PathBuf::from("/proc"),
            }),
            known: HashMap::default(),
            last: None,
        }
    }

    /// On a host without cgroup v2, its /proc at `proc_root` (tests).
    #[cfg(test)]
    fn without_cgroup2(host_root: &Path, proc_root: &Path) -> Attributor {
        Attributor {
            live: Some(Live {
                cgroupfs: None,
                names: Names::new(host_root),
                proc_root: proc_root.to_owned(),
            }),
            known: HashMap::default(),
            last: None,
        }
    }

    /// Knowing only what a recording says.
    pub fn recorded() -> Attributor {
        Attributor {
            live: None,
            known: HashMap::default(),
            last: None,
        }
    }

    /// A recording's frame.
    pub fn learn(&mut self, frame: CgroupAttribution) {
        let key = match frame.pid {
            Some(pid) => Key::Pid(pid),
            None => Key::Cgroup(frame.cgroup_id),
        };
        self.remember(key, frame.attribution, true);
    }

    fn remember(&mut self, key: Key, attribution: Attribution, told: bool) {
        self.last = None;
        if self.known.len() >= KNOWN && !self.known.contains_key(&key) {
            self.known.clear();
        }
        self.known.insert(key, Entry { attribution, told });
    }

    /// Where the caller of an event runs: its cgroup v2 (resolved now if
    /// new, or still waiting for a name); when that says nothing (the root:
    /// a host whose controllers are on cgroup v1, or with no cgroup2 at
    /// all), the process's cgroup v1 paths, read at its first event.
    pub fn place(&mut self, cgroup_id: Option<u64>, pid: u32) -> Option<Key> {
        if let Some((last_id, last_pid, key)) = self.last {
            let settled = key
                .and_then(|key| self.known.get(&key))
                .is_none_or(|e| e.told && !e.attribution.unnamed());
            if (last_id, last_pid) == (cgroup_id, pid) && settled {
                return key;
            }
        }
        let key = self.place_now(cgroup_id, pid);
        self.last = Some((cgroup_id, pid, key));
        key
    }

    fn place_now(&mut self, cgroup_id: Option<u64>, pid: u32) -> Option<Key> {
        if let Some(id) = cgroup_id {
            let key = Key::Cgroup(id);
            self.refresh(key);
            if self.get(key).is_some_and(|a| !a.says_nothing()) {
                return Some(key);
            }
        }
        let key = Key::Pid(pid);
        self.refresh(key);
        match self.get(key) {
            Some(a) if !a.says_nothing() => Some(key),
            _ => cgroup_id
                .map(Key::Cgroup)
                .filter(|key| self.known.contains_key(key)),
        }
    }

    /// Resolves `key` if it is new or still waiting for a name.
    fn refresh(&mut self, key: Key) {
        let stale = self.known.get(&key).is_none_or(|e| e.attribution.unnamed());
        let Some(live) = self.live.as_mut().filter(|_| stale) else {
            return;
        };
        let resolved = match key {
            Key::Cgroup(id) => live.resolve(id),
            Key::Pid(pid) => live.resolve_process(pid),
        };
        if self
            .known
            .get(&key)
            .is_none_or(|e| e.attribution != resolved)
        {
            // A process placed nowhere is not worth a frame.
            let told = matches!(key, Key::Pid(_)) && resolved.says_nothing();
            self.remember(key, resolved, told);
        }
    }

    /// The frame for `key` if the outputs have not been told it as it is
    /// now (they are, from here on).
    pub fn untold(&mut self, key: Key, cgroup_id: u64) -> Option<CgroupAttribution> {
        let entry = self.known.get_mut(&key).filter(|e| !e.told)?;
        entry.told = true;
        Some(CgroupAttribution {
            cgroup_id,
            pid: match key {
                Key::Pid(pid) => Some(pid),
                Key::Cgroup(_) => None,
            },
            attribution: entry.attribution.clone(),
        })
    }

    /// Where a process ran, as the session placed it: by its own (cgroup
    /// v1) entry when that says something, else by its cgroup id.
    pub fn of_process(&self, pid: u32, cgroup_id: u64) -> Option<&Attribution> {
        self.get(Key::Pid(pid))
            .filter(|a| !a.says_nothing())
            .or_else(|| self.get(Key::Cgroup(cgroup_id)))
    }

    /// What is known by `key`, without resolving.
    pub fn get(&self, key: Key) -> Option<&Attribution> {
        self.known.get(&key).map(|e| &e.attribution)
    }
}

impl Live {
    fn resolve(&mut self, cgroup_id: u64) -> Attribution {
        let Some(cgroupfs) = &self.cgroupfs else {
            return Attribution::default();
        };
        match cgroupfs.path_of(cgroup_id) {
            Ok(path) => Attribution::of_path(&path, &mut self.names),
            Err(Unresolved::Gone) => Attribution {
                cgroup_gone: true,
                ..Attribution::default()
            },
            Err(Unresolved::Unknown) => Attribution::default(),
        }
    }

    /// A process by its cgroup v1 paths. Gone before it could be read: on a
    /// host without cgroup v2 that is said (nothing else places it); with
    /// cgroup v2 its root cgroup stands.
    fn resolve_process(&mut self, pid: u32) -> Attribution {
        let Ok(text) = std::fs::read(self.proc_root.join(format!("{pid}/cgroup"))) else {
            return Attribution {
                process_gone: self.cgroupfs.is_none(),
                ..Attribution::default()
            };
        };
        v1_path(&text).map_or_else(Attribution::default, |path| {
            Attribution::of_path(path, &mut self.names)
        })
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
    let text = std::fs::read(proc_root.join(format!("{pid}/cgroup"))).ok()?;
    let v2 = text
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .map(|path| Attribution::of_path(path, names));
    match v2 {
        Some(place) if !place.says_nothing() => Some(place),
        v2 => v1_path(&text)
            .map(|path| Attribution::of_path(path, names))
            .filter(|place| !place.says_nothing())
            .or(v2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_the_pod_then_the_unit_then_the_container() {
        let mut a = Attribution {
            namespace: Some("kube-system".into()),
            pod: Some("coredns-1".into()),
            pod_uid: Some("0a1b".into()),
            container: Some("coredns".into()),
            ..Attribution::default()
        };
        assert_eq!(a.label(), "kube-system/coredns-1/coredns");
        (a.namespace, a.pod, a.container) = (None, None, None);
        assert_eq!(a.label(), "pod 0a1b");
        let unit = Attribution {
            unit: Some("kubelet.service".into()),
            ..Attribution::default()
        };
        assert_eq!(unit.label(), "kubelet.service");
        let gone = Attribution {
            cgroup_gone: true,
            ..Attribution::default()
        };
        assert_eq!(gone.label(), "(cgroup gone)");
        assert_eq!(Attribution::default().label(), "-");
    }

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

    /// Where cgroup v2 says nothing, a process is placed by its v1 paths at
    /// its first event, recorded as its own frame; one gone before it could
    /// be read is said to be, on a host without cgroup v2.
    #[test]
    fn without_cgroup_v2_a_process_is_placed_by_its_v1_paths() {
        let root = tempfile::tempdir().unwrap();
        let uid = "1b2c3d4e-0000-4a5b-8c9d-0123456789ab";
        std::fs::create_dir_all(root.path().join("proc/5")).unwrap();
        std::fs::write(
            root.path().join("proc/5/cgroup"),
            format!("3:memory:/x\n1:name=systemd:/kubepods/pod{uid}/4f1e2d3c4b5a6978\n"),
        )
        .unwrap();
        let mut attributor = Attributor::without_cgroup2(root.path(), &root.path().join("proc"));
        let key = attributor.place(Some(1), 5).unwrap();
        assert_eq!(key, Key::Pid(5));
        assert_eq!(attributor.get(key).unwrap().pod_uid.as_deref(), Some(uid));
        let frame = attributor.untold(key, 1).unwrap();
        assert_eq!(frame.pid, Some(5));
        assert_eq!(attributor.untold(key, 1), None, "told once");
        assert_eq!(
            attributor.of_process(5, 1).unwrap().pod_uid.as_deref(),
            Some(uid)
        );

        let gone = attributor.place(Some(1), 6).unwrap();
        assert!(attributor.get(gone).unwrap().process_gone);
        assert_eq!(attributor.get(gone).unwrap().label(), "(process gone)");

        // The recording's frame places the process the same way in report.
        let mut recorded = Attributor::recorded();
        recorded.learn(frame);
        let key = recorded.place(Some(1), 5).unwrap();
        assert_eq!(recorded.get(key).unwrap().pod_uid.as_deref(), Some(uid));
    }

    #[test]
    fn a_recording_frame_is_learned_as_told() {
        let mut attributor = Attributor::recorded();
        let frame = CgroupAttribution {
            cgroup_id: 7,
            pid: None,
            attribution: Attribution {
                unit: Some("x.service".into()),
                ..Attribution::default()
            },
        };
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(json, r#"{"cgroup_id":7,"unit":"x.service"}"#);
        attributor.learn(serde_json::from_str(&json).unwrap());
        let key = attributor.place(Some(7), 1).unwrap();
        assert_eq!(
            attributor.get(key).unwrap().unit.as_deref(),
            Some("x.service")
        );
        assert_eq!(attributor.untold(key, 7), None, "learned frames are told");
        assert!(attributor.place(Some(8), 1).is_none());
    }
}
