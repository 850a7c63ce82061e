//! The summary for people: one screen that answers who added how many
//! watches, who failed and why, and against which limits.
use std::io::{self, Write};

use super::{FailureGroup, Summary};
use crate::{
    clock::local_time, escape::Escaped, event::comm_bytes, held::HeldNow, limits::Limit,
    words::fit, words::place_text,
};

pub fn write_summary(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "== inotify-trace summary: {:.1}s, {}, {} lost ==",
        s.duration_s,
        crate::words::plural(s.events, "event"),
        s.lost
    )?;
    if s.lost > 0 {
        writeln!(
            out,
            "   (events were lost: counts below are lower bounds; raise --ring-size)"
        )?;
    }
    processes(out, s)?;
    pods(out, s)?;
    failures(out, s)?;
    users(out, s)?;
    if !s.diagnoses.is_empty() {
        writeln!(out)?;
        writeln!(out, "Diagnoses (who held the budget when it ran out):")?;
        for d in &s.diagnoses {
            crate::diagnosis::write_text(out, d, "  ")?;
        }
    }
    Ok(())
}

fn processes(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    if s.processes.is_empty() {
        return writeln!(out, "No inotify calls were traced.");
    }
    write!(out, "Processes, by watches held, then new watches")?;
    if s.processes_omitted > 0 {
        write!(
            out,
            " (top {}; {} more not shown)",
            s.processes.len(),
            s.processes_omitted
        )?;
    }
    writeln!(out, ":")?;
    writeln!(
        out,
        "  {:>7} {:<15} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>9}  ERRORS",
        "PID",
        "COMM",
        "UID",
        "CALLS",
        "NEW",
        "RE-ADD",
        "REMOVED",
        "START",
        "HELD",
        "FAILED",
        "PATHS",
        "INST",
        "INST-FAIL"
    )?;
    for p in &s.processes {
        let errors: Vec<String> = p.errors().iter().map(|(e, n)| format!("{e}:{n}")).collect();
        let row = format!(
            "  {:>7} {:<15} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>9}  {}",
            p.pid,
            fit(&Escaped(comm_bytes(&p.comm)).to_string(), 15),
            p.uid,
            p.calls,
            p.new_watches,
            p.re_adds,
            p.removed(),
            start_text(p, s.start_known),
            held_text(p, s.held_known),
            p.failed(),
            paths_text(p),
            p.instances,
            p.instance_failures(),
            errors.join(" ")
        );
        writeln!(out, "{}", row.trim_end())?;
        let place = place_text(p.place());
        let line = [
            (!place.is_empty()).then(|| format!("in {place}")),
            p.held_now().and_then(where_and_command),
        ];
        let line: Vec<String> = line.into_iter().flatten().collect();
        if !line.is_empty() {
            writeln!(out, "  {:>7} {}", "", line.join("; "))?;
        }
        if let Some(leak) = p.leak() {
            writeln!(
                out,
                "  {:>7} grows without bound: +{:.1} new watches a minute for {:.0}s, none removed, all still held (a leak, unless its tree keeps gaining directories)",
                "", leak.new_per_minute, leak.over_s
            )?;
        }
        let culprit = p.held_now().and_then(|h| h.facts.culprit.as_ref());
        for line in culprit.into_iter().flat_map(crate::words::culprit_lines) {
            writeln!(out, "  {:>7} {line}", "")?;
        }
    }
    writeln!(
        out,
        "  (REMOVED counts inotify_rm_watch calls only: a watch also goes when its directory is deleted or its instance closed. START, HELD: the watches held when the session attached, at its end; -: none)"
    )
}

/// The HELD column: watches held at the end; `-` when none (the process
/// exited, or closed its instances), `?` when not known (an older
/// recording).
fn held_text(p: &super::ProcessSummary, known: bool) -> String {
    match (p.held(), known) {
        (Some((_, watches)), _) => watches.to_string(),
        (None, true) => "-".to_owned(),
        (None, false) => "?".to_owned(),
    }
}

/// The START column: watches held when the session attached; `-` when
/// none, `?` when not known (a recording made before the start was kept).
fn start_text(p: &super::ProcessSummary, known: bool) -> String {
    match (p.at_start(), known) {
        (Some(held), _) => held.watches.to_string(),
        (None, true) => "-".to_owned(),
        (None, false) => "?".to_owned(),
    }
}

