//! What trace windows saw, as counters: an `Output` of the window's
//! pipeline counts each call and failure as it comes, so a failure shows in
//! the next scrape, not at the window's end. Counters live as long as the
//! agent (Prometheus counters must not go down); their label sets are
//! bounded (see [`MAX_SERIES`]).
use std::{
    collections::HashMap,
    io,
    sync::{Arc, Mutex},
};

use crate::{
    errno::Errno,
    event::{Event, Kind},
    output::Output,
    pods::Attribution,
};

/// Failure series kept at most (syscall, errno, pod, container): past it,
/// new ones count under an empty pod and container, so a storm of pods
/// cannot grow the agent.
pub const MAX_SERIES: usize = 1000;

/// `(syscall, result)`.
pub type CallKey = (&'static str, &'static str);
/// `(syscall, errno, namespace, pod, container)`.
pub type FailureKey = (&'static str, &'static str, String, String, String);

#[derive(Debug, Default)]
pub struct Counts {
    pub calls: HashMap<CallKey, u64>,
    pub failures: HashMap<FailureKey, u64>,
    pub lost: u64,
}

/// The agent's counters, shared between the windows and `/metrics`.
pub type Counters = Arc<Mutex<Counts>>;

/// The syscall's name as the metrics label it (`inotify_init1` apart from
/// `inotify_init`).
fn syscall(event: &Event<'_>) -> &'static str {
    match event.kind {
        Kind::AddWatch => "inotify_add_watch",
        Kind::RmWatch => "inotify_rm_watch",
        Kind::Init if event.init1_flags().is_some() => "inotify_init1",
        Kind::Init => "inotify_init",
    }
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
            let name = |field: fn(&Attribution) -> &Option<String>| {
                place.and_then(|p| field(p).clone()).unwrap_or_default()
            };
            let mut key = (
                call,
                errno.name(),
                name(|p| &p.namespace),
                name(|p| &p.pod),
                name(|p| &p.container),
            );
            if counts.failures.len() >= MAX_SERIES && !counts.failures.contains_key(&key) {
                (key.2, key.3, key.4) = (String::new(), String::new(), String::new());
            }
            *counts.failures.entry(key).or_default() += 1;
        }
        Ok(())
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        let mut counts = self.0.lock().expect("no panics hold the lock");
        counts.lost = counts.lost.saturating_add(count);
        Ok(())
    }
}
