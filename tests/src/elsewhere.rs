//! Real programs from other Debian releases than the host's, which
//! `cargo xtask test --no-run` fetches with the VM matrix's own apt
//! configuration and unpacks under `target/vm/apt/debs/` (or says, in
//! `target/vm/apt/debs/NAME.missing`, why it could not).
use std::path::PathBuf;

use crate::unavailable;

/// Debian bullseye's cAdvisor 0.38.7 (the package is in bullseye only): the
/// cgroup watcher kubelet embeds. None (after `unavailable`) when it was not
/// fetched.
pub fn cadvisor(test: &str) -> Option<PathBuf> {
    fetched(test, "cadvisor", "usr/bin/cadvisor")
}

fn fetched(test: &str, package: &str, file: &str) -> Option<PathBuf> {
    let debs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/vm/apt/debs");
    let path = debs.join(format!("{package}_{}", host_arch())).join(file);
    if path.exists() {
        return Some(path);
    }
    let why = std::fs::read_to_string(debs.join(format!("{package}.missing")))
        .map(|why| format!("{package} could not be fetched: {}", why.trim()))
        .unwrap_or_else(|_| {
            format!("{package} is not fetched yet (cargo xtask test --no-run fetches it)")
        });
    unavailable(test, &why);
    None
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}
