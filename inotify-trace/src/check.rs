//! `inotify-trace check`: one verdict on one limit (watches or instances)
//! over every (uid, scope) budget on the machine, in the line and exit
//! status a monitoring plugin gives: node-problem-detector's custom plugins
//! (0 ok, 1 a problem, 2 unknown) or, with `--nagios`, Nagios's (0 ok, 1
//! warning, 2 critical, 3 unknown). Pure: the budgets and failures come in,
//! the line and the status go out.
use std::fmt::Write as _;

use crate::{agent::state::Budget, agent::state::RecentFailure, limits::Limit};

/// How bad, in order: the worst of what was found is the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Unknown,
    Problem,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Unknown => "unknown",
            Level::Problem => "problem",
        }
    }

    /// The exit status: node-problem-detector's (a warning is still ok for
    /// it: its conditions are true or false) or Nagios's.
    pub fn exit_status(self, nagios: bool) -> u8 {
        match (self, nagios) {
            (Level::Ok, _) => 0,
            (Level::Warning, false) => 0,
            (Level::Warning, true) => 1,
            (Level::Problem, false) => 1,
            (Level::Problem, true) => 2,
            (Level::Unknown, false) => 2,
            (Level::Unknown, true) => 3,
        }
    }
}

/// What the check is given.
pub struct Findings<'a> {
    pub limit: Limit,
    pub budgets: &'a [Budget],
    /// Failures within the window, when the agent's state was read; None:
    /// not known.
    pub failures: Option<Vec<&'a RecentFailure>>,
    /// The window, for the words (`10m`).
    pub since: &'a str,
    /// A reason the answer may be incomplete (unreadable state, missing
    /// privileges): the verdict is at least unknown.
    pub unknown_because: Option<String>,
    /// Fractions of a cap (0-1) at which a budget is a warning and a problem.
    pub warn: f64,
    pub problem: f64,
}

