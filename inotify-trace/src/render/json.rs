//! JSON Lines: one object per event, schema in docs/json.md.
use std::{
    borrow::Cow,
    io::{self, Write},
    time::SystemTime,
};

use base64::{display::Base64Display, engine::general_purpose::STANDARD};
use serde::{Serialize, Serializer};

use crate::{
    clock::{serialize_rfc3339, WallClock},
    diagnosis::Diagnosis,
    errno::Errno,
    event::{Event, Kind},
    output::Output,
    pods::Attribution,
    stream::Counts,
    summary::Summary,
};

pub struct JsonPrinter<W: Write> {
    out: W,
    clock: WallClock,
}

impl<W: Write> JsonPrinter<W> {
    pub fn new(out: W, clock: WallClock) -> Self {
        JsonPrinter { out, clock }
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }
}

impl<W: Write> Output for JsonPrinter<W> {
    fn event(&mut self, event: &Event<'_>, place: Option<&Attribution>) -> io::Result<()> {
        let mut line = JsonEvent::new(event, &self.clock);
        line.place = place;
        self.line(&line)
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        self.line(&LostLine {
            kind: "lost",
            count,
        })
    }

    fn diagnosis(&mut self, diagnosis: &Diagnosis) -> io::Result<()> {
        self.line(diagnosis)
    }

    fn flush(&mut self, _counts: &Counts) -> io::Result<()> {
        self.out.flush()
    }

    fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        self.line(summary)?;
        self.out.flush()
    }
}

#[derive(Serialize)]
struct LostLine {
    #[serde(rename = "type")]
    kind: &'static str,
    count: u64,
}

/// One event as JSON. Borrows everything from the record, so rendering an
/// event allocates nothing unless a path or comm is not valid UTF-8.
#[derive(Serialize)]
struct JsonEvent<'a> {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(serialize_with = "serialize_rfc3339")]
    time: SystemTime,
    pid: u32,
    tid: u32,
    /// The effective uid (what the kernel charges, as `ps` shows it).
    uid: u32,
    /// The real uid; absent from records of the first layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    ruid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_id: Option<u64>,
    /// `cgroup` and, where known, `namespace`, `pod`, `pod_uid`,
    /// `container`, `container_id`, `unit`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    place: Option<&'a Attribution>,
    /// Records of the first layout carry the real uid only: `uid` is it.
    #[serde(skip_serializing_if = "is_false")]
    uid_is_real: bool,
    comm: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "base64")]
    comm_base64: Option<&'a [u8]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wd: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "base64")]
    path_base64: Option<&'a [u8]>,
    #[serde(skip_serializing_if = "is_false")]
    path_truncated: bool,
    #[serde(skip_serializing_if = "is_false")]
    path_unreadable: bool,
    #[serde(skip_serializing_if = "is_false")]
    args_missing: bool,
    ret: i64,
    errno: Option<Errno>,
    /// The charge after the call, innermost level first (absent when the
    /// record carries none).
    #[serde(skip_serializing_if = "Option::is_none")]
    charge: Option<ChargeList<'a>>,
    /// The charge is the caller's own level: a failed init made no instance.
    #[serde(skip_serializing_if = "is_false")]
    charge_of_caller: bool,
    /// The levels stop short of the initial namespace.
    #[serde(skip_serializing_if = "is_false")]
    charge_cut: bool,
}

/// An event's charge levels, serialized straight from the record.
struct ChargeList<'a>(&'a Event<'a>);

impl Serialize for ChargeList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.charge())
    }
}

impl<'a> JsonEvent<'a> {
    fn new(event: &'a Event<'a>, clock: &WallClock) -> Self {
        let h = &event.header;
        let mut line = JsonEvent {
            kind: event.kind,
            time: clock.wall(h.time_ns),
            pid: h.pid,
            tid: h.tid,
            uid: event.charged_uid(),
            ruid: event.euid().map(|_| h.uid),
            user_ns: event.user_ns(),
            cgroup_id: event.cgroup_id(),
            place: None,
            uid_is_real: event.euid().is_none(),
            comm: String::from_utf8_lossy(event.comm()),
            comm_base64: None,
            fd: None,
            mask: None,
            wd: None,
            flags: None,
            path: None,
            path_base64: None,
            path_truncated: event.path_truncated(),
            path_unreadable: event.path_unreadable(),
            args_missing: event.args_missing(),
            ret: h.ret,
            errno: event.errno(),
            charge: (!event.charge.is_empty()).then_some(ChargeList(event)),
            charge_of_caller: event.charge_of_caller(),
            charge_cut: event.charge_cut(),
        };
        if let Cow::Owned(_) = line.comm {
            line.comm_base64 = Some(event.comm());
        }
        match event.kind {
            Kind::AddWatch => {
                line.fd = Some(h.fd);
                line.mask = Some(h.arg);
                let path = String::from_utf8_lossy(event.path);
                if let Cow::Owned(_) = path {
                    line.path_base64 = Some(event.path);
                }
                line.path = Some(path);
            }
            Kind::Init => {
                line.flags = event.init1_flags();
            }
            Kind::RmWatch => {
                line.fd = Some(h.fd);
                line.wd = Some(h.arg);
            }
        }
        line
    }
}

