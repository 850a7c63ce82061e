//! Checks made before loading anything, so that a missing privilege or
//! kernel feature gives one line that says what to do, not a kernel errno.
use std::path::Path;

use caps::{CapSet, Capability};

pub const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("inotify-trace needs root: {missing} missing (run it with sudo, or grant CAP_BPF and CAP_PERFMON)")]
    Privilege { missing: String },
    #[error("tracefs is not mounted at {TRACEFS} and mounting it failed ({cause}): run `mount -t tracefs tracefs {TRACEFS}` as root")]
    Tracefs { cause: nix::Error },
    #[error("this kernel has no tracepoint {0} (syscall tracepoints need CONFIG_FTRACE_SYSCALLS)")]
    MissingTracepoint(String),
}

/// Loading BPF programs takes CAP_BPF (or CAP_SYS_ADMIN); attaching to
/// tracepoints takes CAP_PERFMON (or CAP_SYS_ADMIN).
pub fn check_privileges() -> Result<(), PreflightError> {
    let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    if has(Capability::CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<&str> = [
        (Capability::CAP_BPF, "CAP_BPF"),
        (Capability::CAP_PERFMON, "CAP_PERFMON"),
    ]
    .into_iter()
    .filter(|(cap, _)| !has(*cap))
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(PreflightError::Privilege {
        missing: missing.join(" and "),
    })
}

/// Mounts tracefs where it is missing (a minimal host or a container
/// without it); aya attaches syscall tracepoints through it.
pub fn ensure_tracefs() -> Result<bool, PreflightError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(false);
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|cause| PreflightError::Tracefs { cause })?;
    Ok(true)
}

pub fn tracepoint_exists(category: &str, name: &str) -> bool {
    Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(name)
        .is_dir()
}

pub fn check_tracepoints(category: &str, names: &[String]) -> Result<(), PreflightError> {
    match names.iter().find(|name| !tracepoint_exists(category, name)) {
        Some(missing) => Err(PreflightError::MissingTracepoint(format!(
            "{category}/{missing}"
        ))),
        None => Ok(()),
    }
}
