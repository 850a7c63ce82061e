//! What happens to each item of the stream, the same for a live session and
//! for a recording read back: select, count, diagnose (live), aggregate,
//! and hand on to every output. Built from settings in one place, so a
//! session only picks a source, pushes its items and asks for the summary.
use std::io;

use anyhow::Result;

use crate::{
    clock::WallClock,
    diagnosis::{Diagnoser, Diagnosis, Pending},
    ledger::Ledger,
    limits::Limits,
    notices::Notices,
    output::Output,
    pods::Attributor,
    recording::{
        metadata::Metadata,
        writer::{RecorderOutput, RecordingFile},
    },
    render::{self, Format},
    selection::Selection,
    stream::{Counts, End, Item, Start},
    summary::{aggregate::Aggregator, LimitsAtStartAndEnd},
};

/// What the pipeline is built from.
pub struct PipelineSettings<'a> {
    pub selection: &'a Selection,
    pub format: Format,
    /// Print each event (else only the summary).
    pub events: bool,
    /// Processes listed in the summary (0: all).
    pub top: usize,
    /// Write the stream to a recording.
    pub record: Option<&'a RecordingFile>,
    /// Live only: diagnose ENOSPC and EMFILE as they happen, and say on
    /// stderr what the event printer does not (undecodable records; lost
    /// events and diagnoses when events are not printed; a status line).
    pub live: bool,
    /// Live: where the node's files are (`--host-root`), to name the pods,
    /// containers and units of the callers' cgroups. A report knows what
    /// its recording says.
    pub host_root: &'a std::path::Path,
    /// Print events and the summary (not when stdout carries a report's
    /// picture instead).
    pub print: bool,
}

pub struct Pipeline {
    selection: Selection,
    diagnoser: Option<Diagnoser>,
    attributor: Attributor,
    /// Kept with or without a summary: the summary counts with its
    /// verdicts, the diagnosis reads what a gone failer had taken.
    ledger: Ledger,
    aggregator: Aggregator,
    /// What held instances when the session attached.
    start: Option<Box<Start>>,
    /// The (uid, user namespace) scopes the selected calls were charged
    /// to, and the last one seen (most calls repeat it: one compare).
    scopes: std::collections::HashSet<(u32, Option<u64>)>,
    last_scope: Option<(u32, Option<u64>)>,
    /// Diagnoses whose holders wait for the calls made between the failure
    /// and the scan's reads (released at the end of the batch, when the
    /// ring buffer is drained).
    pending: Vec<Pending>,
    diagnoses: Vec<Diagnosis>,
    /// Whether the summary is kept (off for a session without end, the
    /// agent's continuous tracing, whose memory must not grow with time).
    summarize: bool,
    counts: Counts,
    /// Every output, in the order they are told: the recorder first (it
    /// keeps what happened even if printing fails), the printer last.
    outputs: Vec<Box<dyn Output>>,
    clock: WallClock,
    start_boot_ns: u64,
    start_limits: Limits,
    last_event_ns: u64,
    end: Option<End>,
    top: usize,
}

