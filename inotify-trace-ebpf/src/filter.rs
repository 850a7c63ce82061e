//! The kernel-side filters: a call that fails them costs no ring space.
//! The cheap ones (pid, result) run before anything is read; the comm
//! filter runs on the comm already written into the record (`record`).
use aya_ebpf::helpers::bpf_get_current_comm;

use crate::maps::{config, CGROUPS, COMMS, FOLLOW, PIDS};

/// Whether the calling process is traced, as far as its pid tells: never
/// the tracer itself, and only followed or listed processes when asked.
#[inline(always)]
pub fn pid_traced(pid_tgid: u64) -> bool {
    let pid = (pid_tgid >> 32) as u32;
    if pid == config!(tracer_pid) {
        return false;
    }
    if config!(follow) != 0 && FOLLOW.get_ptr(pid).is_none() {
        return false;
    }
    !(config!(filter_pids) != 0 && PIDS.get_ptr(pid).is_none())
}

/// The comm filter, on a comm already read (16 bytes, NUL-padded).
#[inline(always)]
pub fn comm_traced(comm: &[u8; 16]) -> bool {
    config!(filter_comms) == 0 || COMMS.get_ptr(comm).is_some()
}

/// Both, for the enter program of enter+exit mode, which builds no record.
#[inline(always)]
pub fn caller_traced(pid_tgid: u64) -> bool {
    if !pid_traced(pid_tgid) {
        return false;
    }
    if config!(filter_comms) == 0 {
        return true;
    }
    bpf_get_current_comm().is_ok_and(|comm| comm_traced(&comm))
}

/// The `--cgroup` filter, on the cgroup id already written into the record.
#[inline(always)]
pub fn cgroup_traced(cgroup_id: u64) -> bool {
    config!(filter_cgroups) == 0 || CGROUPS.get_ptr(cgroup_id).is_some()
}

/// The `--failed` filter, applied once the return value is known.
#[inline(always)]
pub fn result_traced(ret: i64) -> bool {
    config!(failed_only) == 0 || ret < 0
}
