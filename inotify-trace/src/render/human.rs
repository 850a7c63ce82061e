//! One aligned line per event, for a terminal. Paths and comms come from any
//! process on the machine and are escaped (see `escape`).
use std::io::{self, Write};

use super::init1_flags_text;
use crate::{
    clock::{local_time, WallClock},
    diagnosis::{self, Diagnosis},
    escape::Escaped,
    event::{Event, Kind},
    notices,
    output::Output,
    pods::Attribution,
    stream::Counts,
    summary::{human::write_summary, Summary},
    words::fit,
};

/// The FD column: the instance's fd, or `-`.
struct FdText(Option<i32>);

impl std::fmt::Display for FdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(fd) => fd.to_string().fmt(f),
            None => "-".fmt(f),
        }
    }
}

pub struct HumanPrinter<W: Write> {
    out: W,
    clock: WallClock,
    /// Reused for each line's padded columns: no allocation per event.
    comm: String,
    place: String,
    result: String,
}

impl<W: Write> HumanPrinter<W> {
    pub fn new(out: W, clock: WallClock) -> Self {
        HumanPrinter {
            out,
            clock,
            comm: String::new(),
            place: String::new(),
            result: String::new(),
        }
    }
}

/// The RESULT column: what the call gave back.
fn write_result(out: &mut String, event: &Event<'_>) {
    use std::fmt::Write as _;
    let ret = event.header.ret;
    let _ = match (event.errno(), event.kind) {
        (Some(errno), _) => out.write_str(errno.name()),
        (None, Kind::AddWatch) => write!(out, "wd={ret}"),
        (None, Kind::Init) => write!(out, "fd={ret}"),
        (None, Kind::RmWatch) => out.write_str("ok"),
    };
}

impl<W: Write> Output for HumanPrinter<W> {
    fn start(&mut self) -> io::Result<()> {
        writeln!(
            self.out,
            "{:<15} {:>7} {:>7} {:>6} {:<15} {:<24} {:>4} {:<12} PATH",
            "TIME", "PID", "TID", "UID", "COMM", "POD/UNIT", "FD", "RESULT"
        )
    }

    fn event(&mut self, event: &Event<'_>, place: Option<&Attribution>) -> io::Result<()> {
        let h = &event.header;
        let time = local_time(self.clock.wall(h.time_ns), self.clock.utc_offset_s);
        // Escaping may lengthen the comm, so pad the rendered text.
        self.comm.clear();
        self.place.clear();
        self.result.clear();
        let _ = match place {
            Some(place) => std::fmt::Write::write_fmt(
                &mut self.place,
                format_args!("{}", Escaped(place.label().as_bytes())),
            ),
            None => std::fmt::Write::write_str(&mut self.place, "-"),
        };
        let _ =
            std::fmt::Write::write_fmt(&mut self.comm, format_args!("{}", Escaped(event.comm())));
        write_result(&mut self.result, event);
        // The instance the call used: two instances of one process are told
        // apart by it (an init's new fd is its RESULT).
        let fd = match event.kind {
            Kind::Init => None,
            _ if event.args_missing() => None,
            _ => Some(h.fd),
        };
        write!(
            self.out,
            "{:<15} {:>7} {:>7} {:>6} {:<15} {:<24} {:>4} {:<12} ",
            time,
            h.pid,
            h.tid,
            event.charged_uid(),
            fit(&self.comm, 15),
            fit(&self.place, 24),
            FdText(fd),
            self.result
        )?;
        match event.kind {
            Kind::AddWatch if event.args_missing() => write!(
                self.out,
                "[arguments unknown: the call began before tracing]"
            )?,
            Kind::AddWatch if event.path_unreadable() => write!(self.out, "[unreadable path]")?,
            Kind::AddWatch => {
                write!(self.out, "{}", Escaped(event.path))?;
                if event.path_truncated() {
                    write!(self.out, " [truncated]")?;
                }
            }
            Kind::Init => match event.init1_flags() {
                Some(flags) => write!(self.out, "inotify_init1({})", init1_flags_text(flags))?,
                None => write!(self.out, "inotify_init()")?,
            },
            Kind::RmWatch => write!(self.out, "inotify_rm_watch(fd={}, wd={})", h.fd, h.arg)?,
        }
        self.out.write_all(b"\n")
    }

