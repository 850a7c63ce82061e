//! Reading a syscall's arguments at its exit from the task's saved user
//! registers (`bpf_task_pt_regs`, kernel 5.15+), which saves a second
//! tracepoint and a map round trip per call.
//!
//! Only on x86_64: there the argument registers still hold the caller's
//! values at syscall exit. On arm64 x0 is both the first argument and the
//! return value (the kernel keeps the argument in `orig_x0`, outside the uapi
//! `user_pt_regs` layout), so other architectures use enter+exit.

/// The first three arguments of the syscall `task` (the current task, from
/// `caller::current_task`) is returning from.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub fn syscall_args_at_exit(task: *const u8) -> [u64; 3] {
    use aya_ebpf::bindings::pt_regs;
    use aya_ebpf::helpers::generated::bpf_task_pt_regs;
    // SAFETY: the helper returns a kernel pointer the verifier tracks by BTF
    // type (pt_regs); loads through it are checked against that type.
    unsafe {
        let regs = bpf_task_pt_regs(task as *mut _) as *const pt_regs;
        [(*regs).rdi, (*regs).rsi, (*regs).rdx]
    }
}

/// Not available: userspace must attach in enter+exit mode.
#[cfg(not(bpf_target_arch = "x86_64"))]
#[inline(always)]
pub fn syscall_args_at_exit(_task: *const u8) -> [u64; 3] {
    [0; 3]
}

/// Whether [`syscall_args_at_exit`] works on this architecture.
pub const REGS_AT_EXIT: bool = cfg!(bpf_target_arch = "x86_64");
