//! Writing a recording while tracing. Frames go through a large buffer that
//! is flushed after every drain of the ring buffer, so a tracer killed with
//! SIGKILL leaves at most one poll interval unwritten, and a whole file up to
//! its last complete frame.
use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use super::{
    format::{frame_header, put_file_header, FrameKind},
    metadata::Metadata,
};
use crate::{
    event::Event,
    output::Output,
    stream::{Counts, End},
    usage::diagnosis::Diagnosis,
};

/// Where `--record` writes.
pub struct RecordingFile {
    pub path: PathBuf,
    /// Replace a file that exists.
    pub force: bool,
}

pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    /// Bytes handed to the buffer so far: where the next frame starts.
    offset: u64,
}

/// A write that failed: where, and why.
#[derive(Debug, thiserror::Error)]
#[error("writing the recording {path} failed at byte {offset}: {cause}; it holds every whole record before that")]
pub struct WriteError {
    pub path: PathBuf,
    pub offset: u64,
    #[source]
    pub cause: io::Error,
}

impl Recorder {
    /// Creates the file, mode 0600 (paths and process names are sensitive),
    /// refusing to overwrite one unless `force`; writes the header and the
    /// metadata.
    pub fn create(path: &Path, force: bool, metadata: &Metadata) -> Result<Recorder> {
        let mut options = OpenOptions::new();
        options.write(true).mode(0o600);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let file = options.open(path).map_err(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} exists already: choose another file, or add --force to overwrite it",
                path.display()
            ),
            _ => anyhow::Error::new(err).context(format!("creating {}", path.display())),
        })?;
        // An existing file keeps its mode through truncation; make it private.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private (mode 0600)", path.display()))?;
        let mut recorder = Recorder {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.to_owned(),
            offset: 0,
        };
        let mut header = Vec::new();
        put_file_header(&mut header);
        recorder.write(&header)?;
        recorder.frame(FrameKind::Metadata, &serde_json::to_vec(metadata)?)?;
        recorder.flush()?;
        Ok(recorder)
    }

    /// One record exactly as the ring buffer held it.
    pub fn event(&mut self, record: &[u8]) -> Result<(), WriteError> {
        self.frame(FrameKind::Event, record)
    }

    pub fn lost(&mut self, count: u64) -> Result<(), WriteError> {
        self.frame(FrameKind::Lost, &count.to_le_bytes())
    }

    pub fn diagnosis(&mut self, diagnosis: &Diagnosis) -> Result<(), WriteError> {
        let payload = serde_json::to_vec(diagnosis).expect("Diagnosis serializes");
        self.frame(FrameKind::Diagnosis, &payload)
    }

    pub fn end(&mut self, end: &End) -> Result<(), WriteError> {
        let payload = serde_json::to_vec(end).expect("End serializes");
        self.frame(FrameKind::End, &payload)?;
        self.flush()
    }

    /// Pushes buffered frames to the kernel (not to the disk: a crash of the
    /// tracer loses nothing written, a crash of the machine may).
    pub fn flush(&mut self) -> Result<(), WriteError> {
        let offset = self.offset;
        self.out.flush().map_err(|cause| self.error(offset, cause))
    }

    fn frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), WriteError> {
        self.write(&frame_header(kind as u16, payload))?;
        self.write(payload)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let offset = self.offset;
        self.out
            .write_all(bytes)
            .map_err(|cause| self.error(offset, cause))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn error(&self, offset: u64, cause: io::Error) -> WriteError {
        WriteError {
            path: self.path.clone(),
            offset,
            cause,
        }
    }
}

/// The recorder as an output of the pipeline. A write that fails stops the
/// recording (the file keeps every whole record before it) and is kept, so
/// the session stops, prints its summary and exits 1 naming it.
pub struct RecorderOutput {
    recorder: Recorder,
    failure: Option<anyhow::Error>,
}

impl RecorderOutput {
    pub fn create(record: &RecordingFile, metadata: &Metadata) -> Result<RecorderOutput> {
        Ok(RecorderOutput {
            recorder: Recorder::create(&record.path, record.force, metadata)?,
            failure: None,
        })
    }

    /// Writes unless an earlier write failed.
    fn write(&mut self, write: impl FnOnce(&mut Recorder) -> Result<(), WriteError>) {
        if self.failure.is_none() {
            self.failure = write(&mut self.recorder).err().map(anyhow::Error::new);
        }
    }
}

impl Output for RecorderOutput {
    fn event(&mut self, event: &Event<'_>) -> io::Result<()> {
        self.write(|r| r.event(event.record));
        Ok(())
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        self.write(|r| r.lost(count));
        Ok(())
    }

    fn diagnosis(&mut self, diagnosis: &Diagnosis) -> io::Result<()> {
        self.write(|r| r.diagnosis(diagnosis));
        Ok(())
    }

    fn end(&mut self, end: &End) -> io::Result<()> {
        self.write(|r| r.end(end));
        Ok(())
    }

    fn flush(&mut self, _counts: &Counts) -> io::Result<()> {
        self.write(Recorder::flush);
        Ok(())
    }

    fn failure(&self) -> Option<&anyhow::Error> {
        self.failure.as_ref()
    }
}