impl Pipeline {
    /// Builds the stages and outputs. A recording is created here, so a
    /// file that cannot be written is refused before anything else starts.
    pub fn new(settings: &PipelineSettings<'_>, metadata: &Metadata) -> Result<Pipeline> {
        let clock = metadata.clock();
        let mut outputs: Vec<Box<dyn Output>> = Vec::new();
        if let Some(record) = settings.record {
            outputs.push(Box::new(RecorderOutput::create(record, metadata)?));
        }
        // Lost events and diagnoses are said once: in the printed stream,
        // in its order, when events are printed; else on stderr.
        let printer_tells_incidents = settings.print && settings.events;
        if settings.live {
            outputs.push(Box::new(Notices::new(!printer_tells_incidents)));
        }
        // With `-w -` stdout is the recording: the printer takes stderr.
        let sink = match settings.record.is_some_and(|r| r.is_stdout()) {
            true => render::Sink::Stderr,
            false => render::Sink::Stdout,
        };
        if settings.print {
            outputs.push(render::printer(
                settings.format,
                clock,
                printer_tells_incidents,
                sink,
            ));
        }
        Ok(Pipeline {
            selection: settings.selection.clone(),
            diagnoser: settings.live.then(|| Diagnoser::live(settings.host_root)),
            attributor: match settings.live {
                true => Attributor::live(settings.host_root),
                false => Attributor::recorded(),
            },
            ledger: match settings.live {
                true => Ledger::live(),
                false => Ledger::default(),
            },
            aggregator: Aggregator::default(),
            pending: Vec::new(),
            start: None,
            scopes: std::collections::HashSet::new(),
            last_scope: None,
            diagnoses: Vec::new(),
            summarize: true,
            counts: Counts::default(),
            outputs,
            clock,
            start_boot_ns: metadata.start_boot_ns,
            start_limits: metadata.limits,
            last_event_ns: metadata.start_boot_ns,
            end: None,
            top: settings.top,
        })
    }

    /// Keeps no summary: its tables and diagnoses would grow for as long as
    /// the session runs. Outputs are told every item all the same, and the
    /// end's summary is empty.
    pub fn without_summary(&mut self) {
        self.summarize = false;
    }

    /// One more output, told after the others (the agent's counters).
    pub fn add_output(&mut self, output: Box<dyn Output>) {
        self.outputs.push(output);
    }

    pub fn start(&mut self) -> io::Result<()> {
        self.each(|o| o.start())
    }

    pub fn push(&mut self, item: Item<'_>) -> io::Result<()> {
        match item {
            Item::Event(event) => {
                self.last_event_ns = self.last_event_ns.max(event.header.time_ns);
                if !self.selection.matches(&event) {
                    return Ok(());
                }
                let cgroup_id = event.cgroup_id();
                let key = self.attributor.place(cgroup_id, event.header.pid);
                if !self
                    .selection
                    .matches_place(key.and_then(|key| self.attributor.get(key)))
                {
                    return Ok(());
                }
                let frame = key.and_then(|key| self.attributor.untold(key, cgroup_id.unwrap_or(0)));
                if let Some(frame) = frame {
                    self.each(|o| o.attribution(&frame))?;
                }
                let place = key.and_then(|key| self.attributor.get(key));
                self.counts.events += 1;
                self.counts.failed += u64::from(event.header.ret < 0);
                let scope = (event.charged_uid(), event.user_ns());
                if self.last_scope != Some(scope) {
                    self.scopes.insert(scope);
                    self.last_scope = Some(scope);
                }
                let seen = self.ledger.observe(&event);
                for pending in &mut self.pending {
                    pending.observe(&event, seen);
                }
                let change = match self.summarize {
                    true => self.aggregator.observe(&event, seen),
                    false => None,
                };
                self.outputs
                    .iter_mut()
                    .try_for_each(|o| o.event(&event, place))?;
                if let Some(change) = &change {
                    self.outputs.iter_mut().try_for_each(|o| o.change(change))?;
                }
                let ledger = &self.ledger;
                let diagnosis = self.diagnoser.as_mut().and_then(|d| {
                    d.consider(&event, &self.clock, |pid| ledger.taken_by(pid), place)
                });
                self.pending.extend(diagnosis);
                Ok(())
            }
            Item::Undecodable(err) => {
                self.counts.undecodable += 1;
                self.each(|o| o.undecodable(&err))
            }
            Item::Lost(count) => {
                self.counts.lost = self.counts.lost.saturating_add(count);
                self.each(|o| o.lost(count))
            }
            // A recording's diagnosis is of one failed call: it passes the
            // filters as that call did (live, only selected calls are
            // diagnosed at all).
            Item::Diagnosis(diagnosis) => {
                let caller = self.selection.matches_process(
                    diagnosis.pid,
                    diagnosis.comm.bytes(),
                    diagnosis.uid,
                );
                match caller && self.selection.matches_place(diagnosis.place.as_ref()) {
                    true => self.diagnosis(*diagnosis),
                    false => Ok(()),
                }
            }
            Item::Attribution(frame) => {
                self.attributor.learn(*frame);
                Ok(())
            }
            Item::Start(start) => {
                self.each(|o| o.start_holdings(&start))?;
                self.start = Some(start);
                Ok(())
            }
            Item::End(end) => {
                self.release_diagnoses()?;
                self.each(|o| o.end(&end))?;
                self.end = Some(end);
                Ok(())
            }
        }
    }

