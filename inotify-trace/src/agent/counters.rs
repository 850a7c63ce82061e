//! What trace windows saw, as counters: an `Output` of the window's
//! pipeline counts each call and failure as it comes, so a failure shows in
//! the next scrape, not at the window's end. Counters live as long as the
//! agent (Prometheus counters must not go down); their label sets are
//! bounded (see [`MAX_SERIES`]).
use std::{
    collections::{HashMap, HashSet},
    io,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use inotify_trace_common::Syscall;

use super::{
    metrics::userns_label,
    state::{unix_seconds, RecentFailure},
};

use crate::{
    diagnosis::full_level, errno::Errno, event::Event, limits::Limit, output::Output,
    pods::Attribution,
};

/// Failure series kept at most (syscall, errno, pod, container): past it,
/// new ones count under an empty pod and container, so a storm of pods
/// cannot grow the agent.
pub const MAX_SERIES: usize = 1000;
/// A deleted pod's failure series goes this long after its last failure.
pub const POD_SERIES_EXPIRE: Duration = Duration::from_secs(3600);

/// `(syscall, result)`.
pub type CallKey = (&'static str, &'static str);

/// One failure series: the call, its errno, the caller's pod, and the
/// budget it was charged to (`uid` and `userns` as the usage gauges label
/// them, so the two can be joined).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FailureKey {
    pub syscall: &'static str,
    pub errno: &'static str,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub uid: u32,
    /// `host`, or the user namespace's inode number.
    pub userns: String,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub calls: HashMap<CallKey, u64>,
    /// Each series' count, and when it last rose.
    pub failures: HashMap<FailureKey, (u64, Instant)>,
    /// Per (syscall, errno, uid, userns): how many, and when last (for the
    /// state file `inotify-trace check` reads). Bounded as the series are.
    pub recent: HashMap<RecentKey, (u64, SystemTime)>,
    pub lost: u64,
}

/// `(syscall, errno, uid, userns)`.
pub type RecentKey = (&'static str, &'static str, u32, String);

impl Counts {
    /// The recent failures, as the state file says them.
    pub fn recent_failures(&self) -> Vec<RecentFailure> {
        let mut failures: Vec<RecentFailure> = self
            .recent
            .iter()
            .map(
                |((syscall, errno, uid, userns), (count, last))| RecentFailure {
                    syscall: (*syscall).to_owned(),
                    errno: (*errno).to_owned(),
                    uid: *uid,
                    userns: userns.clone(),
                    count: *count,
                    last_at: unix_seconds(*last),
                },
            )
            .collect();
        failures.sort_by(|a, b| b.last_at.total_cmp(&a.last_at));
        failures
    }

    /// Drops the failure series of pods no longer on the node (not in
    /// `pods`, as (namespace, pod)) that have not risen for an hour:
    /// Prometheus sees the series end, and deleted pods do not pile up.
    pub fn expire(&mut self, pods: &HashSet<(String, String)>, now: Instant) {
        self.failures.retain(|key, (_, last)| {
            key.pod.is_empty()
                || pods.contains(&(key.namespace.clone(), key.pod.clone()))
                || now.duration_since(*last) < POD_SERIES_EXPIRE
        });
    }
}

/// The agent's counters, shared between the windows and `/metrics`.
pub type Counters = Arc<Mutex<Counts>>;

