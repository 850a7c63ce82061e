//! Choosing events in userspace, for `report` (a live session filters in the
//! kernel instead, with the same meaning: a call passes when it matches any
//! listed pid, if any are given, and any listed comm, and so on).
use inotify_trace_common::{comm_key, Comm};

use crate::event::Event;

#[derive(Debug, Default)]
pub struct EventFilter {
    pub pids: Vec<u32>,
    /// Kernel-form comms (15 bytes, NUL-padded), as the kernel compares them.
    pub comms: Vec<Comm>,
    pub uids: Vec<u32>,
    pub failed_only: bool,
}

impl EventFilter {
    pub fn new(pids: &[u32], comms: &[String], uids: &[u32], failed_only: bool) -> Self {
        EventFilter {
            pids: pids.to_vec(),
            comms: comms.iter().map(|c| comm_key(c.as_bytes())).collect(),
            uids: uids.to_vec(),
            failed_only,
        }
    }

    pub fn matches(&self, event: &Event<'_>) -> bool {
        let h = &event.header;
        (self.pids.is_empty() || self.pids.contains(&h.pid))
            && (self.comms.is_empty() || self.comms.contains(&h.comm))
            && (self.uids.is_empty() || self.uids.contains(&h.uid))
            && (!self.failed_only || h.ret < 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fixtures::{add_watch, record};

    #[test]
    fn each_list_narrows_and_an_empty_one_lets_everything_through() {
        let ok = record(&add_watch("kube-controller-manager", 1), b"/a");
        let failed = record(&add_watch("kubelet", -28), b"/b");
        let (ok, failed) = (Event::decode(&ok).unwrap(), Event::decode(&failed).unwrap());
        let everything = EventFilter::default();
        assert!(everything.matches(&ok) && everything.matches(&failed));
        let long_comm = EventFilter::new(&[], &["kube-controller-manager-2".into()], &[], false);
        assert!(
            long_comm.matches(&ok),
            "compared on 15 bytes, as the kernel does"
        );
        assert!(!long_comm.matches(&failed));
        assert!(!EventFilter::new(&[1], &[], &[], false).matches(&ok));
        assert!(EventFilter::new(&[1, 4242], &[], &[], false).matches(&ok));
        assert!(!EventFilter::new(&[], &[], &[0], false).matches(&ok));
        assert!(EventFilter::new(&[], &[], &[1000], false).matches(&ok));
        let failed_only = EventFilter::new(&[], &[], &[], true);
        assert!(!failed_only.matches(&ok) && failed_only.matches(&failed));
    }
}
