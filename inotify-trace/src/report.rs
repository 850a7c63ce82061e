//! `inotify-trace report FILE`: a recording read back through the same
//! pipeline as a live session, so its output has the same form (and, without
//! filters, the same bytes as the live `--json` output).
use std::{fs::File, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{
    clock::WallClock,
    output,
    pipeline::Pipeline,
    recording::reader::{Item, Reader},
    render::{self, Printer},
    settings::ReportSettings,
    summary::LimitsAtStartAndEnd,
};

pub fn run(settings: ReportSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        eprintln!("inotify-trace: note: {note}");
    }
    let name = settings.file.display().to_string();
    let file = File::open(&settings.file).with_context(|| format!("opening {name}"))?;
    let mut reader = Reader::open(file).with_context(|| name.clone())?;
    let metadata = reader.metadata.clone();
    let clock = WallClock {
        boot_epoch_ns: i128::from(metadata.boot_epoch_ns),
        utc_offset_s: metadata.utc_offset_s,
    };
    let mut printer = render::to_stdout(settings.format, clock);
    let events_printer = settings
        .events
        .then(|| printer.as_mut() as &mut dyn Printer);
    let mut pipeline = Pipeline::new(events_printer, settings.filter);
    let mut end = None;
    let mut last_event_ns = metadata.start_boot_ns;
    let streamed: Result<()> = (|| {
        pipeline.start()?;
        while let Some(item) = reader.next_item().with_context(|| name.clone())? {
            match item {
                Item::Event(_, event) => {
                    last_event_ns = last_event_ns.max(event.header.time_ns);
                    pipeline.event(&event)?;
                }
                Item::Lost(count) => {
                    pipeline.lost(count)?;
                }
                Item::End(info) => end = Some(info),
                Item::Diagnosis(diagnosis) => {
                    pipeline.diagnosis(*diagnosis)?;
                }
            }
        }
        Ok(())
    })();
    match streamed {
        Err(err) if output::is_broken_pipe(&err) => return Ok(ExitCode::SUCCESS),
        other => other?,
    }
    if let Some(cut) = &reader.cut_short {
        eprintln!(
            "inotify-trace: warning: {name} is cut short at byte {} (the tracer was stopped abruptly, or the disk filled up); reporting every whole record before it",
            cut.offset
        );
    }
    // A session that ended normally says how long it lasted and what the
    // limits were at its end; a cut-short one lasted at least until its
    // last event.
    let (duration_s, end_limits) = match &end {
        Some(end) => (end.duration_s, end.limits),
        None => (
            last_event_ns.saturating_sub(metadata.start_boot_ns) as f64 / 1e9,
            Default::default(),
        ),
    };
    let limits = LimitsAtStartAndEnd {
        start: metadata.limits,
        end: end_limits,
    };
    let summary = pipeline.summary(duration_s, limits, &clock, settings.top);
    drop(pipeline);
    output::closed(
        printer.summary(&summary).and_then(|()| printer.flush()),
        "writing the report",
    )?;
    Ok(ExitCode::SUCCESS)
}
