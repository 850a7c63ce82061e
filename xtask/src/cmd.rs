//! Running commands and reporting each step.
use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{bail, Context as _, Result};

/// Announces a step on stderr so a newcomer sees what is being done.
pub fn step(what: &str) {
    eprintln!("xtask: {what}");
}

/// Runs a command, failing when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// Runs a command and returns its stdout, failing when it fails.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("could not start {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program` as a file in one of PATH's directories, the first.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The host crates `cargo xtask test` tests and lints: the default members
/// and the end-to-end tests, which are not a default member (the eBPF crate
/// is linted on its own).
pub const TESTED_PACKAGES: [&str; 8] = [
    "--package",
    "inotify-trace",
    "--package",
    "inotify-trace-common",
    "--package",
    "xtask",
    "--package",
    "tests",
];

pub fn cargo(args: &[&str]) -> Result<()> {
    cargo_with_env(args, &[])
}

pub fn cargo_with_env(args: &[&str], env: &[(&str, &OsStr)]) -> Result<()> {
    let mut command = Command::new(cargo_program());
    command.args(args).current_dir(workspace_root());
    for (key, value) in env {
        command.env(key, value);
    }
    run(&mut command)
}

/// The cargo that started xtask, so every step uses the same toolchain.
pub fn cargo_program() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds the tracer and the tests' programs in release mode; returns the
/// directory they are in.
pub fn build_release_bins() -> Result<PathBuf> {
    step("building release binaries (inotify-trace, inotify-load, inotify-workload)");
    cargo(&[
        "build",
        "--release",
        "--package",
        "inotify-trace",
        "--package",
        "tests",
        "--bins",
    ])?;
    Ok(target_dir()?.join("release"))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

pub fn target_dir() -> Result<PathBuf> {
    Ok(match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    })
}

/// Runs the binary with the terminal handed over, returning its exit status.
pub fn exec(binary: &Path, args: &[String]) -> Result<ExitCode> {
    let status = Command::new(binary)
        .args(args)
        .status()
        .with_context(|| format!("could not start {}", binary.display()))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// A size line of /proc/PID/status (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}
