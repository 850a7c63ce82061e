//! Which calls (or, for `usage`, whose instances) to show: one type, built
//! once from the flags, read by the kernel filters, the userspace filter
//! and a recording's metadata alike.
//!
//! Meaning, wherever it is applied: a call passes when its pid is any of
//! the listed pids (if any are listed), and its comm any of the listed
//! comms, and so on.
use inotify_trace_common::{comm_key, Comm};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{event::Event, pods::Attribution};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub pids: Vec<u32>,
    pub comms: Vec<CommName>,
    /// Never set live (the kernel has no uid filter); absent from a
    /// recording's metadata then, as before there was one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<u32>,
    /// Only calls that failed.
    pub failed_only: bool,
    /// `--pod [NS/]NAME`: callers in one of these pods. Pods start during a
    /// kubelet start, so these apply in userspace, after resolution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodPattern>,
    /// `--namespace NS`: callers in a pod of one of these namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// `--container NAME`: callers in a container of one of these names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
    /// `--cgroup PATH`: callers in these cgroups (paths from the cgroup2
    /// mount's root, `/`-rooted) or below them. Live, the kernel filters on
    /// the ids of each and its descendants at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<String>,
}

/// Whether cgroup `path` is `dir` or below it.
fn is_within(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir
        || dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A `--pod` as given, a pattern that pods (`pods::PodId`) match: `NAME` (in
/// any namespace) or `NS/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPattern {
    pub namespace: Option<String>,
    pub name: String,
}

impl PodPattern {
    pub fn parse(text: &str) -> PodPattern {
        match text.split_once('/') {
            Some((namespace, name)) => PodPattern {
                namespace: Some(namespace.to_owned()),
                name: name.to_owned(),
            },
            None => PodPattern {
                namespace: None,
                name: text.to_owned(),
            },
        }
    }
}

impl std::fmt::Display for PodPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Serialize for PodPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PodPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|text| PodPattern::parse(&text))
    }
}

/// A `--comm` name as given, and the form the kernel compares: its first
/// 15 bytes, NUL-padded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommName {
    pub name: String,
    pub key: Comm,
}

impl CommName {
    pub fn new(name: String) -> CommName {
        CommName {
            key: comm_key(name.as_bytes()),
            name,
        }
    }

    /// Whether the kernel keeps less of a process name than this one.
    pub fn is_cut(&self) -> bool {
        self.name.len() > 15
    }
}

impl Selection {
    /// Whether it narrows anything down (by process or by place).
    pub fn narrows(&self) -> bool {
        !(self.pids.is_empty()
            && self.comms.is_empty()
            && self.uids.is_empty()
            && self.pods.is_empty()
            && self.namespaces.is_empty()
            && self.containers.is_empty()
            && self.cgroups.is_empty())
    }

    /// Whether a traced call passes.
    pub fn matches(&self, event: &Event<'_>) -> bool {
        let h = &event.header;
        self.matches_key(h.pid, &h.comm, event.charged_uid()) && (!self.failed_only || h.ret < 0)
    }

    /// Whether a process, by its pid, comm (as /proc shows it) and uid,
    /// passes.
    pub fn matches_process(&self, pid: u32, comm: &[u8], uid: u32) -> bool {
        self.matches_key(pid, &comm_key(comm), uid)
    }

    fn matches_key(&self, pid: u32, comm: &Comm, uid: u32) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| &c.key == comm))
            && (self.uids.is_empty() || self.uids.contains(&uid))
    }

    /// Whether a caller in this place passes the pod filters (a caller
    /// whose place is unknown passes only when there are none).
    pub fn matches_place(&self, place: Option<&Attribution>) -> bool {
        if self.pods.is_empty()
            && self.namespaces.is_empty()
            && self.containers.is_empty()
            && self.cgroups.is_empty()
        {
            return true;
        }
        let Some(place) = place else {
            return false;
        };
        let is = |want: &str, have: &Option<String>| have.as_deref() == Some(want);
        (self.pods.is_empty()
            || self.pods.iter().any(|p| {
                is(&p.name, &place.pod)
                    && p.namespace
                        .as_ref()
                        .is_none_or(|ns| is(ns, &place.namespace))
            }))
            && (self.namespaces.is_empty()
                || self.namespaces.iter().any(|ns| is(ns, &place.namespace)))
            && (self.containers.is_empty()
                || self.containers.iter().any(|c| is(c, &place.container)))
            && (self.cgroups.is_empty()
                || self.cgroups.iter().any(|c| {
                    place
                        .cgroup
                        .as_deref()
                        .is_some_and(|path| is_within(path, c))
                }))
    }

    /// The comms in the kernel's form.
    pub fn comm_keys(&self) -> impl Iterator<Item = &Comm> {
        self.comms.iter().map(|c| &c.key)
    }
}

