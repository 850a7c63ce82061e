//! One tracing session: attach, stream records to the printer until told to
//! stop, then drain what is left and say how it went.
use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    clock::WallClock,
    event::Event,
    output,
    render::{human::HumanPrinter, json::JsonPrinter, Printer},
    ring::RingReader,
    settings::{Format, TraceSettings},
    tracer::Tracer,
};

/// Counts for the closing line.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    lost: u64,
    undecodable: u64,
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
    let mut stop = Stop::new(settings.duration)?;
    let clock = WallClock::now().context("reading the clocks")?;
    let mut tracer = Tracer::start(&settings.tracer)?;
    let mut reader = RingReader::new(tracer.take_ring()?, tracer.take_lost_counter()?)?;
    let mut printer: Box<dyn Printer> = match settings.format {
        Format::Human => Box::new(HumanPrinter::new(output::stdout(), clock)),
        Format::Json => Box::new(JsonPrinter::new(output::stdout(), clock)),
    };

    if tracer.tracefs_mounted {
        eprintln!(
            "inotify-trace: mounted tracefs at {}",
            crate::preflight::TRACEFS
        );
    }
    if settings.verbose {
        eprintln!(
            "inotify-trace: attach mode {} ({}), ring buffer {} KiB, poll every {:?}",
            tracer.mode,
            match (settings.tracer.attach, tracer.mode) {
                (crate::tracer::AttachMode::Auto, crate::tracer::AttachMode::Exit) =>
                    "the kernel has bpf_task_pt_regs",
                (crate::tracer::AttachMode::Auto, _) =>
                    "fallback: the exit-only program did not load",
                _ => "as asked",
            },
            settings.tracer.ring_size / 1024,
            crate::ring::POLL_INTERVAL,
        );
    }
    eprintln!("inotify-trace: attached; tracing inotify_add_watch (Ctrl-C to stop)");

    let started = Instant::now();
    let mut tally = Tally::default();
    let outcome = stream(
        &mut tracer,
        &mut reader,
        printer.as_mut(),
        &mut stop,
        &mut tally,
    )
    .await;
    match outcome {
        Err(err) if output::is_broken_pipe(&err) => return Ok(ExitCode::SUCCESS),
        Err(err) => return Err(err),
        Ok(()) => {}
    }
    drop(tracer);
    eprintln!("inotify-trace: {}", closing_line(&tally, started.elapsed()));
    Ok(ExitCode::SUCCESS)
}

async fn stream(
    tracer: &mut Tracer,
    reader: &mut RingReader,
    printer: &mut dyn Printer,
    stop: &mut Stop,
    tally: &mut Tally,
) -> Result<()> {
    printer.start()?;
    printer.flush()?;
    loop {
        let stopping = tokio::select! {
            biased;
            () = stop.wait() => true,
            ready = reader.ready() => { ready?; false }
        };
        // After a stop, one more drain picks up everything already submitted:
        // the programs stay attached until the tracer is dropped.
        reader.drain(|record| {
            match Event::decode(record) {
                Ok(event) => {
                    tally.events += 1;
                    printer.event(&event)?;
                }
                Err(err) => {
                    tally.undecodable += 1;
                    eprintln!("inotify-trace: warning: skipped a record the kernel sent: {err}");
                }
            }
            Ok(())
        })?;
        let lost = reader.newly_lost()?;
        if lost > 0 {
            tally.lost += lost;
            printer.lost(lost)?;
        }
        printer.flush()?;
        tracer.flush_kernel_logs();
        if stopping {
            return Ok(());
        }
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

/// SIGINT, SIGTERM or the end of `--duration`, whichever comes first.
struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    deadline: Option<tokio::time::Instant>,
}

impl Stop {
    fn new(duration: Option<Duration>) -> Result<Self> {
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            deadline: duration.map(|d| tokio::time::Instant::now() + d),
        })
    }

    async fn wait(&mut self) {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            () = deadline => {}
        }
    }
}
