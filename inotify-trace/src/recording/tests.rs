//! The recording format against everything a file can do to a reader: cut
//! short at any byte, flipped bytes, foreign files, newer versions.
use proptest::prelude::*;

use super::{
    format::{frame_header, put_file_header, FILE_HEADER_SIZE, FRAME_HEADER_SIZE},
    metadata::{Filters, Metadata},
    reader::{ReadError, Reader},
    writer::Recorder,
};
use crate::{
    event::fixtures::{add_watch, record},
    limits::Limits,
    selection::{CommName, Selection},
    stream::{End, Item},
};

fn metadata() -> Metadata {
    Metadata {
        tool: "inotify-trace test".into(),
        hostname: "node-1".into(),
        kernel_release: "6.18.0".into(),
        boot_id: "3b0c".into(),
        start_time: "2026-11-28T05:00:00.000000000Z".into(),
        start_boot_ns: 1_000,
        boot_epoch_ns: 1_780_000_000_000_000_000,
        utc_offset_s: 3600,
        limits: Limits {
            max_user_watches: Some(8192),
            max_user_instances: Some(128),
        },
        filters: Filters {
            selection: Selection {
                pids: vec![1],
                comms: vec![CommName::new("kubelet".into())],
                ..Selection::default()
            },
            command: None,
        },
        command_line: vec!["inotify-trace".into(), "-w".into(), "x".into()],
    }
}

fn end() -> End {
    End {
        end_time: "2026-11-28T05:00:01.000000000Z".into(),
        duration_s: 1.25,
        limits: Limits::default(),
        events: 3,
        lost: 2,
        held_now: vec![crate::held::HeldNow {
            pid: 10,
            instances: 1,
            watches: 7,
            facts: crate::held::HolderFacts {
                places: vec![crate::held::Place {
                    dir: crate::exact_text::PathName(b"/srv/\xff".to_vec()),
                    watches: 7,
                }],
                cmdline: vec!["inotifywait".into(), "-m".into()],
                culprit: crate::culprits::table().next().cloned(),
            },
        }],
    }
}

/// What a reader got out of a file: events (raw), lost counts, the end.
#[derive(Debug, PartialEq)]
enum Read {
    Event(Vec<u8>),
    Lost(u64),
    End(End),
}

