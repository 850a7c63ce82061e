//! `inotify-trace usage [--paths] [--json] [filters]`.
use std::{io::Write, process::ExitCode};

use anyhow::Result;

use super::{paths::Resolver, render, snapshot, Selection, Source};
use crate::{cli::UsageArgs, output};

pub fn run(args: UsageArgs) -> Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "inotify-trace: note: not root: only your own processes' fds are readable, so the counts are partial (run it with sudo)"
        );
    }
    // Leaked on purpose: one per run, and the snapshot borrows it.
    let resolver: Option<&'static Resolver> =
        args.paths.then(|| &*Box::leak(Box::new(Resolver::new())));
    let selection = Selection {
        pids: args.processes.pids,
        comms: args.processes.comms,
        uids: args.uids,
        top: args.output.top,
    };
    let usage = snapshot(&Source::live(resolver), &selection);
    let mut out = output::stdout();
    let written = if args.output.json {
        serde_json::to_writer(&mut out, &usage)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else {
        render::write(&mut out, &usage)
    };
    output::closed(
        written.and_then(|()| out.flush()),
        "writing the usage report",
    )?;
    Ok(ExitCode::SUCCESS)
}
