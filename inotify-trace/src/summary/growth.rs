//! Watch leaks within one session: a process whose new watches keep coming
//! at a steady pace to the end, none removed and none gone, "grows without
//! bound". A recursive watcher's start-up (a burst, then nothing) is not
//! one, nor a process whose watches went away (deleted directories, closed
//! instances) or that removes them. The rule, in numbers, is in
//! [`Growth::leak`]; docs/json.md says it too.
use serde::Serialize;

/// When a process's new watches came: enough to tell steady growth over a
/// session from a burst, in 24 bytes per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// Boot-time ns of its first and latest new watch (0: none yet).
    first_ns: u64,
    last_ns: u64,
    /// The longest time between two of its new watches.
    longest_pause_ns: u64,
}

/// A leak found: the pace of new watches, and how long it lasted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Leak {
    /// New watches per minute, from its first new watch to its latest.
    pub new_per_minute: f64,
    /// Seconds from its first new watch to its latest.
    pub over_s: f64,
}

/// Fewer new watches than this are never called a leak.
const MIN_NEW: u64 = 10;

/// What the session knows of a process at its end, for [`Growth::leak`].
pub struct AtEnd {
    pub new_watches: u64,
    pub removed: u64,
    /// Watches it held at the end (`None`: not known, or none).
    pub held: Option<u64>,
}

impl Growth {
    /// A new watch at boot-time `ns`.
    pub fn saw(&mut self, ns: u64) {
        if self.first_ns == 0 {
            self.first_ns = ns;
        } else {
            self.longest_pause_ns = self.longest_pause_ns.max(ns.saturating_sub(self.last_ns));
        }
        self.last_ns = ns;
    }

    /// Whether this is a leak in a session from `start_ns` lasting
    /// `duration_ns`: at least [`MIN_NEW`] new watches, none removed, every
    /// one still held at the end; coming over at least half the session and
    /// still in its last quarter; and no pause longer than a quarter of
    /// that span (steady, not two bursts).
    pub fn leak(&self, at_end: &AtEnd, start_ns: u64, duration_ns: u64) -> Option<Leak> {
        let span = self.last_ns.saturating_sub(self.first_ns);
        let end_ns = start_ns.saturating_add(duration_ns);
        let leaking = at_end.new_watches >= MIN_NEW
            && at_end.removed == 0
            && at_end.held.is_some_and(|held| held >= at_end.new_watches)
            && duration_ns > 0
            && span >= duration_ns / 2
            && self.last_ns >= end_ns.saturating_sub(duration_ns / 4)
            && self.longest_pause_ns <= span / 4;
        leaking.then(|| {
            let over_s = span as f64 / 1e9;
            Leak {
                // One less than the count: the first watch starts the span.
                new_per_minute: (at_end.new_watches - 1) as f64 / over_s * 60.0,
                over_s,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// `n` new watches from `from` s to `to` s, evenly.
    fn growth(n: u64, from: f64, to: f64) -> Growth {
        let mut g = Growth::default();
        for i in 0..n {
            let t = from + (to - from) * i as f64 / (n - 1) as f64;
            g.saw(100 * S + (t * 1e9) as u64);
        }
        g
    }

    fn kept(n: u64) -> AtEnd {
        AtEnd {
            new_watches: n,
            removed: 0,
            held: Some(n),
        }
    }

    #[test]
    fn steady_new_watches_to_the_end_are_a_leak_with_their_pace() {
        let leak = growth(61, 0.5, 60.0)
            .leak(&kept(61), 100 * S, 60 * S)
            .unwrap();
        assert!((leak.over_s - 59.5).abs() < 1e-6, "{leak:?}");
        assert!(
            (leak.new_per_minute - 60.0 / 59.5 * 60.0).abs() < 1e-6,
            "{leak:?}"
        );
    }

    #[test]
    fn a_burst_a_pause_removals_or_watches_gone_are_not() {
        let session = (100 * S, 60 * S);
        let leak = |g: Growth, end: AtEnd| g.leak(&end, session.0, session.1);
        // A recursive watch at start-up.
        assert_eq!(leak(growth(5000, 0.0, 0.8), kept(5000)), None);
        // Steady, but it stopped half-way.
        assert_eq!(leak(growth(100, 0.0, 30.0), kept(100)), None);
        // Two bursts, at the start and the end.
        let mut two = growth(50, 0.0, 1.0);
        for i in 0..50 {
            two.saw(100 * S + 59 * S + i * 1000);
        }
        assert_eq!(leak(two, kept(100)), None);
        // Steady, but it removes watches, or some went away, or not known.
        let steady = growth(100, 0.0, 60.0);
        let removing = AtEnd {
            removed: 3,
            ..kept(100)
        };
        assert_eq!(leak(steady, removing), None);
        let gone = AtEnd {
            held: Some(60),
            ..kept(100)
        };
        assert_eq!(leak(steady, gone), None);
        let unknown = AtEnd {
            held: None,
            ..kept(100)
        };
        assert_eq!(leak(steady, unknown), None);
        // Too few to tell.
        assert_eq!(leak(growth(9, 0.0, 60.0), kept(9)), None);
        assert!(leak(steady, kept(100)).is_some());
    }
}
