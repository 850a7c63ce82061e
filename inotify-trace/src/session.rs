//! One tracing session: attach, stream records through the aggregator and
//! the printer until told to stop, then drain what is left and print the
//! summary.
use std::{
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
    limits::Limits,
    output,
    render::{human::HumanPrinter, json::JsonPrinter, Printer},
    report::{
        aggregate::{Aggregator, Totals},
        LimitsAtStartAndEnd,
    },
    ring::RingReader,
    settings::{Format, TraceSettings},
    status::StatusLine,
    tracer::{AttachMode, Tracer},
};

/// Counts kept while streaming.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    failed: u64,
    lost: u64,
    undecodable: u64,
}

/// Why the stream ended.
enum Ended {
    Stopped,
    CommandExited(std::process::ExitStatus),
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
    let limits_at_start = Limits::read();
    let mut tracer = Tracer::start(&settings.tracer)?;
    let mut reader = RingReader::new(tracer.take_ring()?, tracer.take_lost_counter()?)?;
    let mut printer: Box<dyn Printer> = match settings.format {
        Format::Human => Box::new(HumanPrinter::new(output::stdout(), clock)),
        Format::Json => Box::new(JsonPrinter::new(output::stdout(), clock)),
    };
    report_setup(&settings, &tracer);
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
    let mut stream = Stream {
        printer: printer.as_mut(),
        aggregator: Aggregator::default(),
        tally: Tally::default(),
        status: StatusLine::new(settings.quiet),
        quiet: settings.quiet,
        started,
    };
    let ended = match stream
        .run(
            &mut tracer,
            &mut reader,
            &mut signals,
            deadline,
            command.as_mut(),
        )
        .await
    {
        Err(err) if output::is_broken_pipe(&err) => return Ok(ExitCode::SUCCESS),
        Err(err) => return Err(err),
        Ok(ended) => ended,
    };
    drop(tracer);
    stream.status.clear();

    let totals = Totals {
        duration_s: started.elapsed().as_secs_f64(),
        events: stream.tally.events,
        lost: stream.tally.lost,
    };
    let limits = LimitsAtStartAndEnd {
        start: limits_at_start,
        end: Limits::read(),
    };
    let summary = stream
        .aggregator
        .summary(&totals, limits, &clock, settings.top);
    let printed = stream
        .printer
        .summary(&summary)
        .and_then(|()| stream.printer.flush());
    match printed {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing the summary")?,
    }
    eprintln!(
        "inotify-trace: {}",
        closing_line(&stream.tally, started.elapsed())
    );
    Ok(match ended {
        Ended::CommandExited(status) => ExitCode::from(command::exit_code(status)),
        Ended::Stopped => ExitCode::SUCCESS,
    })
}

fn report_setup(settings: &TraceSettings, tracer: &Tracer) {
    if tracer.tracefs_mounted {
        eprintln!(
            "inotify-trace: mounted tracefs at {}",
            crate::preflight::TRACEFS
        );
    }
    if settings.verbose {
        let why = match (settings.tracer.attach, tracer.mode) {
            (AttachMode::Auto, AttachMode::Exit) => "the kernel has bpf_task_pt_regs",
            (AttachMode::Auto, _) => "fallback: the exit-only programs did not load",
            _ => "as asked",
        };
        eprintln!(
            "inotify-trace: attach mode {} ({why}), ring buffer {} KiB, poll every {:?}",
            tracer.mode,
            settings.tracer.ring_size / 1024,
            crate::ring::POLL_INTERVAL,
        );
    }
}

/// The per-session state the loop feeds.
struct Stream<'a> {
    printer: &'a mut dyn Printer,
    aggregator: Aggregator,
    tally: Tally,
    status: StatusLine,
    quiet: bool,
    started: Instant,
}

impl Stream<'_> {
    async fn run(
        &mut self,
        tracer: &mut Tracer,
        reader: &mut RingReader,
        signals: &mut Signals,
        deadline: Option<tokio::time::Instant>,
        mut command: Option<&mut TracedCommand>,
    ) -> Result<Ended> {
        if !self.quiet {
            self.printer.start()?;
            self.printer.flush()?;
        }
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
            self.drain(reader)?;
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

    fn drain(&mut self, reader: &mut RingReader) -> Result<()> {
        reader.drain(|record| {
            match Event::decode(record) {
                Ok(event) => {
                    self.tally.events += 1;
                    self.tally.failed += u64::from(event.header.ret < 0);
                    self.aggregator.observe(&event);
                    if !self.quiet {
                        self.printer.event(&event)?;
                    }
                }
                Err(err) => {
                    self.tally.undecodable += 1;
                    self.status.clear();
                    eprintln!("inotify-trace: warning: skipped a record the kernel sent: {err}");
                }
            }
            Ok(())
        })?;
        let lost = reader.newly_lost()?;
        if lost > 0 {
            self.tally.lost += lost;
            self.status.clear();
            if self.quiet {
                eprintln!("inotify-trace: warning: {lost} events lost (ring buffer full); a larger --ring-size absorbs longer bursts");
            } else {
                self.printer.lost(lost)?;
            }
        }
        if !self.quiet {
            self.printer.flush()?;
        }
        let t = &self.tally;
        self.status
            .update(self.started.elapsed(), t.events, t.failed, t.lost);
        Ok(())
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

fn closing_line(tally: &Tally, elapsed: Duration) -> String {
    let mut line = format!(
        "{} events, {} lost in {:.1}s",
        tally.events,
        tally.lost,
        elapsed.as_secs_f64()
    );
    if tally.undecodable > 0 {
        line.push_str(&format!(
            ", {} undecodable records skipped",
            tally.undecodable
        ));
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
