//! `cargo xtask dist`: the one file a node needs, for each architecture
//! nodes run: a static binary (musl libc linked in, the eBPF object for that
//! architecture embedded) at `dist/ARCH/inotify-trace` (ARCH as container
//! platforms name it: amd64, arm64), which the Containerfile copies into an
//! image of its own by `TARGETARCH`; and what packagers install beside it,
//! made by the amd64 binary itself from its command line's definition:
//! `dist/completions/` (bash, zsh, fish) and `dist/man/` (a page per
//! subcommand).
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, packages};

/// An architecture the static binary is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The name container platforms (and Debian) give it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target of its static build.
    pub fn target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The ELF `e_machine` of its binaries.
    fn elf_machine(self) -> u16 {
        match self {
            Arch::Amd64 => 62,  // EM_X86_64
            Arch::Arm64 => 183, // EM_AARCH64
        }
    }

    /// The environment a cargo build for this target needs: ring (rustls's
    /// cryptography) has C and assembly, so cc needs a C compiler for the
    /// target, and an arm64 build needs a linker that can link arm64.
    /// Installs that compiler (from Debian) when it is missing.
    pub fn build_env(self) -> Result<Vec<(String, String)>> {
        add_rust_target(self.target())?;
        let target_env = self.target().replace('-', "_");
        Ok(match self {
            Arch::Amd64 => {
                packages::ensure(&packages::STATIC_AMD64)?;
                vec![(format!("CC_{target_env}"), "musl-gcc".to_owned())]
            }
            Arch::Arm64 => {
                packages::ensure(&packages::STATIC_ARM64)?;
                let gcc = "aarch64-linux-gnu-gcc".to_owned();
                vec![
                    (format!("CC_{target_env}"), gcc.clone()),
                    (
                        format!("CARGO_TARGET_{}_LINKER", target_env.to_uppercase()),
                        gcc,
                    ),
                ]
            }
        })
    }
}

fn add_rust_target(target: &str) -> Result<()> {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|t| t.trim() == target) {
        cmd::step(&format!(
            "installing the {target} target (rustup target add)"
        ));
        cmd::run(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

/// Builds the static binary for every architecture; returns where they are.
pub fn build_all() -> Result<Vec<PathBuf>> {
    check_containerfile()?;
    let binaries: Vec<PathBuf> = Arch::ALL.into_iter().map(build).collect::<Result<_>>()?;
    manuals(&binaries[0])?;
    Ok(binaries)
}

/// The completion scripts and man pages, from `binary` (one this machine
/// runs), written afresh into `dist/completions` and `dist/man`.
fn manuals(binary: &Path) -> Result<()> {
    let dist = cmd::workspace_root().join("dist");
    let (completions, man, doc) = (dist.join("completions"), dist.join("man"), dist.join("doc"));
    for dir in [&completions, &man, &doc] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    // Where each shell looks for them (bash-completion, zsh's fpath, fish).
    for (shell, file) in [
        ("bash", "inotify-trace"),
        ("zsh", "_inotify-trace"),
        ("fish", "inotify-trace.fish"),
    ] {
        let script = cmd::output(Command::new(binary).args(["completions", shell]))?;
        std::fs::write(completions.join(file), script)?;
    }
    cmd::run(Command::new(binary).arg("man-pages").arg(&man))?;
    // The documents the man pages' SEE ALSO names, beside them.
    let root = cmd::workspace_root();
    std::fs::copy(root.join("README.md"), doc.join("README.md"))?;
    for entry in std::fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            std::fs::copy(&path, doc.join(path.file_name().expect("a file")))?;
        }
    }
    cmd::step(&format!(
        "completions in {}, man pages in {}, documents in {}",
        completions.display(),
        man.display(),
        doc.display()
    ));
    Ok(())
}

/// Builds the static binary for `arch`; returns where it is
/// (`dist/ARCH/inotify-trace`).
pub fn build(arch: Arch) -> Result<PathBuf> {
    let target = arch.target();
    let env = arch.build_env()?;
    cmd::step(&format!(
        "building a static inotify-trace for {} ({target}, release)",
        arch.name()
    ));
    let env: Vec<(&str, &std::ffi::OsStr)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_ref())).collect();
    cmd::cargo_with_env(
        &[
            "build",
            "--release",
            "--package",
            "inotify-trace",
            "--target",
            target,
        ],
        &env,
    )?;
    let built = cmd::target_dir()?
        .join(target)
        .join("release/inotify-trace");
    let dist = cmd::workspace_root().join("dist").join(arch.name());
    std::fs::create_dir_all(&dist)?;
    let binary = dist.join("inotify-trace");
    std::fs::copy(&built, &binary)
        .with_context(|| format!("copying {} to {}", built.display(), binary.display()))?;
    check_static_elf(&binary, arch)?;
    cmd::step(&format!(
        "static binary: {} ({} bytes); image (both platforms): podman build --platform linux/amd64,linux/arm64 --manifest inotify-trace -f Containerfile .",
        binary.display(),
        std::fs::metadata(&binary)?.len()
    ));
    Ok(binary)
}

/// The image must hold the binary dist builds, for the platform it is built
/// for: the Containerfile copies `dist/${TARGETARCH}/inotify-trace`.
fn check_containerfile() -> Result<()> {
    let containerfile = std::fs::read_to_string(cmd::workspace_root().join("Containerfile"))?;
    if !containerfile
        .lines()
        .any(|l| l.trim() == "COPY dist/${TARGETARCH}/inotify-trace /inotify-trace")
    {
        bail!("the Containerfile does not copy dist/${{TARGETARCH}}/inotify-trace, the binaries dist builds");
    }
    Ok(())
}

/// Fails unless `binary` is a 64-bit little-endian ELF executable for
/// `arch` that asks for no program interpreter (no PT_INTERP program
/// header): a static executable that runs on that architecture.
pub fn check_static_elf(binary: &Path, arch: Arch) -> Result<()> {
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
    // A 64-bit little-endian ELF: e_machine at 18, e_phoff at 32,
    // e_phentsize at 54, e_phnum at 56.
    if elf.get(..6) != Some(&b"\x7fELF\x02\x01"[..]) {
        bail!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        );
    }
    if u16_at(18) != Some(arch.elf_machine()) {
        bail!("{} is not an {} executable", binary.display(), arch.name());
    }
    let (phoff, entsize, count) = (
        u64_at(32).context("cut short")? as usize,
        u16_at(54).context("cut short")? as usize,
        u16_at(56).context("cut short")? as usize,
    );
    const PT_INTERP: u32 = 3;
    for i in 0..count {
        if u32_at(phoff + i * entsize).context("cut short")? == PT_INTERP {
            bail!("{} is not a static executable", binary.display());
        }
    }
    Ok(())
}
