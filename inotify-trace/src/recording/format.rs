//! The recording file format, version 3.0 (docs/recording.md):
//!
//! ```text
//! file   = header frame*
//! header = magic "INOTRACE" (8) | major u16 | minor u16 | reserved u32 (0)
//! frame  = length u32 | kind u16 | reserved u16 (0) | crc32 u32 | payload
//! ```
//! All integers little-endian. `length` counts the payload only; `crc32`
//! (IEEE) covers kind, reserved and payload, so a flipped byte anywhere in a
//! frame is caught. A reader skips frames of kinds it does not know, unless
//! the file's major version is newer than its own.
use bytes::{Buf, BufMut};

pub const MAGIC: [u8; 8] = *b"INOTRACE";
/// Changes that older readers cannot skip over bump the major version: 2
/// appended the caller's effective uid, user namespace and cgroup id to each
/// event record (80-byte headers; 1.x files hold 64-byte ones), 3 the
/// charge (88-byte headers and the charge's levels).
pub const MAJOR: u16 = 3;
/// The oldest major version this reader still reads.
pub const OLDEST_MAJOR: u16 = 1;
/// New frame kinds bump the minor version; older readers skip them.
pub const MINOR: u16 = 0;
pub const FILE_HEADER_SIZE: usize = 16;
pub const FRAME_HEADER_SIZE: usize = 12;
/// No frame is larger: a length field above it is corruption, refused
/// before anything is allocated.
pub const MAX_PAYLOAD: u32 = 1 << 20;

/// Frame kinds; their numbers never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum FrameKind {
    /// JSON: the session's metadata. Always the first frame.
    Metadata = 1,
    /// One record exactly as the eBPF side wrote it (`inotify_trace_common`).
    Event = 2,
    /// u64: this many events were lost in the kernel at this point.
    Lost = 3,
    /// JSON: how the session ended (absent when the tracer was killed).
    End = 4,
    /// JSON: a usage snapshot taken when a call failed for a limit (1.1).
    Diagnosis = 5,
    /// JSON: how the session resolved a cgroup id to a pod, container or
    /// unit, before the first event that uses it (2.0).
    Attribution = 6,
    /// JSON: what held inotify instances when the session attached (3.0).
    Start = 7,
}

impl FrameKind {
    pub fn from_u16(kind: u16) -> Option<FrameKind> {
        match kind {
            1 => Some(FrameKind::Metadata),
            2 => Some(FrameKind::Event),
            3 => Some(FrameKind::Lost),
            4 => Some(FrameKind::End),
            5 => Some(FrameKind::Diagnosis),
            6 => Some(FrameKind::Attribution),
            7 => Some(FrameKind::Start),
            _ => None,
        }
    }
}

pub fn put_file_header(out: &mut impl BufMut) {
    out.put_slice(&MAGIC);
    out.put_u16_le(MAJOR);
    out.put_u16_le(MINOR);
    out.put_u32_le(0);
}

/// The file header's version, or `None` when the magic is not ours.
pub fn parse_file_header(mut header: &[u8]) -> Option<(u16, u16)> {
    if header.len() < FILE_HEADER_SIZE || header[..8] != MAGIC {
        return None;
    }
    header.advance(8);
    Some((header.get_u16_le(), header.get_u16_le()))
}

/// The 12 bytes before a payload.
pub fn frame_header(kind: u16, payload: &[u8]) -> [u8; FRAME_HEADER_SIZE] {
    let mut header = [0u8; FRAME_HEADER_SIZE];
    let mut out = &mut header[..];
    out.put_u32_le(payload.len() as u32);
    out.put_u16_le(kind);
    out.put_u16_le(0);
    out.put_u32_le(checksum(kind, 0, payload));
    header
}

/// A frame header as read, not yet checked against its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub length: u32,
    pub kind: u16,
    pub reserved: u16,
    pub crc: u32,
}

pub fn parse_frame_header(bytes: &[u8; FRAME_HEADER_SIZE]) -> FrameHeader {
    let bytes: &mut &[u8] = &mut &bytes[..];
    FrameHeader {
        length: bytes.get_u32_le(),
        kind: bytes.get_u16_le(),
        reserved: bytes.get_u16_le(),
        crc: bytes.get_u32_le(),
    }
}

pub fn checksum(kind: u16, reserved: u16, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&kind.to_le_bytes());
    hasher.update(&reserved.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_header_is_sixteen_bytes_spelled_out() {
        let mut bytes = Vec::new();
        put_file_header(&mut bytes);
        assert_eq!(bytes, b"INOTRACE\x03\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(parse_file_header(&bytes), Some((3, 0)));
        assert_eq!(
            parse_file_header(b"INOTRACX\x01\x00\x00\x00\x00\x00\x00\x00"),
            None
        );
        assert_eq!(parse_file_header(b"INOTRACE"), None);
    }

    #[test]
    fn a_frame_header_carries_length_kind_and_checksum() {
        let header = frame_header(3, &7u64.to_le_bytes());
        assert_eq!(&header[..8], b"\x08\x00\x00\x00\x03\x00\x00\x00");
        let parsed = parse_frame_header(&header);
        assert_eq!((parsed.length, parsed.kind, parsed.reserved), (8, 3, 0));
        assert_eq!(parsed.crc, checksum(3, 0, &7u64.to_le_bytes()));
        assert_ne!(parsed.crc, checksum(3, 0, &8u64.to_le_bytes()));
    }
}
