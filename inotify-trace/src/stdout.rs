//! Where printed output goes, and what a write error on it means: a closed
//! pipe (`inotify-trace | head`) is a normal end, decided once, at the top
//! (`crate::run`); anything else is an error.
use std::io;

/// A buffered stdout: a line per event would be a write(2) per event.
pub fn buffered() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// True when `err` (or its cause) is a closed stdout.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
