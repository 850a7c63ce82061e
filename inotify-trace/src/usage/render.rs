//! The usage snapshot for people.
use std::io::{self, Write};

use super::{
    advice::Recommendation, diagnosis::Diagnosis, PodUsage, ProcessUsage, Usage, UserUsage,
};
use crate::{
    escape::Escaped,
    limits::{Limit, NO_CAP},
    pods::Attribution,
    words::{fit, plural},
};

pub fn write(out: &mut impl Write, usage: &Usage) -> io::Result<()> {
    let watches: u64 = usage.instances.iter().map(|i| i.watches).sum();
    writeln!(
        out,
        "inotify usage now: {}, {}, in {} (as listed)",
        plural(usage.instances.len() as u64, "instance"),
        plural(watches, "watch"),
        plural(usage.processes.len() as u64, "process"),
    )?;
    if usage.partial {
        let pids: Vec<String> = usage.unreadable_pids.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "PARTIAL: the fds of {} process{} could not be read (pids {}{}); the counts are lower bounds",
            usage.unreadable_processes,
            if usage.unreadable_processes == 1 { "" } else { "es" },
            pids.join(", "),
            if usage.unreadable_processes > pids.len() as u64 { ", ..." } else { "" }
        )?;
    }
    writeln!(
        out,
        "Host limits per uid: fs.inotify.max_user_watches = {}, fs.inotify.max_user_instances = {}",
        cap_text(usage.limits.max_user_watches),
        cap_text(usage.limits.max_user_instances)
    )?;
    users(out, &usage.users)?;
    pods(out, &usage.pods)?;
    writeln!(out)?;
    writeln!(out, "Processes, by watches:")?;
    writeln!(
        out,
        "  {:>7} {:<15} {:>6} {:>9} {:>8} {:<12} POD/UNIT",
        "PID", "COMM", "UID", "INSTANCES", "WATCHES", "USERNS"
    )?;
    for p in &usage.processes {
        let ns = p.user_ns.map(|ns| ns.to_string()).unwrap_or_default();
        let row = format!(
            "  {:>7} {:<15} {:>6} {:>9} {:>8} {ns:<12} {}",
            p.pid,
            fit(&p.comm.to_string(), 15),
            p.uid,
            p.instances,
            p.watches,
            // As live lines say it: `-` for nowhere known.
            match place_text(p.place.as_ref()).as_str() {
                "" => "-".to_owned(),
                place => place.to_owned(),
            }
        );
        writeln!(out, "{}", row.trim_end())?;
        for line in p.culprit.iter().flat_map(culprit_lines) {
            writeln!(out, "            {line}")?;
        }
    }
    if usage.instances.iter().any(|i| i.paths.is_some()) {
        writeln!(out)?;
        writeln!(out, "Instances and their watches:")?;
        for i in &usage.instances {
            let holders: Vec<String> = i
                .holders
                .iter()
                .map(|h| format!("pid {} fd {}", h.pid, h.fd))
                .collect();
            writeln!(
                out,
                "  {} watches: {} ({}, uid {})",
                i.watches,
                holders.join(", "),
                i.comm,
                i.uid
            )?;
            for t in i.paths.iter().flatten() {
                match (&t.path, &t.dev, t.ino) {
                    (Some(path), _, _) => writeln!(out, "    wd {:<5} {path}", t.wd)?,
                    (None, Some(dev), Some(ino)) => writeln!(
                        out,
                        "    wd {:<5} dev {dev} ino {ino} (path not resolvable)",
                        t.wd
                    )?,
                    _ => writeln!(out, "    wd {}", t.wd)?,
                }
            }
        }
    }
    recommendations(out, &usage.recommendations)
}

/// A process's pod (and container), unit or container, escaped; empty
/// when its cgroup says nothing.
pub fn place_text(place: Option<&Attribution>) -> String {
    match place.map(Attribution::label) {
        Some(label) if label != "-" => Escaped(label.as_bytes()).to_string(),
        _ => String::new(),
    }
}

/// A TOP HOLDER column: `pid comm (N watches)`.
fn holder_text(holder: Option<&ProcessUsage>) -> String {
    holder
        .map(|p| format!("{} {} ({})", p.pid, p.comm, plural(p.watches, "watch")))
        .unwrap_or_default()
}

fn pods(out: &mut impl Write, pods: &[PodUsage]) -> io::Result<()> {
    if pods.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "Pods (each instance counts for its first holder's pod), by watches:"
    )?;
    writeln!(
        out,
        "  {:<40} {:>9} {:>8}  TOP HOLDER",
        "POD", "INSTANCES", "WATCHES"
    )?;
    for pod in pods {
        let name = pod.pod.display_name();
        let top = holder_text(pod.top_holder.as_ref());
        writeln!(
            out,
            "  {:<40} {:>9} {:>8}  {top}",
            fit(&Escaped(name.as_bytes()).to_string(), 40),
            pod.instances,
            pod.watches
        )?;
    }
    Ok(())
}

