//! Decoding records of the wire format (`inotify_trace_common`) into events.
//!
//! Decoding reads each field explicitly (little-endian) rather than casting
//! the bytes, so a record from any source, the ring buffer or a recording
//! file, is checked before it is trusted.
use bytes::{Buf, BufMut};
use inotify_trace_common::{
    ChargeLevel, Comm, EventHeader, CHARGE_LEVEL_SIZE, FLAG_ARGS_MISSING, FLAG_CGROUP_MISSING,
    FLAG_CHARGE_CUT, FLAG_CHARGE_MISSING, FLAG_CHARGE_OF_CALLER, FLAG_CRED_MISSING, FLAG_INIT1,
    FLAG_PATH_TRUNCATED, FLAG_PATH_UNREADABLE, HEADER_SIZE, HEADER_SIZE_V1, HEADER_SIZE_V2,
    MAX_CHARGE_LEVELS, PATH_CAPTURE_MAX,
};
pub use inotify_trace_common::{Kind, Syscall};

use crate::errno::Errno;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the {HEADER_SIZE_V1}-byte event header")]
    Short(usize),
    #[error("record declares {declared} path bytes but carries {carried}")]
    PathLength { declared: u32, carried: usize },
    #[error(
        "record carries a path of {0} bytes, more than the {PATH_CAPTURE_MAX} a path can have"
    )]
    PathTooLong(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error(
        "record declares {0} charge levels, more than the {MAX_CHARGE_LEVELS} a record can carry"
    )]
    TooManyLevels(u32),
}

/// One traced call, borrowing its path from the record it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: Kind,
    pub header: EventHeader,
    /// The charge's levels as the record carries them (`charge()` reads
    /// them): empty in records of the first two layouts.
    pub charge: &'a [u8],
    pub path: &'a [u8],
    /// The whole record, exactly as the kernel wrote it (what a recording
    /// stores).
    pub record: &'a [u8],
}

