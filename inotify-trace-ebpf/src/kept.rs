//! The kept counts: each inotify instance's watches, kept by the kernel's
//! own events so that the agent reads a map per snapshot instead of making
//! the kernel print one fdinfo line per watch of the node.
//!
//! - a watch is made: fexit on `fsnotify_add_mark_locked` (every new mark of
//!   every fsnotify backend; a re-add of a watched inode makes none), kept
//!   when it succeeded and the mark's group is an inotify group;
//! - a watch goes: fexit on `inotify_freeing_mark`, inotify's own callback,
//!   which the kernel calls once per mark however it goes (`inotify_rm_watch`,
//!   `IN_IGNORED` for a deleted inode or an unmounted filesystem, the
//!   instance's close);
//! - an instance goes: fexit on `inotify_free_group_priv`: its entry is
//!   dropped and its address noted (a new instance may reuse it);
//! - which fds hold which instance: a `task_file` iterator, which the agent
//!   reads each snapshot (per fd, not per watch).
//!
//! The same functions are in the BTF of every kernel of the matrix (5.10,
//! 6.1, 6.12; 6.18 here). What an inotify file and group are is learned
//! from the agent's own instance (`KeptConfig::learn_fd`), not from kernel
//! symbols.
use core::{
    ffi::c_void,
    intrinsics::{atomic_xadd, AtomicOrdering},
};

use aya_ebpf::{helpers::generated::bpf_seq_write, programs::FExitContext};
use inotify_trace_common::{KeptFd, KeptWatches, KEPT_FD_SIZE};

use crate::caller::probe;
use crate::maps::{kept_config, KEPT_FREED, KEPT_LEARNED, KEPT_WATCHES};

/// `KEPT_LEARNED`'s slots.
const LEARNED_F_OP: u32 = 0;
const LEARNED_GROUP_OPS: u32 = 1;

/// After `fsnotify_add_mark_locked(mark, ...)` with `PARAMS` parameters:
/// one more watch for an inotify group, if the mark was added. The return
/// value follows the parameters in the context; the offset must be in the
/// instruction (the verifier refuses a computed one), so there is one
/// program per form of the function and the loader picks by its BTF.
#[inline(always)]
pub fn on_mark_added<const PARAMS: usize>(ctx: &FExitContext) {
    let ret: u64 = ctx.arg(PARAMS);
    if ret as i32 != 0 {
        return;
    }
    let mark: *const u8 = ctx.arg(0);
    // SAFETY: probe reads fault safely.
    let Some(group) = (unsafe { probe::<u64>(mark, kept_config!(mark_group)) }) else {
        return;
    };
    // SAFETY: as above.
    let ops = unsafe { probe::<u64>(group as *const u8, kept_config!(group_ops)) };
    if ops.is_none_or(|ops| ops == 0 || Some(ops) != learned(LEARNED_GROUP_OPS)) {
        return;
    }
    count(group, |kept| &mut kept.added);
}

/// After `inotify_freeing_mark(mark, group)`: one watch fewer.
#[inline(always)]
pub fn on_mark_freeing(ctx: &FExitContext) {
    let group: u64 = ctx.arg(1);
    count(group, |kept| &mut kept.removed);
}

/// After `inotify_free_group_priv(group)`: the instance is gone.
#[inline(always)]
pub fn on_group_freed(ctx: &FExitContext) {
    let group: u64 = ctx.arg(0);
    let _ = KEPT_WATCHES.remove(group);
    let _ = KEPT_FREED.insert(group, 1, 0);
}

/// Adds one to a group's counter, making its entry at the first event.
#[inline(always)]
fn count(group: u64, counter: impl Fn(&mut KeptWatches) -> &mut u64) {
    if let Some(kept) = KEPT_WATCHES.get_ptr_mut(group) {
        // SAFETY: a map value lives while the program runs.
        add_one(counter(unsafe { &mut *kept }));
        return;
    }
    let mut first = KeptWatches::default();
    *counter(&mut first) = 1;
    // BPF_NOEXIST: another CPU may have made it meanwhile; then add there.
    if KEPT_WATCHES.insert(group, first, 1).is_err() {
        if let Some(kept) = KEPT_WATCHES.get_ptr_mut(group) {
            // SAFETY: as above.
            add_one(counter(unsafe { &mut *kept }));
        }
    }
}

/// An atomic add whose result is unused: BPF's `lock xadd`, which every
/// kernel takes (core has no `AtomicU64::fetch_add` for BPF, whose target
/// lacks compare-and-swap; the fetching form would need 5.12).
#[inline(always)]
fn add_one(counter: &mut u64) {
    // SAFETY: `counter` is a valid, aligned u64 in a map value; other CPUs
    // add to it the same way.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, 1) };
}

#[inline(always)]
fn learned(slot: u32) -> Option<u64> {
    KEPT_LEARNED.get(slot).copied()
}

/// `struct bpf_iter__task_file`: the context of a `task_file` iterator
/// (the same since 5.8).
#[repr(C)]
struct TaskFileContext {
    meta: *const *mut c_void,
    task: *const u8,
    fd: u32,
    file: *const u8,
}

/// For each fd of each process: an inotify fd becomes one [`KeptFd`] in the
/// iterator's output; the agent's own learning fd teaches what an inotify
/// file is.
#[inline(always)]
pub fn on_task_file(ctx: *mut c_void) {
    // SAFETY: the kernel passes a `bpf_iter__task_file`; reading its fields
    // is what the verifier allows for this program type.
    let (meta, task, fd, file) = unsafe {
        let ctx = &*(ctx as *const TaskFileContext);
        (ctx.meta, ctx.task, ctx.fd, ctx.file)
    };
    if task.is_null() || file.is_null() {
        return;
    }
    // SAFETY: probe reads fault safely.
    let (Some(tgid), Some(f_op)) = (unsafe {
        (
            probe::<u32>(task, kept_config!(task_tgid)),
            probe::<u64>(file, kept_config!(file_f_op)),
        )
    }) else {
        return;
    };
    // SAFETY: as above.
    let Some(group) = (unsafe { probe::<u64>(file, kept_config!(file_private_data)) }) else {
        return;
    };
    let known = learned(LEARNED_F_OP).unwrap_or(0);
    // Once only: the agent closes that fd afterwards, and its number is
    // soon another file's.
    if known == 0 && tgid == kept_config!(learn_tgid) && fd == kept_config!(learn_fd) {
        // SAFETY: as above.
        let ops = unsafe { probe::<u64>(group as *const u8, kept_config!(group_ops)) };
        learn(LEARNED_F_OP, f_op);
        learn(LEARNED_GROUP_OPS, ops.unwrap_or(0));
        return;
    }
    if f_op == 0 || f_op != known {
        return;
    }
    let record = KeptFd { tgid, fd, group };
    // SAFETY: `meta` is the iterator's metadata, whose first field is its
    // seq_file; the record is KEPT_FD_SIZE bytes on the stack.
    unsafe {
        let seq = *meta;
        bpf_seq_write(
            seq as *mut _,
            &record as *const KeptFd as *const c_void,
            KEPT_FD_SIZE as u32,
        );
    }
}

#[inline(always)]
fn learn(slot: u32, value: u64) {
    if let Some(at) = KEPT_LEARNED.get_ptr_mut(slot) {
        // SAFETY: an array slot lives while the program runs.
        unsafe { *at = value };
    }
}
