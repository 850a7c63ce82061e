//! What a live session says on stderr beside the printed stream: records
//! that did not decode, and, when events are not printed (`--quiet`), lost
//! events, diagnoses and a status line. Writes to stderr never fail the
//! session: a closed or full stderr loses the notice, nothing else.
use std::{
    fmt,
    io::{self, Write},
    time::Instant,
};

use crate::{
    diagnosis::{self, Diagnosis},
    event::DecodeError,
    output::Output,
    status::StatusLine,
    stream::{Counts, End},
};

/// One line on stderr, `inotify-trace: ` first.
pub fn say(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "inotify-trace: {line}");
}

/// The warning for events lost in the kernel, wherever it is printed.
pub fn warn_lost(count: u64) {
    say(format_args!(
        "warning: {count} events lost (ring buffer full); a larger --ring-size absorbs longer bursts"
    ));
}

/// The session's last line: how many events, how many lost, how long.
pub fn closing_line(counts: Counts, elapsed_s: f64) -> String {
    let mut line = format!(
        "{}, {} lost in {elapsed_s:.1}s",
        crate::words::plural(counts.events, "event"),
        counts.lost
    );
    if counts.undecodable > 0 {
        line.push_str(&format!(
            ", {} undecodable records skipped",
            counts.undecodable
        ));
    }
    line
}

pub struct Notices {
    /// No printer tells lost events and diagnoses in its stream (events
    /// are not printed): they are said here. The pipeline decides.
    quiet: bool,
    status: StatusLine,
    started: Instant,
}

impl Notices {
    pub fn new(quiet: bool) -> Notices {
        Notices {
            quiet,
            status: StatusLine::new(quiet),
            started: Instant::now(),
        }
    }
}

impl Output for Notices {
    fn undecodable(&mut self, err: &DecodeError) -> io::Result<()> {
        self.status.clear();
        say(format_args!(
            "warning: skipped a record the kernel sent: {err}"
        ));
        Ok(())
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        if self.quiet {
            self.status.clear();
            warn_lost(count);
        }
        Ok(())
    }

    fn diagnosis(&mut self, d: &Diagnosis) -> io::Result<()> {
        if self.quiet {
            self.status.clear();
            let _ = diagnosis::write_text(&mut io::stderr().lock(), d, "inotify-trace: ");
        }
        Ok(())
    }

    fn flush(&mut self, counts: &Counts) -> io::Result<()> {
        self.status.update(self.started.elapsed(), counts);
        Ok(())
    }

    fn end(&mut self, _end: &End) -> io::Result<()> {
        self.status.clear();
        Ok(())
    }
}
