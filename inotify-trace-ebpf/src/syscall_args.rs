//! Reading a syscall's arguments at its exit from the task's saved user
//! registers (`bpf_task_pt_regs`, kernel 5.15+), which saves a second
//! tracepoint and a map round trip per call.
//!
//! x86_64: the argument registers (di, si, dx) still hold the caller's values
//! at syscall exit. arm64: x0 is both the first argument and the return
//! value, so the first argument is the kernel's `orig_x0`, which follows the
//! uapi registers in the kernel's `struct pt_regs`; x1 and x2 are intact.
//! Other architectures use enter+exit.

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

/// The start of arm64's kernel `struct pt_regs` (arch/arm64/include/asm/
/// ptrace.h), unchanged since arm64 was merged: the uapi `user_pt_regs`
/// (x0-x30, sp, pc, pstate), then `orig_x0`. aya's bindings have only the
/// uapi part.
#[cfg(bpf_target_arch = "aarch64")]
#[repr(C)]
struct Arm64PtRegs {
    regs: [u64; 31],
    sp: u64,
    pc: u64,
    pstate: u64,
    orig_x0: u64,
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
pub fn syscall_args_at_exit(task: *const u8) -> [u64; 3] {
    use aya_ebpf::helpers::generated::bpf_task_pt_regs;
    // SAFETY: as on x86_64; the verifier checks each load's offset against
    // the kernel's own pt_regs (orig_x0 at 272 is inside it).
    unsafe {
        let regs = bpf_task_pt_regs(task as *mut _) as *const Arm64PtRegs;
        [(*regs).orig_x0, (*regs).regs[1], (*regs).regs[2]]
    }
}

/// Not available: userspace must attach in enter+exit mode.
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
#[inline(always)]
pub fn syscall_args_at_exit(_task: *const u8) -> [u64; 3] {
    [0; 3]
}

/// Whether [`syscall_args_at_exit`] works on this architecture.
pub const REGS_AT_EXIT: bool = cfg!(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"));