/// The frames of the small recording every test uses, and the file.
fn small_recording() -> (Vec<Read>, Vec<u8>) {
    let records = [
        record(&add_watch("kubelet", 1), b"/sys/fs/cgroup/kubepods"),
        record(&add_watch("kubelet", -28), b"/tmp/\xff\xfe"),
        record(&add_watch("containerd", 2), "/x".repeat(1500).as_bytes()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.rec");
    let mut recorder = Recorder::create(
        &crate::file_arg::FileArg::Path(path.clone()),
        false,
        &metadata(),
    )
    .unwrap();
    recorder.event(&records[0]).unwrap();
    recorder.lost(2).unwrap();
    recorder.event(&records[1]).unwrap();
    recorder.event(&records[2]).unwrap();
    recorder.end(&end()).unwrap();
    drop(recorder);
    let expected = vec![
        Read::Event(records[0].clone()),
        Read::Lost(2),
        Read::Event(records[1].clone()),
        Read::Event(records[2].clone()),
        Read::End(end()),
    ];
    (expected, std::fs::read(path).unwrap())
}

/// Reads a whole file: its items, and where it was cut short (if it was).
fn read_all(bytes: &[u8]) -> Result<(Vec<Read>, Option<u64>), ReadError> {
    let mut reader = Reader::open(bytes)?;
    assert_eq!(reader.metadata, metadata());
    let mut items = Vec::new();
    while let Some(item) = reader.next_item()? {
        items.push(match item {
            Item::Event(event) => Read::Event(event.record.to_vec()),
            Item::Lost(n) => Read::Lost(n),
            Item::End(end) => Read::End(end),
            other => unreachable!("not written here: {other:?}"),
        });
    }
    Ok((items, reader.cut_short.map(|c| c.offset)))
}

/// Where each frame after the metadata ends.
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = FILE_HEADER_SIZE;
    while at < bytes.len() {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += FRAME_HEADER_SIZE + length;
        ends.push(at);
    }
    ends
}

#[test]
fn what_is_written_is_read_back() {
    let (expected, bytes) = small_recording();
    assert_eq!(read_all(&bytes).unwrap(), (expected, None));
}

#[test]
fn the_file_is_private_and_never_overwritten_without_force() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.rec");
    std::fs::write(&path, b"precious").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Recorder::create(
        &crate::file_arg::FileArg::Path(path.clone()),
        false,
        &metadata(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("exists already") && err.to_string().contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    drop(
        Recorder::create(
            &crate::file_arg::FileArg::Path(path.clone()),
            true,
            &metadata(),
        )
        .unwrap(),
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(read_all(&std::fs::read(&path).unwrap())
        .unwrap()
        .0
        .is_empty());
}

#[test]
fn every_prefix_reads_up_to_its_last_whole_frame_or_fails_clearly() {
    let (expected, bytes) = small_recording();
    let ends = frame_ends(&bytes);
    let metadata_end = ends[0];
    for len in 0..=bytes.len() {
        let prefix = &bytes[..len];
        match read_all(prefix) {
            Ok((items, cut)) => {
                assert!(
                    len >= metadata_end,
                    "a prefix of {len} bytes has no whole metadata"
                );
                let whole = ends[1..].iter().filter(|&&end| end <= len).count();
                assert_eq!(items, expected[..whole], "prefix of {len} bytes");
                let boundary = ends.contains(&len);
                let last_whole_end = ends.iter().copied().filter(|&e| e <= len).max().unwrap();
                assert_eq!(
                    cut,
                    (!boundary).then_some(last_whole_end as u64),
                    "prefix of {len} bytes"
                );
            }
            // A prefix of a real header is never "not a recording".
            Err(ReadError::Empty) => assert_eq!(len, 0),
            Err(ReadError::HeaderCutShort { len: read }) => {
                assert_eq!(read, len);
                assert!(len > 0 && len < FILE_HEADER_SIZE, "prefix of {len} bytes")
            }
            Err(ReadError::Corrupt { offset, why }) => {
                assert!(len < metadata_end, "prefix of {len} bytes: {why}");
                assert_eq!(offset, FILE_HEADER_SIZE as u64);
                assert!(why.contains("ends before its metadata"), "{why}");
            }
            Err(other) => panic!("prefix of {len} bytes: {other}"),
        }
    }
}

#[test]
fn a_newer_major_version_is_refused_and_unknown_frames_of_a_minor_one_skipped() {
    let (expected, mut bytes) = small_recording();
    bytes[8] = 4;
    let Err(err) = read_all(&bytes) else {
        panic!("a newer major is refused")
    };
    assert!(
        err.to_string().contains("newer inotify-trace (format 4.0"),
        "{err}"
    );
    bytes[8] = 0;
    let Err(err) = read_all(&bytes) else {
        panic!("major 0 is refused")
    };
    assert!(
        err.to_string()
            .contains("format version 0.0 does not exist"),
        "{err}"
    );

    // Version 2.7 with a frame of kind 99 after the metadata.
    let (_, original) = small_recording();
    let metadata_end = frame_ends(&original)[0];
    let mut newer = original[..metadata_end].to_vec();
    newer[10] = 7;
    newer.extend_from_slice(&frame_header(99, b"from the future"));
    newer.extend_from_slice(b"from the future");
    newer.extend_from_slice(&original[metadata_end..]);
    assert_eq!(read_all(&newer).unwrap(), (expected, None));
}

/// A recording of format 1.1 (before the credentials and cgroup were
/// appended to each record) still reads, its events without them.
#[test]
fn a_version_1_recording_with_64_byte_records_still_reads() {
    let old = crate::event::fixtures::record_v1(&add_watch("kubelet", -28), b"/sys/fs/cgroup");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.rec");
    let mut recorder = Recorder::create(
        &crate::file_arg::FileArg::Path(path.clone()),
        false,
        &metadata(),
    )
    .unwrap();
    recorder.event(&old).unwrap();
    recorder.end(&end()).unwrap();
    drop(recorder);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(b"\x01\x00\x01\x00");
    let (items, cut) = read_all(&bytes).unwrap();
    assert_eq!(items, vec![Read::Event(old.clone()), Read::End(end())]);
    assert_eq!(cut, None);
    let event = crate::event::Event::decode(&old).unwrap();
    assert_eq!((event.path, event.euid()), (&b"/sys/fs/cgroup"[..], None));
}

#[test]
fn an_absurd_length_is_refused_before_allocating() {
    let mut bytes = Vec::new();
    put_file_header(&mut bytes);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(err, ReadError::Corrupt { offset: 16, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("a frame of 4294967295 bytes"),
        "{err}"
    );
}

proptest! {
    /// A flipped byte anywhere is caught (checksum, length or magic) or cut
    /// the file short; the reader never panics and never hands out altered
    /// data as if it were whole.
    #[test]
    fn flipped_bytes_are_errors_not_panics(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (expected, mut bytes) = small_recording();
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        // Only the minor version and the header's reserved bytes may change
        // unnoticed: readers skip what they do not know of a newer minor.
        let may_go_unnoticed = (10..16).contains(&at);
        match read_all(&bytes) {
            Ok((items, None)) => {
                prop_assert!(may_go_unnoticed, "byte {at} changed and nothing noticed");
                prop_assert_eq!(items, expected);
            }
            // A longer length makes the last frame run past the end.
            Ok((items, Some(_))) => prop_assert!(expected.starts_with(&items)),
            Err(_) => {}
        }
    }

    /// Random bytes, with or without our magic in front.
    #[test]
    fn random_files_are_errors_not_panics(body in prop::collection::vec(any::<u8>(), 0..2048), magic in any::<bool>()) {
        let mut bytes = Vec::new();
        if magic {
            put_file_header(&mut bytes);
        }
        bytes.extend_from_slice(&body);
        if let Ok(mut reader) = Reader::open(&bytes[..]) {
            while let Ok(Some(_)) = reader.next_item() {}
        }
    }
}

/// docs/recording.md's metadata and end examples have the keys the writer
/// writes, at every level (the end's `held_now` aside: absent when empty).
#[test]
fn the_docs_examples_of_metadata_and_end_have_the_written_keys() {
    fn keys(value: &serde_json::Value, at: &str, out: &mut Vec<String>) {
        if let Some(object) = value.as_object() {
            for (key, inner) in object {
                out.push(format!("{at}/{key}"));
                keys(inner, &format!("{at}/{key}"), out);
            }
        }
    }
    let docs = include_str!("../../../docs/recording.md");
    let example = |starts: &str| -> serde_json::Value {
        let at = docs
            .find(starts)
            .unwrap_or_else(|| panic!("no {starts} in docs"));
        let text: String = docs[at..]
            .lines()
            .take_while(|l| l.starts_with("    "))
            .map(str::trim)
            .collect();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    for (documented, written) in [
        (
            example("    {\"tool\":"),
            serde_json::to_value(metadata()).unwrap(),
        ),
        (example("    {\"end_time\":"), {
            let mut end = serde_json::to_value(end()).unwrap();
            end.as_object_mut().unwrap().remove("held_now");
            end
        }),
    ] {
        let (mut want, mut got) = (Vec::new(), Vec::new());
        keys(&documented, "", &mut want);
        keys(&written, "", &mut got);
        want.sort();
        got.sort();
        assert_eq!(want, got, "docs/recording.md: {documented}");
    }
}
