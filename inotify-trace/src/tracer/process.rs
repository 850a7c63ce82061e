//! What this process adjusts about itself before loading.
/// Loading reads the kernel's BTF twice, 5+ MB each time (ours for the
/// task_struct offsets, aya's for relocations). Once the first such buffer
/// is freed, glibc raises its mmap threshold to that size, so the second
/// lands in the heap and, with the trim threshold raised too, stays in the
/// tracer's RSS for the whole session (~11 MB here). A fixed threshold
/// keeps big buffers in their own mappings, returned when freed.
pub(super) fn keep_large_buffers_returnable() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; 128 KiB is glibc's
    // own default, now fixed.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. Newer ones charge
/// the memory cgroup, and there the call may fail harmlessly (root without
/// CAP_SYS_RESOURCE in a container).
pub(super) fn raise_memlock_limit() {
    let limit = nix::libc::rlimit {
        rlim_cur: nix::libc::RLIM_INFINITY,
        rlim_max: nix::libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct only.
    let ret = unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_MEMLOCK, &limit) };
    if ret != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels 5.11+");
    }
}
