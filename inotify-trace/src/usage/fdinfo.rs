//! The watch lines of an inotify fd's `/proc/PID/fdinfo/FD`, one per watch
//! (numbers in hex):
//!
//! ```text
//! inotify wd:1 ino:80001 sdev:800011 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:01000800bc1b8c7c
//! ```
//! procfs parses the rest of the file but not these lines.

/// One watch of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    pub wd: i32,
    pub ino: u64,
    /// The kernel's device number (major = sdev >> 20, minor = sdev & 0xfffff).
    pub sdev: u64,
    pub mask: u32,
    /// For `open_by_handle_at(2)`, when the filesystem gave one.
    pub handle: Option<FileHandle>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHandle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

impl Watch {
    /// `major:minor`, as /proc/self/mountinfo writes a device.
    pub fn device(&self) -> (u32, u32) {
        ((self.sdev >> 20) as u32, (self.sdev & 0xfffff) as u32)
    }
}

/// How many watch lines an fdinfo file has: what the agent and `check`
/// need, without parsing a field.
pub fn count(fdinfo: &[u8]) -> u64 {
    fdinfo
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"inotify "))
        .count() as u64
}

/// Every watch line of an fdinfo file; other lines are ignored, as are
/// malformed watch lines (a kernel format we do not know must not stop a
/// snapshot: the count of lines still counts the watch).
pub fn parse(fdinfo: &str) -> Vec<Watch> {
    fdinfo
        .lines()
        .filter_map(|line| line.strip_prefix("inotify "))
        .map(parse_watch)
        .collect()
}

fn parse_watch(fields: &str) -> Watch {
    let mut watch = Watch {
        wd: -1,
        ino: 0,
        sdev: 0,
        mask: 0,
        handle: None,
    };
    let (mut handle_type, mut handle_bytes) = (None, None);
    for field in fields.split_whitespace() {
        let Some((key, value)) = field.split_once(':') else {
            continue;
        };
        let hex = || u64::from_str_radix(value, 16).ok();
        match key {
            // Every number is hex, wd included (`wd:%x`, see
            // inotify_fdinfo() in fs/notify/fdinfo.c): wd 10 is `wd:a`.
            "wd" => watch.wd = hex().map_or(-1, |wd| wd as i32),
            "ino" => watch.ino = hex().unwrap_or(0),
            "sdev" => watch.sdev = hex().unwrap_or(0),
            "mask" => watch.mask = hex().unwrap_or(0) as u32,
            "fhandle-type" => handle_type = hex().map(|t| t as i32),
            "f_handle" => handle_bytes = decode_hex(value),
            _ => {}
        }
    }
    if let (Some(handle_type), Some(bytes)) = (handle_type, handle_bytes) {
        watch.handle = Some(FileHandle { handle_type, bytes });
    }
    watch
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_watch_lines() {
        let fdinfo = "pos:\t0\nflags:\t02004000\nmnt_id:\t15\nino:\t1057\n\
            inotify wd:1 ino:80001 sdev:800011 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:01000800bc1b8c7c\n\
            inotify wd:1c ino:2a sdev:2f mask:fff ignored_mask:0 fhandle-bytes:c fhandle-type:fe f_handle:2a000000000000006e9f3c01\n";
        let watches = parse(fdinfo);
        assert_eq!(watches.len(), 2);
        assert_eq!(count(fdinfo.as_bytes()), 2);
        assert_eq!(
            watches[0],
            Watch {
                wd: 1,
                ino: 0x80001,
                sdev: 0x800011,
                mask: 0x100,
                handle: Some(FileHandle {
                    handle_type: 1,
                    bytes: vec![0x01, 0x00, 0x08, 0x00, 0xbc, 0x1b, 0x8c, 0x7c]
                }),
            }
        );
        assert_eq!(watches[0].device(), (8, 17));
        assert_eq!(
            (watches[1].wd, watches[1].ino, watches[1].mask),
            (28, 0x2a, 0xfff)
        );
        assert_eq!(watches[1].handle.as_ref().unwrap().handle_type, 0xfe);
        assert_eq!(watches[1].device(), (0, 0x2f));
    }

    #[test]
    fn an_instance_without_watches_and_odd_lines() {
        assert!(parse("pos:\t0\nflags:\t02000000\nmnt_id:\t15\n").is_empty());
        // Without a file handle (a filesystem that cannot export one), and a
        // garbled line: both still count as watches.
        let watches = parse("inotify wd:3 ino:10 sdev:7 mask:2 ignored_mask:0\ninotify garbage\n");
        assert_eq!(watches.len(), 2);
        assert_eq!(
            count(b"inotify wd:3 ino:10\ninotify garbage\nflags:\t0\n"),
            2
        );
        assert_eq!(count(b"pos:\t0\n"), 0);
        assert_eq!((watches[0].wd, watches[0].handle.clone()), (3, None));
        assert_eq!(watches[1].wd, -1);
    }
}
