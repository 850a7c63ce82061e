//! Printing events for people (`human`) and for programs (`json`).
pub mod human;
pub mod json;

use std::io;

use crate::{clock::WallClock, event::Event, output, settings::Format, summary::Summary};

/// Where the live stream of events goes.
pub trait Printer {
    /// Printed once before the first event (a column header, or nothing).
    fn start(&mut self) -> io::Result<()>;
    fn event(&mut self, event: &Event<'_>) -> io::Result<()>;
    /// `count` more events were lost in the kernel (ring buffer full).
    fn lost(&mut self, count: u64) -> io::Result<()>;
    /// A usage snapshot taken because a call failed for a limit.
    fn diagnosis(&mut self, diagnosis: &crate::usage::diagnosis::Diagnosis) -> io::Result<()>;
    /// The session summary, printed once at the end.
    fn summary(&mut self, summary: &Summary) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// The printer for a format, writing to a buffered stdout.
pub fn to_stdout(format: Format, clock: WallClock) -> Box<dyn Printer> {
    match format {
        Format::Human => Box::new(human::HumanPrinter::new(output::stdout(), clock)),
        Format::Json => Box::new(json::JsonPrinter::new(output::stdout(), clock)),
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
