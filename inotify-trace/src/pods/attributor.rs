//! Cgroup ids (and processes) to attributions, for a session: resolved
//! from the machine on first sight (live), or learned from a recording's
//! frames (report), and told to the outputs once each.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{
    cgroupfs::{CgroupFs, Unresolved},
    names::Names,
    proc_cgroup::ProcCgroup,
    Attribution, CgroupAttribution,
};

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
        let Some(cgroups) = ProcCgroup::read(&self.proc_root, pid) else {
            return Attribution {
                process_gone: self.cgroupfs.is_none(),
                ..Attribution::default()
            };
        };
        cgroups.v1().map_or_else(Attribution::default, |path| {
            Attribution::of_path(path, &mut self.names)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