fn pods(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    if s.pods.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "Pods, by new watches:")?;
    writeln!(
        out,
        "  {:<40} {:>9} {:>7} {:>7} {:>7}",
        "POD", "PROCESSES", "CALLS", "NEW", "FAILED"
    )?;
    for pod in &s.pods {
        let name = pod.pod.display_name();
        writeln!(
            out,
            "  {:<40} {:>9} {:>7} {:>7} {:>7}",
            fit(&Escaped(name.as_bytes()).to_string(), 40),
            pod.processes,
            pod.calls,
            pod.new_watches,
            pod.failures
        )?;
    }
    Ok(())
}

/// The line under a process still holding watches at the end: where they
/// are and what the process is (`where: 860 under /srv/data/n; cmdline:
/// inotifywait -r -m /srv/data/n`), escaped.
fn where_and_command(held: &HeldNow) -> Option<String> {
    crate::words::where_and_command(&held.facts)
}

/// The PATHS column: `~` before an estimate.
fn paths_text(p: &super::ProcessSummary) -> String {
    match p.distinct_paths_estimated() {
        true => format!("~{}", p.distinct_paths()),
        false => p.distinct_paths().to_string(),
    }
}

fn failures(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    if s.failures.is_empty() {
        return writeln!(out, "No call failed.");
    }
    writeln!(out, "Failures:")?;
    for group in &s.failures {
        failure_group(out, group, s.utc_offset_s)?;
    }
    Ok(())
}

fn failure_group(out: &mut impl Write, g: &FailureGroup, utc_offset_s: i32) -> io::Result<()> {
    let plural = if g.count == 1 { "" } else { "s" };
    writeln!(
        out,
        "  {} from {}: {} call{plural}{}",
        g.errno,
        g.call.syscall(),
        g.count,
        Limit::hit_by(g.call, g.errno)
            .map_or_else(String::new, |l| format!(" ({})", l.exhausted()))
    )?;
    for p in &g.processes {
        writeln!(
            out,
            "    {:>7} {:<15} uid {:<6} {:>6}x  {} .. {}",
            p.pid,
            fit(&Escaped(comm_bytes(&p.comm)).to_string(), 15),
            p.uid,
            p.count,
            local_time(p.first, utc_offset_s),
            local_time(p.last, utc_offset_s)
        )?;
        for path in &p.example_bytes {
            writeln!(out, "            {}", Escaped(path))?;
        }
    }
    Ok(())
}

