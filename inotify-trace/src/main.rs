//! The `inotify-trace` command: parsing the command line is all it does
//! before handing over to the library.
use std::process::ExitCode;

fn main() -> ExitCode {
    inotify_trace::run(inotify_trace::cli::parse())
}
