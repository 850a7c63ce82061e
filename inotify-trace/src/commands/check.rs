//! `inotify-trace check watches|instances`: one line on stdout and the exit
//! status node-problem-detector (or, with `--nagios`, Nagios) expects. The
//! budgets come from the agent's state file when one is given (no /proc
//! scan, no privileges: what a plugin run every 30 s should cost), else
//! from a /proc snapshot; recent failures only from the agent, which traces.
use std::{io::Write as _, process::ExitCode};

use anyhow::Result;
use caps::Capability;

use crate::{
    agent::state::{self, unix_seconds, Budget},
    check::{verdict, Findings, Level},
    preflight::missing_of,
    selection::Selection,
    settings::CheckSettings,
    stdout,
    usage::{snapshot, Detail, Source},
};

pub fn check(settings: CheckSettings) -> Result<ExitCode> {
    let now = unix_seconds(std::time::SystemTime::now());
    let since = humantime::format_duration(settings.since).to_string();
    let mut unknown_because = None;
    // Said in the one line: escaped, so a path cannot break it.
    let shown = |path: &std::path::Path| {
        use std::os::unix::ffi::OsStrExt as _;
        crate::escape::Escaped(path.as_os_str().as_bytes()).to_string()
    };
    let (budgets, failures) = match &settings.agent_state {
        Some(path) => match state::read(path) {
            Ok(s) if s.stale(now) => {
                unknown_because = Some(format!(
                    "--agent-state {} is stale (written {:.0} s ago: is the agent running?)",
                    shown(path),
                    now - s.written_at
                ));
                (s.budgets, None)
            }
            Ok(s) => {
                let within = now - settings.since.as_secs_f64();
                let recent = s
                    .failures
                    .into_iter()
                    .filter(|f| f.last_at >= within)
                    .collect::<Vec<_>>();
                (s.budgets, Some(recent))
            }
            Err(err) => {
                unknown_because = Some(format!(
                    "--agent-state {}: {}",
                    shown(path),
                    crate::words::one_line(&format!("{err:#}"))
                ));
                (Vec::new(), None)
            }
        },
        None => {
            let missing =
                missing_of(&[Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH]);
            if !missing.is_empty() {
                unknown_because = Some(format!(
                    "{} missing: only this user's processes were read (run it as root, or give --agent-state)",
                    missing.join(" and ")
                ));
            }
            let source = Source {
                detail: Detail::Counts,
                ..Source::live(None)
            };
            let usage = snapshot(&source, &Selection::default(), 0);
            (Budget::all_of(&usage), None)
        }
    };
    let failures = failures.as_ref().map(|f| f.iter().collect());
    let findings = Findings {
        limit: settings.limit,
        budgets: &budgets,
        failures,
        since: &since,
        unknown_because,
        warn: settings.warn,
        problem: settings.problem,
    };
    let (level, line) = verdict(&findings);
    let mut out = stdout::buffered();
    // A plugin's output that cannot be written is an unknown verdict.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return Ok(ExitCode::from(Level::Unknown.exit_status(settings.nagios)));
    }
    Ok(ExitCode::from(level.exit_status(settings.nagios)))
}
