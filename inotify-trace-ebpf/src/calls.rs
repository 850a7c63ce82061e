//! The four inotify syscalls, each turned into one record at its exit (a
//! syscall tracepoint, or fexit on the syscall's function).
//!
//! | syscall                              | fd   | arg   | path |
//! |--------------------------------------|------|-------|------|
//! | `inotify_add_watch(fd, path, mask)`  | fd   | mask  | yes  |
//! | `inotify_rm_watch(fd, wd)`           | fd   | wd    |      |
//! | `inotify_init1(flags)`               | -1   | flags |      |
//! | `inotify_init()`                     | -1   | 0     |      |
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    programs::{FExitContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::debug;
use inotify_trace_common::{Kind, Syscall, FLAG_ARGS_MISSING, FLAG_INIT1};

use crate::caller::{current_task, Caller};
use crate::charge::Whose;
use crate::filter::{caller_traced, pid_traced, result_traced};
use crate::maps::config;
use crate::maps::{StashedArgs, STASH};
use crate::record::{Call, Record};
use crate::syscall_args::{
    syscall_args_at_exit, syscall_args_by_probe, syscall_args_in, REGS_AT_EXIT,
};

/// How a syscall's arguments become a record (the table above).
trait Recorded {
    fn call(self, args: [u64; 3], ret: i64) -> Call;
    fn call_without_args(self, ret: i64) -> Call;
}

impl Recorded for Syscall {
    /// The record for a call with these arguments.
    #[inline(always)]
    fn call(self, args: [u64; 3], ret: i64) -> Call {
        let kind: Kind = self.kind();
        let (flags, fd, arg, path) = match self {
            Syscall::AddWatch => (
                0,
                args[0] as i32,
                args[2] as u32,
                Some(args[1] as *const u8),
            ),
            Syscall::RmWatch => (0, args[0] as i32, args[1] as u32, None),
            Syscall::Init1 => (FLAG_INIT1, -1, args[0] as u32, None),
            Syscall::Init => (0, -1, 0, None),
        };
        // After init, the new fd's instance (or, when it failed, the
        // caller's own level); after the others, the fd's instance.
        let whose = match kind {
            Kind::Init if ret >= 0 => Whose::instance(ret as i32),
            Kind::Init => Whose::CALLER,
            _ => Whose::instance(fd),
        };
        Call {
            kind,
            flags,
            fd,
            ret,
            arg,
            path,
            whose,
        }
    }

    /// The record for a call whose arguments are unknown.
    #[inline(always)]
    fn call_without_args(self, ret: i64) -> Call {
        let mut call = self.call([0; 3], ret);
        call.flags |= FLAG_ARGS_MISSING;
        call.fd = -1;
        call.path = None;
        if call.kind != Kind::Init {
            call.whose = Whose::NOBODY;
        }
        call
    }
}

/// `/sys/kernel/tracing/events/syscalls/sys_exit_*/format`: the same layout
/// for every syscall.
#[repr(C)]
struct SysExitArgs {
    _common: u64,
    _syscall_nr: u64,
    ret: i64,
}

/// `/sys/kernel/tracing/events/syscalls/sys_enter_*/format`: after the
/// common header and the syscall number, one 8-byte slot per argument.
const SYS_ENTER_FIRST_ARG: usize = 16;

#[inline(always)]
fn exit_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: the context is a sys_exit record, at least SysExitArgs long.
    unsafe { (*(ctx.as_ptr() as *const SysExitArgs)).ret }
}

/// Exit-only mode: arguments from the task's saved registers, and the
/// caller's identity from its task_struct where the layout is known. Also
/// the one program for `inotify_init`, which has no arguments to read and
/// so needs neither (it serves enter+exit mode too, on kernels that may
/// lack the task's BTF).
#[inline(always)]
pub fn on_exit_from_regs(ctx: &TracePointContext, syscall: Syscall) {
    if syscall != Syscall::Init && !REGS_AT_EXIT {
        return;
    }
    on_return(
        exit_ret(ctx),
        syscall,
        || (syscall != Syscall::Init).then(current_task),
        |task| task.map_or([0; 3], syscall_args_at_exit),
    );
}

/// Fexit mode: the syscall function's own argument is the `pt_regs` the
/// task saved at entry, and after it in the context comes the function's
/// return value (read from the context, not with `bpf_get_func_ret`, which
/// needs 5.17). No syscall tracepoint is attached, so no other syscall pays.
/// Where the kernel takes no BTF-typed loads here (`fexit_by_probe`), the
/// registers and the caller are read with probe reads and helpers instead.
#[inline(always)]
pub fn on_fexit(ctx: &FExitContext, syscall: Syscall) {
    if !REGS_AT_EXIT {
        return;
    }
    let ret: i64 = ctx.arg(1);
    // A constant at load time: the verifier sees one branch only.
    if config!(fexit_by_probe) != 0 {
        let regs = ctx.as_ptr() as *const u64;
        on_return(ret, syscall, || None, |_| syscall_args_by_probe(regs));
    } else {
        on_return(
            ret,
            syscall,
            || (syscall != Syscall::Init).then(current_task),
            |_| syscall_args_in(ctx.arg(0)),
        );
    }
}

/// One record for a call returning `ret`: the caller read through the task
/// `task` gives (helpers without one), the arguments from `args` (given
/// that task), each only once the call has passed the filters before it.
#[inline(always)]
fn on_return(
    ret: i64,
    syscall: Syscall,
    task: impl FnOnce() -> Option<*const u8>,
    args: impl FnOnce(Option<*const u8>) -> [u64; 3],
) {
    if !result_traced(ret) {
        return;
    }
    let task = task();
    let caller = task.map_or(Caller::Helpers, Caller::from_task);
    let pid_tgid = caller.pid_tgid();
    if !pid_traced(pid_tgid) {
        return;
    }
    let Some(record) = Record::start(caller) else {
        return;
    };
    let args = args(task);
    record.send(pid_tgid, &syscall.call(args, ret));
}

/// Enter+exit mode, at entry: stash the first `ARGS` arguments per thread.
#[inline(always)]
pub fn on_enter_stash<const ARGS: usize>(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !caller_traced(pid_tgid) {
        return;
    }
    let mut stashed = StashedArgs { args: [0; 3] };
    let mut i = 0;
    while i < ARGS && i < 3 {
        // SAFETY: the tracepoint's record has ARGS argument slots.
        stashed.args[i] = unsafe { ctx.read_at::<u64>(SYS_ENTER_FIRST_ARG + 8 * i) }.unwrap_or(0);
        i += 1;
    }
    let _ = STASH.insert(pid_tgid, stashed, 0);
}

/// Enter+exit mode, at exit: the stashed arguments and the return value.
#[inline(always)]
pub fn on_exit_from_stash(ctx: &TracePointContext, syscall: Syscall) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: copied out at once; the entry is removed just below.
    let stashed = unsafe { STASH.get(pid_tgid) }.copied();
    let _ = STASH.remove(pid_tgid);
    let ret = exit_ret(ctx);
    if !result_traced(ret) {
        return;
    }
    if !pid_traced(pid_tgid) {
        return;
    }
    let Some(record) = Record::start(Caller::Helpers) else {
        return;
    };
    let call = match stashed {
        Some(stashed) => syscall.call(stashed.args, ret),
        None => {
            // Only for calls already in flight when the tracer attached; a
            // steady stream of these would mean the stash is being evicted.
            debug!(
                ctx,
                "tid {} exited an inotify call without a stashed entry", pid_tgid as u32
            );
            syscall.call_without_args(ret)
        }
    };
    record.send(pid_tgid, &call);
}