impl<'a> Event<'a> {
    /// Decodes one whole record, of any layout: the header's size is what
    /// the path leaves, [`HEADER_SIZE`] with its charge levels, or
    /// [`HEADER_SIZE_V2`] or [`HEADER_SIZE_V1`] (older recordings), whose
    /// missing fields are zero and flagged missing.
    pub fn decode(record: &'a [u8]) -> Result<Self, DecodeError> {
        if record.len() < HEADER_SIZE_V1 {
            return Err(DecodeError::Short(record.len()));
        }
        let declared = (&record[44..48]).get_u32_le();
        let levels = record.get(80..84).map_or(0, |mut b| b.get_u32_le());
        let (header_size, charge_len) = match record.len().checked_sub(declared as usize) {
            Some(HEADER_SIZE_V1) => (HEADER_SIZE_V1, 0),
            Some(HEADER_SIZE_V2) => (HEADER_SIZE_V2, 0),
            Some(fixed) if fixed >= HEADER_SIZE && levels as usize > MAX_CHARGE_LEVELS => {
                return Err(DecodeError::TooManyLevels(levels))
            }
            Some(fixed) if fixed == HEADER_SIZE + levels as usize * CHARGE_LEVEL_SIZE => {
                (HEADER_SIZE, levels as usize * CHARGE_LEVEL_SIZE)
            }
            _ => {
                let header_size = match record.len() {
                    n if n >= HEADER_SIZE => HEADER_SIZE,
                    n if n >= HEADER_SIZE_V2 => HEADER_SIZE_V2,
                    _ => HEADER_SIZE_V1,
                };
                return Err(DecodeError::PathLength {
                    declared,
                    carried: record.len() - header_size,
                });
            }
        };
        let (fixed, rest) = record.split_at(header_size);
        let (charge, path) = rest.split_at(charge_len);
        let mut fixed = fixed;
        let mut header = EventHeader {
            kind: fixed.get_u32_le(),
            flags: fixed.get_u32_le(),
            time_ns: fixed.get_u64_le(),
            pid: fixed.get_u32_le(),
            tid: fixed.get_u32_le(),
            uid: fixed.get_u32_le(),
            fd: fixed.get_i32_le(),
            ret: fixed.get_i64_le(),
            arg: fixed.get_u32_le(),
            path_len: fixed.get_u32_le(),
            comm: [0; 16],
            euid: 0,
            user_ns: 0,
            cgroup_id: 0,
            charge_levels: 0,
            reserved: 0,
        };
        fixed.copy_to_slice(&mut header.comm);
        if header_size >= HEADER_SIZE_V2 {
            header.euid = fixed.get_u32_le();
            header.user_ns = fixed.get_u32_le();
            header.cgroup_id = fixed.get_u64_le();
        } else {
            header.flags |= FLAG_CRED_MISSING | FLAG_CGROUP_MISSING;
        }
        if header_size == HEADER_SIZE {
            header.charge_levels = fixed.get_u32_le();
            header.reserved = fixed.get_u32_le();
        } else {
            header.flags |= FLAG_CHARGE_MISSING;
        }
        let kind = Kind::from_wire(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
        if path.len() > PATH_CAPTURE_MAX {
            return Err(DecodeError::PathTooLong(path.len()));
        }
        Ok(Event {
            kind,
            header,
            charge,
            path,
            record,
        })
    }

    /// The errno of a failed call, `None` for a success.
    pub fn errno(&self) -> Option<Errno> {
        Errno::from_ret(self.header.ret)
    }

    /// The record's comm up to its NUL.
    pub fn comm(&self) -> &[u8] {
        comm_bytes(&self.header.comm)
    }

    pub fn has_flag(&self, flag: u32) -> bool {
        self.header.flags & flag != 0
    }

    pub fn path_truncated(&self) -> bool {
        self.has_flag(FLAG_PATH_TRUNCATED)
    }

    pub fn path_unreadable(&self) -> bool {
        self.has_flag(FLAG_PATH_UNREADABLE)
    }

    pub fn args_missing(&self) -> bool {
        self.has_flag(FLAG_ARGS_MISSING)
    }

    /// The caller's effective uid (as the initial user namespace sees it),
    /// when the record carries it.
    pub fn euid(&self) -> Option<u32> {
        (!self.has_flag(FLAG_CRED_MISSING)).then_some(self.header.euid)
    }

    /// The uid the kernel charges for the call (the effective one); the real
    /// uid for records that lack it.
    pub fn charged_uid(&self) -> u32 {
        self.euid().unwrap_or(self.header.uid)
    }

    /// The inode number of the caller's user namespace, when known.
    pub fn user_ns(&self) -> Option<u64> {
        (!self.has_flag(FLAG_CRED_MISSING) && self.header.user_ns != 0)
            .then_some(u64::from(self.header.user_ns))
    }

    /// The caller's cgroup v2 id, when known.
    pub fn cgroup_id(&self) -> Option<u64> {
        (!self.has_flag(FLAG_CGROUP_MISSING) && self.header.cgroup_id != 0)
            .then_some(self.header.cgroup_id)
    }

    /// The charge after the call, innermost level first; empty when the
    /// record carries none (`charge_missing`).
    pub fn charge(&self) -> impl Iterator<Item = ChargeLevel> + 'a {
        self.charge
            .chunks_exact(CHARGE_LEVEL_SIZE)
            .map(|mut b| ChargeLevel {
                user_ns: b.get_u32_le(),
                uid: b.get_u32_le(),
                watches: b.get_u32_le(),
                instances: b.get_u32_le(),
                max_watches: b.get_u32_le(),
                max_instances: b.get_u32_le(),
            })
    }

    /// Whether the record lacks the charge (an older layout, or the kernel
    /// did not let it be read).
    pub fn charge_missing(&self) -> bool {
        self.has_flag(FLAG_CHARGE_MISSING)
    }

    /// The charge is the caller's own level (a failed init), not an
    /// instance's.
    pub fn charge_of_caller(&self) -> bool {
        self.has_flag(FLAG_CHARGE_OF_CALLER)
    }

    /// The levels were cut short of the initial namespace.
    pub fn charge_cut(&self) -> bool {
        self.has_flag(FLAG_CHARGE_CUT)
    }

    /// `inotify_init1` flags, for init events that came from init1.
    pub fn init1_flags(&self) -> Option<u32> {
        (self.kind == Kind::Init && self.has_flag(FLAG_INIT1)).then_some(self.header.arg)
    }
}

/// Encodes a record exactly as the eBPF side lays it out (`path_len` is the
/// path's, `charge_levels` the charge's): for tests, and for the
/// benchmark's synthetic recordings.
pub fn encode(header: &EventHeader, path: &[u8], out: &mut impl BufMut) {
    encode_with_charge(header, &[], path, out)
}

