//! Project tasks that cargo alone cannot do: installing what the eBPF build
//! needs, running the tracer as root, the full test pass and the lints.
//!
//! `cargo xtask run [-- ARGS]` and `cargo xtask test` are the README's two
//! commands; both run `setup` first, which is idempotent and says what it does.
mod bench;
mod cmd;
mod dist;
mod fresh;
mod lint;
mod packages;
mod setup;
mod soak;
mod tally;
mod vm;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "inotify-trace project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and running need: rust-src, a bpf-linker whose
    /// LLVM matches rustc's, a tracefs mount.
    Setup,
    /// Set up, build in release mode and start live tracing (as root).
    Run {
        /// Arguments for inotify-trace (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, lint, and run every test, the end-to-end ones one at a time.
    Test {
        /// Install and build everything the run needs (packages, tools, the
        /// host and static binaries, the tests, the guests' kernels and
        /// initramfs), then stop before running anything: what `cargo xtask
        /// fresh` checks on a machine that has nothing.
        #[arg(long)]
        no_run: bool,
    },
    /// Clippy with -D warnings on userspace and, separately, on the eBPF crate;
    /// rustfmt in check mode.
    Lint,
    /// Measure overhead, loss, CPU, memory, report and usage speed (release build);
    /// prints a table and writes target/bench/results.json.
    Bench {
        /// A seconds-long run, to check the command works (CI runs it).
        #[arg(long)]
        smoke: bool,
        /// Only the node-scale rows (`usage` against inotify-info, the
        /// agent's CPU per snapshot), a few minutes.
        #[arg(long)]
        node: bool,
    },
    /// The agent over many trace windows with churning pids, paths and pods,
    /// its RSS sampled (minutes; not in CI).
    Soak {
        #[arg(long, default_value_t = 5)]
        minutes: u64,
    },
    /// Build the static binaries (musl, the eBPF object embedded) at
    /// dist/amd64/inotify-trace and dist/arm64/inotify-trace, which the
    /// Containerfile puts in an image by TARGETARCH.
    Dist,
    /// Boot Debian's kernels (5.10, 6.1, 6.12 amd64; 6.12 arm64) under QEMU
    /// and run the end-to-end checks inside each; kernels are cached under
    /// target/vm/.
    Vm {
        /// Only these kernels of the matrix (e.g. 6.1-amd64).
        #[arg(long = "kernel", value_name = "NAME")]
        kernels: Vec<String>,
        /// Instead of the checks, measure the attach modes' costs in one
        /// guest whose clocks count instructions (the first --kernel, else
        /// 6.1-amd64).
        #[arg(long)]
        bench: bool,
        /// Interleaved rounds of the benchmark.
        #[arg(long, default_value_t = 5, requires = "bench")]
        rounds: u32,
    },
    /// Prove the README's two commands on a machine that has nothing: a
    /// minimal Debian root (cached under target/fresh/) gets rustup as a new
    /// user installs it, then runs `cargo xtask run` and `cargo xtask test
    /// --no-run` on a clean clone of HEAD, naming the step that fails.
    Fresh {
        /// The Rust toolchain the root's rustup installs (default: the
        /// version of this machine's rustc; `stable` for today's release).
        #[arg(long)]
        toolchain: Option<String>,
    },
    /// Fuzz the recording reader with libFuzzer (installs cargo-fuzz if missing).
    Fuzz {
        /// How long to fuzz.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    match task {
        Task::Setup => setup::all().map(|()| ExitCode::SUCCESS),
        Task::Run { args } => {
            setup::all()?;
            cmd::cargo(&["build", "--release", "--package", "inotify-trace"])?;
            let binary = cmd::target_dir()?.join("release/inotify-trace");
            cmd::exec(&binary, &args)
        }
        Task::Test { no_run } => {
            let (binary, guests) = prepare_tests()?;
            if no_run {
                cmd::step(
                    "everything the tests need is installed and built (--no-run: nothing run)",
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut totals = test_all()?;
            // The static binary a node runs traces exactly.
            cmd::step("the static binary traces a workload exactly");
            let static_totals = tally::run_counting(
                std::process::Command::new(cmd::cargo_program())
                    .current_dir(cmd::workspace_root())
                    .args(["test", "--package", "tests", "--test", "live"])
                    .args([
                        "every_kind_of_call_is_reported_exactly",
                        "--",
                        "--test-threads=1",
                    ])
                    .env("INOTIFY_TRACE_BIN", &binary),
            )?;
            if static_totals.failed > 0 || static_totals.passed == 0 {
                anyhow::bail!("the static binary did not pass");
            }
            totals.passed += static_totals.passed;
            // Every kernel and architecture of the matrix, in QEMU.
            totals.passed += vm::boot_all(guests)? as u64;
            // The benchmark's figures are read from a full run; this short
            // one only keeps the command from rotting.
            cmd::step("benchmark smoke run (cargo xtask bench --smoke)");
            bench::run(true)?;
            // The test totals close the run, for whoever reads its last line.
            println!("tests: {} passed, {} failed", totals.passed, totals.failed);
            Ok(ExitCode::SUCCESS)
        }
        Task::Lint => lint::all().map(|()| ExitCode::SUCCESS),
        Task::Soak { minutes } => {
            setup::all()?;
            soak::run(minutes).map(|()| ExitCode::SUCCESS)
        }
        Task::Dist => {
            setup::all()?;
            dist::build_all().map(|_| ExitCode::SUCCESS)
        }
        Task::Bench { smoke, node } => {
            setup::all()?;
            match node {
                true => bench::run_node(smoke).map(|()| ExitCode::SUCCESS),
                false => bench::run(smoke).map(|()| ExitCode::SUCCESS),
            }
        }
        Task::Vm {
            kernels,
            bench,
            rounds,
        } => {
            setup::all()?;
            match bench {
                true => {
                    vm::bench(&kernels, rounds, 50_000, &vm::NODE_FULL).map(|_| ExitCode::SUCCESS)
                }
                false => vm::run(&kernels).map(|_| ExitCode::SUCCESS),
            }
        }
        Task::Fresh { toolchain } => fresh::run(toolchain).map(|()| ExitCode::SUCCESS),
        Task::Fuzz { seconds } => {
            setup::all()?;
            fuzz(seconds).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// libFuzzer on the recording reader. cargo-fuzz passes `-Z` flags to
/// rustc, which the stable toolchain takes with RUSTC_BOOTSTRAP=1, as the
/// eBPF build does.
fn fuzz(seconds: u64) -> Result<()> {
    let installed = std::process::Command::new(cmd::cargo_program())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        cmd::step("installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        cmd::cargo(&["install", "cargo-fuzz", "--locked"])?;
    }
    cmd::step(&format!("fuzzing the recording reader for {seconds} s"));
    cmd::run(
        std::process::Command::new(cmd::cargo_program())
            .current_dir(cmd::workspace_root().join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "recording", "--"])
            .arg(format!("-max_total_time={seconds}")),
    )
}

/// Everything `cargo xtask test` installs and builds before it runs a test,
/// in the order the run needs it; returns the static amd64 binary and the
/// guests of the VM matrix.
fn prepare_tests() -> Result<(std::path::PathBuf, vm::Prepared)> {
    setup::all()?;
    setup::test_programs()?;
    packages::ensure(&packages::BENCH)?;
    vm::fetch_test_programs()?;
    lint::all()?;
    // The static binaries first: the container test builds its image from
    // dist/.
    let binary = dist::build_all()?.swap_remove(0);
    cmd::step("building the tracer and the tests");
    cmd::cargo(&["build", "--package", "inotify-trace"])?;
    cmd::cargo(&[&["test", "--no-run", "--quiet"][..], &cmd::TESTED_PACKAGES].concat())?;
    let guests = vm::prepare(&[])?;
    Ok((binary, guests))
}

/// Unit tests and end-to-end tests. The end-to-end tests load eBPF programs
/// and share the kernel's state, so every test runs one at a time.
fn test_all() -> Result<tally::Totals> {
    let binary = cmd::target_dir()?.join("debug/inotify-trace");
    cmd::step("running all tests, one at a time");
    let totals = tally::run_counting(
        std::process::Command::new(cmd::cargo_program())
            .current_dir(cmd::workspace_root())
            .arg("test")
            .args(cmd::TESTED_PACKAGES)
            .args(["--", "--test-threads=1"])
            .env("INOTIFY_TRACE_BIN", &binary),
    )?;
    // One closing line for the whole run: cargo's last `test result` line
    // belongs to whichever target ran last (often one with no tests).
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    if totals.failed > 0 || totals.passed == 0 {
        anyhow::bail!("the test run did not pass");
    }
    Ok(totals)
}
