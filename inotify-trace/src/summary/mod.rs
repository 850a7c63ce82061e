//! The session summary: who added how many watches, who failed and why.
//! `aggregate` counts (pure, fed one event at a time); `human` and the
//! `Serialize` impls render the result.
pub(crate) mod aggregate;
mod growth;
pub(crate) mod human;
mod process;

pub use process::ProcessSummary;

use std::time::SystemTime;

use serde::Serialize;

use inotify_trace_common::Comm;
use serde::Serializer;

use crate::{
    clock::serialize_rfc3339,
    errno::Errno,
    event::{comm_bytes, Kind},
    limits::Limits,
};

/// Everything the summary says, ready to render.
#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub duration_s: f64,
    pub events: u64,
    pub lost: u64,
    /// Sorted by the most watches each held (at the start, or added since),
    /// then by new watches and calls; cut to `--top`.
    pub processes: Vec<ProcessSummary>,
    /// Processes left out by `--top`.
    pub processes_omitted: usize,
    /// ENOSPC first, EMFILE second, then by count.
    pub failures: Vec<FailureGroup>,
    pub users: Vec<UserSummary>,
    /// Per pod (from each process's cgroup), by new watches.
    pub pods: Vec<PodSummary>,
    pub limits: LimitsAtStartAndEnd,
    /// Usage snapshots taken when calls failed for a limit, in order.
    pub diagnoses: Vec<crate::diagnosis::Diagnosis>,
    /// The recording host's offset from UTC, for local times in the human
    /// rendering (JSON times are UTC).
    #[serde(skip)]
    pub utc_offset_s: i32,
    /// Whether the rows say what each process holds now (a live session,
    /// or a recording that kept it); else the human table shows `?`.
    #[serde(skip)]
    pub held_known: bool,
    /// Whether the rows say what each process held when the session
    /// attached (likewise).
    #[serde(skip)]
    pub start_known: bool,
}

impl Summary {
    /// Marks what the listed processes hold at the end.
    pub fn hold(&mut self, held_now: &[crate::held::HeldNow]) {
        self.held_known = true;
        let by_pid: std::collections::HashMap<u32, &crate::held::HeldNow> =
            held_now.iter().map(|h| (h.pid, h)).collect();
        for p in &mut self.processes {
            if let Some(h) = by_pid.get(&p.pid) {
                p.set_held(h);
            }
        }
    }

    /// Marks the rows whose watches grew without bound in a session that
    /// started at boot-time `start_ns` (after [`Self::hold`]: a leak's
    /// watches are all still held).
    pub fn find_leaks(&mut self, start_ns: u64) {
        let duration_ns = (self.duration_s * 1e9) as u64;
        for p in &mut self.processes {
            p.judge_growth(start_ns, duration_ns);
        }
    }
}

/// Every failure of one call with one errno.
#[derive(Debug, Serialize)]
pub struct FailureGroup {
    pub call: Kind,
    pub errno: Errno,
    pub count: u64,
    pub processes: Vec<ProcessFailures>,
}

#[derive(Debug, Serialize)]
pub struct ProcessFailures {
    pub pid: u32,
    /// The kernel's 16 bytes; JSON shows the text up to the NUL (lossy).
    #[serde(serialize_with = "serialize_comm")]
    pub comm: Comm,
    /// Beside `comm` when it is not UTF-8: its exact bytes, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm_base64: Option<String>,
    pub uid: u32,
    pub count: u64,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub first: SystemTime,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last: SystemTime,
    /// Up to three distinct paths (add_watch only), as text (invalid UTF-8
    /// replaced).
    pub examples: Vec<String>,
    /// Beside `examples` when one of them is not UTF-8: each one's exact
    /// bytes in base64, in the same order (`null` for those that are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub examples_base64: Option<Vec<Option<String>>>,
    /// The exact bytes, for the text view (escaped there).
    #[serde(skip)]
    pub example_bytes: Vec<Box<[u8]>>,
}

impl ProcessFailures {
    /// The JSON forms of `example_bytes`: the text, and base64 beside it
    /// when any is not UTF-8.
    pub fn examples_from(bytes: &[Box<[u8]>]) -> (Vec<String>, Option<Vec<Option<String>>>) {
        use crate::exact_text::base64_if_lossy;
        let text = bytes
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let lossy = bytes.iter().any(|p| std::str::from_utf8(p).is_err());
        let exact = lossy.then(|| bytes.iter().map(|p| base64_if_lossy(p)).collect());
        (text, exact)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    pub uid: u32,
    pub watches_added: u64,
    /// Of those, the watches added to an instance whose creation was not
    /// traced (made before the session, or inherited): counted for the
    /// caller's effective uid, which may not be the one the kernel charged.
    pub watches_charged_to_caller: u64,
    pub watches_removed: u64,
    pub instances_created: u64,
    pub instance_failures: u64,
    pub add_watch_failures: u64,
    /// The most watches it held at once as the session saw them: new
    /// watches less removals, at their highest (what the timeline plots).
    pub peak_watches: u64,
    /// New watches less removals so far (below 0 when it removed watches
    /// made before the session).
    #[serde(skip)]
    pub(crate) held_seen: i64,
}

impl UserSummary {
    fn added(&mut self) {
        self.watches_added += 1;
        self.held_seen += 1;
        self.peak_watches = self.peak_watches.max(self.held_seen.max(0) as u64);
    }

    fn removed(&mut self) {
        self.watches_removed += 1;
        self.held_seen -= 1;
    }
}

/// One pod's share of the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodSummary {
    #[serde(flatten)]
    pub pod: crate::pods::PodId,
    pub processes: u64,
    /// inotify_add_watch calls.
    pub calls: u64,
    pub new_watches: u64,
    /// Failed add_watch and init calls.
    pub failures: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct LimitsAtStartAndEnd {
    pub start: Limits,
    pub end: Limits,
}

/// A comm as JSON text: up to its NUL, invalid UTF-8 replaced (the human
/// rendering escapes the exact bytes instead).
fn serialize_comm<S: Serializer>(comm: &Comm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(comm_bytes(comm)))
}
