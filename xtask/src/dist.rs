//! `cargo xtask dist`: the one file a node needs: a static x86_64 binary
//! (musl libc linked in, the eBPF object embedded), at `dist/inotify-trace`,
//! which the Containerfile copies into an image of its own.
use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::cmd;

const TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds the static binary; returns where it is.
pub fn build() -> Result<PathBuf> {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|t| t.trim() == TARGET) {
        cmd::step(&format!(
            "installing the {TARGET} target (rustup target add)"
        ));
        cmd::run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    // ring (rustls's cryptography) has C and assembly: cc needs a musl C
    // compiler for this target.
    crate::setup::apt_programs(&[("musl-gcc", "musl-tools")], "the static build")?;
    cmd::step(&format!(
        "building a static inotify-trace ({TARGET}, release)"
    ));
    cmd::cargo_with_env(
        &[
            "build",
            "--release",
            "--package",
            "inotify-trace",
            "--target",
            TARGET,
        ],
        &[("CC_x86_64_unknown_linux_musl", "musl-gcc".as_ref())],
    )?;
    let built = cmd::target_dir()?
        .join(TARGET)
        .join("release/inotify-trace");
    let dist = cmd::workspace_root().join("dist");
    std::fs::create_dir_all(&dist)?;
    let binary = dist.join("inotify-trace");
    std::fs::copy(&built, &binary)
        .with_context(|| format!("copying {} to {}", built.display(), binary.display()))?;
    if !is_static(&binary)? {
        bail!("{} is not a static executable", binary.display());
    }
    // The image must hold this binary: the Containerfile copies it.
    let containerfile = std::fs::read_to_string(cmd::workspace_root().join("Containerfile"))?;
    if !containerfile
        .lines()
        .any(|l| l.trim() == "COPY dist/inotify-trace /inotify-trace")
    {
        bail!("the Containerfile does not copy dist/inotify-trace, the binary dist builds");
    }
    cmd::step(&format!(
        "static binary: {} ({} bytes); image: podman build -f Containerfile -t inotify-trace .",
        binary.display(),
        std::fs::metadata(&binary)?.len()
    ));
    Ok(binary)
}

/// Whether the ELF file asks for no program interpreter (no PT_INTERP
/// program header): a static executable.
fn is_static(binary: &std::path::Path) -> Result<bool> {
    let elf = std::fs::read(binary)?;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    // A 64-bit little-endian ELF: e_phoff at 32, e_phentsize at 54, e_phnum at 56.
    if elf.get(..6) != Some(&b"\x7fELF\x02\x01"[..]) {
        bail!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        );
    }
    let (phoff, entsize, count) = (
        u64_at(32).context("cut short")? as usize,
        u16_at(54).context("cut short")? as usize,
        u16_at(56).context("cut short")? as usize,
    );
    const PT_INTERP: u32 = 3;
    for i in 0..count {
        if u32_at(phoff + i * entsize).context("cut short")? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}