fn users(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    if !s.users.is_empty() {
        writeln!(
            out,
            "Users (this session, as the kernel charges: an instance to the uid that created it, a watch to its instance's creator):"
        )?;
        writeln!(
            out,
            "  {:>6} {:>13} {:>8} {:>10} {:>10} {:>10}",
            "UID", "WATCHES-ADDED", "REMOVED", "INSTANCES", "INST-FAIL", "ADD-FAIL"
        )?;
        for u in &s.users {
            writeln!(
                out,
                "  {:>6} {:>13} {:>8} {:>10} {:>10} {:>10}",
                u.uid,
                u.watches_added,
                u.watches_removed,
                u.instances_created,
                u.instance_failures,
                u.add_watch_failures
            )?;
        }
        let to_caller: u64 = s.users.iter().map(|u| u.watches_charged_to_caller).sum();
        if to_caller > 0 {
            writeln!(
                out,
                "  ({to_caller} watches went to instances created before the session (or inherited): counted for the caller's uid)"
            )?;
        }
    }
    let (start, end) = (&s.limits.start, &s.limits.end);
    let show = |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    write!(
        out,
        "Limits per uid: fs.inotify.max_user_watches = {}, fs.inotify.max_user_instances = {}",
        show(start.max_user_watches),
        show(start.max_user_instances)
    )?;
    if start != end {
        write!(
            out,
            " at start; {} and {} at end",
            show(end.max_user_watches),
            show(end.max_user_instances)
        )?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use inotify_trace_common::comm_key;

    use super::*;
    use crate::{
        advice::Recommendation,
        diagnosis::Diagnosis,
        errno::Errno,
        event::Kind,
        exact_text::{PathName, ProcessName},
        held::{Held, HolderFacts, Place},
        limits::Limits,
        summary::{LimitsAtStartAndEnd, ProcessFailures, ProcessSummary, UserSummary},
        usage::{ProcessUsage, UserUsage},
    };

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000 + seconds)
    }

    fn process(pid: u32, comm: &str, counts: [u64; 8]) -> ProcessSummary {
        let [calls, new_watches, re_adds, removed, failed, distinct_paths, instances, instance_failures] =
            counts;
        let mut p = ProcessSummary::new(pid, comm_key(comm.as_bytes()), 0);
        (p.calls, p.new_watches, p.re_adds, p.instances) = (calls, new_watches, re_adds, instances);
        (0..removed).for_each(|_| p.removal());
        (0..failed).for_each(|_| p.failure(Errno::ENOSPC));
        (0..instance_failures).for_each(|_| p.instance_failure());
        (0..distinct_paths).for_each(|n| p.path(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        p
    }

    #[test]
    fn an_estimated_path_count_is_marked() {
        let p = process(1, "many", [0, 0, 0, 0, 0, 20_000, 0, 0]);
        assert!(paths_text(&p).starts_with('~'), "{}", paths_text(&p));
        let p = process(1, "few", [0, 0, 0, 0, 0, 128, 0, 0]);
        assert_eq!(paths_text(&p), "128");
    }

    #[test]
    fn the_summary_reads_as_one_screen() {
        let holder = ProcessUsage {
            instances: 1,
            watches: 8190,
            share_pct: Some(100.0),
            facts: HolderFacts {
                cmdline: vec!["greedy".into(), "--watch".into(), "/srv".into()],
                ..Default::default()
            },
            ..ProcessUsage::new(10, ProcessName::from_bytes(b"greedy"), 0)
        };
        let summary = Summary {
            kind: "summary",
            duration_s: 12.34,
            events: 8203,
            lost: 0,
            processes: vec![
                {
                    let mut greedy = process(10, "greedy", [8200, 8190, 10, 0, 0, 100, 1, 0]);
                    greedy.set_held(&HeldNow {
                        pid: 10,
                        instances: 1,
                        watches: 8190,
                        facts: HolderFacts {
                            places: vec![Place {
                                dir: PathName(b"/srv/data/\xffn".to_vec()),
                                watches: 8190,
                            }],
                            cmdline: vec!["greedy".into(), "-r".into(), "/srv/data/\u{1b}n".into()],
                            culprit: crate::culprits::table()
                                .find(|c| c.id == "python-watchdog")
                                .cloned(),
                        },
                    });
                    greedy
                },
                process(20, "kubelet", [3, 1, 0, 0, 2, 3, 1, 0]),
            ],
            processes_omitted: 1,
            failures: vec![FailureGroup {
                call: Kind::AddWatch,
                errno: Errno::ENOSPC,
                count: 2,
                processes: vec![{
                    let example_bytes: Vec<Box<[u8]>> = vec![
                        b"/sys/fs/cgroup/kubepods/pod1"[..].into(),
                        b"/sys/fs/cgroup/kubepods/\x1b[2J"[..].into(),
                    ];
                    let (examples, examples_base64) =
                        ProcessFailures::examples_from(&example_bytes);
                    ProcessFailures {
                        pid: 20,
                        comm: comm_key(b"kubelet"),
                        comm_base64: None,
                        uid: 0,
                        count: 2,
                        first: at(1),
                        last: at(2),
                        examples,
                        examples_base64,
                        example_bytes,
                    }
                }],
            }],
            users: vec![UserSummary {
                uid: 0,
                watches_added: 8191,
                watches_charged_to_caller: 3,
                watches_removed: 0,
                instances_created: 2,
                instance_failures: 0,
                add_watch_failures: 2,
                peak_watches: 8191,
                held_seen: 8191,
            }],
            pods: Vec::new(),
            limits: LimitsAtStartAndEnd {
                start: Limits {
                    max_user_watches: Some(8192),
                    max_user_instances: Some(128),
                },
                end: Limits {
                    max_user_watches: Some(16384),
                    max_user_instances: Some(128),
                },
            },
            diagnoses: vec![Diagnosis {
                charge: Vec::new(),
                full_level: None,
                unexplained: None,
                kind: "diagnosis".into(),
                time: "2026-05-28T20:26:41.000000000Z".into(),
                pid: 20,
                comm: ProcessName::from_bytes(b"kubelet"),
                uid: 0,
                call: Kind::AddWatch,
                errno: Errno::ENOSPC,
                limit: Limit::Watches,
                user_ns: None,
                usage: Some(UserUsage {
                    uid: 0,
                    user_ns: None,
                    instances: 2,
                    watches: 8192,
                    max_instances: Some(128),
                    max_watches: Some(8192),
                    watches_pct: Some(100.0),
                    instances_pct: Some(1.6),
                    top_holder: Some(holder.clone()),
                }),
                holders: vec![holder],
                recommendations: vec![Recommendation {
                    uid: 0,
                    user_ns: None,
                    resource: Some(Limit::Watches),
                    sysctl: "fs.inotify.max_user_watches".into(),
                    limit: "fs.inotify.max_user_watches".into(),
                    current: 8192,
                    observed: 8192,
                    recommended: 16384,
                    max_kernel_memory_bytes: Some(16384 * 1080),
                    commands: vec!["sysctl -w fs.inotify.max_user_watches=16384".into()],
                    wrong_fix: Some("pid 10 (greedy) holds 100% of uid 0's watches".into()),
                }],
                place: None,
                snapshot_after_ms: Some(2.5),
                at_failure: Some(Held {
                    instances: 2,
                    watches: 8192,
                }),
                path: Some(crate::exact_text::PathName(
                    b"/sys/fs/cgroup/kubepods".to_vec(),
                )),
                cwd: None,
            }],
            utc_offset_s: 3600,
            held_known: true,
            start_known: true,
        };
        let mut out = Vec::new();
        write_summary(&mut out, &summary).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap(), @r#"

        == inotify-trace summary: 12.3s, 8203 events, 0 lost ==

        Processes, by watches held, then new watches (top 2; 1 more not shown):
              PID COMM               UID   CALLS     NEW  RE-ADD REMOVED   START    HELD  FAILED   PATHS  INST INST-FAIL  ERRORS
               10 greedy               0    8200    8190      10       0       -    8190       0     100     1         0
                  where: 8190 under /srv/data/\xffn; cmdline: greedy -r /srv/data/\u{1b}n
                  known: Python watchdog (watchmedo, Observer): one watch per directory of each tree scheduled recursively
                  fix: schedule fewer trees or non-recursively, ignore build and cache directories, or use the PollingObserver for huge trees (https://github.com/gorakhargosh/watchdog). Raising the limit only postpones the next failure.
               20 kubelet              0       3       1       0       0       -       -       2       3     1         0  ENOSPC:2
          (REMOVED counts inotify_rm_watch calls only: a watch also goes when its directory is deleted or its instance closed. START, HELD: the watches held when the session attached, at its end; -: none)

        Failures:
          ENOSPC from inotify_add_watch: 2 calls (a watch budget is used up: the uid's fs.inotify.max_user_watches, or its user namespace's user.max_inotify_watches)
                 20 kubelet         uid 0           2x  21:26:41.000000 .. 21:26:42.000000
                    /sys/fs/cgroup/kubepods/pod1
                    /sys/fs/cgroup/kubepods/\u{1b}[2J

        Users (this session, as the kernel charges: an instance to the uid that created it, a watch to its instance's creator):
             UID WATCHES-ADDED  REMOVED  INSTANCES  INST-FAIL   ADD-FAIL
               0          8191        0          2          0          2
          (3 watches went to instances created before the session (or inherited): counted for the caller's uid)
        Limits per uid: fs.inotify.max_user_watches = 8192, fs.inotify.max_user_instances = 128 at start; 16384 and 128 at end

        Diagnoses (who held the budget when it ran out):
          diagnosis: kubelet (pid 20, uid 0) got ENOSPC from inotify_add_watch at 2026-05-28T20:26:41.000000000Z
            its path: /sys/fs/cgroup/kubepods
            uid 0 held 8192 of 8192 watches and 2 of 128 instances at the failure (estimated from the snapshot)
            the cap hit: the host's fs.inotify.max_user_watches (8192)
            snapshot taken 2.5 ms after the failure: 8192 watches and 2 instances held then
            by watches:
                PID COMM            INSTANCES  WATCHES  SHARE  POD/UNIT
                 10 greedy                  1     8190   100%
                      cmdline: greedy --watch /srv
            to raise fs.inotify.max_user_watches from 8192: sysctl -w fs.inotify.max_user_watches=16384
              but: pid 10 (greedy) holds 100% of uid 0's watches
        "#);
    }
}
