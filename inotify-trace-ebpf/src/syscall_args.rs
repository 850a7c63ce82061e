//! Reading a syscall's arguments from the registers the task saved when it
//! entered the kernel: at the syscall's exit tracepoint through the task
//! (`bpf_task_pt_regs`, kernel 5.15+), which saves a second tracepoint and a
//! map round trip per call; in fexit mode from the `pt_regs` pointer the
//! syscall function itself receives.
//!
//! x86_64: the argument registers (di, si, dx) still hold the caller's values
//! at syscall exit. arm64: x0 is both the first argument and the return
//! value, so the first argument is the kernel's `orig_x0`, which follows the
//! uapi registers in the kernel's `struct pt_regs`; x1 and x2 are intact.
//! Other architectures use enter+exit.

/// The first three arguments of the syscall `task` (the current task, from
/// `caller::current_task`) is returning from.
#[cfg(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"))]
#[inline(always)]
pub fn syscall_args_at_exit(task: *const u8) -> [u64; 3] {
    use aya_ebpf::helpers::generated::bpf_task_pt_regs;
    // SAFETY: the helper returns a kernel pointer the verifier tracks by BTF
    // type (pt_regs); loads through it are checked against that type.
    syscall_args_in(unsafe { bpf_task_pt_regs(task as *mut _) } as *const u8)
}

/// The first three arguments in a task's saved user registers: `regs` is a
/// BTF-typed `struct pt_regs *` (from `bpf_task_pt_regs`, or the argument of
/// a syscall function in an fexit program), so the verifier checks each
/// load against the kernel's own layout.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub fn syscall_args_in(regs: *const u8) -> [u64; 3] {
    use aya_ebpf::bindings::pt_regs;
    let regs = regs as *const pt_regs;
    // SAFETY: as above.
    unsafe { [(*regs).rdi, (*regs).rsi, (*regs).rdx] }
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
pub fn syscall_args_in(regs: *const u8) -> [u64; 3] {
    let regs = regs as *const Arm64PtRegs;
    // SAFETY: as on x86_64; orig_x0 (at 272) is inside the kernel's pt_regs.
    unsafe { [(*regs).orig_x0, (*regs).regs[1], (*regs).regs[2]] }
}

/// The same from an fexit context whose first slot holds the `pt_regs`
/// pointer, all with `bpf_probe_read_kernel` (no BTF-typed loads): for
/// kernels whose BTF does not describe that argument (see
/// `Config::fexit_regs_by_probe`). A failed read gives 0.
#[cfg(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"))]
#[inline(always)]
pub fn syscall_args_by_probe(ctx: *const u64) -> [u64; 3] {
    use aya_ebpf::helpers::bpf_probe_read_kernel;
    #[cfg(bpf_target_arch = "x86_64")]
    let offsets = {
        use aya_ebpf::bindings::pt_regs;
        use core::mem::offset_of;
        [
            offset_of!(pt_regs, rdi),
            offset_of!(pt_regs, rsi),
            offset_of!(pt_regs, rdx),
        ]
    };
    #[cfg(bpf_target_arch = "aarch64")]
    let offsets = {
        use core::mem::offset_of;
        let x = offset_of!(Arm64PtRegs, regs);
        [offset_of!(Arm64PtRegs, orig_x0), x + 8, x + 16]
    };
    // SAFETY: probe reads fault safely.
    let Ok(regs) = (unsafe { bpf_probe_read_kernel(ctx) }) else {
        return [0; 3];
    };
    let read = |offset: usize| {
        // SAFETY: as above.
        unsafe { bpf_probe_read_kernel((regs as usize + offset) as *const u64) }.unwrap_or(0)
    };
    [read(offsets[0]), read(offsets[1]), read(offsets[2])]
}

#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
#[inline(always)]
pub fn syscall_args_by_probe(_ctx: *const u64) -> [u64; 3] {
    [0; 3]
}

/// Not available: userspace must attach in enter+exit mode.
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
#[inline(always)]
pub fn syscall_args_at_exit(_task: *const u8) -> [u64; 3] {
    [0; 3]
}

#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
#[inline(always)]
pub fn syscall_args_in(_regs: *const u8) -> [u64; 3] {
    [0; 3]
}

/// Whether [`syscall_args_at_exit`] and [`syscall_args_in`] work on this
/// architecture.
pub const REGS_AT_EXIT: bool = cfg!(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64"));
