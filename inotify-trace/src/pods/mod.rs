//! Which pod, container or systemd unit a process belongs to, from the
//! node's own files: each record's cgroup id is resolved to the cgroup's
//! path (`cgroupfs`), the path read for a pod uid, a container id or a unit
//! (`layout`), and those named from kubelet's log directories (`names`).
//! No API server, no runtime socket (docs/pods.md).
pub mod cgroupfs;
pub mod layout;
pub mod names;

use std::{collections::HashMap, path::Path};

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

    /// Whether a name the node will give later is still missing (a pod
    /// whose log directory kubelet has not made yet).
    fn unnamed(&self) -> bool {
        self.pod_uid.is_some() && self.pod.is_none()
            || self.container_id.is_some() && self.container.is_none()
    }

    /// The pod as people name it: `namespace/pod`, or `pod <uid>` when its
    /// name is not known; `None` outside a pod.
    pub fn pod_label(&self) -> Option<String> {
        match (&self.namespace, &self.pod, &self.pod_uid) {
            (Some(ns), Some(pod), _) => Some(format!("{ns}/{pod}")),
            (_, _, Some(uid)) => Some(format!("pod {uid}")),
            _ => None,
        }
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
        "-".to_owned()
    }
}

/// One attribution as a recording carries it: the session resolved this
/// cgroup id so, and `report` shows the same names on any machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupAttribution {
    pub cgroup_id: u64,
    #[serde(flatten)]
    pub attribution: Attribution,
}

/// Cgroup ids remembered at most; past it, all are forgotten and resolved
/// again (a node has a few thousand cgroups).
const KNOWN: usize = 65_536;

struct Entry {
    attribution: Attribution,
    /// Handed to the outputs (and so recorded) as it is now.
    told: bool,
}

/// Cgroup ids to attributions: resolved from the machine on first sight
/// (live), or learned from a recording's frames (report).
pub struct Attributor {
    live: Option<Live>,
    known: HashMap<u64, Entry>,
}

struct Live {
    cgroupfs: Option<CgroupFs>,
    names: Names,
}

impl Attributor {
    /// Resolving from this machine, its files under `host_root`.
    pub fn live(host_root: &Path) -> Attributor {
        Attributor {
            live: Some(Live {
                cgroupfs: CgroupFs::find(host_root),
                names: Names::new(host_root),
            }),
            known: HashMap::new(),
        }
    }

    /// Knowing only what a recording says.
    pub fn recorded() -> Attributor {
        Attributor {
            live: None,
            known: HashMap::new(),
        }
    }

    /// A recording's frame.
    pub fn learn(&mut self, frame: CgroupAttribution) {
        self.remember(frame.cgroup_id, frame.attribution, true);
    }

    fn remember(&mut self, cgroup_id: u64, attribution: Attribution, told: bool) {
        if self.known.len() >= KNOWN && !self.known.contains_key(&cgroup_id) {
            self.known.clear();
        }
        self.known.insert(cgroup_id, Entry { attribution, told });
    }

    /// The attribution of a cgroup id, resolved now if it is new (or still
    /// waiting for a name); `true` beside it when the outputs have not been
    /// told it yet (then call [`Attributor::told`]).
    pub fn attribute(&mut self, cgroup_id: u64) -> Option<(&Attribution, bool)> {
        let stale = self
            .known
            .get(&cgroup_id)
            .is_none_or(|e| e.attribution.unnamed());
        if stale {
            if let Some(live) = &mut self.live {
                let resolved = live.resolve(cgroup_id);
                let changed = self
                    .known
                    .get(&cgroup_id)
                    .is_none_or(|e| e.attribution != resolved);
                if changed {
                    self.remember(cgroup_id, resolved, false);
                }
            }
        }
        self.known
            .get(&cgroup_id)
            .map(|e| (&e.attribution, !e.told))
    }

    /// The outputs were told this id's attribution.
    pub fn told(&mut self, cgroup_id: u64) {
        if let Some(e) = self.known.get_mut(&cgroup_id) {
            e.told = true;
        }
    }

    /// What is known of a cgroup id, without resolving.
    pub fn get(&self, cgroup_id: u64) -> Option<&Attribution> {
        self.known.get(&cgroup_id).map(|e| &e.attribution)
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
}

/// The attribution of a process from its `/proc/PID/cgroup` (the v2 line,
/// `0::/path`): for `usage`, which has pids, not cgroup ids.
pub fn of_process(proc_root: &Path, pid: u32, names: &mut Names) -> Option<Attribution> {
    let text = std::fs::read(proc_root.join(format!("{pid}/cgroup"))).ok()?;
    let path = text
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))?;
    Some(Attribution::of_path(path, names))
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

    #[test]
    fn a_recording_frame_is_learned_as_told() {
        let mut attributor = Attributor::recorded();
        let frame = CgroupAttribution {
            cgroup_id: 7,
            attribution: Attribution {
                unit: Some("x.service".into()),
                ..Attribution::default()
            },
        };
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(json, r#"{"cgroup_id":7,"unit":"x.service"}"#);
        attributor.learn(serde_json::from_str(&json).unwrap());
        let (a, untold) = attributor.attribute(7).unwrap();
        assert_eq!((a.unit.as_deref(), untold), (Some("x.service"), false));
        assert!(attributor.attribute(8).is_none());
    }
}