/// The syscall's name as the metrics label it (`inotify_init1` apart from
/// `inotify_init`).
fn syscall(event: &Event<'_>) -> &'static str {
    Syscall::of_record(event.kind, event.header.flags).name()
}

/// The budget a failed call was charged to, as `(uid, userns)` labels: the
/// level of the kernel's count that was full (an ancestor's, when an outer
/// namespace ran out), else the caller's effective uid in its own
/// namespace. `own_user_ns` is the agent's, which the gauges call `host`.
pub fn budget_of(event: &Event<'_>, errno: Errno, own_user_ns: Option<u64>) -> (u32, String) {
    let levels: Vec<_> = event.charge().collect();
    let full = Limit::hit_by(event.kind, errno).and_then(|limit| full_level(&levels, limit));
    if let Some(k) = full {
        // The last level of an uncut charge is the initial namespace's.
        let host = k + 1 == levels.len() && !event.charge_cut();
        let level = &levels[k];
        let user_ns = (!host).then_some(u64::from(level.user_ns));
        return (level.uid, userns_label(user_ns));
    }
    let user_ns = event.user_ns().filter(|ns| Some(*ns) != own_user_ns);
    (event.charged_uid(), userns_label(user_ns))
}

/// Counts into the shared counters.
pub struct CountingOutput {
    counters: Counters,
    own_user_ns: Option<u64>,
}

impl CountingOutput {
    pub fn new(counters: Counters) -> CountingOutput {
        CountingOutput {
            counters,
            own_user_ns: crate::usage::own_user_ns(),
        }
    }
}

impl Output for CountingOutput {
    fn event(&mut self, event: &Event<'_>, place: Option<&Attribution>) -> io::Result<()> {
        let errno: Option<Errno> = event.errno();
        let call = syscall(event);
        let mut counts = self.counters.lock().expect("no panics hold the lock");
        *counts
            .calls
            .entry((call, errno.map_or("ok", |e| e.name())))
            .or_default() += 1;
        if let Some(errno) = errno {
            // The pod by the labels its gauges have (an unnamed one by uid).
            let (namespace, pod) = place
                .and_then(Attribution::pod_id)
                .map(|pod| pod.metric_labels())
                .unwrap_or_default();
            let container = place.and_then(|p| p.container.clone()).unwrap_or_default();
            let (uid, userns) = budget_of(event, errno, self.own_user_ns);
            let recent_key = (call, errno.name(), uid, userns.clone());
            if counts.recent.len() >= MAX_SERIES && !counts.recent.contains_key(&recent_key) {
                // The budget that failed longest ago makes room.
                let oldest = counts
                    .recent
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    counts.recent.remove(&oldest);
                }
            }
            let recent = counts
                .recent
                .entry(recent_key)
                .or_insert((0, SystemTime::now()));
            (recent.0, recent.1) = (recent.0 + 1, SystemTime::now());
            let mut key = FailureKey {
                syscall: call,
                errno: errno.name(),
                namespace,
                pod,
                container,
                uid,
                userns,
            };
            if counts.failures.len() >= MAX_SERIES && !counts.failures.contains_key(&key) {
                (key.namespace, key.pod, key.container) =
                    (String::new(), String::new(), String::new());
            }
            let series = counts.failures.entry(key).or_insert((0, Instant::now()));
            (series.0, series.1) = (series.0 + 1, Instant::now());
        }
        Ok(())
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        let mut counts = self.counters.lock().expect("no panics hold the lock");
        counts.lost = counts.lost.saturating_add(count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_pods_failure_series_expires_after_an_hour() {
        let mut counts = Counts::default();
        let start = Instant::now();
        let key = |pod: &str| FailureKey {
            syscall: "inotify_add_watch",
            errno: "ENOSPC",
            namespace: "shop".to_owned(),
            pod: pod.to_owned(),
            container: String::new(),
            uid: 0,
            userns: "host".to_owned(),
        };
        counts.failures.insert(key("gone"), (2, start));
        counts.failures.insert(key("here"), (1, start));
        counts.failures.insert(key(""), (5, start));
        let on_node: HashSet<(String, String)> = [("shop".to_owned(), "here".to_owned())].into();
        counts.expire(&on_node, start + Duration::from_secs(60));
        assert_eq!(counts.failures.len(), 3, "within the hour all stay");
        counts.expire(&on_node, start + POD_SERIES_EXPIRE + Duration::from_secs(1));
        let mut left: Vec<String> = counts.failures.keys().map(|k| k.pod.clone()).collect();
        left.sort();
        assert_eq!(left, ["", "here"]);
    }
}
