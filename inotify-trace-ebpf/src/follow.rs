//! Following a command and everything it forks (`inotify-trace -- COMMAND`),
//! in the kernel, so that a child that lives a millisecond is not missed.
//!
//! The tracer puts its own pid in `FOLLOW` before it starts the command; from
//! then on every task forked by a followed process is added at fork, and
//! removed when it exits.
use aya_ebpf::{helpers::bpf_get_current_pid_tgid, programs::TracePointContext};

use crate::maps::{config, FOLLOW};

/// `sched/sched_process_fork`, run in the parent's context.
#[inline(always)]
pub fn on_fork(ctx: &TracePointContext) {
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if FOLLOW.get_ptr(parent_tgid).is_none() {
        return;
    }
    let offset = config!(fork_child_pid_offset) as usize;
    // SAFETY: the loader took the offset from this tracepoint's format file.
    if let Ok(child) = unsafe { ctx.read_at::<u32>(offset) } {
        // Threads are added too (a clone is a fork here); they leave at exit.
        let _ = FOLLOW.insert(child, 1, 0);
    }
}

/// `sched/sched_process_exit`, run by the exiting task.
#[inline(always)]
pub fn on_exit() {
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = FOLLOW.remove(tid);
}
