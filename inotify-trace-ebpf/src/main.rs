//! The eBPF side of inotify-trace: fexit and syscall tracepoint programs that
//! turn each inotify call into one record in the `EVENTS` ring buffer.
//!
//! Three ways to attach, chosen by userspace at start:
//! - fexit (BPF trampolines, kernel 5.5+ with BTF): one program on each
//!   syscall's function (`__x64_sys_*`, `__arm64_sys_*`), arguments from the
//!   `pt_regs` it receives; no syscall tracepoint, so no other syscall of the
//!   node takes the slow path;
//! - exit only (kernel 5.15+, x86_64 and arm64): `sys_exit_*` reads the call's
//!   arguments from the task's saved user registers, one program per call;
//! - enter + exit (fallback): `sys_enter_*` stashes the arguments per thread,
//!   `sys_exit_*` picks them up. About 50% dearer per call.
#![no_std]
#![no_main]
// `atomic_xadd` (kept.rs): RUSTC_BOOTSTRAP is set for this build (build.rs).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod caller;
mod calls;
mod charge;
mod filter;
mod follow;
mod kept;
mod maps;
mod record;
mod syscall_args;

use aya_ebpf::{
    macros::{fexit, tracepoint},
    programs::{FExitContext, TracePointContext},
};
use calls::{on_enter_stash, on_exit_from_regs, on_exit_from_stash, on_fexit};
use inotify_trace_common::Syscall;

/// One syscall's programs: fexit, exit-only, and enter + exit. Their names
/// are `Syscall`'s `*_program` names (the loader attaches by those; a unit
/// test finds each in the object).
macro_rules! syscall_programs {
    ($syscall:expr, $fexit:ident, $exit:ident, $enter:ident, $exit_stashed:ident) => {
        // The kernel function is named at load time (it differs by
        // architecture).
        #[fexit]
        pub fn $fexit(ctx: FExitContext) -> u32 {
            on_fexit(&ctx, $syscall);
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            on_exit_from_regs(&ctx, $syscall);
            0
        }

        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            on_enter_stash::<{ $syscall.args() }>(&ctx);
            0
        }

        #[tracepoint]
        pub fn $exit_stashed(ctx: TracePointContext) -> u32 {
            on_exit_from_stash(&ctx, $syscall);
            0
        }
    };
}

syscall_programs!(
    Syscall::AddWatch,
    add_watch_fexit,
    add_watch_exit,
    add_watch_enter,
    add_watch_exit_stashed
);
syscall_programs!(
    Syscall::RmWatch,
    rm_watch_fexit,
    rm_watch_exit,
    rm_watch_enter,
    rm_watch_exit_stashed
);
syscall_programs!(
    Syscall::Init1,
    init1_fexit,
    init1_exit,
    init1_enter,
    init1_exit_stashed
);

/// `inotify_init()` has no arguments: one program serves both tracepoint
/// modes.
#[tracepoint]
pub fn init_exit(ctx: TracePointContext) -> u32 {
    on_exit_from_regs(&ctx, Syscall::Init);
    0
}

#[fexit]
pub fn init_fexit(ctx: FExitContext) -> u32 {
    on_fexit(&ctx, Syscall::Init);
    0
}

#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    follow::on_fork(&ctx);
    0
}

#[tracepoint]
pub fn process_exit(_ctx: TracePointContext) -> u32 {
    follow::on_exit();
    0
}

// The kept counts (`kept`): the agent loads these in an object of their
// own and attaches them to the kernel functions `kept.rs` names.

/// `fsnotify_add_mark_locked` with 4 parameters (5.17 on) and with 5.
#[fexit]
pub fn kept_mark_added4(ctx: FExitContext) -> u32 {
    kept::on_mark_added::<4>(&ctx);
    0
}

#[fexit]
pub fn kept_mark_added5(ctx: FExitContext) -> u32 {
    kept::on_mark_added::<5>(&ctx);
    0
}

#[fexit]
pub fn kept_mark_freeing(ctx: FExitContext) -> u32 {
    kept::on_mark_freeing(&ctx);
    0
}

#[fexit]
pub fn kept_group_freed(ctx: FExitContext) -> u32 {
    kept::on_group_freed(&ctx);
    0
}

/// A `task_file` iterator (aya-ebpf has no macro for iterators: the section
/// name is what the loader and the kernel go by).
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn kept_fds(ctx: *mut core::ffi::c_void) -> i32 {
    kept::on_task_file(ctx);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could get here; this never runs.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
