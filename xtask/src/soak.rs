//! `cargo xtask soak [--minutes N]`: the agent over many trace windows
//! (`--always-trace`, a window every few seconds) while processes come and
//! go, each in a pod of its own (a fresh cgroup and log directory, removed
//! after) watching paths of its own. The agent's RSS is sampled throughout:
//! it must stay flat (no table grows with pids, paths or pods seen). Not in
//! CI: it takes minutes.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

pub fn run(minutes: u64) -> Result<()> {
    let release = cmd::build_release_bins()?;
    let scratch = cmd::target_dir()?.join("soak");
    let _ = std::fs::remove_dir_all(&scratch);
    let host_root = scratch.join("host");
    let records = scratch.join("records");
    std::fs::create_dir_all(host_root.join("var/log/pods"))?;
    std::fs::create_dir_all(host_root.join("var/log/containers"))?;
    let cgroup_root = cgroup2_mount()?.join(format!("soak-{}", std::process::id()));
    std::fs::create_dir_all(&cgroup_root)?;

    let mut agent = Command::new(release.join("inotify-trace"))
        .args([
            "agent",
            "--interval",
            "1s",
            "--always-trace",
            "--trace-window",
            "5s",
        ])
        .args(["--listen", "127.0.0.1:0", "--max-record-bytes", "20M"])
        .arg("--record-dir")
        .arg(&records)
        .arg("--host-root")
        .arg(&host_root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    cmd::step(&format!(
        "soaking for {minutes} min: a window every ~6 s, a new pod and process every 100 ms"
    ));
    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next_sample = Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < Duration::from_secs(60 * minutes) {
        churn(n, &release, &cgroup_root, &host_root, &scratch)?;
        n += 1;
        if Instant::now() >= next_sample {
            let rss = cmd::status_kib(agent.id(), "VmRSS").context("the agent died")?;
            samples.push((started.elapsed().as_secs_f64(), rss));
            next_sample += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    for dir in ["kubepods/burstable", "kubepods", ""] {
        let _ = std::fs::remove_dir(cgroup_root.join(dir));
    }
    let windows = std::fs::read_dir(&records).map_or(0, |d| d.count());
    // Flat: the last minute's RSS within 10% (and 4 MiB) of the second
    // minute's, the first being warm-up (the first window maps the ring).
    let window = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, rss)| *rss)
            .max()
            .unwrap_or(0)
    };
    let total = samples.last().map_or(0.0, |(t, _)| *t);
    let (early, late) = (window(60.0, 120.0), window(total - 60.0, total + 1.0));
    println!();
    println!("soak: {minutes} min, {n} processes in {n} pods, recordings kept {windows}");
    for (t, rss) in &samples {
        println!("  {t:>6.0} s  agent RSS {:>6.1} MiB", *rss as f64 / 1024.0);
    }
    println!(
        "agent RSS: 2nd minute peak {:.1} MiB, last minute peak {:.1} MiB (target: flat, within 10%)",
        early as f64 / 1024.0,
        late as f64 / 1024.0
    );
    if minutes >= 3 && late > early + early / 10 + 4096 {
        bail!("the agent's RSS grew");
    }
    Ok(())
}

/// One short-lived process in a new pod: a cgroup in kubelet's cgroupfs
/// layout and its log directory, both removed once it has exited.
fn churn(
    n: u64,
    release: &Path,
    cgroup_root: &Path,
    host_root: &Path,
    scratch: &Path,
) -> Result<()> {
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n);
    let id = format!("{:064x}", n + 1);
    let cgroup = cgroup_root.join(format!("kubepods/burstable/pod{uid}/{id}"));
    std::fs::create_dir_all(&cgroup)?;
    let logs = host_root.join(format!("var/log/pods/soak_pod-{n}_{uid}"));
    std::fs::create_dir_all(&logs)?;
    let dir = scratch.join(format!("paths/{n}"));
    std::fs::create_dir_all(&dir)?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            cgroup.display()
        ))
        .arg("sh")
        .arg(release.join("inotify-workload"))
        .args(["--comm", "soak", "init", "add"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("a soak process failed: {status}");
    }
    let _ = std::fs::remove_dir(&cgroup);
    for parent in cgroup.ancestors().skip(1).take(1) {
        let _ = std::fs::remove_dir(parent);
    }
    let _ = std::fs::remove_dir(&logs);
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

fn cgroup2_mount() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    mounts
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            (fs == "cgroup2").then(|| PathBuf::from(point))
        })
        .context("no cgroup2 mount: the soak makes pods in cgroup v2")
}
