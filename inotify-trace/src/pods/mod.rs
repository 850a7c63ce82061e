//! Which pod, container or systemd unit a process belongs to, from the
//! node's own files: each record's cgroup id is resolved to the cgroup's
//! path (`cgroupfs`), the path read for a pod uid, a container id or a unit
//! (`layout`), and those named from kubelet's log directories (`names`).
//! No API server, no runtime socket (docs/pods.md). `attributor` keeps what
//! a session resolved; `proc_cgroup` places a process by its
//! `/proc/PID/cgroup` instead, for `usage` and hosts without cgroup v2.
mod attributor;
pub mod cgroupfs;
pub mod layout;
pub mod names;
pub mod proc_cgroup;

use serde::{Deserialize, Serialize};

use self::names::Names;
pub use self::{
    attributor::{Attributor, Key},
    proc_cgroup::of_process,
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
        let (namespace, pod) = pod.map_or((None, None), |p| (p.namespace, p.name));
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
    pub(super) fn unnamed(&self) -> bool {
        self.pod_uid.is_some() && self.pod.is_none()
            || self.container_id.is_some() && self.container.is_none()
    }

    /// The pod it runs in, if any.
    pub fn pod_id(&self) -> Option<PodId> {
        Some(PodId {
            namespace: self.namespace.clone(),
            name: self.pod.clone(),
            uid: self.pod_uid.clone()?,
        })
    }

    /// The compact label of the live view's POD/UNIT column: the pod (and
    /// container), else the unit, else a container id's first 12 digits.
    pub fn label(&self) -> String {
        if let Some(pod) = self.pod_id().map(|p| p.display_name()) {
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

/// A pod as every view names it (summary, usage, the diagnosis and every
/// metric): by namespace and name where the node's log directories give
/// them, always by uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, rename = "pod", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "pod_uid")]
    pub uid: String,
}

impl PodId {
    /// `namespace/pod`, or `pod <uid>` when its name is not known (no log
    /// directory).
    pub fn display_name(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
            _ => format!("pod {}", self.uid),
        }
    }

    /// The `namespace` and `pod` label values of every metric: its name, or
    /// its uid (with an empty namespace) when the name is not known, so the
    /// gauges and the failure counters of one pod join.
    pub fn metric_labels(&self) -> (String, String) {
        match (&self.namespace, &self.name) {
            (Some(namespace), Some(name)) => (namespace.clone(), name.clone()),
            _ => (String::new(), self.uid.clone()),
        }
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
    fn an_unnamed_pod_has_one_name_in_labels_and_in_metrics() {
        let pod = PodId {
            namespace: None,
            name: None,
            uid: "0a1b".into(),
        };
        assert_eq!(pod.display_name(), "pod 0a1b");
        assert_eq!(pod.metric_labels(), (String::new(), "0a1b".to_owned()));
        let named = PodId {
            namespace: Some("shop".into()),
            name: Some("cart-1".into()),
            ..pod
        };
        assert_eq!(named.display_name(), "shop/cart-1");
        assert_eq!(
            named.metric_labels(),
            ("shop".to_owned(), "cart-1".to_owned())
        );
        assert_eq!(
            serde_json::to_string(&named).unwrap(),
            r#"{"namespace":"shop","pod":"cart-1","pod_uid":"0a1b"}"#
        );
    }
}