fn base64<S: Serializer>(bytes: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => s.collect_str(&Base64Display::new(bytes, &STANDARD)),
        None => s.serialize_none(),
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use inotify_trace_common::{FLAG_INIT1, FLAG_PATH_TRUNCATED};

    use super::*;
    use crate::event::fixtures::{add_watch, record};

    const CLOCK: WallClock = WallClock {
        boot_epoch_ns: 1_780_000_000_000_000_000,
        utc_offset_s: 0,
    };

    fn render(records: &[Vec<u8>]) -> String {
        let mut printer = JsonPrinter::new(Vec::new(), CLOCK);
        for bytes in records {
            printer.event(&Event::decode(bytes).unwrap(), None).unwrap();
        }
        printer.lost(3).unwrap();
        String::from_utf8(printer.out).unwrap()
    }

    #[test]
    fn add_watch_lines_follow_the_documented_schema() {
        let ok = record(&add_watch("kubelet", 1), b"/sys/fs/cgroup/kubepods");
        let failed = record(&add_watch("kubelet", -28), b"/sys/fs/cgroup/x");
        insta::assert_snapshot!(render(&[ok, failed]), @r#"
        {"type":"add_watch","time":"2026-05-28T20:26:41.000000000Z","pid":4242,"tid":4243,"uid":1000,"ruid":1000,"user_ns":4026531837,"cgroup_id":7777,"comm":"kubelet","fd":6,"mask":4095,"path":"/sys/fs/cgroup/kubepods","ret":1,"errno":null}
        {"type":"add_watch","time":"2026-05-28T20:26:41.000000000Z","pid":4242,"tid":4243,"uid":1000,"ruid":1000,"user_ns":4026531837,"cgroup_id":7777,"comm":"kubelet","fd":6,"mask":4095,"path":"/sys/fs/cgroup/x","ret":-28,"errno":"ENOSPC"}
        {"type":"lost","count":3}
        "#);
    }

    #[test]
    fn invalid_utf8_paths_keep_their_exact_bytes_in_base64() {
        let mut header = add_watch("w", 2);
        header.flags = FLAG_PATH_TRUNCATED;
        let line = render(&[record(&header, b"/tmp/\xff\"\n")]);
        let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        assert_eq!(first["path"], "/tmp/\u{fffd}\"\n");
        assert_eq!(first["path_base64"], "L3RtcC//Igo=");
        assert_eq!(first["path_truncated"], true);
    }

    /// The kernel charges the effective uid: `uid` is it, `ruid` the real
    /// one. A record of the first layout says its `uid` is the real one.
    #[test]
    fn uid_is_the_effective_uid_and_old_records_say_theirs_is_real() {
        let mut header = add_watch("setpriv", 1);
        header.comm[7] = 0xff;
        (header.uid, header.euid) = (4321, 0);
        let lines = render(&[
            record(&header, b"/a"),
            crate::event::fixtures::record_v1(&header, b"/a"),
        ]);
        let lines: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            (&lines[0]["uid"], &lines[0]["ruid"]),
            (&0.into(), &4321.into())
        );
        assert_eq!(lines[0]["comm_base64"], "c2V0cHJpdv8=");
        assert_eq!(lines[0].get("uid_is_real"), None);
        assert_eq!(
            (&lines[1]["uid"], &lines[1]["uid_is_real"]),
            (&4321.into(), &true.into())
        );
        for absent in ["ruid", "user_ns", "cgroup_id"] {
            assert_eq!(lines[1].get(absent), None, "{absent}");
        }
    }

    #[test]
    fn init_and_rm_watch_lines() {
        let mut init = add_watch("w", -24);
        init.kind = Kind::Init as u32;
        init.fd = -1;
        init.flags = FLAG_INIT1;
        init.arg = 0o2004000;
        let mut rm = add_watch("w", 0);
        rm.kind = Kind::RmWatch as u32;
        rm.arg = 7;
        insta::assert_snapshot!(render(&[record(&init, b""), record(&rm, b"")]), @r#"
        {"type":"init","time":"2026-05-28T20:26:41.000000000Z","pid":4242,"tid":4243,"uid":1000,"ruid":1000,"user_ns":4026531837,"cgroup_id":7777,"comm":"w","flags":526336,"ret":-24,"errno":"EMFILE"}
        {"type":"rm_watch","time":"2026-05-28T20:26:41.000000000Z","pid":4242,"tid":4243,"uid":1000,"ruid":1000,"user_ns":4026531837,"cgroup_id":7777,"comm":"w","fd":6,"wd":7,"ret":0,"errno":null}
        {"type":"lost","count":3}
        "#);
    }
}
