//! The eBPF side of inotify-trace: syscall tracepoint programs that turn each
//! inotify call into one record in the `EVENTS` ring buffer.
//!
//! Two ways to attach, chosen by userspace at start:
//! - exit only (kernel 5.15+, x86_64): `sys_exit_*` reads the call's
//!   arguments from the task's saved user registers, one program per call;
//! - enter + exit (fallback): `sys_enter_*` stashes the arguments per thread,
//!   `sys_exit_*` picks them up. About 50% dearer per call.
#![no_std]
#![no_main]

mod add_watch;
mod filter;
mod maps;
mod record;
mod syscall_args;

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

#[tracepoint]
pub fn add_watch_exit(ctx: TracePointContext) -> u32 {
    add_watch::on_exit_from_regs(&ctx);
    0
}

#[tracepoint]
pub fn add_watch_enter(ctx: TracePointContext) -> u32 {
    add_watch::on_enter_stash(&ctx);
    0
}

#[tracepoint]
pub fn add_watch_exit_stashed(ctx: TracePointContext) -> u32 {
    add_watch::on_exit_from_stash(&ctx);
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
