//! The kernel-side filters: a call that fails them costs no ring space.
use aya_ebpf::helpers::bpf_get_current_comm;
use inotify_trace_common::Comm;

use crate::maps::{config, COMMS, FOLLOW, PIDS};

/// Who made the current call, as far as the filters need to know.
pub struct Caller {
    pub pid: u32,
    pub comm: Comm,
}

impl Caller {
    /// Returns the caller if it passes the pid and comm filters (and is not
    /// the tracer itself).
    #[inline(always)]
    pub fn current_if_traced(pid_tgid: u64) -> Option<Caller> {
        let cfg = config();
        let pid = (pid_tgid >> 32) as u32;
        if pid == cfg.tracer_pid {
            return None;
        }
        if cfg.follow != 0 && FOLLOW.get_ptr(pid).is_none() {
            return None;
        }
        if cfg.filter_pids != 0 && PIDS.get_ptr(pid).is_none() {
            return None;
        }
        let comm = bpf_get_current_comm().ok()?;
        if cfg.filter_comms != 0 && COMMS.get_ptr(comm).is_none() {
            return None;
        }
        Some(Caller { pid, comm })
    }
}

/// The `--failed` filter, applied once the return value is known.
#[inline(always)]
pub fn result_traced(ret: i64) -> bool {
    config().failed_only == 0 || ret < 0
}