/// [`encode`] with a charge.
pub fn encode_with_charge(
    header: &EventHeader,
    charge: &[ChargeLevel],
    path: &[u8],
    out: &mut impl BufMut,
) {
    out.put_u32_le(header.kind);
    out.put_u32_le(header.flags);
    out.put_u64_le(header.time_ns);
    out.put_u32_le(header.pid);
    out.put_u32_le(header.tid);
    out.put_u32_le(header.uid);
    out.put_i32_le(header.fd);
    out.put_i64_le(header.ret);
    out.put_u32_le(header.arg);
    out.put_u32_le(path.len() as u32);
    out.put_slice(&header.comm);
    out.put_u32_le(header.euid);
    out.put_u32_le(header.user_ns);
    out.put_u64_le(header.cgroup_id);
    out.put_u32_le(charge.len() as u32);
    out.put_u32_le(0);
    for level in charge {
        out.put_u32_le(level.user_ns);
        out.put_u32_le(level.uid);
        out.put_u32_le(level.watches);
        out.put_u32_le(level.instances);
        out.put_u32_le(level.max_watches);
        out.put_u32_le(level.max_instances);
    }
    out.put_slice(path);
}

/// A kernel comm up to its NUL (all 16 bytes when there is none).
pub fn comm_bytes(comm: &Comm) -> &[u8] {
    let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    &comm[..len]
}

#[cfg(test)]
pub mod fixtures {
    use inotify_trace_common::{comm_key, EventHeader, Kind};

    /// A header for an add_watch call by `comm`, returning `ret`.
    pub fn add_watch(comm: &str, ret: i64) -> EventHeader {
        EventHeader {
            kind: Kind::AddWatch as u32,
            flags: 0,
            time_ns: 1_000_000_000,
            pid: 4242,
            tid: 4243,
            uid: 1000,
            fd: 6,
            ret,
            arg: 0x0000_0fff,
            path_len: 0,
            comm: comm_key(comm.as_bytes()),
            euid: 1000,
            user_ns: 4026531837,
            cgroup_id: 7777,
            charge_levels: 0,
            reserved: 0,
        }
    }

    pub fn record(header: &EventHeader, path: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        super::encode(header, path, &mut bytes);
        bytes
    }

    /// The same record in the first layout: without the credentials, the
    /// cgroup and the charge.
    pub fn record_v1(header: &EventHeader, path: &[u8]) -> Vec<u8> {
        let mut bytes = record(header, path);
        bytes.drain(inotify_trace_common::HEADER_SIZE_V1..inotify_trace_common::HEADER_SIZE);
        bytes
    }

    /// The same record in the second layout: without the charge.
    pub fn record_v2(header: &EventHeader, path: &[u8]) -> Vec<u8> {
        let mut bytes = record(header, path);
        bytes.drain(inotify_trace_common::HEADER_SIZE_V2..inotify_trace_common::HEADER_SIZE);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{add_watch, record};
    use super::*;

    /// The exact bytes the eBPF side writes for one call, spelled out, so a
    /// change of layout on either side shows up here.
    #[test]
    fn decodes_a_record_laid_out_by_hand() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1u32.to_le_bytes()); // kind: add_watch
        bytes.extend_from_slice(&FLAG_PATH_TRUNCATED.to_le_bytes());
        bytes.extend_from_slice(&123_456_789u64.to_le_bytes()); // time
        bytes.extend_from_slice(&10u32.to_le_bytes()); // pid
        bytes.extend_from_slice(&11u32.to_le_bytes()); // tid
        bytes.extend_from_slice(&0u32.to_le_bytes()); // uid
        bytes.extend_from_slice(&5i32.to_le_bytes()); // fd
        bytes.extend_from_slice(&(-28i64).to_le_bytes()); // ret
        bytes.extend_from_slice(&0x100u32.to_le_bytes()); // mask
        bytes.extend_from_slice(&4u32.to_le_bytes()); // path_len
        bytes.extend_from_slice(b"kubelet\0\0\0\0\0\0\0\0\0");
        bytes.extend_from_slice(&1000u32.to_le_bytes()); // euid
        bytes.extend_from_slice(&4026532000u32.to_le_bytes()); // user_ns
        bytes.extend_from_slice(&12345u64.to_le_bytes()); // cgroup_id
        bytes.extend_from_slice(&1u32.to_le_bytes()); // charge_levels
        bytes.extend_from_slice(&0u32.to_le_bytes()); // reserved
        for word in [4026532000u32, 100_000, 1204, 3, 1204, 128] {
            bytes.extend_from_slice(&word.to_le_bytes()); // ns, uid, counts, caps
        }
        bytes.extend_from_slice(b"/sys");
        assert_eq!(bytes.len(), HEADER_SIZE + CHARGE_LEVEL_SIZE + 4);

