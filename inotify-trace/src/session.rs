//! One tracing session: attach, stream records through the pipeline (and
//! the recording) until told to stop, then drain what is left and print the
//! summary.
use std::{
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    clock::WallClock,
    command::{self, TracedCommand},
    event::Event,
    filter::EventFilter,
    limits::Limits,
    output,
    pipeline::Pipeline,
    recording::{
        metadata::{self, End, Metadata},
        writer::{Recorder, WriteError},
    },
    render::{self, Printer},
    ring::RingReader,
    settings::TraceSettings,
    status::StatusLine,
    summary::LimitsAtStartAndEnd,
    tracer::{AttachMode, Tracer},
    usage::diagnosis::Diagnoser,
};

/// Why the stream ended.
enum Ended {
    Stopped,
    CommandExited(std::process::ExitStatus),
    /// The recording could not be written: the session stops, the summary
    /// still prints, and the exit status says it failed.
    RecordingFailed(WriteError),
}

/// What woke the loop.
enum Wake {
    Records,
    Signal(Signal),
    Deadline,
    CommandExited(std::process::ExitStatus),
}

pub fn run(settings: TraceSettings) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(trace(settings))
}

async fn trace(settings: TraceSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        eprintln!("inotify-trace: note: {note}");
    }
    // Signal handlers go in before attaching, so a SIGINT sent as soon as
    // "attached" shows still stops the session cleanly.
    let mut signals = Signals::new()?;
    let clock = WallClock::now().context("reading the clocks")?;
    let start_boot_ns = WallClock::boot_now_ns().context("reading the boot clock")?;
    let limits_at_start = Limits::read();
    // The file first: a name already taken is refused before anything is
    // loaded into the kernel.
    let mut recorder = match &settings.record {
        Some(record) => {
            let metadata = metadata(&settings, &clock, start_boot_ns, limits_at_start);
            Some(Recorder::create(&record.path, record.force, &metadata)?)
        }
        None => None,
    };
    let mut tracer = Tracer::start(&settings.tracer)?;
    let mut reader = RingReader::new(tracer.take_ring()?, tracer.take_lost_counter()?)?;
    let mut printer = render::to_stdout(settings.format, clock);
    announce_setup(&settings, &tracer);
    eprintln!("inotify-trace: attached; tracing inotify calls (Ctrl-C to stop)");

    let mut command = match &settings.command {
        Some(argv) => match TracedCommand::spawn(argv) {
            Ok(command) => Some(command),
            Err(err) => {
                // As a shell says it: 127 for a command that could not start.
                eprintln!("inotify-trace: error: {err:#}");
                return Ok(ExitCode::from(127));
            }
        },
        None => None,
    };
    let started = Instant::now();
    let deadline = settings.duration.map(|d| tokio::time::Instant::now() + d);
    let events_printer = (!settings.quiet).then(|| printer.as_mut() as &mut dyn Printer);
    let mut stream = Stream {
        diagnoser: Diagnoser::default(),
        clock,
        pipeline: Pipeline::new(events_printer, EventFilter::default()),
        recorder: recorder.as_mut(),
        status: StatusLine::new(settings.quiet),
        started,
        undecodable: 0,
    };
    let outcome = stream
        .run(
            &mut tracer,
            &mut reader,
            &mut signals,
            deadline,
            command.as_mut(),
        )
        .await;
    let ended = match outcome {
        Err(err) if output::is_broken_pipe(&err) => return Ok(ExitCode::SUCCESS),
        Err(err) => return Err(err),
        Ok(ended) => ended,
    };
    drop(tracer);
    stream.status.clear();

    let duration_s = started.elapsed().as_secs_f64();
    let limits = LimitsAtStartAndEnd {
        start: limits_at_start,
        end: Limits::read(),
    };
    let (events, lost, undecodable) = (
        stream.pipeline.tally.events,
        stream.pipeline.tally.lost,
        stream.undecodable,
    );
    let summary = stream
        .pipeline
        .summary(duration_s, limits, &clock, settings.top);
    drop(stream);
    let (exit_code, mut write_failure) = match ended {
        Ended::CommandExited(status) => (ExitCode::from(command::exit_code(status)), None),
        Ended::Stopped => (ExitCode::SUCCESS, None),
        Ended::RecordingFailed(err) => (ExitCode::FAILURE, Some(err)),
    };
    if let (Some(recorder), None) = (recorder.as_mut(), &write_failure) {
        let end = End {
            end_time: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            duration_s,
            limits: limits.end,
            events,
            lost,
        };
        write_failure = recorder.end(&end).err();
    }
    let printed = printer.summary(&summary).and_then(|()| printer.flush());
    if output::closed(printed, "writing the summary")? {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "inotify-trace: {}",
        closing_line(events, lost, undecodable, started.elapsed())
    );
    if let Some(err) = write_failure {
        eprintln!("inotify-trace: error: {err}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(exit_code)
}

/// What a recording says about this session.
fn metadata(
    settings: &TraceSettings,
    clock: &WallClock,
    start_boot_ns: u64,
    limits: Limits,
) -> Metadata {
    let tracer = &settings.tracer;
    Metadata {
        tool: format!("inotify-trace {}", env!("CARGO_PKG_VERSION")),
        hostname: metadata::host::hostname(),
        kernel_release: metadata::host::kernel_release(),
        boot_id: metadata::host::boot_id(),
        start_time: humantime::format_rfc3339_nanos(clock.wall(start_boot_ns)).to_string(),
        start_boot_ns,
        boot_epoch_ns: clock.boot_epoch_ns as i64,
        utc_offset_s: clock.utc_offset_s,
        limits,
        filters: metadata::Filters {
            pids: tracer.pids.clone(),
            comms: settings.comm_names.clone(),
            failed_only: tracer.failed_only,
            command: settings.command.as_ref().map(|argv| {
                argv.iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            }),
        },
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    }
}

fn announce_setup(settings: &TraceSettings, tracer: &Tracer) {
    if tracer.tracefs_mounted {
        eprintln!(
            "inotify-trace: mounted tracefs at {}",
            crate::preflight::TRACEFS
        );
    }
    if let Some(record) = &settings.record {
        eprintln!(
            "inotify-trace: recording to {}",
            Path::display(&record.path)
        );
    }
    if settings.verbose {
        let why = match (settings.tracer.attach, tracer.mode) {
            (AttachMode::Auto, AttachMode::Exit) => "the kernel has bpf_task_pt_regs",
            (AttachMode::Auto, _) => "fallback: the exit-only programs did not load",
            _ => "as asked",
        };
        eprintln!(
            "inotify-trace: attach mode {} ({why}), caller read {}, ring buffer {} KiB, poll every {:?}",
            tracer.mode,
            tracer.caller_source,
            settings.tracer.ring_size / 1024,
            crate::ring::POLL_INTERVAL,
        );
    }
}

/// The per-session state the loop feeds.
struct Stream<'a, 'p> {
    diagnoser: Diagnoser,
    clock: WallClock,
    pipeline: Pipeline<'p>,
    recorder: Option<&'a mut Recorder>,
    status: StatusLine,
    started: Instant,
    undecodable: u64,
}

impl Stream<'_, '_> {
    async fn run(
        &mut self,
        tracer: &mut Tracer,
        reader: &mut RingReader,
        signals: &mut Signals,
        deadline: Option<tokio::time::Instant>,
        mut command: Option<&mut TracedCommand>,
    ) -> Result<Ended> {
        self.pipeline.start()?;
        self.pipeline.flush()?;
        loop {
            let wake = tokio::select! {
                biased;
                signal = signals.next() => Wake::Signal(signal),
                () = until(deadline) => Wake::Deadline,
                status = wait_for(command.as_deref_mut()) => Wake::CommandExited(status?),
                ready = reader.ready() => { ready?; Wake::Records }
            };
            // Every wake drains: after a stop, this picks up everything
            // already submitted (the programs stay attached until the
            // tracer is dropped).
            if let Err(err) = self.drain(reader)? {
                return Ok(Ended::RecordingFailed(err));
            }
            tracer.flush_kernel_logs();
            match wake {
                Wake::Records => {}
                Wake::Signal(signal) => match command.as_deref_mut() {
                    // The command decides when the session ends; a second
                    // signal ends it regardless.
                    Some(command) if !command.signal_forwarded => command.forward(signal),
                    _ => return Ok(Ended::Stopped),
                },
                Wake::Deadline => return Ok(Ended::Stopped),
                Wake::CommandExited(status) => return Ok(Ended::CommandExited(status)),
            }
        }
    }

    /// Reads every waiting record into the recording and the pipeline. A
    /// failed write to the recording comes back as the inner error: the
    /// records of this drain are still printed and counted.
    fn drain(&mut self, reader: &mut RingReader) -> Result<Result<(), WriteError>> {
        let mut write_failure = None;
        reader.drain(|record| {
            if let (Some(recorder), None) = (self.recorder.as_deref_mut(), &write_failure) {
                write_failure = recorder.event(record).err();
            }
            match Event::decode(record) {
                Ok(event) => {
                    self.pipeline.event(&event)?;
                    if let Some(diagnosis) = self.diagnoser.consider(&event, &self.clock) {
                        if let (Some(recorder), None) =
                            (self.recorder.as_deref_mut(), &write_failure)
                        {
                            write_failure = recorder.diagnosis(&diagnosis).err();
                        }
                        self.status.clear();
                        if !self.pipeline.diagnosis(diagnosis.clone())? {
                            let mut stderr = std::io::stderr().lock();
                            crate::usage::render::diagnosis(
                                &mut stderr,
                                &diagnosis,
                                "inotify-trace: ",
                            )?;
                        }
                    }
                }
                Err(err) => {
                    self.undecodable += 1;
                    self.status.clear();
                    eprintln!("inotify-trace: warning: skipped a record the kernel sent: {err}");
                }
            }
            Ok(())
        })?;
        let lost = reader.newly_lost()?;
        if lost > 0 {
            if let (Some(recorder), None) = (self.recorder.as_deref_mut(), &write_failure) {
                write_failure = recorder.lost(lost).err();
            }
            self.status.clear();
            if !self.pipeline.lost(lost)? {
                eprintln!("inotify-trace: warning: {lost} events lost (ring buffer full); a larger --ring-size absorbs longer bursts");
            }
        }
        self.pipeline.flush()?;
        if let (Some(recorder), None) = (self.recorder.as_deref_mut(), &write_failure) {
            write_failure = recorder.flush().err();
        }
        let t = &self.pipeline.tally;
        self.status
            .update(self.started.elapsed(), t.events, t.failed, t.lost);
        Ok(write_failure.map_or(Ok(()), Err))
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

fn closing_line(events: u64, lost: u64, undecodable: u64, elapsed: Duration) -> String {
    let mut line = format!(
        "{events} events, {lost} lost in {:.1}s",
        elapsed.as_secs_f64()
    );
    if undecodable > 0 {
        line.push_str(&format!(", {undecodable} undecodable records skipped"));
    }
    line
}

/// SIGINT and SIGTERM, the signals that end a session.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("handling SIGTERM")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::SIGINT,
            _ = self.terminate.recv() => Signal::SIGTERM,
        }
    }
}
