//! The one-line live status on stderr for quiet sessions on a terminal:
//! elapsed time, events, failures, lost. Redrawn at most four times a
//! second, erased at the end so the summary starts on a clean line.
use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use crate::stream::Counts;

const REFRESH: Duration = Duration::from_millis(250);

pub struct StatusLine {
    enabled: bool,
    last_drawn: Option<Instant>,
}

impl StatusLine {
    /// Enabled only when asked for and stderr is a terminal.
    pub fn new(wanted: bool) -> StatusLine {
        StatusLine {
            enabled: wanted && std::io::stderr().is_terminal(),
            last_drawn: None,
        }
    }

    pub fn update(&mut self, elapsed: Duration, counts: &Counts) {
        if !self.enabled || self.last_drawn.is_some_and(|at| at.elapsed() < REFRESH) {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[Kinotify-trace: {:.1}s  {} events  {} failed  {} lost",
            elapsed.as_secs_f64(),
            counts.events,
            counts.failed,
            counts.lost
        );
        let _ = stderr.flush();
        self.last_drawn = Some(Instant::now());
    }

    /// Erases the line (before other stderr output, and at the end).
    pub fn clear(&mut self) {
        if self.last_drawn.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
