//! `cargo xtask vm`: the tool proven on the kernels and architectures nodes
//! run. Each kernel of the matrix (Debian's cloud kernels, fetched once and
//! cached under `target/vm/`) boots under QEMU from an initramfs holding the
//! static tracer and a subset of the end-to-end tests built static for its
//! architecture; the tests run inside with `CI=true` and their results come
//! back over the serial console.
mod bench;
mod checks;
mod initramfs;
mod kernels;
mod node_bench;
mod qemu;

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use serde_json::json;

use crate::{cmd, dist, dist::Arch};
use kernels::{Kernel, MATRIX};

/// What one kernel's guest reported.
struct Outcome {
    kernel: Kernel,
    /// `uname -r` in the guest.
    release: String,
    /// The attach mode `auto` chose there, and why (`-v`'s words).
    mode: String,
    /// The one `--attach tracepoint` chose (the guest's second pass).
    tracepoint_mode: String,
    /// Each check: its name, `ok`/`fail`/`skip`, and the rest of its line.
    checks: Vec<(String, String, String)>,
    problem: Option<String>,
    seconds: f64,
}

impl Outcome {
    fn count(&self, status: &str) -> usize {
        self.checks.iter().filter(|c| c.1 == status).count()
    }

    fn passed(&self) -> bool {
        self.problem.is_none() && self.count("fail") == 0 && self.count("ok") > 0
    }

    /// `fexit` from `attach mode fexit (...)`.
    fn mode_short(&self) -> &str {
        short(&self.mode)
    }
}

/// `exit tracepoint alone` from `attach mode exit tracepoint alone (...)`.
fn short(mode: &str) -> &str {
    let mode = mode.strip_prefix("attach mode ").unwrap_or(mode);
    mode.split(" (").next().unwrap_or(mode)
}

/// What the guests boot, ready on disk: each kernel's image and each
/// architecture's initramfs.
pub struct Prepared {
    vm_dir: PathBuf,
    guests: Vec<(Kernel, PathBuf)>,
    initramfs: Vec<(Arch, PathBuf)>,
}

