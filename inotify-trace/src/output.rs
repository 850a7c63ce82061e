//! Where the event stream goes, and what a write error means: a closed pipe
//! (`inotify-trace | head`) is a normal end, anything else an error.
use std::io;

/// True when `err` (or its cause) is a closed stdout.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The result of a final write: `Ok(true)` when stdout turned out to be
/// closed, which ends the command normally; other errors name `what` failed.
pub fn closed(result: io::Result<()>, what: &str) -> anyhow::Result<bool> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(true),
        other => other
            .map(|()| false)
            .map_err(|err| anyhow::Error::new(err).context(what.to_owned())),
    }
}

/// A buffered stdout: a line per event would be a write(2) per event.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}
