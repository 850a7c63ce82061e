//! A diagnosis as text: the block the live notice, the summary and the
//! report print.
use std::io::{self, Write};

use super::Diagnosis;
use crate::{
    limits::{Limit, NO_CAP},
    words::{culprit_lines, fit, place_text, plural, where_and_command, whole_percent},
};

/// Which level of the kernel's count was full, and so whose cap the call
/// hit; or, plainly, that none was.
fn full_level(out: &mut impl Write, d: &Diagnosis, indent: &str) -> io::Result<()> {
    let Some(k) = d.full_level else {
        return writeln!(
            out,
            "{indent}  no level of the kernel's count was full right after the call: {} were freed between the refusal and the count",
            d.limit.noun()
        );
    };
    let level = &d.charge[k];
    let (used, cap) = match d.limit {
        Limit::Watches => (level.watches, level.max_watches),
        Limit::Instances => (level.instances, level.max_instances),
    };
    // The last level of an uncut charge is the initial namespace's.
    let host = k + 1 == d.charge.len();
    if k > 0 {
        writeln!(
            out,
            "{indent}  the full level is an ancestor's: uid {} in {} held {} (its namespace's owner, charged for every watch below it)",
            level.uid,
            match host {
                true => "the host's namespace".to_owned(),
                false => format!("user namespace {}", level.user_ns),
            },
            held_of(u64::from(used), Some(u64::from(cap)), d.limit.unit()),
        )?;
    }
    writeln!(
        out,
        "{indent}  the cap hit: {}",
        d.limit.which_hit(
            (!host).then_some(u64::from(level.user_ns)),
            Some(u64::from(cap))
        )
    )
}

