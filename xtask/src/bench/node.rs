//! The benchmark at node scale (issue 32): real holders, Debian's
//! `inotifywait -m -r` on trees, as three uids each within its own cap (the
//! host's sysctls untouched), at two sizes; `usage` against the peer
//! inotify-info, round by round in the same run; and the agent's CPU per
//! snapshot and peak RSS at each size. Real time on this machine.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::median;
use crate::cmd;

/// The holders' uids: no one else's on this machine.
const UIDS: [u32; 3] = [4311, 4312, 4313];
/// Holders per uid.
const HOLDERS_PER_UID: usize = 12;
/// The agent's snapshot interval while it is measured.
const AGENT_INTERVAL: Duration = Duration::from_secs(2);

/// One size's figures.
#[derive(Serialize)]
pub struct NodeRow {
    /// The watches held, as `usage` counted them.
    pub watches: u64,
    pub holders: usize,
    /// Wall time, medians of the rounds.
    pub usage_s: f64,
    pub usage_json_s: f64,
    pub inotify_info_s: f64,
    /// `usage` / inotify-info, the median of each round's ratio.
    pub usage_to_inotify_info: f64,
    /// The agent: CPU (user + system) per snapshot, and per watch.
    pub agent_cpu_per_snapshot_s: f64,
    pub agent_cpu_per_watch_us: f64,
    /// Of which the kernel's (system time).
    pub agent_system_share: f64,
    pub agent_peak_rss_mib: f64,
}

/// The rows, one per size, and the rounds they took.
#[derive(Serialize)]
pub struct NodeScale {
    pub rounds: usize,
    pub rows: Vec<NodeRow>,
}

impl NodeScale {
    /// Its rows, as the benchmark's table prints them.
    pub fn print(&self) {
        println!(
            "node scale: real inotifywait -m -r holders as 3 uids; wall time, median of {} interleaved rounds; the agent with the tracepoint modes here (no window: --trace-above 100)",
            self.rounds
        );
        println!("  watches  holders    usage  usage --json  inotify-info  usage/inotify-info (target <= 0.5x)   agent CPU per snapshot  per watch  system share  peak RSS");
        for r in &self.rows {
            println!(
                "  {:>7}  {:>7}  {:>6.3}s  {:>11.3}s  {:>11.3}s  {:>18.2}x                 {:>8.3}s  {:>7.2} us  {:>11.0}%  {:>5.1} MiB",
                r.watches,
                r.holders,
                r.usage_s,
                r.usage_json_s,
                r.inotify_info_s,
                r.usage_to_inotify_info,
                r.agent_cpu_per_snapshot_s,
                r.agent_cpu_per_watch_us,
                r.agent_system_share * 100.0,
                r.agent_peak_rss_mib
            );
        }
    }
}

/// Both sizes: `watches` in all, spread over the holders.
pub fn run(tracer: &Path, sizes: &[u64], rounds: usize, agent_snapshots: u32) -> Result<NodeScale> {
    let peer = crate::vm::inotify_info().context("fetching the peer inotify-info")?;
    let inotifywait =
        cmd::on_path("inotifywait").context("inotifywait (inotify-tools) is not installed")?;
    let mut rows = Vec::new();
    for &watches in sizes {
        cmd::step(&format!(
            "node scale: {} holders as {} uids holding ~{watches} watches",
            UIDS.len() * HOLDERS_PER_UID,
            UIDS.len()
        ));
        let node = Node::make(&inotifywait, watches)?;
        let row = measure(tracer, &peer, &node, rounds, agent_snapshots);
        drop(node);
        rows.push(row?);
    }
    Ok(NodeScale { rounds, rows })
}

/// The trees and their holders, removed when dropped.
struct Node {
    root: PathBuf,
    holders: Vec<Child>,
}

impl Node {
    /// `watches` directories in trees of one per holder, each watched
    /// recursively by an inotifywait running as its uid.
    fn make(inotifywait: &Path, watches: u64) -> Result<Node> {
        let root = PathBuf::from("/tmp/inotify-bench-node");
        let _ = std::fs::remove_dir_all(&root);
        let mut node = Node {
            root: root.clone(),
            holders: Vec::new(),
        };
        let trees = UIDS.len() * HOLDERS_PER_UID;
        let per_tree = (watches / trees as u64).max(1);
        // Two levels: sqrt(n) directories of sqrt(n) each.
        let side = (per_tree as f64).sqrt().ceil() as u64;
        for (t, uid) in (0..trees).map(|t| (t, UIDS[t % UIDS.len()])) {
            let tree = root.join(format!("tree{t}"));
            let mut made = 1; // the tree's own directory
            'outer: for a in 0..side {
                for b in 0..side {
                    if made >= per_tree {
                        break 'outer;
                    }
                    let dir = match b {
                        0 => tree.join(format!("{a}")),
                        _ => tree.join(format!("{a}/{b}")),
                    };
                    std::fs::create_dir_all(&dir)?;
                    made += 1;
                }
            }
            std::fs::create_dir_all(&tree)?;
            node.holders.push(holder(inotifywait, &tree, uid)?);
        }
        Ok(node)
    }
}