/// The verdict and its one line.
pub fn verdict(f: &Findings<'_>) -> (Level, String) {
    let used = |b: &Budget| match f.limit {
        Limit::Watches => (b.watches, b.max_watches),
        Limit::Instances => (b.instances, b.max_instances),
    };
    // The fullest budget with a known cap (an unset namespace cap is none).
    let fullest = f
        .budgets
        .iter()
        .filter_map(|b| {
            let (n, max) = used(b);
            let max = max.filter(|m| *m > 0 && *m < crate::limits::NO_CAP)?;
            Some((n as f64 / max as f64, b, n, max))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let mut level = Level::Ok;
    // Said in this order, joined by "; ": a failure, the fullest budget, no
    // failure, why the answer is unknown.
    let mut parts: Vec<String> = Vec::new();
    let errno = match f.limit {
        Limit::Watches => "ENOSPC",
        Limit::Instances => "EMFILE",
    };
    let failed: Vec<&&RecentFailure> = f
        .failures
        .iter()
        .flatten()
        .filter(|r| r.errno == errno)
        .collect();
    if let Some(first) = failed.first() {
        level = Level::Problem;
        let times = match failed.iter().map(|r| r.count).sum::<u64>() {
            1 => String::new(),
            n => format!(" x{n}"),
        };
        parts.push(format!(
            "{errno}{times} from {} in the last {} (uid {}, {})",
            first.syscall,
            f.since,
            first.uid,
            scope(&first.userns)
        ));
    }
    match fullest {
        Some((share, b, n, max)) => {
            let budget_level = match share {
                s if s >= f.problem => Level::Problem,
                s if s >= f.warn => Level::Warning,
                _ => Level::Ok,
            };
            level = level.max(budget_level);
            let mut said = format!(
                "uid {} ({}) holds {} of {} {} ({})",
                b.uid,
                scope(&b.userns),
                n,
                max,
                f.limit.noun(),
                crate::words::whole_percent(share * 100.0)
            );
            if f.budgets.len() > 1 {
                let _ = write!(said, ", the fullest of {} budgets", f.budgets.len());
            }
            parts.push(said);
        }
        // Nothing known is not "nothing held".
        None if f.unknown_because.is_some() => {}
        None if f.budgets.is_empty() => {
            parts.push(format!("no process holds inotify {}", f.limit.noun()))
        }
        None => parts.push(format!(
            "no budget has a known cap on its {}",
            f.limit.noun()
        )),
    }
    if f.failures.as_ref().is_some() && failed.is_empty() {
        parts.push(format!("no {errno} in the last {}", f.since));
    }
    if let Some(why) = &f.unknown_because {
        level = level.max(Level::Unknown);
        parts.push(why.clone());
    }
    (
        level,
        format!(
            "{}: inotify {}: {}",
            level.word(),
            f.limit.noun(),
            parts.join("; ")
        ),
    )
}

/// `host`, or `user namespace N`.
fn scope(userns: &str) -> String {
    match userns {
        "host" => "host".to_owned(),
        ns => format!("user namespace {ns}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(uid: u32, userns: &str, watches: u64, max: Option<u64>) -> Budget {
        Budget {
            uid,
            userns: userns.into(),
            watches,
            instances: 1,
            max_watches: max,
            max_instances: Some(128),
        }
    }

    fn findings<'a>(
        budgets: &'a [Budget],
        failures: Option<Vec<&'a RecentFailure>>,
    ) -> Findings<'a> {
        Findings {
            limit: Limit::Watches,
            budgets,
            failures,
            since: "10m",
            unknown_because: None,
            warn: 0.8,
            problem: 0.95,
        }
    }

    #[test]
    fn the_fullest_budget_decides_and_is_named() {
        let budgets = [
            budget(0, "host", 100, Some(1000)),
            budget(1000, "4026532177", 9, Some(10)),
            // No cap of its own: not a budget that can run out here.
            budget(0, "4026532178", 50, Some(crate::limits::NO_CAP)),
        ];
        let (level, line) = verdict(&findings(&budgets, None));
        assert_eq!(level, Level::Warning);
        assert_eq!(
            line,
            "warning: inotify watches: uid 1000 (user namespace 4026532177) holds 9 of 10 watches (90%), the fullest of 3 budgets"
        );
        assert_eq!((level.exit_status(false), level.exit_status(true)), (0, 1));
        let (level, line) = verdict(&findings(&budgets[..1], Some(Vec::new())));
        assert_eq!(
            (level, line.as_str()),
            (
                Level::Ok,
                "ok: inotify watches: uid 0 (host) holds 100 of 1000 watches (10%); no ENOSPC in the last 10m"
            )
        );
        let full = [budget(0, "host", 999, Some(1000))];
        let (level, line) = verdict(&findings(&full, None));
        assert_eq!(level, Level::Problem, "{line}");
        assert_eq!((level.exit_status(false), level.exit_status(true)), (1, 2));
    }

    #[test]
    fn a_recent_failure_is_a_problem_whatever_the_count_now() {
        let budgets = [budget(0, "host", 100, Some(1000))];
        let failure = RecentFailure::enospc(3, 0.0);
        let other = RecentFailure {
            errno: "EMFILE".into(),
            syscall: "inotify_init1".into(),
            ..failure.clone()
        };
        let (level, line) = verdict(&findings(&budgets, Some(vec![&failure, &other])));
        assert_eq!(level, Level::Problem);
        assert_eq!(
            line,
            "problem: inotify watches: ENOSPC x3 from inotify_add_watch in the last 10m (uid 0, host); uid 0 (host) holds 100 of 1000 watches (10%)"
        );
    }

    #[test]
    fn what_cannot_be_known_is_unknown_unless_a_problem_is_certain() {
        let budgets = [budget(0, "host", 100, Some(1000))];
        let mut f = findings(&budgets, None);
        f.unknown_because = Some("CAP_SYS_PTRACE missing".into());
        let (level, line) = verdict(&f);
        assert_eq!(level, Level::Unknown, "{line}");
        assert!(line.ends_with("; CAP_SYS_PTRACE missing"), "{line}");
        assert_eq!((level.exit_status(false), level.exit_status(true)), (2, 3));
        let full = [budget(0, "host", 1000, Some(1000))];
        let mut f = findings(&full, None);
        f.unknown_because = Some("CAP_SYS_PTRACE missing".into());
        assert_eq!(verdict(&f).0, Level::Problem);
    }
}
