//! `inotify-trace usage [--paths] [--json] [filters]`.
use std::{io::Write, process::ExitCode};

use anyhow::{Context as _, Result};

use caps::Capability;

use crate::{
    notices::say,
    preflight::missing_of,
    render::Format,
    settings::UsageSettings,
    stdout,
    usage::{paths::Resolver, render, snapshot, Detail, Source},
};

pub fn usage(settings: UsageSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        say(format_args!("note: {note}"));
    }
    // As live tracing does: a cgroup that does not exist is an error, not
    // an empty table.
    for cgroup in &settings.selection.cgroups {
        crate::pods::cgroupfs::selected_dir(cgroup)?;
    }
    let missing = missing_of(&[Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH]);
    if !missing.is_empty() {
        say(format_args!(
            "note: {} missing: only your own processes' fds are readable, so the counts are partial (run it with sudo, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)",
            missing.join(" and ")
        ));
    }
    // Leaked on purpose: one per run, and the snapshot borrows it.
    let resolver: Option<&'static Resolver> = settings
        .paths
        .then(|| &*Box::leak(Box::new(Resolver::new())));
    let source = Source {
        host_root: settings.host_root.clone(),
        // Each watch's fields only to resolve its path.
        detail: match settings.paths {
            true => Detail::Watches,
            false => Detail::Counts,
        },
        ..Source::live(resolver)
    };
    let mut usage = snapshot(&source, &settings.selection, settings.top);
    // Known programs among the holders shown, with their own fixes.
    for p in &mut usage.processes {
        let cmdline = crate::usage::scan_cmdline(&source, p.pid);
        p.facts.culprit = crate::usage::culprit_of(&source, p.pid, &cmdline);
    }
    let unknown_caps = usage
        .users
        .iter()
        .any(|u| u.user_ns.is_some() && u.max_watches.is_none());
    if unknown_caps {
        say(format_args!(
            "note: a user namespace's own caps could not be read (reading them takes CAP_SYS_ADMIN, to enter it): shown as unknown"
        ));
    }
    let mut out = stdout::buffered();
    match settings.format {
        Format::Json => serde_json::to_writer(&mut out, &usage)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
        Format::Human => render::write(&mut out, &usage),
    }
    .and_then(|()| out.flush())
    .context("writing the usage report")?;
    // Filters that match no holder: said, and exit 1 (as grep does), with
    // the (empty) report printed all the same for scripts. A partial
    // snapshot says it looked only at what it could read.
    if settings.selection.narrows() && usage.processes.is_empty() && usage.instances.is_empty() {
        let unread = match usage.unreadable_processes {
            0 => String::new(),
            1 => " (1 process could not be read)".to_owned(),
            n => format!(" ({n} processes could not be read)"),
        };
        say(format_args!(
            "no process holding an inotify instance matches the filters{unread}"
        ));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