    fn lost(&mut self, count: u64) -> io::Result<()> {
        // A warning belongs on stderr; flush first so it lands after the
        // events that came before the loss.
        self.out.flush()?;
        notices::warn_lost(count);
        Ok(())
    }

    fn diagnosis(&mut self, d: &Diagnosis) -> io::Result<()> {
        diagnosis::write_text(&mut self.out, d, "  ")
    }

    fn flush(&mut self, _counts: &Counts) -> io::Result<()> {
        self.out.flush()
    }

    fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        write_summary(&mut self.out, summary)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use inotify_trace_common::{FLAG_INIT1, FLAG_PATH_TRUNCATED};

    use super::*;
    use crate::event::fixtures::{add_watch, record};

    /// The lines (without their time) of `records`, the first in `places`.
    fn render(records: &[Vec<u8>], places: &[Attribution]) -> String {
        let clock = WallClock {
            boot_epoch_ns: 0,
            utc_offset_s: 0,
        };
        let mut printer = HumanPrinter::new(Vec::new(), clock);
        printer.start().unwrap();
        for (i, bytes) in records.iter().enumerate() {
            printer
                .event(&Event::decode(bytes).unwrap(), places.get(i))
                .unwrap();
        }
        String::from_utf8(printer.out)
            .unwrap()
            .lines()
            .map(|line| &line[16..])
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn lines_are_aligned_and_hostile_bytes_escaped() {
        let ok = record(&add_watch("kubelet", 1), b"/sys/fs/cgroup/kubepods");
        let hostile = record(&add_watch("evil\x1b[31m", -2), b"/tmp/\x1b]0;x\x07\xff");
        // A comm whose escaped form is longer than its column, in a pod
        // whose name is longer than its own: both cut, the columns hold.
        let mut long = add_watch("\u{fffd}", -36);
        long.comm = *b"\xff\xff\xff\xff\xff\xff\0\0\0\0\0\0\0\0\0\0";
        long.flags = FLAG_PATH_TRUNCATED;
        let long = record(&long, b"/very/long");
        let mut init = add_watch("containerd", 5);
        init.kind = Kind::Init as u32;
        init.flags = FLAG_INIT1;
        init.arg = 0o2004000;
        let places = [
            Attribution {
                namespace: Some("kube-system".into()),
                pod: Some("coredns-1".into()),
                pod_uid: Some("0a1b".into()),
                ..Attribution::default()
            },
            Attribution {
                unit: Some("evil\x1b[2J.service".into()),
                ..Attribution::default()
            },
            Attribution {
                namespace: Some("monitoring".into()),
                pod: Some("prometheus-kube-prometheus-stack-0".into()),
                pod_uid: Some("0c2d".into()),
                container: Some("config-reloader".into()),
                ..Attribution::default()
            },
        ];
        let text = render(&[ok, hostile, long, record(&init, b"")], &places);
        insta::assert_snapshot!(text, @r"
         PID     TID    UID COMM            POD/UNIT                   FD RESULT       PATH
        4242    4243   1000 kubelet         kube-system/coredns-1       6 wd=1         /sys/fs/cgroup/kubepods
        4242    4243   1000 evil\u{1b}[31m  evil\u{1b}[2J.service       6 ENOENT       /tmp/\u{1b}]0;x\u{7}\xff
        4242    4243   1000 \xff\xff\xff\x… monitoring/prometheus-k…    6 ENAMETOOLONG /very/long [truncated]
        4242    4243   1000 containerd      -                           - fd=5         inotify_init1(IN_NONBLOCK|IN_CLOEXEC)
        ");
    }
}
