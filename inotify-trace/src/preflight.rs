//! Checks made before loading anything, so that a missing privilege or
//! kernel feature gives one line that says what to do, not a kernel errno.
use std::path::Path;

use caps::{CapSet, Capability};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// What tracing takes without root (README, Privileges): loading BPF
/// programs, attaching them to tracepoints, and reading tracefs, which is
/// mode 0700.
const TRACING: &str = "CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH";

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("inotify-trace needs root: {missing} missing (run it with sudo, or grant {TRACING}: see the README's Privileges)")]
    Privilege { missing: String },
    #[error("{TRACEFS} is not readable: CAP_DAC_READ_SEARCH missing (tracefs is mode 0700; run it with sudo, or grant {TRACING})")]
    TracefsUnreadable,
    #[error("tracefs is not mounted at {TRACEFS} and mounting it failed ({cause}): run `mount -t tracefs tracefs {TRACEFS}` as root")]
    Tracefs { cause: nix::Error },
    #[error("this kernel has no tracepoint {0} (syscall tracepoints need CONFIG_FTRACE_SYSCALLS)")]
    MissingTracepoint(String),
    #[error("the container's seccomp profile forbids bpf(2): add CAP_SYS_ADMIN or run with seccompProfile Unconfined")]
    SeccompForbidsBpf,
    #[error("a seccomp filter forbids bpf(2) (Seccomp: 2 in /proc/self/status): run with seccompProfile Unconfined")]
    SeccompFilterForbidsBpf,
    #[error("this kernel ({release}) has no BPF ring buffer, which inotify-trace needs: it came in Linux 5.8")]
    NoRingBuffer { release: String },
}

/// Whether bpf(2) works here and the kernel has the BPF ring buffer: one
/// probe map made and closed. A container runtime's default seccomp profile
/// lets bpf(2) through only with CAP_SYS_ADMIN and refuses it with EPERM
/// otherwise, which aya would report as a failed map creation.
pub fn check_bpf() -> Result<(), PreflightError> {
    match aya::sys::is_map_supported(aya::maps::MapType::RingBuf) {
        Ok(true) => Ok(()),
        Ok(false) => Err(PreflightError::NoRingBuffer {
            release: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown release".to_owned()),
        }),
        Err(e) if e.io_error.raw_os_error() == Some(libc::EPERM) && seccomp_filtered() => {
            Err(match has(Capability::CAP_SYS_ADMIN) {
                false => PreflightError::SeccompForbidsBpf,
                true => PreflightError::SeccompFilterForbidsBpf,
            })
        }
        // Anything else is for the load itself to report, with its context.
        Err(_) => Ok(()),
    }
}

/// Whether a seccomp filter applies to this process (`Seccomp: 2`).
fn seccomp_filtered() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    })
}

/// Loading BPF programs takes CAP_BPF, attaching to tracepoints
/// CAP_PERFMON (CAP_SYS_ADMIN stands for both), and reading tracefs
/// CAP_DAC_READ_SEARCH unless its mode lets this user in.
pub fn check_privileges() -> Result<(), PreflightError> {
    let mut missing = Vec::new();
    if !has(Capability::CAP_SYS_ADMIN) {
        missing = missing_of(&[Capability::CAP_BPF, Capability::CAP_PERFMON]);
    }
    if !tracefs_searchable() {
        missing.push(Capability::CAP_DAC_READ_SEARCH.to_string());
    }
    match &missing[..] {
        [] => Ok(()),
        [one] => Err(PreflightError::Privilege {
            missing: one.clone(),
        }),
        [first @ .., last] => Err(PreflightError::Privilege {
            missing: format!("{} and {last}", first.join(", ")),
        }),
    }
}

/// The capabilities of `wanted` this process does not have in effect.
pub fn missing_of(wanted: &[Capability]) -> Vec<String> {
    wanted
        .iter()
        .filter(|cap| !has(**cap))
        .map(Capability::to_string)
        .collect()
}

fn has(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

/// Whether this process may look inside tracefs, with the capabilities it
/// has in effect (AT_EACCESS). Not mounted yet counts as yes: mounting is
/// tried next, and says why it failed.
fn tracefs_searchable() -> bool {
    use nix::unistd::{faccessat, AccessFlags};
    match faccessat(
        nix::fcntl::AT_FDCWD,
        TRACEFS,
        AccessFlags::R_OK | AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    ) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::EACCES,
    }
}

/// Mounts tracefs where it is missing (a minimal host or a container
/// without it); aya attaches syscall tracepoints through it.
pub fn ensure_tracefs() -> Result<bool, PreflightError> {
    match std::fs::metadata(Path::new(TRACEFS).join("events")) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(PreflightError::TracefsUnreadable)
        }
        _ => {}
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

/// Where `child_pid` is in a `sched_process_fork` record on this kernel.
pub(crate) fn fork_child_pid_offset() -> anyhow::Result<u32> {
    use anyhow::Context as _;
    let path = format!("{}/events/sched/sched_process_fork/format", TRACEFS);
    let format = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (following a command needs it)"))?;
    field_offset(&format, "child_pid").with_context(|| format!("no child_pid field in {path}"))
}

/// The `offset:` of a field in a tracepoint format file.
fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';');
        let declaration = parts.next()?.strip_prefix("field:")?;
        if declaration.split_whitespace().last()? != field {
            return None;
        }
        parts.find_map(|p| p.trim().strip_prefix("offset:")?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::field_offset;

    #[test]
    fn finds_child_pid_in_old_and_new_fork_formats() {
        // Kernels before 6.10 embed the comms; later ones use __data_loc.
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;";
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;";
        assert_eq!(field_offset(old, "child_pid"), Some(44));
        assert_eq!(field_offset(new, "child_pid"), Some(20));
        assert_eq!(field_offset(new, "parent_pid"), Some(12));
        assert_eq!(field_offset(new, "pid"), None);
    }
}
