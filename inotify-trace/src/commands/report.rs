//! `inotify-trace report FILE`: a recording read back through the same
//! pipeline as a live session, so its output has the same form (and, without
//! filters, the same bytes as the live output).
use std::{fs::File, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{
    escape::Escaped,
    file_arg::FileArg,
    notices::say,
    pipeline::Pipeline,
    recording::{file, reader::Reader},
    settings::ReportSettings,
    stream::Item,
    timeline::{Destination, Timeline},
};

/// The agent's newest recordings in `dir`, as a tail for the error that
/// refuses a directory: in a pod without a shell, the way to find one.
fn newest_recordings(dir: &std::path::Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("inotify-trace-") && n.ends_with(".rec"))
        // Names to be printed: nothing a terminal would act on.
        .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
        .collect();
    // The agent's names sort by time.
    names.sort_unstable_by(|a, b| b.cmp(a));
    match names.len() {
        0 => String::new(),
        n => format!(
            "; the newest of its {n} recordings: {}",
            names
                .iter()
                .take(3)
                .map(|name| dir.join(name).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn report(settings: ReportSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        say(format_args!("note: {note}"));
    }
    // `-` is stdin (`inotify-trace -w - | inotify-trace report -`).
    let (name, input): (String, Box<dyn std::io::Read>) = match settings.file.path() {
        None => ("stdin".to_owned(), Box::new(std::io::stdin().lock())),
        Some(path) => {
            let name = path.display().to_string();
            if path.is_dir() {
                anyhow::bail!(
                    "{name} is a directory: give a recording file (one that inotify-trace --record FILE made){}",
                    newest_recordings(path)
                );
            }
            let file = File::open(path).with_context(|| format!("opening {name}"))?;
            (name, Box::new(file))
        }
    };
    let pictures = [("--svg", &settings.svg), ("--html", &settings.html)];
    if pictures
        .iter()
        .all(|(_, p)| p.as_ref().is_some_and(FileArg::is_std))
    {
        anyhow::bail!("--svg - and --html - both want stdout: write one of them to a file");
    }
    // Checked before reading, so a path that cannot be written is refused
    // before any work; the files are made when the pictures are ready.
    let [svg, html] = pictures.map(|(flag, path)| {
        path.as_ref()
            .map(|path| destination(flag, path, settings.force))
            .transpose()
    });
    let (svg, html) = (svg?, html?);
    let mut reader = Reader::open(input).with_context(|| name.clone())?;
    let mut pipeline = Pipeline::new(&settings.pipeline(), &reader.metadata)?;
    if svg.is_some() || html.is_some() {
        let m = &reader.metadata;
        let title = format!(
            "inotify-trace: {}, recorded on {} from {}",
            Escaped(name.as_bytes()),
            Escaped(m.hostname.as_bytes()),
            Escaped(m.start_time.as_bytes())
        );
        pipeline.add_output(Box::new(Timeline::new(svg, html, title, m)));
    }
    // The recording's own filters, when both narrow: what a report filter
    // finds is only what the session let through.
    let recorded_with = recorded_with(&reader.metadata);
    if settings.selection.narrows() {
        if let Some(recorded) = &recorded_with {
            say(format_args!(
                "note: this recording holds only the calls its session's filters let through ({recorded})"
            ));
        }
    }
    let writing = "writing the report to stdout";
    pipeline.start().context(writing)?;
    let mut recorded_events = 0u64;
    while let Some(item) = reader.next_item().with_context(|| name.clone())? {
        recorded_events += u64::from(matches!(item, Item::Event(_)));
        pipeline.push(item).context(writing)?;
    }
    if let Some(cut) = &reader.cut_short {
        say(format_args!(
            "warning: {name} is cut short at byte {} (the tracer was stopped abruptly, or the disk filled up); reporting every whole record before it",
            cut.offset
        ));
    }
    pipeline.finish().context(writing)?;
    // Filters that match nothing: said, and exit 1 (as grep does, and as
    // `usage` does), the empty report printed all the same.
    if settings.selection.narrows() && pipeline.counts().events == 0 && recorded_events > 0 {
        say(format_args!(
            "no event of the recording's {} matches the filters{}",
            crate::words::plural(recorded_events, "event"),
            recorded_with.map_or_else(String::new, |r| format!(" ({r})"))
        ));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// How a recording's session was narrowed, as its command line says it
/// (`recorded with: inotify-trace --comm kubelet -w k.rec`), or None when
/// it traced every call.
fn recorded_with(metadata: &crate::recording::metadata::Metadata) -> Option<String> {
    let filters = &metadata.filters;
    (filters.selection.narrows() || filters.command.is_some()).then(|| {
        format!(
            "recorded with: {}",
            Escaped(metadata.command_line.join(" ").as_bytes())
        )
    })
}

/// Where `flag`'s picture goes: stdout for `-`, else a new private file
/// (or, with `--force`, one renamed over a regular file), checked now.
fn destination(flag: &'static str, path: &FileArg, force: bool) -> Result<Destination> {
    let Some(path) = path.path() else {
        return Ok(Destination::Stdout);
    };
    file::check_for(flag, path, force)?;
    Ok(Destination::File {
        flag,
        path: path.to_owned(),
        force,
    })
}
