//! `inotify_add_watch(fd, pathname, mask)`.
use aya_ebpf::{helpers::bpf_get_current_pid_tgid, programs::TracePointContext, EbpfContext};
use aya_log_ebpf::debug;
use inotify_trace_common::{FLAG_ARGS_MISSING, KIND_ADD_WATCH};

use crate::filter::{result_traced, Caller};
use crate::maps::{StashedArgs, STASH};
use crate::record::{emit, Call};
use crate::syscall_args::{current_syscall_args, REGS_AT_EXIT};

/// `/sys/kernel/tracing/events/syscalls/sys_enter_inotify_add_watch/format`
#[repr(C)]
struct SysEnterArgs {
    _common: u64,
    _syscall_nr: u64,
    fd: u64,
    pathname: u64,
    mask: u64,
}

/// `/sys/kernel/tracing/events/syscalls/sys_exit_inotify_add_watch/format`
/// (the same layout for every `sys_exit_*`).
#[repr(C)]
struct SysExitArgs {
    _common: u64,
    _syscall_nr: u64,
    ret: i64,
}

#[inline(always)]
fn exit_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: the context is a sys_exit record, at least SysExitArgs long.
    unsafe { (*(ctx.as_ptr() as *const SysExitArgs)).ret }
}

pub fn on_exit_from_regs(ctx: &TracePointContext) {
    if !REGS_AT_EXIT {
        return;
    }
    let ret = exit_ret(ctx);
    if !result_traced(ret) {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(caller) = Caller::current_if_traced(pid_tgid) else {
        return;
    };
    let [fd, path, mask] = current_syscall_args();
    let call = Call {
        kind: KIND_ADD_WATCH,
        flags: 0,
        fd: fd as i32,
        ret,
        arg: mask as u32,
        path: Some(path as *const u8),
    };
    emit(&caller, pid_tgid, &call);
}

pub fn on_enter_stash(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if Caller::current_if_traced(pid_tgid).is_none() {
        return;
    }
    // SAFETY: the context is this tracepoint's record (layout above).
    let args = unsafe { &*(ctx.as_ptr() as *const SysEnterArgs) };
    let stashed = StashedArgs {
        fd: args.fd as i32,
        arg: args.mask as u32,
        path: args.pathname,
    };
    let _ = STASH.insert(pid_tgid, stashed, 0);
}

pub fn on_exit_from_stash(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: copied out at once; the entry is removed just below.
    let stashed = unsafe { STASH.get(pid_tgid) }.copied();
    let _ = STASH.remove(pid_tgid);
    let ret = exit_ret(ctx);
    if !result_traced(ret) {
        return;
    }
    let Some(caller) = Caller::current_if_traced(pid_tgid) else {
        return;
    };
    let call = match stashed {
        Some(args) => Call {
            kind: KIND_ADD_WATCH,
            flags: 0,
            fd: args.fd,
            ret,
            arg: args.arg,
            path: Some(args.path as *const u8),
        },
        None => {
            // Only for calls already in flight when the tracer attached; a
            // steady stream of these would mean the stash is being evicted.
            debug!(
                ctx,
                "inotify_add_watch of tid {} exited without a stashed entry", pid_tgid as u32
            );
            Call {
                kind: KIND_ADD_WATCH,
                flags: FLAG_ARGS_MISSING,
                fd: -1,
                ret,
                arg: 0,
                path: None,
            }
        }
    };
    emit(&caller, pid_tgid, &call);
}