/// `inotifywait -m -r TREE` as `uid`, once it says its watches are set.
fn holder(inotifywait: &Path, tree: &Path, uid: u32) -> Result<Child> {
    let mut child = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_owned(),
        ])
        .arg(inotifywait)
        .args(["-m", "-r"])
        .arg(tree)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting inotifywait")?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("Watches established") => break,
            Some(Ok(_)) => continue,
            _ => {
                let _ = child.kill();
                bail!(
                    "inotifywait on {} ended before its watches were set",
                    tree.display()
                );
            }
        }
    }
    // Its later messages (none with -m but events) go nowhere.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(child)
}

impl Drop for Node {
    fn drop(&mut self) {
        for holder in &mut self.holders {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn measure(
    tracer: &Path,
    peer: &[std::ffi::OsString],
    node: &Node,
    rounds: usize,
    agent_snapshots: u32,
) -> Result<NodeRow> {
    let usage: serde_json::Value = serde_json::from_str(&cmd::output(
        Command::new(tracer).args(["usage", "--json"]),
    )?)?;
    let watches: u64 = usage["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["user_ns"].is_null() && UIDS.iter().any(|uid| u["uid"] == *uid))
        .map(|u| u["watches"].as_u64().unwrap_or(0))
        .sum();
    // Interleaved, round by round, so the machine's drift hits all alike.
    let (mut text, mut json, mut info, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = timed(Command::new(tracer).arg("usage"))?;
        let j = timed(Command::new(tracer).args(["usage", "--json"]))?;
        let i = timed(Command::new(&peer[0]).args(&peer[1..]))?;
        ratios.push(t / i);
        text.push(t);
        json.push(j);
        info.push(i);
    }
    let (cpu_per_snapshot, system_share, peak_rss_kib) = agent(tracer, agent_snapshots)?;
    Ok(NodeRow {
        watches,
        holders: node.holders.len(),
        usage_s: median(&text),
        usage_json_s: median(&json),
        inotify_info_s: median(&info),
        usage_to_inotify_info: median(&ratios),
        agent_cpu_per_snapshot_s: cpu_per_snapshot,
        agent_cpu_per_watch_us: cpu_per_snapshot / watches.max(1) as f64 * 1e6,
        agent_system_share: system_share,
        agent_peak_rss_mib: peak_rss_kib as f64 / 1024.0,
    })
}

/// Seconds `command` took, its output discarded.
fn timed(command: &mut Command) -> Result<f64> {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{command:?}: {status}");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The agent over `snapshots` intervals after its first: CPU per snapshot
/// (user + system, from /proc/PID/stat), the system share, peak RSS (KiB).
fn agent(tracer: &Path, snapshots: u32) -> Result<(f64, f64, u64)> {
    let mut child = Command::new(tracer)
        .args(["agent", "--listen", "127.0.0.1:0", "--trace-above", "100"])
        .arg("--interval")
        .arg(format!("{}s", AGENT_INTERVAL.as_secs()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Its first line is said once it listens; the first snapshot is taken
    // at once: start counting an interval later.
    let mut first = String::new();
    BufReader::new(child.stderr.take().expect("piped")).read_line(&mut first)?;
    std::thread::sleep(AGENT_INTERVAL);
    let pid = child.id();
    let before = cpu_ticks(pid)?;
    std::thread::sleep(AGENT_INTERVAL * snapshots);
    let after = cpu_ticks(pid)?;
    let peak = cmd::status_kib(pid, "VmHWM").unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    // SAFETY: sysconf reads a constant of the system.
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    let (user, system) = ((after.0 - before.0) as f64, (after.1 - before.1) as f64);
    let per_snapshot = (user + system) / ticks / f64::from(snapshots);
    Ok((per_snapshot, system / (user + system).max(1.0), peak))
}

/// A process's (user, system) CPU in clock ticks (`stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the comm's closing parenthesis, fields from the third on.
    let rest = stat.rsplit_once(')').context("a stat line")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok((fields[11].parse()?, fields[12].parse()?))
}
