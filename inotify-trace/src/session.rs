//! One live tracing session, the same for `inotify-trace` and for the
//! agent's trace windows: attach, push what the ring buffer holds through
//! the pipeline until the caller's stop resolves (or an output fails), then
//! detach and end the stream with what the session's processes hold now.
//! The caller decides only when to stop and adds its own outputs.
use std::{ffi::OsString, future::Future, io, time::Instant};

use anyhow::{Context as _, Result};

use crate::{
    clock::WallClock,
    limits::Limits,
    pipeline::Pipeline,
    recording::metadata::{Filters, Metadata},
    ring::RingReader,
    selection::Selection,
    stream::{Counts, End, Item, Start},
    tracer::{Tracer, TracerOptions},
    usage::{
        holdings::{holdings_at_start, holdings_now},
        Source,
    },
};

/// The session's description in its recording: when it started, what it
/// selected and which command it ran.
pub fn metadata(selection: &Selection, command: Option<&[OsString]>) -> Result<Metadata> {
    let clock = WallClock::now().context("reading the clocks")?;
    let start_boot_ns = WallClock::boot_now_ns().context("reading the boot clock")?;
    let filters = Filters {
        selection: selection.clone(),
        command: command.map(|argv| {
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        }),
    };
    Ok(Metadata::of_this_session(&clock, start_boot_ns, filters))
}

/// A session attached to the kernel.
pub struct LiveSession {
    pipeline: Pipeline,
    tracer: Tracer,
    reader: RingReader,
    /// What held instances at attach, until `run` passes it on.
    start: Option<Start>,
    started: Instant,
}

/// How a session ended.
pub struct Ended {
    pub counts: Counts,
    pub duration_s: f64,
    /// Why an output stopped working (the recording could not be written),
    /// if one did.
    pub failure: Option<String>,
    /// That failure was a closed pipe (`-w - | ...` whose reader stopped):
    /// an end, as for `| head`, not an error.
    pub closed_pipe: bool,
    /// Whether the end and the summary reached every output (stdout may be
    /// closed); the recorder is told first, so it has its end either way.
    pub told: io::Result<()>,
}

impl LiveSession {
    /// Loads and attaches the programs for `pipeline`, whose outputs (a
    /// recording among them) already exist.
    pub fn attach(
        pipeline: Pipeline,
        options: &TracerOptions,
        selection: &Selection,
    ) -> Result<LiveSession> {
        let mut tracer = Tracer::start(options, selection)?;
        let reader = RingReader::new(tracer.take_ring()?, tracer.take_lost_counter()?)?;
        // Taken once the programs are attached: a watch added meanwhile is
        // in the scan or in the trace (or both: the summary counts a
        // process's start as what it held, its calls as what it did).
        let start = Start {
            holders: holdings_at_start(&Source::live(None)),
        };
        Ok(LiveSession {
            pipeline,
            tracer,
            reader,
            start: Some(start),
            started: Instant::now(),
        })
    }

    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Streams until `stop` resolves (its value comes back) or an output
    /// fails (`None`; see [`Ended::failure`]). Called once.
    pub async fn run<T>(&mut self, stop: impl Future<Output = T>) -> Result<Option<T>> {
        self.pipeline.start()?;
        if let Some(start) = self.start.take() {
            self.pipeline.push(Item::Start(Box::new(start)))?;
        }
        self.pipeline.flush()?;
        tokio::pin!(stop);
        loop {
            let stopped = tokio::select! {
                biased;
                value = &mut stop => Some(value),
                ready = self.reader.ready() => { ready?; None }
            };
            // Every wake drains: after a stop, this picks up everything
            // already submitted (the programs stay attached until `end`).
            let pipeline = &mut self.pipeline;
            self.reader.drain(|item| pipeline.push(item))?;
            self.pipeline.flush()?;
            self.tracer.flush_kernel_logs();
            if self.pipeline.failure().is_some() {
                return Ok(None);
            }
            if let Some(value) = stopped {
                return Ok(Some(value));
            }
        }
    }

    /// Detaches, then ends the stream: the end item (with what the
    /// session's processes hold now, one /proc scan) and the summary go to
    /// every output, whatever became of the others.
    pub fn end(self) -> Ended {
        let LiveSession {
            mut pipeline,
            tracer,
            started,
            ..
        } = self;
        drop(tracer);
        let duration_s = started.elapsed().as_secs_f64();
        let counts = pipeline.counts();
        let end = End {
            end_time: crate::clock::rfc3339(std::time::SystemTime::now()).to_string(),
            duration_s,
            limits: Limits::read(),
            events: counts.events,
            lost: counts.lost,
            held_now: holdings_now(&Source::live(None), |pid| pipeline.lists(pid)),
        };
        let ended = pipeline.push(Item::End(end));
        let finished = pipeline.finish();
        Ended {
            counts,
            duration_s,
            failure: pipeline.failure().map(|err| format!("{err:#}")),
            closed_pipe: pipeline.failure().is_some_and(write_hit_a_closed_pipe),
            told: ended.and(finished),
        }
    }
}

/// Whether a recording's write failed on a closed pipe.
fn write_hit_a_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<crate::recording::writer::WriteError>()
            .is_some_and(|w| w.cause.kind() == io::ErrorKind::BrokenPipe)
    })
}
