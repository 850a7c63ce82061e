//! Which calls (or, for `usage`, whose instances) to show: one type, built
//! once from the flags, read by the kernel filters, the userspace filter
//! and a recording's metadata alike.
//!
//! Meaning, wherever it is applied: a call passes when its pid is any of
//! the listed pids (if any are listed), and its comm any of the listed
//! comms, and so on.
use inotify_trace_common::{comm_key, Comm};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::Event;

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
        }
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