    /// The end of a batch of items: diagnoses are released (every call made
    /// before their scans has been seen), and outputs pass on what they
    /// buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.release_diagnoses()?;
        let counts = self.counts;
        self.each(|o| o.flush(&counts))
    }

    /// Why an output stopped working, if one did: the session stops.
    pub fn failure(&self) -> Option<&anyhow::Error> {
        self.outputs.iter().find_map(|o| o.failure())
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Whether the session saw `pid` call (its holdings belong in the end).
    pub fn saw(&self, pid: u32) -> bool {
        self.aggregator.saw(pid)
    }

    /// Whether the summary lists `pid`: it made a call, or it held an
    /// instance at the start in a scope the calls were charged to.
    pub fn lists(&self, pid: u32) -> bool {
        self.saw(pid) || self.start_holders().any(|h| h.pid == pid)
    }

    /// The holders at the start of the budgets the selected calls were
    /// charged to (README, "The report and the diagnosis").
    fn start_holders(&self) -> impl Iterator<Item = &crate::held::HeldAtStart> {
        let scopes = &self.scopes;
        self.start.iter().flat_map(|s| &s.holders).filter(move |h| {
            scopes.contains(&(h.uid, h.user_ns)) || scopes.contains(&(h.uid, None))
        })
    }

    /// Builds the summary and hands it to the outputs. A stream without an
    /// end (a recording cut short) lasted at least until its last event.
    pub fn finish(&mut self) -> io::Result<()> {
        self.release_diagnoses()?;
        let (duration_s, end_limits) = match &self.end {
            Some(end) => (end.duration_s, end.limits),
            None => (
                self.last_event_ns.saturating_sub(self.start_boot_ns) as f64 / 1e9,
                Limits::default(),
            ),
        };
        let limits = LimitsAtStartAndEnd {
            start: self.start_limits,
            end: end_limits,
        };
        self.ledger.clear();
        let start: Vec<_> = self.start_holders().cloned().collect();
        let mut summary = std::mem::take(&mut self.aggregator).into_summary(
            &self.counts,
            duration_s,
            limits,
            &self.clock,
            self.top,
            &self.attributor,
            &start,
        );
        summary.start_known = self.start.is_some();
        summary.diagnoses = std::mem::take(&mut self.diagnoses);
        if let Some(end) = &self.end {
            summary.hold(&end.held_now);
        }
        summary.find_leaks(self.start_boot_ns);
        self.each(|o| o.summary(&summary))
    }

    fn release_diagnoses(&mut self) -> io::Result<()> {
        for pending in std::mem::take(&mut self.pending) {
            self.diagnosis(pending.finish())?;
        }
        Ok(())
    }

    fn diagnosis(&mut self, diagnosis: Diagnosis) -> io::Result<()> {
        self.each(|o| o.diagnosis(&diagnosis))?;
        if self.summarize {
            self.diagnoses.push(diagnosis);
        }
        Ok(())
    }

    /// Tells every output, in order, stopping at the first error.
    fn each(&mut self, mut tell: impl FnMut(&mut dyn Output) -> io::Result<()>) -> io::Result<()> {
        self.outputs.iter_mut().try_for_each(|o| tell(o.as_mut()))
    }
}
