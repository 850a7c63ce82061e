//! Recording a session to a file (`--record`) and reading it back
//! (`inotify-trace report`). The format is documented byte by byte in
//! docs/recording.md; `format` is its one definition in code.
pub(crate) mod file;
pub(crate) mod format;
pub mod metadata;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;
