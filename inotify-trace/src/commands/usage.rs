//! `inotify-trace usage [--paths] [--json] [filters]`.
use std::{io::Write, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{
    notices::say,
    render::Format,
    settings::UsageSettings,
    stdout,
    usage::{paths::Resolver, render, snapshot, Source},
};

pub fn usage(settings: UsageSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        say(format_args!("note: {note}"));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        say(format_args!(
            "note: not root: only your own processes' fds are readable, so the counts are partial (run it with sudo)"
        ));
    }
    // Leaked on purpose: one per run, and the snapshot borrows it.
    let resolver: Option<&'static Resolver> = settings
        .paths
        .then(|| &*Box::leak(Box::new(Resolver::new())));
    let usage = snapshot(&Source::live(resolver), &settings.selection, settings.top);
    let mut out = stdout::buffered();
    match settings.format {
        Format::Json => serde_json::to_writer(&mut out, &usage)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
        Format::Human => render::write(&mut out, &usage),
    }
    .and_then(|()| out.flush())
    .context("writing the usage report")?;
    Ok(ExitCode::SUCCESS)
}