/// Installs QEMU, downloads the kernels (cached) and builds each
/// architecture's initramfs: everything the matrix needs short of booting.
pub fn prepare(names: &[String]) -> Result<Prepared> {
    let kernels = select(names)?;
    let vm_dir = cmd::target_dir()?.join("vm");
    std::fs::create_dir_all(&vm_dir)?;
    let apt = kernels::Apt::new(&vm_dir)?;
    let mut archs: Vec<Arch> = kernels.iter().map(|k| k.arch).collect();
    archs.dedup();
    let mut initramfs = Vec::new();
    for arch in archs {
        qemu::ensure_installed(arch)?;
        initramfs.push((arch, guest_initramfs(arch, &apt, &vm_dir)?));
    }
    let guests = kernels
        .into_iter()
        .map(|kernel| {
            Ok((
                kernel,
                kernels::vmlinuz(&apt.unpacked(kernel.package, kernel.arch)?)?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(Prepared {
        vm_dir,
        guests,
        initramfs,
    })
}

/// Runs the matrix (or the kernels named); fails unless every guest passed.
/// Returns how many checks passed in all.
pub fn run(names: &[String]) -> Result<usize> {
    boot_all(prepare(names)?)
}

/// Boots each prepared guest and reads its checks; fails unless every guest
/// passed. Returns how many checks passed in all.
pub fn boot_all(prepared: Prepared) -> Result<usize> {
    let Prepared {
        vm_dir,
        guests,
        initramfs,
    } = prepared;
    let mut outcomes = Vec::new();
    for (kernel, image) in guests {
        let archive = &initramfs.iter().find(|(a, _)| *a == kernel.arch).unwrap().1;
        cmd::step(&format!(
            "booting {} ({}) under QEMU and running {} checks in it",
            kernel.name,
            kernel.package,
            checks::count()
        ));
        let log = vm_dir.join(format!("{}.console.log", kernel.name));
        // The tests' fexit checks fail rather than accept a refusal where
        // the kernel is known to allow trampolines.
        let init_env = match kernel.fexit {
            true => "inotify_trace_fexit=required",
            false => "",
        };
        let guest = qemu::Guest {
            arch: kernel.arch,
            kernel: &image,
            initramfs: archive,
            init_env: init_env.to_owned(),
            icount: false,
        };
        let console = qemu::boot(&guest, &log)?;
        let outcome = outcome(kernel, console);
        cmd::step(&format!(
            "{}: {} ({}), {} passed, {} failed, {} skipped in {:.0} s; console in {}",
            kernel.name,
            if outcome.passed() { "PASSED" } else { "FAILED" },
            outcome.mode_short(),
            outcome.count("ok"),
            outcome.count("fail"),
            outcome.count("skip"),
            outcome.seconds,
            log.display()
        ));
        if let Some(problem) = &outcome.problem {
            eprintln!("{problem}");
        }
        outcomes.push(outcome);
    }
    let table = table(&outcomes);
    println!("{table}");
    std::fs::write(vm_dir.join("table.md"), &table)?;
    std::fs::write(
        vm_dir.join("results.json"),
        serde_json::to_string_pretty(&results_json(&outcomes))?,
    )?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| o.kernel.name)
        .collect();
    if !failed.is_empty() {
        bail!("the VM matrix failed on {}", failed.join(", "));
    }
    Ok(outcomes.iter().map(|o| o.count("ok")).sum())
}

pub use bench::GuestBench;

/// The guest's node-scale rows: the sizes (watches), how long the agent is
/// measured at each, how long the soak runs (virtual seconds).
pub struct NodeSizes {
    pub watches: &'static [u64],
    pub seconds: u32,
    pub soak_seconds: u32,
}

/// A full run's: the target compares 180,000 watches with 1,000.
pub const NODE_FULL: NodeSizes = NodeSizes {
    watches: &[1_000, 180_000],
    seconds: 10,
    soak_seconds: 60,
};

/// CI's smoke run: seconds of guest time.
pub const NODE_SMOKE: NodeSizes = NodeSizes {
    watches: &[1_000, 2_000],
    seconds: 3,
    soak_seconds: 5,
};

/// The attach modes' costs in one guest under `-icount` (the first kernel
/// named, else 6.1 amd64), `rounds` interleaved rounds; prints the table
/// and writes `target/vm/bench.json`.
pub fn bench(names: &[String], rounds: u32, calls: u32, node: &NodeSizes) -> Result<GuestBench> {
    let kernel = match select(names)?.first() {
        Some(kernel) if !names.is_empty() => *kernel,
        _ => MATRIX[1],
    };
    let vm_dir = cmd::target_dir()?.join("vm");
    std::fs::create_dir_all(&vm_dir)?;
    let apt = kernels::Apt::new(&vm_dir)?;
    qemu::ensure_installed(kernel.arch)?;
    let archive = guest_initramfs(kernel.arch, &apt, &vm_dir)?;
    let image = kernels::vmlinuz(&apt.unpacked(kernel.package, kernel.arch)?)?;
    cmd::step(&format!(
        "benchmarking the attach modes in {} under QEMU -icount ({rounds} rounds of {calls} add_watch calls)",
        kernel.name
    ));
    let guest = qemu::Guest {
        arch: kernel.arch,
        kernel: &image,
        initramfs: &archive,
        init_env: format!(
            "{} {}",
            bench::init_env(rounds, calls),
            node_bench::init_env(node.watches, node.seconds, node.soak_seconds)
        ),
        icount: true,
    };
    let log = vm_dir.join(format!("{}.bench.console.log", kernel.name));
    let console = qemu::boot(&guest, &log)?;
    let results = bench::results(&kernel, &console)?;
    println!("{}", results.table());
    std::fs::write(
        vm_dir.join("bench.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    Ok(results)
}

/// The Debian packages `fetch_test_programs` fetches.
const FETCHED_FOR_TESTS: &[&str] = &["cadvisor"];

/// Real programs the tests run that the host's release does not have, each
/// fetched once into `target/vm/apt/debs/` with the matrix's apt
/// configuration: bullseye's cAdvisor. A program that cannot be fetched is
/// not fatal here: the reason is left in `debs/NAME.missing`, and the test
/// that needs it fails with it under CI.
pub fn fetch_test_programs() -> Result<()> {
    let vm_dir = cmd::target_dir()?.join("vm");
    std::fs::create_dir_all(&vm_dir)?;
    let apt = kernels::Apt::new(&vm_dir)?;
    let arch = match std::env::consts::ARCH {
        "aarch64" => Arch::Arm64,
        _ => Arch::Amd64,
    };
    let debs = vm_dir.join("apt/debs");
    for package in FETCHED_FOR_TESTS {
        let missing = debs.join(format!("{package}.missing"));
        match apt.unpacked(package, arch) {
            Ok(_) => {
                let _ = std::fs::remove_file(&missing);
            }
            Err(e) => {
                eprintln!("xtask: warning: {package} could not be fetched: {e:#}");
                std::fs::write(&missing, format!("{e:#}\n"))?;
            }
        }
    }
    Ok(())
}

/// The benchmark's peer, inotify-info (Debian trixie's package, fetched as
/// the kernels are), as the command line that runs it here: through
/// trixie's own loader and libraries, since it wants a newer C library than
/// this machine's release has.
pub fn inotify_info() -> Result<Vec<std::ffi::OsString>> {
    let vm_dir = cmd::target_dir()?.join("vm");
    std::fs::create_dir_all(&vm_dir)?;
    let apt = kernels::Apt::new(&vm_dir)?;
    let (arch, triplet, loader) = match std::env::consts::ARCH {
        "aarch64" => (Arch::Arm64, "aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
        _ => (Arch::Amd64, "x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    };
    let program = apt.unpacked("inotify-info", arch)?;
    let mut libraries = Vec::new();
    for package in ["libc6", "libstdc++6", "libgcc-s1"] {
        let dir = apt.unpacked(package, arch)?.join("usr/lib").join(triplet);
        libraries.push(dir);
    }
    let library_path = std::env::join_paths(&libraries)?;
    Ok(vec![
        libraries[0].join(loader).into_os_string(),
        "--library-path".into(),
        library_path,
        program.join("usr/bin/inotify-info").into_os_string(),
    ])
}

fn select(names: &[String]) -> Result<Vec<Kernel>> {
    if names.is_empty() {
        return Ok(MATRIX.to_vec());
    }
    names
        .iter()
        .map(|name| {
            MATRIX
                .iter()
                .copied()
                .find(|k| k.name == name)
                .with_context(|| {
                    let known: Vec<&str> = MATRIX.iter().map(|k| k.name).collect();
                    format!(
                        "no kernel {name} in the matrix; it has {}",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// Builds what a guest of `arch` runs and archives it; returns the archive.
fn guest_initramfs(arch: Arch, apt: &kernels::Apt, vm_dir: &std::path::Path) -> Result<PathBuf> {
    let tracer = dist::build(arch)?;
    let (workload, tests) = static_tests(arch)?;
    let load = workload.with_file_name("inotify-load");
    dist::check_static_elf(&load, arch)?;
    let busybox = kernels::busybox(&apt.unpacked("busybox-static", arch)?)?;
    let dir = vm_dir.join(arch.name());
    std::fs::create_dir_all(&dir)?;
    let archive = dir.join("initramfs.cpio");
    initramfs::build(
        &initramfs::Contents {
            busybox: &busybox,
            tracer: &tracer,
            workload: &workload,
            load: &load,
            tests: &tests,
        },
        &dir.join("root"),
        &archive,
    )?;
    Ok(archive)
}

/// The end-to-end tests the checks come from and their workload, built
/// static (release, so the dependencies are the static tracer's) for `arch`.
fn static_tests(arch: Arch) -> Result<(PathBuf, Vec<(String, PathBuf)>)> {
    cmd::step(&format!(
        "building the end-to-end tests for {} guests",
        arch.name()
    ));
    let env = arch.build_env()?;
    let out = cmd::output(
        std::process::Command::new(cmd::cargo_program())
            .current_dir(cmd::workspace_root())
            .args(["test", "--release", "--package", "tests", "--no-run"])
            .args(["--target", arch.target(), "--message-format=json"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(std::process::Stdio::inherit()),
    )?;
    let wanted = checks::suites();
    let mut tests = Vec::new();
    for line in out.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = &message["target"];
        let is_test = target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(executable)) = (
            is_test,
            target["name"].as_str(),
            message["executable"].as_str(),
        ) {
            if wanted.contains(&name) {
                tests.push((name.to_owned(), PathBuf::from(executable)));
            }
        }
    }
    if tests.len() != wanted.len() {
        bail!(
            "cargo built {} of the {} test files the guests run",
            tests.len(),
            wanted.len()
        );
    }
    let workload = cmd::target_dir()?
        .join(arch.target())
        .join("release/inotify-workload");
    dist::check_static_elf(&workload, arch)?;
    for (_, executable) in &tests {
        dist::check_static_elf(executable, arch)?;
    }
    Ok((workload, tests))
}

/// Reads a guest's `@@vm` lines.
fn outcome(kernel: Kernel, console: qemu::Console) -> Outcome {
    let mut outcome = Outcome {
        kernel,
        release: String::new(),
        mode: String::new(),
        tracepoint_mode: String::new(),
        checks: Vec::new(),
        problem: console.problem,
        seconds: console.seconds,
    };
    for line in &console.lines {
        let (what, rest) = line.split_once(' ').unwrap_or((line, ""));
        match what {
            "kernel" => outcome.release = rest.to_owned(),
            "mode" => outcome.mode = rest.to_owned(),
            "tracepoint-mode" => outcome.tracepoint_mode = rest.to_owned(),
            "check" => {
                let mut words = rest.splitn(3, ' ');
                let name = words.next().unwrap_or("").to_owned();
                let status = words.next().unwrap_or("").to_owned();
                outcome
                    .checks
                    .push((name, status, words.next().unwrap_or("").to_owned()));
            }
            _ => {}
        }
    }
    // A guest that ran no check at all proves nothing.
    if outcome.problem.is_none() && outcome.checks.is_empty() {
        outcome.problem = Some("the guest reported no checks".to_owned());
    }
    if outcome.problem.is_none() && kernel.fexit && outcome.mode_short() != "fexit" {
        outcome.problem = Some(format!(
            "auto should choose fexit on this kernel, but chose: {}",
            outcome.mode
        ));
    }
    outcome
}

/// The README's table of kernels tested, from this run.
fn table(outcomes: &[Outcome]) -> String {
    let date = cmd::output(
        std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d"),
    )
    .map(|d| d.trim().to_owned())
    .unwrap_or_default();
    let mut table = String::from(
        "| Kernel (Debian package) | Arch | Stands for | `auto` chose | `tracepoint` chose | Checks | Date |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let result = match o.passed() {
            true => format!("{} passed", o.count("ok")),
            false => format!(
                "FAILED ({} passed, {} failed)",
                o.count("ok"),
                o.count("fail")
            ),
        };
        let skipped = match o.count("skip") {
            0 => String::new(),
            n => format!(", {n} skipped (`--attach exit` refused)"),
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {result}{skipped} | {date} |\n",
            o.kernel.package.trim_start_matches("linux-image-"),
            o.kernel.arch.name(),
            o.kernel.stands_for,
            o.mode_short(),
            short(&o.tracepoint_mode),
        ));
    }
    table
}

fn results_json(outcomes: &[Outcome]) -> serde_json::Value {
    outcomes
        .iter()
        .map(|o| {
            json!({
                "kernel": o.kernel.name,
                "package": o.kernel.package,
                "release": o.release,
                "attach_mode": o.mode,
                "tracepoint_mode": o.tracepoint_mode,
                "passed": o.passed(),
                "seconds": o.seconds,
                "problem": o.problem,
                "checks": o.checks.iter().map(|(name, status, rest)| json!({
                    "name": name, "status": status, "detail": rest,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(lines: &[&str], problem: Option<&str>) -> qemu::Console {
        qemu::Console {
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
            problem: problem.map(str::to_owned),
            seconds: 1.0,
        }
    }

    #[test]
    fn a_guest_passes_only_with_checks_passed_and_none_failed() {
        let lines = [
            "kernel 6.1.0-50-cloud-amd64 x86_64",
            "mode attach mode fexit (the kernel allows BPF trampolines on the syscall functions), caller ...",
            "check live::a ok 2",
            "check live::b skip auto chose another mode",
            "end",
        ];
        let passed = outcome(MATRIX[1], console(&lines, None));
        assert!(passed.passed());
        assert_eq!(passed.mode_short(), "fexit");
        assert_eq!((passed.count("ok"), passed.count("skip")), (1, 1));

        let mut failing = lines.to_vec();
        failing.insert(3, "check live::c fail 3");
        assert!(!outcome(MATRIX[1], console(&failing, None)).passed());
    }

    #[test]
    fn a_guest_that_stopped_early_or_ran_nothing_fails() {
        let hung = outcome(
            MATRIX[0],
            console(
                &["check live::a ok 2"],
                Some("the guest said nothing for 660 s"),
            ),
        );
        assert!(!hung.passed());
        let silent = outcome(MATRIX[0], console(&["end"], None));
        assert!(!silent.passed());
        assert_eq!(
            silent.problem.as_deref(),
            Some("the guest reported no checks")
        );
    }

    #[test]
    fn a_kernel_that_allows_fexit_fails_when_auto_falls_back() {
        let lines = [
            "mode attach mode exit tracepoint alone (the kernel has bpf_task_pt_regs), caller ...",
            "check live::a ok 2",
            "end",
        ];
        let fell_back = outcome(MATRIX[1], console(&lines, None));
        assert!(MATRIX[1].fexit);
        assert!(!fell_back.passed());
        assert!(fell_back
            .problem
            .unwrap()
            .starts_with("auto should choose fexit"));
    }
}