/// A diagnosis as a block of lines, each starting with `indent`.
pub fn diagnosis(out: &mut impl Write, d: &Diagnosis, indent: &str) -> io::Result<()> {
    let call = d.call.syscall();
    let scope = d
        .user_ns
        .map_or_else(String::new, |ns| format!(" in user namespace {ns}"));
    writeln!(
        out,
        "{indent}diagnosis: {} (pid {}, uid {}{}) got {} from {call} at {}",
        d.comm,
        d.pid,
        d.uid,
        match place_text(d.place.as_ref()).as_str() {
            "" => String::new(),
            place => format!(", in {place}"),
        },
        d.errno,
        d.time
    )?;
    if let Some(path) = &d.path {
        match &d.cwd {
            Some(cwd) => writeln!(
                out,
                "{indent}  its path: {path} (relative: its working directory is {cwd})"
            )?,
            None if !path.0.starts_with(b"/") => writeln!(
                out,
                "{indent}  its path: {path} (relative to its working directory, unknown: it was gone before it could be read)"
            )?,
            None => writeln!(out, "{indent}  its path: {path}")?,
        }
    }
    if let Some(level) = d.charge.first() {
        // The kernel's own count, from the failing record.
        writeln!(
            out,
            "{indent}  uid {}{scope} held {} and {} at the failure (the kernel's count)",
            d.uid,
            held_of(
                u64::from(level.watches),
                Some(u64::from(level.max_watches)),
                "watch"
            ),
            held_of(
                u64::from(level.instances),
                Some(u64::from(level.max_instances)),
                "instance"
            ),
        )?;
        full_level(out, d, indent)?;
    } else if let Some(u) = &d.usage {
        // No kernel's count in the record (an older recording, a kernel
        // whose BTF lacks it): what was held when the call failed, as the
        // snapshot lets it be estimated (a diagnosis made live); else the
        // snapshot alone. Said as such: never passed off as the count.
        let (held, when) = match d.at_failure {
            Some(at) => (
                (at.watches, at.instances),
                "at the failure (estimated from the snapshot)",
            ),
            None => ((u.watches, u.instances), "now"),
        };
        writeln!(
            out,
            "{indent}  uid {}{scope} held {} and {} {when}",
            u.uid,
            held_of(held.0, u.max_watches, "watch"),
            held_of(held.1, u.max_instances, "instance"),
        )?;
        let cap = match d.limit {
            Limit::Watches => u.max_watches,
            Limit::Instances => u.max_instances,
        };
        writeln!(
            out,
            "{indent}  the cap hit: {}",
            d.limit.which_hit(d.user_ns, cap)
        )?;
    } else if let Some(at) = d.at_failure {
        writeln!(
            out,
            "{indent}  uid {}{scope} held at least {} and {} at the failure",
            d.uid,
            plural(at.watches, "watch"),
            plural(at.instances, "instance"),
        )?;
    } else {
        writeln!(
            out,
            "{indent}  no inotify instance of uid {}{scope} is visible now",
            d.uid,
        )?;
    }
    if let Some(after_ms) = d.snapshot_after_ms {
        // When it read the holders, where it says (each its own moment).
        let reads = d.holders.iter().filter_map(|p| p.read_after_ms);
        let first = reads.clone().reduce(f64::min);
        let mut said = match first.zip(reads.reduce(f64::max)) {
            Some((first, last)) => {
                format!("{indent}  snapshot read {first:.1}-{last:.1} ms after the failure")
            }
            None => format!("{indent}  snapshot taken {after_ms:.1} ms after the failure"),
        };
        if let Some(u) = &d.usage {
            said += &format!(
                ": {} and {} held then",
                plural(u.watches, "watch"),
                plural(u.instances, "instance"),
            );
        }
        let gone = d.holders.iter().find(|p| p.gone);
        if let Some(p) = gone {
            said += &format!(
                "; pid {} ({}), gone by then, had taken {} and {} in this session",
                p.pid,
                p.comm,
                plural(p.watches, "watch"),
                plural(p.instances, "instance"),
            );
        }
        let later = d.holders.iter().filter(|p| p.started_after_failure).count();
        if later > 0 {
            said += &format!(
                "; {} started after the failure, not counted",
                plural(later as u64, "holder")
            );
        }
        writeln!(out, "{said}")?;
    }
    if !d.holders.is_empty() {
        writeln!(out, "{indent}  by {}:", d.limit.noun())?;
        writeln!(
            out,
            "{indent}  {:>7} {:<15} {:>9} {:>8} {:>6}  POD/UNIT",
            "PID", "COMM", "INSTANCES", "WATCHES", "SHARE"
        )?;
    }
    for p in &d.holders {
        let note = if p.gone {
            "(gone: as traced this session)"
        } else if p.started_after_failure {
            "(started after the failure)"
        } else {
            ""
        };
        let place = place_text(p.place.as_ref());
        let tail: Vec<&str> = [place.as_str(), note]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let share = p.share_pct.map_or_else(|| "-".to_owned(), whole_percent);
        let reconciled = p.as_read.map(|read| {
            format!(
                "(at the failure; read {:.1} ms after it: {} and {})",
                p.read_after_ms.unwrap_or_default(),
                plural(read.watches, "watch"),
                plural(read.instances, "instance")
            )
        });
        let tail: Vec<&str> = tail.into_iter().chain(reconciled.as_deref()).collect();
        let row = format!(
            "{indent}  {:>7} {:<15} {:>9} {:>8} {:>6}  {}",
            p.pid,
            fit(&p.comm.to_string(), 15),
            p.instances,
            p.watches,
            share,
            tail.join("  ")
        );
        writeln!(out, "{}", row.trim_end())?;
        if let Some(more) = where_and_command(&p.facts) {
            writeln!(out, "{indent}            {more}")?;
        }
        for line in p.facts.culprit.iter().flat_map(culprit_lines) {
            writeln!(out, "{indent}            {line}")?;
        }
    }
    match d.unexplained {
        Some(n) if n > 0 => writeln!(
            out,
            "{indent}  {} of the kernel's count are not in the holders: held by processes this scan could not read, or released between the failure and the read without a traced call (a directory deleted, an instance closed)",
            plural(n as u64, d.limit.unit()),
        )?,
        Some(n) if n < 0 => writeln!(
            out,
            "{indent}  the holders hold {} more than the kernel's count: some of their instances are charged to another uid or namespace (made by another process)",
            plural(n.unsigned_abs(), d.limit.unit()),
        )?,
        _ => {}
    }
    for r in &d.recommendations {
        writeln!(
            out,
            "{indent}  to raise {} from {}: {}",
            r.limit,
            r.current,
            r.commands.join("; ")
        )?;
        if let Some(why) = &r.wrong_fix {
            writeln!(out, "{indent}    but: {why}")?;
        }
    }
    Ok(())
}

/// `3 of 50 watches`, or without a cap to count against, `3 watches (no
/// cap of its own)` / `3 watches (cap unknown)`.
fn held_of(n: u64, cap: Option<u64>, noun: &str) -> String {
    match cap {
        Some(NO_CAP) => format!("{} (no cap of its own)", plural(n, noun)),
        None => format!("{} (cap unknown)", plural(n, noun)),
        Some(cap) => format!("{n} of {}", plural(cap, noun)),
    }
}
