//! Writing a recording while tracing. Frames are gathered in a buffer that
//! is written after every drain of the ring buffer, so a tracer killed with
//! SIGKILL leaves at most one poll interval unwritten, and a whole file up to
//! its last complete frame.
use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::Result;

use super::{
    format::{frame_header, put_file_header, FrameKind},
    metadata::Metadata,
};
use crate::{
    diagnosis::Diagnosis,
    event::Event,
    file_arg::FileArg,
    output::Output,
    pods::{Attribution, CgroupAttribution},
    stream::{Counts, End},
};

/// Where `--record` writes: a file, or with `-` stdout (as `tcpdump -w -`).
pub struct RecordingFile {
    pub path: FileArg,
    /// Replace a file that exists.
    pub force: bool,
}

impl RecordingFile {
    /// `-w -`: the recording is stdout, and what is printed goes to stderr.
    pub fn is_stdout(&self) -> bool {
        self.path.is_std()
    }
}

pub struct Recorder {
    file: File,
    path: FileArg,
    /// Frames not yet written to the file.
    pending: Vec<u8>,
    /// Where each pending frame ends, as file offsets.
    pending_ends: Vec<u64>,
    /// Bytes in the file: always the end of a whole frame.
    written: u64,
}

/// A write that failed: the end of the last whole record in the file, and
/// why.
#[derive(Debug, thiserror::Error)]
#[error("writing the recording {path} failed after byte {offset}: {cause}; it holds every whole record before that")]
pub struct WriteError {
    pub path: PathBuf,
    pub offset: u64,
    /// In the message, so not also a source (`{:#}` would say it twice).
    pub cause: io::Error,
}

/// Pending frames are written once they reach this size, and after every
/// drain of the ring buffer.
const FLUSH_AT: usize = 1 << 20;

impl Recorder {
    /// Creates the file (see `file::create`: a new private file, or with
    /// `force` a new one renamed over a regular file); writes the header
    /// and the metadata. If they cannot be written (a full disk), the
    /// empty file is removed: it would hold nothing to report.
    pub fn create(path: &FileArg, force: bool, metadata: &Metadata) -> Result<Recorder> {
        let file = match path.path() {
            None => super::file::stdout()?,
            Some(path) => super::file::create(path, force)?,
        };
        let mut recorder = Recorder {
            file,
            path: path.clone(),
            pending: Vec::with_capacity(FLUSH_AT),
            pending_ends: Vec::new(),
            written: 0,
        };
        put_file_header(&mut recorder.pending);
        recorder.pending_ends.push(recorder.pending.len() as u64);
        let started = serde_json::to_vec(metadata)
            .map_err(anyhow::Error::from)
            .and_then(|json| {
                recorder.frame(FrameKind::Metadata, &json)?;
                Ok(recorder.flush()?)
            });
        if let Err(err) = started {
            recorder.remove_if_still_ours();
            let cause = match err.downcast_ref::<WriteError>() {
                Some(write) => write.cause.to_string(),
                None => format!("{err:#}"),
            };
            match recorder.path.path() {
                Some(path) => anyhow::bail!(
                    "could not start the recording {}: {cause}; nothing was recorded and the file is removed: free some space, or record elsewhere",
                    path.display()
                ),
                None => anyhow::bail!(
                    "could not write the recording to stdout: {cause}; nothing was recorded"
                ),
            }
        }
        Ok(recorder)
    }

    /// Removes the file by its name, only if the name still is this file
    /// (in a shared directory, it could have been renamed and replaced).
    fn remove_if_still_ours(&self) {
        use std::os::unix::fs::MetadataExt as _;
        let Some(path) = self.path.path() else {
            return;
        };
        let ours = self.file.metadata().map(|m| (m.dev(), m.ino()));
        let named = std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()));
        if let (Ok(ours), Ok(named)) = (ours, named) {
            if ours == named {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The recording's name in messages: its path, or `stdout` for `-w -`.
    fn name(&self) -> &Path {
        self.path.path().unwrap_or(Path::new("stdout"))
    }

    /// One record exactly as the ring buffer held it.
    pub fn event(&mut self, record: &[u8]) -> Result<(), WriteError> {
        self.frame(FrameKind::Event, record)
    }

    pub fn lost(&mut self, count: u64) -> Result<(), WriteError> {
        self.frame(FrameKind::Lost, &count.to_le_bytes())
    }

    pub fn diagnosis(&mut self, diagnosis: &Diagnosis) -> Result<(), WriteError> {
        self.json(FrameKind::Diagnosis, diagnosis)
    }

    pub fn attribution(&mut self, frame: &CgroupAttribution) -> Result<(), WriteError> {
        self.json(FrameKind::Attribution, frame)
    }

    pub fn start_holdings(&mut self, start: &crate::stream::Start) -> Result<(), WriteError> {
        self.json(FrameKind::Start, start)
    }

    pub fn end(&mut self, end: &End) -> Result<(), WriteError> {
        self.json(FrameKind::End, end)?;
        self.flush()
    }

    /// A frame whose payload is `value` as JSON (plain data: it always
    /// serializes).
    fn json(&mut self, kind: FrameKind, value: &impl serde::Serialize) -> Result<(), WriteError> {
        let payload = serde_json::to_vec(value).expect("plain data serializes");
        self.frame(kind, &payload)
    }

    /// Writes the pending frames to the kernel (not to the disk: a crash of
    /// the tracer loses nothing written, a crash of the machine may). On a
    /// failure the file is cut back to its last whole frame, which the
    /// error names.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        let mut done = 0;
        while done < self.pending.len() {
            match self.file.write(&self.pending[done..]) {
                Ok(0) => return Err(self.failed(done, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.failed(done, err)),
            }
        }
        self.written += self.pending.len() as u64;
        self.pending.clear();
        self.pending_ends.clear();
        Ok(())
    }

    fn frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), WriteError> {
        self.pending
            .extend_from_slice(&frame_header(kind as u16, payload));
        self.pending.extend_from_slice(payload);
        self.pending_ends
            .push(self.written + self.pending.len() as u64);
        if self.pending.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// `done` pending bytes reached the file before `cause`: cut it back to
    /// the last frame that reached it whole.
    fn failed(&mut self, done: usize, cause: io::Error) -> WriteError {
        let reached = self.written + done as u64;
        let whole = self
            .pending_ends
            .iter()
            .copied()
            .filter(|end| *end <= reached)
            .max()
            .unwrap_or(self.written);
        // Best effort: freeing the partial frame also frees the disk space
        // the failure was often about.
        let _ = self.file.set_len(whole);
        self.written = whole;
        self.pending.clear();
        self.pending_ends.clear();
        WriteError {
            // `-w -`: said as what it is.
            path: self.name().to_owned(),
            offset: whole,
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
    fn event(&mut self, event: &Event<'_>, _place: Option<&Attribution>) -> io::Result<()> {
        self.write(|r| r.event(event.record));
        Ok(())
    }

    fn attribution(&mut self, frame: &CgroupAttribution) -> io::Result<()> {
        self.write(|r| r.attribution(frame));
        Ok(())
    }

    fn start_holdings(&mut self, start: &crate::stream::Start) -> io::Result<()> {
        self.write(|r| r.start_holdings(start));
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
