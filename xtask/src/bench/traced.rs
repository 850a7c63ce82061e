//! A tracer (ours or bpftrace) run for a benchmark: pinned to CPU 0, waited
//! for until it has attached, stopped with SIGINT, and measured by its own
//! rusage (CPU and peak RSS), which the kernel keeps for a waited child.
//! (The end-to-end tests' tracer harness, `tests::tracer`, asserts rather
//! than measures, and xtask must build before the tracer can: it installs
//! bpf-linker. So this small harness is xtask's own.)
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

pub struct Traced {
    child: Child,
}

/// What a finished child cost.
pub struct Cost {
    pub cpu_ns: u64,
    pub max_rss_kib: u64,
}

impl Traced {
    pub fn start(args: &[String]) -> Result<Traced> {
        let mut command = match cmd::on_path("taskset") {
            Some(taskset) => {
                let mut c = Command::new(taskset);
                c.args(["-c", "0"]).args(args);
                c
            }
            None => {
                let mut c = Command::new(&args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {args:?}"))?;
        // inotify-trace says "attached" on stderr; bpftrace, "Attaching".
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("attached") || line.contains("Attaching") {
                    let _ = tx.send(());
                }
            }
        });
        let is_bpftrace = args[0].ends_with("bpftrace");
        if is_bpftrace {
            // bpftrace says "Attaching N probes" on stdout before it
            // attaches and nothing once it has: give it time (a benchmark
            // figure, not a test's assertion, waits on it).
            std::thread::sleep(Duration::from_secs(3));
        } else if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            bail!("{args:?} did not attach");
        }
        Ok(Traced { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then the child's own rusage.
    pub fn stop(self) -> Result<Cost> {
        let pid = self.child.id();
        // SAFETY: signals our own child.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        let (_, cost) = wait(pid).context("waiting for the tracer failed")?;
        Ok(cost)
    }
}

/// Runs a command to its end, output discarded; its peak RSS.
pub fn peak_rss_kib(command: &mut Command) -> Result<u64> {
    let child = command.stdout(Stdio::null()).spawn()?;
    match wait(child.id()) {
        Some((0, cost)) => Ok(cost.max_rss_kib),
        _ => bail!("{command:?} failed"),
    }
}

/// Waits for our child `pid`: its wait status and what it cost.
fn wait(pid: u32) -> Option<(i32, Cost)> {
    let mut status = 0;
    // SAFETY: waits for our own child; rusage is plain data the kernel fills.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::wait4(pid as i32, &mut status, 0, &mut usage) < 0 {
            return None;
        }
        usage
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    Some((
        status,
        Cost {
            cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss as u64,
        },
    ))
}

/// The peak RSS so far of a running process (taskset execs the tracer, so
/// the pid is the tracer's).
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    cmd::status_kib(pid, "VmHWM")
}