        let event = Event::decode(&bytes).unwrap();
        assert_eq!(event.kind, Kind::AddWatch);
        assert_eq!(event.header.time_ns, 123_456_789);
        assert_eq!((event.header.pid, event.header.tid), (10, 11));
        assert_eq!(event.header.fd, 5);
        assert_eq!(event.header.ret, -28);
        assert_eq!(event.header.arg, 0x100);
        assert_eq!(event.comm(), b"kubelet");
        assert_eq!(event.path, b"/sys");
        assert!(event.path_truncated());
        assert!(!event.path_unreadable());
        assert_eq!((event.header.uid, event.euid()), (0, Some(1000)));
        assert_eq!(event.charged_uid(), 1000);
        assert_eq!(event.user_ns(), Some(4026532000));
        assert_eq!(event.cgroup_id(), Some(12345));
        assert!(!event.charge_missing() && !event.charge_of_caller() && !event.charge_cut());
        assert_eq!(
            event.charge().collect::<Vec<_>>(),
            [ChargeLevel {
                user_ns: 4026532000,
                uid: 100_000,
                watches: 1204,
                instances: 3,
                max_watches: 1204,
                max_instances: 128,
            }]
        );
        // More levels than a record can carry is refused, not read.
        let mut deep = bytes.clone();
        deep[80..84].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(Event::decode(&deep), Err(DecodeError::TooManyLevels(9)));
    }

    /// Recordings made before the charge was appended still decode, with it
    /// marked missing.
    #[test]
    fn decodes_the_second_layout_with_the_charge_missing() {
        let header = add_watch("kubelet", 3);
        let old = super::fixtures::record_v2(&header, b"/tmp/x");
        assert_eq!(old.len(), HEADER_SIZE_V2 + 6);
        let event = Event::decode(&old).unwrap();
        assert_eq!(event.path, b"/tmp/x");
        assert_eq!(event.euid(), Some(header.euid));
        assert_eq!(event.cgroup_id(), Some(header.cgroup_id));
        assert!(event.charge_missing());
        assert_eq!(event.charge().count(), 0);
    }

    /// Recordings made before the credentials and cgroup were appended
    /// still decode, with those marked missing and the real uid charged.
    #[test]
    fn decodes_the_first_layout_with_the_new_fields_missing() {
        let header = add_watch("kubelet", 3);
        let old = super::fixtures::record_v1(&header, b"/tmp/x");
        assert_eq!(old.len(), HEADER_SIZE_V1 + 6);
        let event = Event::decode(&old).unwrap();
        assert_eq!(event.path, b"/tmp/x");
        assert_eq!(event.comm(), b"kubelet");
        assert_eq!(
            (event.euid(), event.user_ns(), event.cgroup_id()),
            (None, None, None)
        );
        assert_eq!(event.charged_uid(), header.uid);
        assert_eq!(event.record, &old[..]);
        // A header size of neither layout is refused.
        let mut odd = old.clone();
        odd.extend_from_slice(&[0; 8]);
        assert_eq!(
            Event::decode(&odd),
            Err(DecodeError::PathLength {
                declared: 6,
                carried: 14
            })
        );
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let header = add_watch("a-fifteen-char-", 3);
        let bytes = record(&header, b"/tmp/x");
        let event = Event::decode(&bytes).unwrap();
        assert_eq!(
            event.header,
            EventHeader {
                path_len: 6,
                ..header
            }
        );
        assert_eq!(event.comm(), b"a-fifteen-char-");
        assert_eq!(event.path, b"/tmp/x");
    }

    #[test]
    fn rejects_short_records_and_bad_lengths() {
        let bytes = record(&add_watch("x", 1), b"/tmp");
        assert_eq!(
            Event::decode(&bytes[..HEADER_SIZE_V1 - 1]),
            Err(DecodeError::Short(63))
        );
        assert_eq!(
            Event::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::PathLength {
                declared: 4,
                carried: 3
            })
        );
        let mut unknown = bytes.clone();
        unknown[0] = 99;
        assert_eq!(Event::decode(&unknown), Err(DecodeError::UnknownKind(99)));
        let too_long = record(&add_watch("x", -36), &[b'y'; 8000]);
        let err = Event::decode(&too_long).unwrap_err();
        assert_eq!(err, DecodeError::PathTooLong(8000));
        assert_eq!(
            err.to_string(),
            "record carries a path of 8000 bytes, more than the 4096 a path can have"
        );
    }

    /// The wire's kind names are the ones serde writes: one definition.
    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_wire(kind as u32), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn init1_flags_only_for_init1() {
        let mut header = add_watch("x", 3);
        header.kind = Kind::Init as u32;
        header.arg = 0x80800;
        let plain = record(&header, b"");
        assert_eq!(Event::decode(&plain).unwrap().init1_flags(), None);
        header.flags = FLAG_INIT1;
        let init1 = record(&header, b"");
        assert_eq!(Event::decode(&init1).unwrap().init1_flags(), Some(0x80800));
    }
}
