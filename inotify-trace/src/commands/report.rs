//! `inotify-trace report FILE`: a recording read back through the same
//! pipeline as a live session, so its output has the same form (and, without
//! filters, the same bytes as the live output).
use std::{fs::File, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{
    notices::say, pipeline::Pipeline, recording::reader::Reader, settings::ReportSettings,
};

pub fn report(settings: ReportSettings) -> Result<ExitCode> {
    for note in &settings.notes {
        say(format_args!("note: {note}"));
    }
    // `-` is stdin (`inotify-trace -w - | inotify-trace report -`).
    let (name, input): (String, Box<dyn std::io::Read>) = match settings.file.as_os_str() == "-" {
        true => ("stdin".to_owned(), Box::new(std::io::stdin().lock())),
        false => {
            let name = settings.file.display().to_string();
            if settings.file.is_dir() {
                anyhow::bail!("{name} is a directory: give a recording file (one that inotify-trace --record FILE made)");
            }
            let file = File::open(&settings.file).with_context(|| format!("opening {name}"))?;
            (name, Box::new(file))
        }
    };
    let mut reader = Reader::open(input).with_context(|| name.clone())?;
    let mut pipeline = Pipeline::new(&settings.pipeline(), &reader.metadata)?;
    pipeline.start()?;
    while let Some(item) = reader.next_item().with_context(|| name.clone())? {
        pipeline.push(item)?;
    }
    if let Some(cut) = &reader.cut_short {
        say(format_args!(
            "warning: {name} is cut short at byte {} (the tracer was stopped abruptly, or the disk filled up); reporting every whole record before it",
            cut.offset
        ));
    }
    pipeline.finish()?;
    Ok(ExitCode::SUCCESS)
}
