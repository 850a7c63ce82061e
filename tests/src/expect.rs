//! What the tests compare with: errno names written out independently of the
//! tool, the kernel's own account of an instance's watches (fdinfo), and
//! the reported events matched call for call.
use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::Value;

use crate::{Call, EACCES, EMFILE, ENAMETOOLONG, ENOENT, ENOSPC};

/// The errno names the tests expect, written out independently of the tool.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    match ret {
        r if r >= 0 => None,
        ENOENT => Some("ENOENT"),
        EACCES => Some("EACCES"),
        -20 => Some("ENOTDIR"),
        -22 => Some("EINVAL"),
        EMFILE => Some("EMFILE"),
        ENOSPC => Some("ENOSPC"),
        ENAMETOOLONG => Some("ENAMETOOLONG"),
        other => panic!("the tests expect no errno {other}"),
    }
}

/// The event among `events` whose path is exactly `path`.
pub fn event_for<'a>(events: &'a [Value], path: &[u8]) -> &'a Value {
    events
        .iter()
        .find(|e| reported_path(e) == path)
        .unwrap_or_else(|| {
            panic!(
                "no event for {:?} in {events:#?}",
                String::from_utf8_lossy(path)
            )
        })
}

/// Asserts that `events` are exactly the `calls`, field by field, in order.
pub fn assert_events_match(events: &[Value], calls: &[Call], comm: &str) {
    assert_eq!(
        events.len(),
        calls.len(),
        "reported {} events for {} calls:\nevents: {events:#?}\ncalls: {calls:#?}",
        events.len(),
        calls.len()
    );
    for (event, call) in events.iter().zip(calls) {
        let context = format!("event {event}\ncall {call:?}");
        assert_eq!(event["type"], "add_watch", "{context}");
        assert_eq!(event["pid"].as_u64(), Some(call.pid), "{context}");
        assert_eq!(event["tid"].as_u64(), Some(call.tid), "{context}");
        assert_eq!(event["comm"], comm, "{context}");
        // The workload's own view of its uid; in the user namespaces of
        // the ENOSPC tests (`unshare -U -r`) that is root, mapped to the
        // tests' runner, root too.
        assert_eq!(event["uid"].as_u64(), Some(call.uid), "{context}");
        assert_eq!(event["ruid"].as_u64(), Some(call.ruid), "{context}");
        assert_eq!(event["fd"].as_i64(), Some(call.fd), "{context}");
        assert_eq!(event["mask"].as_u64(), Some(call.mask), "{context}");
        assert_eq!(event["ret"].as_i64(), Some(call.ret), "{context}");
        assert_eq!(event["errno"].as_str(), errno_name(call.ret), "{context}");
        assert_eq!(reported_path(event), call.path, "{context}");
        assert!(event.get("path_truncated").is_none(), "{context}");
        let time = event["time"].as_str().unwrap();
        assert!(
            time.ends_with('Z') && time.len() == 30,
            "time {time:?} is not RFC 3339 UTC with ns"
        );
    }
}

/// The exact path bytes of an event: `path_base64` when present, else `path`.
pub fn reported_path(event: &Value) -> Vec<u8> {
    match event.get("path_base64") {
        Some(b64) => STANDARD.decode(b64.as_str().unwrap()).unwrap(),
        None => event["path"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// The watches `pid` holds, as the kernel lists them in /proc/PID/fdinfo
/// (the tests' ground truth): (wd, inode), one per line of every instance.
pub fn fdinfo_watches(pid: u32) -> Vec<(i64, u64)> {
    let mut watches = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            };
            // Both in hex, as the kernel prints them.
            let wd = i64::from_str_radix(field("wd:"), 16).unwrap();
            let ino = u64::from_str_radix(field("ino:"), 16).unwrap();
            watches.push((wd, ino));
        }
    }
    watches
}
