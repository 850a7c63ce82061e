//! The usage snapshot for people.
use std::io::{self, Write};

use super::{PodUsage, ProcessUsage, Usage, UserUsage};
use crate::{
    advice::Recommendation,
    escape::Escaped,
    kernel_btf::WatchCost,
    limits::NO_CAP,
    words::{culprit_lines, fit, memory_text, place_text, plural},
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
        let named: Vec<String> = usage
            .unreadable_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| match usage.unreadable_comms.get(i) {
                Some(comm) if !comm.is_empty() => format!("{pid} {comm}"),
                _ => pid.to_string(),
            })
            .collect();
        writeln!(
            out,
            "PARTIAL: the fds of {} could not be read ({}{}): {}; the counts are lower bounds",
            plural(usage.unreadable_processes, "process"),
            named.join(", "),
            if usage.unreadable_processes > named.len() as u64 {
                ", ..."
            } else {
                ""
            },
            usage
                .unreadable_why
                .as_deref()
                .unwrap_or("permission denied")
        )?;
    }
    writeln!(
        out,
        "Host limits per uid: fs.inotify.max_user_watches = {}, fs.inotify.max_user_instances = {}",
        cap_text(usage.limits.max_user_watches),
        cap_text(usage.limits.max_user_instances)
    )?;
    users(out, &usage.users, usage.watch_cost)?;
    pods(out, &usage.pods, usage.watch_cost)?;
    watch_cost(out, usage)?;
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
        for line in p.facts.culprit.iter().flat_map(culprit_lines) {
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

/// A TOP HOLDER column: `pid comm (N watches)`.
fn holder_text(holder: Option<&ProcessUsage>) -> String {
    holder
        .map(|p| format!("{} {} ({})", p.pid, p.comm, plural(p.watches, "watch")))
        .unwrap_or_default()
}

/// The KERNEL MEM column: what the watches pin, `?` without BTF.
fn pinned(cost: Option<WatchCost>, watches: u64) -> String {
    cost.map_or_else(|| "?".to_owned(), |c| memory_text(c.of(watches)))
}

/// What the KERNEL MEM columns are, once, under the tables.
fn watch_cost(out: &mut impl Write, usage: &Usage) -> io::Result<()> {
    match (usage.watch_cost, &usage.watch_cost_unknown) {
        (Some(c), _) => writeln!(
            out,
            "  (KERNEL MEM: what the watches pin by the kernel's own estimate, {} bytes each: a mark of {} and two inodes of {}, from this kernel's BTF)",
            c.bytes, c.mark_bytes, c.inode_bytes
        ),
        (None, Some(why)) => writeln!(out, "  (KERNEL MEM unknown: {why})"),
        (None, None) => Ok(()),
    }
}

fn pods(out: &mut impl Write, pods: &[PodUsage], cost: Option<WatchCost>) -> io::Result<()> {
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
        "  {:<40} {:>9} {:>8} {:>10}  TOP HOLDER",
        "POD", "INSTANCES", "WATCHES", "KERNEL MEM"
    )?;
    for pod in pods {
        let name = pod.pod.display_name();
        let top = holder_text(pod.top_holder.as_ref());
        writeln!(
            out,
            "  {:<40} {:>9} {:>8} {:>10}  {top}",
            fit(&Escaped(name.as_bytes()).to_string(), 40),
            pod.instances,
            pod.watches,
            pinned(cost, pod.watches)
        )?;
    }
    Ok(())
}

pub fn users(out: &mut impl Write, users: &[UserUsage], cost: Option<WatchCost>) -> io::Result<()> {
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
        "  {:>6} {:<17} {:>8} {:>8} {:>7} {:>9} {:>6} {:>7} {:>10}  TOP HOLDER",
        "UID", "LIMITS OF", "WATCHES", "MAX", "USED", "INSTANCES", "MAX", "USED", "KERNEL MEM"
    )?;
    for u in users {
        let scope = u
            .user_ns
            .map_or_else(|| "host".to_owned(), |ns| format!("userns {ns}"));
        let top = holder_text(u.top_holder.as_ref());
        writeln!(
            out,
            "  {:>6} {:<17} {:>8} {:>8} {:>7} {:>9} {:>6} {:>7} {:>10}  {top}",
            u.uid,
            scope,
            u.watches,
            cap_text(u.max_watches),
            pct(u.watches_pct, u.max_watches),
            u.instances,
            cap_text(u.max_instances),
            pct(u.instances_pct, u.max_instances),
            pinned(cost, u.watches)
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
fn cap_text(cap: Option<u64>) -> String {
    match cap {
        None => "?".to_owned(),
        Some(NO_CAP) => "none".to_owned(),
        Some(n) => n.to_string(),
    }
}
