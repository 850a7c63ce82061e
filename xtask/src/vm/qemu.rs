//! Booting a guest under QEMU and reading its console: the `@@vm` lines its
//! `/init` prints. A guest that hangs (no console output for a while, or
//! past the whole deadline) or panics is stopped, and reported as failed with
//! its console's last lines; the runner never waits on it forever.
use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{cmd, dist::Arch};

/// How long a guest may be silent (one check can take this long before its
/// result line) and how long it may run in all.
const SILENCE: Duration = Duration::from_secs(660);
const DEADLINE: Duration = Duration::from_secs(40 * 60);

/// What a guest said, and how its run ended.
pub struct Console {
    /// The `@@vm` lines, without the prefix.
    pub lines: Vec<String>,
    /// Why the run did not end with `@@vm end`, with the console's last lines.
    pub problem: Option<String>,
    pub seconds: f64,
}

/// The QEMU command line for `arch`: TCG (KVM guests hang in early boot on
/// this machine kind), no disk, no network, the console on stdio.
/// One guest to boot.
pub struct Guest<'a> {
    pub arch: Arch,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    /// `name=value` words for the kernel command line, which reach /init as
    /// environment variables.
    pub init_env: String,
    /// Clocks that count instructions (`-icount shift=0,sleep=off`, one
    /// vCPU): repeatable figures for the benchmark, in virtual ns.
    pub icount: bool,
}

fn qemu(guest: &Guest) -> Command {
    let Guest {
        arch,
        kernel,
        initramfs,
        init_env,
        icount,
    } = guest;
    // A guest kernel's panic powers the machine off (panic=-1 with
    // -no-reboot), so a crash ends the run at once. The CPU's random number
    // instruction seeds the guest's pool: getrandom() must not wait. Words
    // of the form name=value the kernel does not know reach /init as
    // environment variables (`init_env`).
    let append = |console: &str| {
        format!(
            "console={console} panic=-1 oops=panic random.trust_cpu=on rdinit=/init quiet {init_env}"
        )
    };
    let mut command = match *arch {
        Arch::Amd64 => {
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-cpu", "max", "-append", &append("ttyS0")]);
            c
        }
        Arch::Arm64 => {
            let mut c = Command::new("qemu-system-aarch64");
            // pauth-impdef: the cheap pointer-authentication algorithm, much
            // faster to emulate than the architected one.
            c.args(["-machine", "virt", "-cpu", "max,pauth-impdef=on"]);
            c.args(["-append", &append("ttyAMA0")]);
            c
        }
    };
    match icount {
        true => command.args(["-icount", "shift=0,sleep=off", "-smp", "1"]),
        false => command.args(["-smp", "2"]),
    };
    command
        .args(["-accel", "tcg", "-m", "2048"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs);
    command
}

/// The QEMU package for `arch` (Debian's names).
pub fn ensure_installed(arch: Arch) -> Result<()> {
    crate::packages::ensure(match arch {
        Arch::Amd64 => &crate::packages::QEMU_AMD64,
        Arch::Arm64 => &crate::packages::QEMU_ARM64,
    })
}

/// Boots the guest and reads its console until it powers off, writing the
/// whole console to `log`.
pub fn boot(guest: &Guest, log: &Path) -> Result<Console> {
    let started = Instant::now();
    let mut child = qemu(guest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting QEMU")?;
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().context("QEMU's stdout")?) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().context("QEMU's stderr")?),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                // Console text may hold any byte (and \r): keep it printable.
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut console = std::fs::File::create(log)?;
    let mut last = VecDeque::with_capacity(30);
    let mut lines = Vec::new();
    let mut ended = false;
    let problem = loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match rx.recv_timeout(SILENCE.min(left)) {
            Ok(line) => {
                use std::io::Write as _;
                writeln!(console, "{line}")?;
                if let Some(said) = line.strip_prefix("@@vm ") {
                    if said == "end" {
                        ended = true;
                    }
                    if ["check ", "out ", "bench "]
                        .iter()
                        .any(|p| said.starts_with(p))
                    {
                        cmd::step(&format!("  guest: {said}"));
                    }
                    lines.push(said.to_owned());
                }
                if last.len() == 30 {
                    last.pop_front();
                }
                last.push_back(line);
            }
            // QEMU exited (the guest powered off, or crashed).
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break (!ended).then(|| "the guest stopped before its last check".to_owned());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Some(match left <= SILENCE {
                    true => format!("the guest ran past {} min", DEADLINE.as_secs() / 60),
                    false => format!("the guest said nothing for {} s", SILENCE.as_secs()),
                });
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(Console {
        lines,
        problem: problem.map(|why| {
            let tail: Vec<String> = last.into_iter().collect();
            format!("{why}; its console ended with:\n{}", tail.join("\n"))
        }),
        seconds: started.elapsed().as_secs_f64(),
    })
}
