//! Lints. The eBPF crate cannot be checked together with the userspace crates
//! (feature unification would give it std), so it is checked on its own for
//! the BPF target, as the real build compiles it.
use std::process::Command;

use anyhow::Result;

use crate::cmd;

pub fn all() -> Result<()> {
    cmd::step("checking formatting (cargo fmt --check)");
    cmd::cargo(&["fmt", "--all", "--check"])?;
    cmd::step("clippy on userspace crates with -D warnings");
    cmd::cargo(
        &[
            &["clippy", "--all-targets"][..],
            &cmd::TESTED_PACKAGES,
            &["--", "-D", "warnings"],
        ]
        .concat(),
    )?;
    cmd::step("clippy on the eBPF crate (bpfel-unknown-none) with -D warnings");
    let arch = std::env::consts::ARCH;
    cmd::run(
        Command::new(cmd::cargo_program())
            .current_dir(cmd::workspace_root())
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", cmd::target_dir()?.join("ebpf-clippy"))
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                format!("--cfg=bpf_target_arch=\"{arch}\""),
            )
            .args([
                "clippy",
                "--package",
                "inotify-trace-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]),
    )
}
