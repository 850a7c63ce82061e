//! Printing the stream on stdout, for people (`human`) and for programs
//! (`json`): each printer is an [`Output`].
pub(crate) mod human;
pub(crate) mod json;

use std::io;

use crate::{clock::WallClock, output::Output, stdout, stream::Counts, summary::Summary};

/// How printed output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

impl Format {
    pub fn from_flag(json: bool) -> Format {
        if json {
            Format::Json
        } else {
            Format::Human
        }
    }
}

/// Where a printer writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    /// When stdout carries the recording (`-w -`).
    Stderr,
}

/// The printer for a format, buffered; with `events` false it prints the
/// summary alone.
pub fn printer(format: Format, clock: WallClock, events: bool, sink: Sink) -> Box<dyn Output> {
    let out: Box<dyn io::Write> = match sink {
        Sink::Stdout => Box::new(stdout::buffered()),
        Sink::Stderr => Box::new(io::BufWriter::with_capacity(64 * 1024, io::stderr().lock())),
    };
    let printer: Box<dyn Output> = match format {
        Format::Human => Box::new(human::HumanPrinter::new(out, clock)),
        Format::Json => Box::new(json::JsonPrinter::new(out, clock)),
    };
    match events {
        true => printer,
        false => Box::new(SummaryOnly(printer)),
    }
}

/// Passes on the summary alone: `--quiet`, and `report` without `--events`.
struct SummaryOnly(Box<dyn Output>);

impl Output for SummaryOnly {
    fn flush(&mut self, counts: &Counts) -> io::Result<()> {
        self.0.flush(counts)
    }

    fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        self.0.summary(summary)
    }
}

/// The text of `inotify_init1`'s flags, as the caller would have written them.
pub fn init1_flags_text(flags: u32) -> String {
    let mut names = Vec::new();
    let mut rest = flags;
    for (bit, name) in [(0o4000, "IN_NONBLOCK"), (0o2000000, "IN_CLOEXEC")] {
        if rest & bit != 0 {
            names.push(name.to_owned());
            rest &= !bit;
        }
    }
    if names.is_empty() {
        return format!("{rest:#x}").replace("0x0", "0");
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names.join("|")
}
