//! Builds the eBPF object (the `inotify-trace-ebpf` crate) for the BPF target
//! with aya-build; `src/tracer.rs` embeds it from OUT_DIR.
use std::{env, path::PathBuf};

use anyhow::{bail, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    // aya-build defaults to nightly; build both halves with the toolchain that
    // runs this build, so one pinned stable toolchain is all a machine needs.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_owned());
    let skip = env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true");
    if !skip && which("bpf-linker").is_none() {
        bail!("bpf-linker is not installed: run `cargo xtask setup` (it installs one matching this toolchain's LLVM)");
    }
    // Stable rustc builds `core` for the BPF target (`-Z build-std=core`) only
    // with RUSTC_BOOTSTRAP; set here, it reaches that inner cargo alone.
    // SAFETY: a build script is single-threaded at this point.
    env::set_var("RUSTC_BOOTSTRAP", "1");

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../inotify-trace-ebpf");
    let ebpf_dir = ebpf_dir
        .canonicalize()
        .with_context(|| format!("{}", ebpf_dir.display()))?;
    let root_dir = ebpf_dir
        .to_str()
        .context("the eBPF crate's path is not UTF-8")?;
    aya_build::build_ebpf(
        [Package {
            name: "inotify-trace-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}

fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
