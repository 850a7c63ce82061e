//! Reading a recording frame by frame, in constant memory, trusting nothing:
//! every frame's length is bounded before anything is allocated, its checksum
//! checked, and an event decoded before it is handed on.
use std::io::{self, BufReader, Read};

use super::{
    format::{
        checksum, parse_file_header, parse_frame_header, FrameKind, FILE_HEADER_SIZE,
        FRAME_HEADER_SIZE, MAGIC, MAJOR, MAX_PAYLOAD, OLDEST_MAJOR,
    },
    metadata::Metadata,
};
use crate::{event::Event, stream::Item};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not an inotify-trace recording (no INOTRACE header at byte 0)")]
    NotARecording,
    #[error("an empty file, not a recording: the session that made it wrote nothing (was it stopped before it attached?)")]
    Empty,
    #[error("cut short in its header ({len} of {FILE_HEADER_SIZE} bytes): the session stopped before it wrote it, and there is nothing to report")]
    HeaderCutShort { len: usize },
    #[error("written by a newer inotify-trace (format {major}.{minor}; this one reads {MAJOR}.x): report on it with a newer inotify-trace")]
    NewerMajor { major: u16, minor: u16 },
    #[error("corrupt at byte {offset}: {why}")]
    Corrupt { offset: u64, why: String },
    #[error("reading failed at byte {offset}: {cause}")]
    Io { offset: u64, cause: io::Error },
}

/// A file that ends inside a frame (the tracer was killed, the disk filled
/// up): everything before `offset` was read.
#[derive(Debug, PartialEq, Eq)]
pub struct CutShort {
    pub offset: u64,
}

pub struct Reader<R: Read> {
    input: BufReader<R>,
    /// Where the next frame starts.
    offset: u64,
    payload: Vec<u8>,
    pub metadata: Metadata,
    /// Set once the file turned out to end inside a frame.
    pub cut_short: Option<CutShort>,
}

impl<R: Read> Reader<R> {
    /// Reads the header and the metadata frame.
    pub fn open(input: R) -> Result<Reader<R>, ReadError> {
        let mut input = BufReader::with_capacity(1 << 20, input);
        let mut header = [0u8; FILE_HEADER_SIZE];
        match read_full(&mut input, &mut header) {
            Ok(n) if n == FILE_HEADER_SIZE => {}
            Ok(0) => return Err(ReadError::Empty),
            // The start of a header, and then the end of the file.
            Ok(len) if header[..len.min(MAGIC.len())] == MAGIC[..len.min(MAGIC.len())] => {
                return Err(ReadError::HeaderCutShort { len })
            }
            Ok(_) => return Err(ReadError::NotARecording),
            Err(cause) => return Err(ReadError::Io { offset: 0, cause }),
        }
        let (major, minor) = parse_file_header(&header).ok_or(ReadError::NotARecording)?;
        if major > MAJOR {
            return Err(ReadError::NewerMajor { major, minor });
        }
        if major < OLDEST_MAJOR {
            return Err(ReadError::Corrupt {
                offset: 8,
                why: format!("format version {major}.{minor} does not exist"),
            });
        }
        let mut reader = Reader {
            input,
            offset: FILE_HEADER_SIZE as u64,
            payload: Vec::new(),
            metadata: placeholder_metadata(),
            cut_short: None,
        };
        let offset = reader.offset;
        match reader.next_frame()? {
            Some(FrameKind::Metadata) => {
                reader.metadata =
                    serde_json::from_slice(&reader.payload).map_err(|e| ReadError::Corrupt {
                        offset,
                        why: format!("unreadable metadata: {e}"),
                    })?;
                Ok(reader)
            }
            Some(other) => Err(ReadError::Corrupt {
                offset,
                why: format!("the first frame is {other:?}, not the metadata"),
            }),
            None => Err(ReadError::Corrupt {
                offset,
                why: "the file ends before its metadata".to_owned(),
            }),
        }
    }

    /// The next frame's item, `None` at the end (see `cut_short` for how it
    /// ended).
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>, ReadError> {
        let offset = self.offset;
        let Some(kind) = self.next_frame()? else {
            return Ok(None);
        };
        let corrupt = |why: String| ReadError::Corrupt { offset, why };
        Ok(Some(match kind {
            FrameKind::Event => {
                let event = Event::decode(&self.payload).map_err(|e| corrupt(e.to_string()))?;
                Item::Event(event)
            }
            FrameKind::Lost => {
                let count: [u8; 8] = self.payload[..].try_into().map_err(|_| {
                    corrupt(format!(
                        "a lost-events frame of {} bytes",
                        self.payload.len()
                    ))
                })?;
                Item::Lost(u64::from_le_bytes(count))
            }
            FrameKind::End => Item::End(json(&self.payload, "end").map_err(corrupt)?),
            FrameKind::Diagnosis => {
                Item::Diagnosis(Box::new(json(&self.payload, "diagnosis").map_err(corrupt)?))
            }
            FrameKind::Attribution => Item::Attribution(Box::new(
                json(&self.payload, "attribution").map_err(corrupt)?,
            )),
            FrameKind::Start => Item::Start(Box::new(
                json(&self.payload, "start holdings").map_err(corrupt)?,
            )),
            FrameKind::Metadata => return Err(corrupt("a second metadata frame".to_owned())),
        }))
    }

    /// Reads one known frame's payload into `self.payload`, skipping frames
    /// of unknown kinds; `None` at the end of the file.
    fn next_frame(&mut self) -> Result<Option<FrameKind>, ReadError> {
        loop {
            let offset = self.offset;
            let mut header = [0u8; FRAME_HEADER_SIZE];
            match read_full(&mut self.input, &mut header) {
                Ok(0) => return Ok(None),
                Ok(n) if n < FRAME_HEADER_SIZE => return Ok(self.cut(offset)),
                Ok(_) => {}
                Err(cause) => return Err(ReadError::Io { offset, cause }),
            }
            let frame = parse_frame_header(&header);
            if frame.length > MAX_PAYLOAD {
                return Err(ReadError::Corrupt {
                    offset,
                    why: format!("a frame of {} bytes (at most {MAX_PAYLOAD})", frame.length),
                });
            }
            self.payload.resize(frame.length as usize, 0);
            match read_full(&mut self.input, &mut self.payload) {
                Ok(n) if n < self.payload.len() => return Ok(self.cut(offset)),
                Ok(_) => {}
                Err(cause) => return Err(ReadError::Io { offset, cause }),
            }
            if checksum(frame.kind, frame.reserved, &self.payload) != frame.crc {
                return Err(ReadError::Corrupt {
                    offset,
                    why: "checksum mismatch".to_owned(),
                });
            }
            self.offset += (FRAME_HEADER_SIZE + self.payload.len()) as u64;
            match FrameKind::from_u16(frame.kind) {
                Some(kind) => return Ok(Some(kind)),
                // A kind from a newer minor version: not ours to read.
                None => continue,
            }
        }
    }

    fn cut(&mut self, offset: u64) -> Option<FrameKind> {
        self.cut_short = Some(CutShort { offset });
        None
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn placeholder_metadata() -> Metadata {
    Metadata {
        tool: String::new(),
        hostname: String::new(),
        kernel_release: String::new(),
        boot_id: String::new(),
        start_time: String::new(),
        start_boot_ns: 0,
        boot_epoch_ns: 0,
        utc_offset_s: 0,
        limits: Default::default(),
        filters: Default::default(),
        command_line: Vec::new(),
    }
}

/// A JSON frame's payload, or why it is not one.
fn json<T: serde::de::DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| format!("unreadable {what} frame: {e}"))
}