pub fn users(out: &mut impl Write, users: &[UserUsage]) -> io::Result<()> {
    let pct = |p: Option<f64>, max: Option<u64>| match (p, max) {
        (_, Some(NO_CAP)) => "-".to_owned(),
        (Some(p), _) => format!("{p:.1}%"),
        (None, _) => "?".to_owned(),
    };
    writeln!(out)?;
    writeln!(
        out,
        "Users (what the kernel charges: the uid that created each instance):"
    )?;
    writeln!(
        out,
        "  {:>6} {:<17} {:>8} {:>8} {:>7} {:>9} {:>6} {:>7}  TOP HOLDER",
        "UID", "LIMITS OF", "WATCHES", "MAX", "USED", "INSTANCES", "MAX", "USED"
    )?;
    for u in users {
        let scope = u
            .user_ns
            .map_or_else(|| "host".to_owned(), |ns| format!("userns {ns}"));
        let top = holder_text(u.top_holder.as_ref());
        writeln!(
            out,
            "  {:>6} {:<17} {:>8} {:>8} {:>7} {:>9} {:>6} {:>7}  {top}",
            u.uid,
            scope,
            u.watches,
            cap_text(u.max_watches),
            pct(u.watches_pct, u.max_watches),
            u.instances,
            cap_text(u.max_instances),
            pct(u.instances_pct, u.max_instances)
        )?;
    }
    Ok(())
}

pub fn recommendations(out: &mut impl Write, recommendations: &[Recommendation]) -> io::Result<()> {
    if recommendations.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "Recommendations:")?;
    for r in recommendations {
        write!(
            out,
            "  uid {}: {} is {}, {} in use; set {}",
            r.uid, r.limit, r.current, r.observed, r.recommended
        )?;
        match r.max_kernel_memory_bytes {
            Some(bytes) => writeln!(
                out,
                " (at most {:.1} MiB of kernel memory, were every watch used)",
                bytes as f64 / (1 << 20) as f64
            )?,
            None => writeln!(out)?,
        }
        for command in &r.commands {
            writeln!(out, "      {command}")?;
        }
        if let Some(why) = &r.wrong_fix {
            writeln!(out, "    but: {why}")?;
        }
    }
    Ok(())
}

/// A cap as shown: `?` when unreadable, `none` for a user namespace without
/// a cap of its own.
/// `3 of 50 watches`, or without a cap to count against, `3 watches (no
/// cap of its own)` / `3 watches (cap unknown)`.
fn held_of(n: u64, cap: Option<u64>, noun: &str) -> String {
    match cap {
        Some(NO_CAP) => format!("{} (no cap of its own)", plural(n, noun)),
        None => format!("{} (cap unknown)", plural(n, noun)),
        Some(cap) => format!("{n} of {}", plural(cap, noun)),
    }
}

/// Arguments shown of a command line at most: the rest is cut with `...`.
const CMDLINE_SHOWN: usize = 160;

/// Two lines under a known program's row: `known: NAME: WHAT ITS WATCHES
/// ARE FOR` and `fix: FIX (LINK).` with whether raising the limit is the
/// fix for it.
pub fn culprit_lines(c: &crate::culprits::Culprit) -> [String; 2] {
    let raise = match c.raise_limit.as_str() {
        "watches" => " Raising max_user_watches is the right fix for it.",
        "instances" => " Raising max_user_instances is the right fix for it.",
        "no" => " Raising the limit only postpones the next failure.",
        _ => "",
    };
    let link = c
        .link
        .as_ref()
        .map_or_else(String::new, |l| format!(" ({l})"));
    [
        format!("known: {}: {}", c.name, c.watches_for),
        format!("fix: {}{link}.{raise}", c.fix),
    ]
}

/// `where: 55 under /srv/data; cmdline: inotifywait -r -m /srv/data`, for a
/// holder whose watches or command line are known.
pub fn where_and_command(places: &[super::places::Place], cmdline: &[String]) -> Option<String> {
    let mut parts = Vec::new();
    if !places.is_empty() {
        let places: Vec<String> = places
            .iter()
            .map(|p| format!("{} under {}", p.watches, p.dir))
            .collect();
        parts.push(format!("where: {}", places.join(", ")));
    }
    if !cmdline.is_empty() {
        let args: Vec<String> = cmdline
            .iter()
            .map(|a| Escaped(a.as_bytes()).to_string())
            .collect();
        let mut text = args.join(" ");
        if text.chars().count() > CMDLINE_SHOWN {
            text = text.chars().take(CMDLINE_SHOWN - 3).collect::<String>() + "...";
        }
        parts.push(format!("cmdline: {text}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn cap_text(cap: Option<u64>) -> String {
    match cap {
        None => "?".to_owned(),
        Some(NO_CAP) => "none".to_owned(),
        Some(n) => n.to_string(),
    }
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
    if let Some(u) = &d.usage {
        // What was held when the call failed, when the snapshot was told
        // apart from it (a diagnosis made live); else the snapshot alone.
        let (held, when) = match d.at_failure {
            Some(at) => ((at.watches, at.instances), "at the failure"),
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
        let mut said = format!("{indent}  snapshot taken {after_ms:.1} ms after the failure");
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
        let share = p
            .share_pct
            .map_or_else(|| "-".to_owned(), |pct| format!("{pct:.0}%"));
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
        if let Some(more) = where_and_command(&p.places, &p.cmdline) {
            writeln!(out, "{indent}            {more}")?;
        }
        for line in p.culprit.iter().flat_map(culprit_lines) {
            writeln!(out, "{indent}            {line}")?;
        }
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