impl Serialize for CommName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for CommName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(CommName::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fixtures::{add_watch, record};

    fn selection(pids: &[u32], comms: &[&str], uids: &[u32], failed_only: bool) -> Selection {
        Selection {
            pids: pids.to_vec(),
            comms: comms
                .iter()
                .map(|c| CommName::new((*c).to_owned()))
                .collect(),
            uids: uids.to_vec(),
            failed_only,
            ..Selection::default()
        }
    }

    #[test]
    fn pod_namespace_and_container_filters_need_a_known_place() {
        let place = Attribution {
            namespace: Some("kube-system".into()),
            pod: Some("coredns-1".into()),
            container: Some("coredns".into()),
            ..Attribution::default()
        };
        let any = Selection::default();
        assert!(any.matches_place(None) && any.matches_place(Some(&place)));
        let by = |pods: &[&str], namespaces: &[&str], containers: &[&str]| Selection {
            pods: pods.iter().map(|p| PodPattern::parse(p)).collect(),
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            containers: containers.iter().map(|c| (*c).to_owned()).collect(),
            ..Selection::default()
        };
        assert!(by(&["coredns-1"], &[], &[]).matches_place(Some(&place)));
        assert!(by(&["kube-system/coredns-1"], &[], &[]).matches_place(Some(&place)));
        assert!(!by(&["default/coredns-1"], &[], &[]).matches_place(Some(&place)));
        assert!(by(&["x", "coredns-1"], &["kube-system"], &["coredns"]).matches_place(Some(&place)));
        assert!(!by(&[], &["default"], &[]).matches_place(Some(&place)));
        assert!(!by(&[], &[], &["app"]).matches_place(Some(&place)));
        assert!(!by(&["coredns-1"], &[], &[]).matches_place(None));
        // As a recording's metadata keeps them.
        let json = serde_json::to_value(by(&["kube-system/coredns-1"], &["ns"], &["c"])).unwrap();
        assert_eq!(json["pods"], serde_json::json!(["kube-system/coredns-1"]));
        let back: Selection = serde_json::from_value(json).unwrap();
        assert_eq!(back.pods, [PodPattern::parse("kube-system/coredns-1")]);
    }

    #[test]
    fn each_list_narrows_and_an_empty_one_lets_everything_through() {
        let ok = record(&add_watch("kube-controller-manager", 1), b"/a");
        let failed = record(&add_watch("kubelet", -28), b"/b");
        let (ok, failed) = (Event::decode(&ok).unwrap(), Event::decode(&failed).unwrap());
        let everything = Selection::default();
        assert!(everything.matches(&ok) && everything.matches(&failed));
        let long_comm = selection(&[], &["kube-controller-manager-2"], &[], false);
        assert!(
            long_comm.matches(&ok),
            "compared on 15 bytes, as the kernel does"
        );
        assert!(!long_comm.matches(&failed));
        assert!(!selection(&[1], &[], &[], false).matches(&ok));
        assert!(selection(&[1, 4242], &[], &[], false).matches(&ok));
        assert!(!selection(&[], &[], &[0], false).matches(&ok));
        assert!(selection(&[], &[], &[1000], false).matches(&ok));
        let failed_only = selection(&[], &[], &[], true);
        assert!(!failed_only.matches(&ok) && failed_only.matches(&failed));
    }

    #[test]
    fn processes_are_matched_on_the_kernels_15_bytes_too() {
        let s = selection(&[], &["kube-controller-manager"], &[], false);
        assert!(s.matches_process(1, b"kube-controller", 0));
        assert!(!s.matches_process(1, b"kube-controlle", 0));
        assert!(s.comms[0].is_cut());
    }

    /// A recording's metadata carries the selection: the names as given,
    /// and no `uids` key when there are none (the format as before).
    #[test]
    fn serialized_with_the_names_as_given() {
        let s = selection(&[7], &["kube-controller-manager"], &[], true);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"pids":[7],"comms":["kube-controller-manager"],"failed_only":true}"#
        );
        assert_eq!(serde_json::from_str::<Selection>(&json).unwrap(), s);
    }
}
