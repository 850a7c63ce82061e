//! The summary for people: one screen that answers who added how many
//! watches, who failed and why, and against which limits.
use std::{
    io::{self, Write},
    time::SystemTime,
};

use chrono::{DateTime, FixedOffset};

use super::{FailureGroup, Summary};
use crate::escape::Escaped;

pub fn write_summary(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "== inotify-trace summary: {:.1}s, {} events, {} lost ==",
        s.duration_s, s.events, s.lost
    )?;
    if s.lost > 0 {
        writeln!(
            out,
            "   (events were lost: counts below are lower bounds; raise --ring-size)"
        )?;
    }
    processes(out, s)?;
    failures(out, s)?;
    users(out, s)?;
    if !s.diagnoses.is_empty() {
        writeln!(out)?;
        writeln!(out, "Diagnoses (who held the budget when it ran out):")?;
        for d in &s.diagnoses {
            crate::usage::render::diagnosis(out, d, "  ")?;
        }
    }
    Ok(())
}

fn processes(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    if s.processes.is_empty() {
        return writeln!(out, "No inotify calls were traced.");
    }
    write!(out, "Processes, by new watches")?;
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
        "  {:>7} {:<15} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>9}  ERRORS",
        "PID",
        "COMM",
        "UID",
        "CALLS",
        "NEW",
        "RE-ADD",
        "REMOVED",
        "FAILED",
        "PATHS",
        "INST",
        "INST-FAIL"
    )?;
    for p in &s.processes {
        let errors: Vec<String> = p.errors.iter().map(|(e, n)| format!("{e}:{n}")).collect();
        let row = format!(
            "  {:>7} {:<15} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>9}  {}",
            p.pid,
            Escaped(p.comm.as_bytes()).to_string(),
            p.uid,
            p.calls,
            p.new_watches,
            p.re_adds,
            p.removed,
            p.failed,
            p.distinct_paths,
            p.instances,
            p.instance_failures,
            errors.join(" ")
        );
        writeln!(out, "{}", row.trim_end())?;
    }
    Ok(())
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
        syscall_name(g.call),
        g.count,
        meaning(g)
    )?;
    for p in &g.processes {
        writeln!(
            out,
            "    {:>7} {:<15} uid {:<6} {:>6}x  {} .. {}",
            p.pid,
            Escaped(p.comm.as_bytes()).to_string(),
            p.uid,
            p.count,
            local(p.first, utc_offset_s),
            local(p.last, utc_offset_s)
        )?;
        for path in &p.examples {
            writeln!(out, "            {}", Escaped(path.as_bytes()))?;
        }
    }
    Ok(())
}

/// The syscall behind a summary's call name.
fn syscall_name(call: &str) -> &'static str {
    match call {
        "add_watch" => "inotify_add_watch",
        "rm_watch" => "inotify_rm_watch",
        _ => "inotify_init/init1",
    }
}

/// What the two errors this tool is about mean, said where they show up.
fn meaning(g: &FailureGroup) -> &'static str {
    match (g.call, g.errno) {
        ("add_watch", "ENOSPC") => " (the uid's fs.inotify.max_user_watches is used up)",
        ("init", "EMFILE") => {
            " (the uid's fs.inotify.max_user_instances is used up, or the process's fd limit)"
        }
        _ => "",
    }
}

fn users(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(out)?;
    if !s.users.is_empty() {
        writeln!(out, "Users (this session):")?;
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

/// A time in the recording host's zone (the session's, when live), as
/// `HH:MM:SS.micros`; formatted where it is written, without allocating.
pub fn local(time: SystemTime, utc_offset_s: i32) -> impl std::fmt::Display {
    let utc = FixedOffset::east_opt(0).expect("zero is a valid offset");
    let offset = FixedOffset::east_opt(utc_offset_s).unwrap_or(utc);
    DateTime::<chrono::Utc>::from(time)
        .with_timezone(&offset)
        .format("%H:%M:%S%.6f")
}
