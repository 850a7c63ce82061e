//! What trace windows saw, as counters: an `Output` of the window's
//! pipeline counts each call and failure as it comes, so a failure shows in
//! the next scrape, not at the window's end. Counters live as long as the
//! agent (Prometheus counters must not go down); their label sets are
//! bounded (see [`MAX_SERIES`]).
use std::{
    collections::{HashMap, HashSet},
    io,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use inotify_trace_common::Syscall;

use crate::{errno::Errno, event::Event, output::Output, pods::Attribution};

/// Failure series kept at most (syscall, errno, pod, container): past it,
/// new ones count under an empty pod and container, so a storm of pods
/// cannot grow the agent.
pub const MAX_SERIES: usize = 1000;
/// A deleted pod's failure series goes this long after its last failure.
pub const POD_SERIES_EXPIRE: Duration = Duration::from_secs(3600);

/// `(syscall, result)`.
pub type CallKey = (&'static str, &'static str);
/// `(syscall, errno, namespace, pod, container)`.
pub type FailureKey = (&'static str, &'static str, String, String, String);

#[derive(Debug, Default)]
pub struct Counts {
    pub calls: HashMap<CallKey, u64>,
    /// Each series' count, and when it last rose.
    pub failures: HashMap<FailureKey, (u64, Instant)>,
    pub lost: u64,
}

impl Counts {
    /// Drops the failure series of pods no longer on the node (not in
    /// `pods`, as (namespace, pod)) that have not risen for an hour:
    /// Prometheus sees the series end, and deleted pods do not pile up.
    pub fn expire(&mut self, pods: &HashSet<(String, String)>, now: Instant) {
        self.failures
            .retain(|(_, _, namespace, pod, _), (_, last)| {
                pod.is_empty()
                    || pods.contains(&(namespace.clone(), pod.clone()))
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

/// Counts into the shared counters.
pub struct CountingOutput(pub Counters);

impl Output for CountingOutput {
    fn event(&mut self, event: &Event<'_>, place: Option<&Attribution>) -> io::Result<()> {
        let errno: Option<Errno> = event.errno();
        let call = syscall(event);
        let mut counts = self.0.lock().expect("no panics hold the lock");
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
            let mut key = (call, errno.name(), namespace, pod, container);
            if counts.failures.len() >= MAX_SERIES && !counts.failures.contains_key(&key) {
                (key.2, key.3, key.4) = (String::new(), String::new(), String::new());
            }
            let series = counts.failures.entry(key).or_insert((0, Instant::now()));
            (series.0, series.1) = (series.0 + 1, Instant::now());
        }
        Ok(())
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        let mut counts = self.0.lock().expect("no panics hold the lock");
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
        let key = |pod: &str| {
            (
                "inotify_add_watch",
                "ENOSPC",
                "shop".to_owned(),
                pod.to_owned(),
                String::new(),
            )
        };
        counts.failures.insert(key("gone"), (2, start));
        counts.failures.insert(key("here"), (1, start));
        counts.failures.insert(key(""), (5, start));
        let on_node: HashSet<(String, String)> = [("shop".to_owned(), "here".to_owned())].into();
        counts.expire(&on_node, start + Duration::from_secs(60));
        assert_eq!(counts.failures.len(), 3, "within the hour all stay");
        counts.expire(&on_node, start + POD_SERIES_EXPIRE + Duration::from_secs(1));
        let mut left: Vec<String> = counts.failures.keys().map(|k| k.3.clone()).collect();
        left.sort();
        assert_eq!(left, ["", "here"]);
    }
}
