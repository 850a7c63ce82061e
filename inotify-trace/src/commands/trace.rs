//! One live tracing session: build the pipeline, attach, push what the ring
//! buffer holds through the pipeline until told to stop, then end the
//! stream and print the summary.
use std::{path::Path, process::ExitCode, time::Instant};

use anyhow::{Context as _, Result};
use nix::sys::signal::Signal;

use crate::{
    clock::WallClock,
    notices::{closing_line, say},
    pipeline::Pipeline,
    recording::metadata::{Filters, Metadata},
    ring::RingReader,
    settings::TraceSettings,
    signals::Signals,
    stream::Item,
    traced_command::{self, TracedCommand},
    tracer::{AttachMode, Tracer},
};

/// What woke the loop.
enum Wake {
    Records,
    Signal(Signal),
    Deadline,
    CommandExited(std::process::ExitStatus),
}

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
    // Signal handlers go in before attaching, so a SIGINT sent as soon as
    // "attached" shows still stops the session cleanly.
    let mut signals = Signals::new()?;
    let clock = WallClock::now().context("reading the clocks")?;
    let start_boot_ns = WallClock::boot_now_ns().context("reading the boot clock")?;
    let filters = Filters {
        selection: settings.selection.clone(),
        command: settings.command.as_ref().map(|argv| {
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        }),
    };
    let metadata = Metadata::of_this_session(&clock, start_boot_ns, filters);
    // The pipeline creates the recording: a name already taken is refused
    // before anything is loaded into the kernel.
    let mut pipeline = Pipeline::new(&settings.pipeline(), &metadata)?;
    let mut tracer = Tracer::start(&settings.tracer, &settings.selection)?;
    let mut reader = RingReader::new(tracer.take_ring()?, tracer.take_lost_counter()?)?;
    announce_setup(&settings, &tracer);
    say(format_args!(
        "attached; tracing inotify calls (Ctrl-C to stop)"
    ));

    let mut command = match &settings.command {
        Some(argv) => match TracedCommand::spawn(argv) {
            Ok(command) => Some(command),
            Err(err) => {
                // As a shell says it: 127 for a command that could not start.
                say(format_args!("error: {err:#}"));
                return Ok(ExitCode::from(127));
            }
        },
        None => None,
    };
    let started = Instant::now();
    let deadline = settings.duration.map(|d| tokio::time::Instant::now() + d);
    pipeline.start()?;
    pipeline.flush()?;
    let mut exit_code = ExitCode::SUCCESS;
    loop {
        let wake = tokio::select! {
            biased;
            signal = signals.next() => Wake::Signal(signal),
            () = until(deadline) => Wake::Deadline,
            status = wait_for(command.as_mut()) => Wake::CommandExited(status?),
            ready = reader.ready() => { ready?; Wake::Records }
        };
        // Every wake drains: after a stop, this picks up everything already
        // submitted (the programs stay attached until the tracer is dropped).
        reader.drain(|item| pipeline.push(item))?;
        pipeline.flush()?;
        tracer.flush_kernel_logs();
        if pipeline.failure().is_some() {
            break;
        }
        match wake {
            Wake::Records => {}
            Wake::Signal(signal) => match command.as_mut() {
                // The command decides when the session ends; a second
                // signal ends it regardless.
                Some(command) if !command.signal_forwarded => command.forward(signal),
                _ => break,
            },
            Wake::Deadline => break,
            Wake::CommandExited(status) => {
                exit_code = ExitCode::from(traced_command::exit_code(status));
                break;
            }
        }
    }
    drop(tracer);

    pipeline.push(Item::End(pipeline.end_now(started.elapsed().as_secs_f64())))?;
    pipeline.finish()?;
    say(format_args!(
        "{}",
        closing_line(pipeline.counts(), started.elapsed().as_secs_f64())
    ));
    if let Some(err) = pipeline.failure() {
        // The recording could not be written: the session stopped there.
        say(format_args!("error: {err}"));
        return Ok(ExitCode::FAILURE);
    }
    Ok(exit_code)
}

fn announce_setup(settings: &TraceSettings, tracer: &Tracer) {
    if tracer.tracefs_mounted {
        say(format_args!(
            "mounted tracefs at {}",
            crate::preflight::TRACEFS
        ));
    }
    if let Some(record) = &settings.record {
        say(format_args!("recording to {}", Path::display(&record.path)));
    }
    if settings.verbose {
        let why = match (settings.tracer.attach, tracer.mode) {
            (AttachMode::Auto, AttachMode::Exit) => "the kernel has bpf_task_pt_regs",
            (AttachMode::Auto, _) => "fallback: the exit-only programs did not load",
            _ => "as asked",
        };
        say(format_args!(
            "attach mode {} ({why}), caller read {}, ring buffer {} KiB, poll every {:?}",
            tracer.mode,
            tracer.caller_source,
            settings.tracer.ring_size / 1024,
            crate::ring::POLL_INTERVAL,
        ));
    }
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
