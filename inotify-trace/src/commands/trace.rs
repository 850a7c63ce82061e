//! `inotify-trace [-- COMMAND]`: a live session (`session`) that stops at a
//! signal, at `--duration` or when the traced command exits, then the
//! closing line.
use std::{path::Path, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{
    notices::{closing_line, say},
    pipeline::Pipeline,
    session::{self, LiveSession},
    settings::TraceSettings,
    signals::Signals,
    traced_command::{self, TracedCommand},
    tracer::{AttachMode, Tracer},
};

pub fn trace(settings: TraceSettings) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(settings))
}

async fn run(settings: TraceSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        say(format_args!("note: {note}"));
    }
    // As strace and perf do: a pid that is not running would trace nothing,
    // forever.
    if let Some(pid) = settings
        .selection
        .pids
        .iter()
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    {
        anyhow::bail!(
            "--pid {pid}: no such process is running (to trace a program from its start, run it after --)"
        );
    }
    // Signal handlers go in before attaching, so a SIGINT sent as soon as
    // "attached" shows still stops the session cleanly.
    let mut signals = Signals::new()?;
    let metadata = session::metadata(&settings.selection, settings.command.as_deref())?;
    // The pipeline creates the recording: a name already taken is refused
    // before anything is loaded into the kernel.
    let pipeline = Pipeline::new(&settings.pipeline(), &metadata)?;
    let mut session = LiveSession::attach(pipeline, &settings.tracer, &settings.selection)
        .map_err(|e| match settings.tracer.attach {
            AttachMode::Fexit => e.context("--attach fexit failed (try --attach auto)"),
            _ => e,
        })?;
    announce_setup(&settings, session.tracer());
    say(format_args!(
        "attached; tracing inotify calls (Ctrl-C to stop)"
    ));

    let mut command = match &settings.command {
        Some(argv) => match TracedCommand::spawn(argv, recording_to_stdout(&settings)) {
            Ok(command) => Some(command),
            Err(err) => {
                // As a shell says it: 127 for a command that could not start.
                say(format_args!("error: {err:#}"));
                return Ok(ExitCode::from(127));
            }
        },
        None => None,
    };
    let deadline = settings.duration.map(|d| tokio::time::Instant::now() + d);
    let stop = async {
        loop {
            tokio::select! {
                biased;
                signal = signals.next() => match command.as_mut() {
                    // The command decides when the session ends; a second
                    // signal ends it regardless.
                    Some(command) if !command.signal_forwarded => command.forward(signal),
                    _ => return Ok(ExitCode::SUCCESS),
                },
                () = until(deadline) => return Ok(ExitCode::SUCCESS),
                status = wait_for(command.as_mut()) => {
                    return status.map(|s| ExitCode::from(traced_command::exit_code(s)));
                }
            }
        }
    };
    let stopped: Option<Result<ExitCode>> = session.run(stop).await?;
    let ended = session.end();
    ended.told.context("writing to stdout")?;
    say(format_args!(
        "{}",
        closing_line(ended.counts, ended.duration_s)
    ));
    if let Some(err) = ended.failure {
        // `-w - | reader` whose reader stopped: the end of the session, as
        // a closed stdout is anywhere else.
        if ended.closed_pipe {
            return Ok(ExitCode::SUCCESS);
        }
        // The recording could not be written: the session stopped there.
        say(format_args!("error: {err}"));
        return Ok(ExitCode::FAILURE);
    }
    stopped.unwrap_or(Ok(ExitCode::SUCCESS))
}

fn announce_setup(settings: &TraceSettings, tracer: &Tracer) {
    if tracer.tracefs_mounted {
        say(format_args!(
            "mounted tracefs at {}",
            crate::preflight::TRACEFS
        ));
    }
    match settings.record.as_ref().map(|record| record.path.path()) {
        Some(None) => say(format_args!(
            "recording to stdout; events and the summary go to stderr"
        )),
        Some(Some(path)) => say(format_args!("recording to {}", path.display())),
        None => {}
    }
    if settings.verbose {
        if let Some(refused) = &tracer.fexit_refused {
            say(format_args!("{refused}: using the {}", tracer.mode));
        }
        let why = match (settings.tracer.attach, tracer.mode) {
            (AttachMode::Auto, AttachMode::Fexit) => {
                "the kernel allows BPF trampolines on the syscall functions"
            }
            (AttachMode::Auto | AttachMode::Tracepoint, AttachMode::Exit) => {
                "the kernel has bpf_task_pt_regs"
            }
            (AttachMode::Auto | AttachMode::Tracepoint, _) => {
                "fallback: the exit-only programs did not load"
            }
            _ => "as asked",
        };
        say(format_args!(
            "attach mode {} ({why}), caller read {}, ring buffer {} KiB, poll every {:?}",
            tracer.mode,
            tracer.caller_source,
            settings.tracer.ring_size / 1024,
            crate::ring::POLL_INTERVAL,
        ));
        match &tracer.no_charge {
            None => say(format_args!(
                "the inotify charge is read from the kernel's counters after each call"
            )),
            Some(why) => say(format_args!("records carry no inotify charge: {why}")),
        }
    }
}

fn recording_to_stdout(settings: &TraceSettings) -> bool {
    settings.record.as_ref().is_some_and(|r| r.is_stdout())
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_for(command: Option<&mut TracedCommand>) -> Result<std::process::ExitStatus> {
    match command {
        Some(command) => command.wait().await,
        None => std::future::pending().await,
    }
}
