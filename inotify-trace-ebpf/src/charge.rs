//! The inotify budget as the kernel charged it, read after the call from
//! the kernel's own counters: from the call's fd to its instance's
//! `struct ucounts` (the charged user namespace and uid), then up through
//! each ancestor namespace's level to the initial one (`inc_ucount` charges
//! every level in turn). The offsets come from the kernel's BTF
//! (`Config::charge`).
//!
//! Past `fdtable.fd` (a `struct file **`, which the verifier types as a
//! number, not a pointer it can follow) every step is a
//! `bpf_probe_read_kernel`; a level's fields are read in two spans (its
//! counters, and its namespace's caps and parent) and its namespace's inode
//! number, so a level costs three reads and the way to the first two more.
use aya_ebpf::helpers::bpf_probe_read_kernel_buf;
use inotify_trace_common::{
    ChargeLevel, FLAG_CHARGE_CUT, FLAG_CHARGE_MISSING, FLAG_CHARGE_OF_CALLER, MAX_CHARGE_LEVELS,
};

use crate::caller::{current_task_any, field, probe, Caller};
use crate::maps::{config, STAGING};

/// Whose charge a record carries: the instance behind an fd (after
/// add_watch and rm_watch, and a successful init: the new fd), the caller's
/// own (user namespace, uid) level (a failed init), or nobody's (the call's
/// fd is unknown). A plain number, not an enum with a payload: LLVM leaves
/// the payload of the other variants undefined, and the verifier refuses a
/// program that spills an undefined register.
#[derive(Clone, Copy)]
pub struct Whose(i32);

impl Whose {
    pub const CALLER: Whose = Whose(-2);
    pub const NOBODY: Whose = Whose(-1);

    #[inline(always)]
    pub fn instance(fd: i32) -> Whose {
        match fd >= 0 {
            true => Whose(fd),
            false => Whose::NOBODY,
        }
    }
}

/// Writes the charge's levels at `levels` (room for
/// [`MAX_CHARGE_LEVELS`]); returns how many, and the `FLAG_CHARGE_*` bits.
///
/// # Safety
/// `levels` must be valid for writes of `MAX_CHARGE_LEVELS` levels.
#[inline(always)]
pub unsafe fn write_charge(caller: Caller, whose: Whose, levels: *mut ChargeLevel) -> (u32, u32) {
    if config!(charge.known) == 0 {
        return (0, FLAG_CHARGE_MISSING);
    }
    let (first, flags) = match whose.0 {
        -2 => (caller_ucounts(caller), FLAG_CHARGE_OF_CALLER),
        fd if fd >= 0 => (instance_ucounts(caller, fd), 0),
        _ => (None, 0),
    };
    let Some(mut ucounts) = first else {
        return (0, FLAG_CHARGE_MISSING);
    };
    let mut count = 0u32;
    let mut i = 0usize;
    while i < MAX_CHARGE_LEVELS {
        if ucounts.is_null() {
            return (count, flags);
        }
        // SAFETY: the caller's guarantee; `i` is below the bound.
        let level = unsafe { &mut *levels.add(i) };
        match read_level(ucounts, level) {
            Some(parent) => ucounts = parent,
            // A read failed: what was read so far is not the whole charge.
            None => return (0, flags | FLAG_CHARGE_MISSING),
        }
        count += 1;
        i += 1;
    }
    match ucounts.is_null() {
        true => (count, flags),
        false => (count, flags | FLAG_CHARGE_CUT),
    }
}

/// `task->files->fdt->fd[fd]->private_data->inotify_data.ucounts`.
#[inline(always)]
fn instance_ucounts(caller: Caller, fd: i32) -> Option<*const u8> {
    let (files, fdt, max_fds, fd_array) = (
        config!(charge.task_files),
        config!(charge.files_fdt),
        config!(charge.fdt_max_fds),
        config!(charge.fdt_fd),
    );
    let (max, array): (u32, *const u8) = match caller {
        // BTF-typed loads as far as the verifier follows them.
        // SAFETY: `task` is the current task_struct, whose files table
        // lives while it runs (see `field`).
        Caller::Task(task) => unsafe {
            let files: *const u8 = field(task, files);
            let fdt: *const u8 = field(files, fdt);
            (field(fdt, max_fds), field(fdt, fd_array))
        },
        // SAFETY: probe reads fault safely.
        Caller::Helpers => unsafe {
            let files: *const u8 = probe(current_task_any(), files)?;
            let fdt: *const u8 = probe(files, fdt)?;
            (probe(fdt, max_fds)?, probe(fdt, fd_array)?)
        },
    };
    if fd as u32 >= max {
        return None;
    }
    let (private_data, group_ucounts) = (
        config!(charge.file_private_data),
        config!(charge.group_ucounts),
    );
    // SAFETY: probe reads fault safely; `fd` is below the table's size.
    unsafe {
        let file: *const u8 = probe(array, fd as u32 * 8)?;
        let group: *const u8 = probe(file, private_data)?;
        probe(group, group_ucounts)
    }
}

/// The caller's own level: `cred->ucounts`, which is (user namespace, real
/// uid); the charge of an init is by effective uid, so only when the two
/// are the same (and where `struct cred` has it: 5.14 on).
#[inline(always)]
fn caller_ucounts(caller: Caller) -> Option<*const u8> {
    let cred_ucounts = config!(charge.cred_ucounts);
    if cred_ucounts == 0 {
        return None;
    }
    let (cred, uid, euid) = (
        config!(charge.task_cred),
        config!(charge.cred_uid),
        config!(charge.cred_euid),
    );
    // SAFETY: as in `instance_ucounts`.
    unsafe {
        let cred: *const u8 = match caller {
            Caller::Task(task) => field(task, cred),
            Caller::Helpers => probe(current_task_any(), cred)?,
        };
        let (uid, euid): (u32, u32) = (probe(cred, uid)?, probe(cred, euid)?);
        if uid != euid {
            return None;
        }
        probe(cred, cred_ucounts)
    }
}

/// One level: its counters, its namespace's inode number and caps; returns
/// the level above (NULL at the initial namespace).
#[inline(always)]
fn read_level(ucounts: *const u8, level: &mut ChargeLevel) -> Option<*const u8> {
    let staging = STAGING.get_ptr_mut(0)?;
    // SAFETY: a per-CPU buffer; a program is not preempted on its CPU.
    let staging = unsafe { &mut (*staging).bytes };
    let (ns_at, uid_at, instances_at, watches_at, width) = (
        config!(charge.ucounts_ns),
        config!(charge.ucounts_uid),
        config!(charge.ucounts_instances),
        config!(charge.ucounts_watches),
        config!(charge.counter_width),
    );
    // The loader checked that `ns` comes first and the span fits.
    let end = max(instances_at, watches_at) + width;
    let span = staging.get_mut(..(end - ns_at) as usize)?;
    // SAFETY: probe reads fault safely.
    unsafe { bpf_probe_read_kernel_buf(ucounts.wrapping_add(ns_at as usize), span) }.ok()?;
    let ns = word(span, 0, 8) as *const u8;
    level.uid = word(span, uid_at - ns_at, 4) as u32;
    level.instances = count(word(span, instances_at - ns_at, width));
    level.watches = count(word(span, watches_at - ns_at, width));
    let inum = config!(charge.ns_inum);
    // SAFETY: probe reads fault safely.
    level.user_ns = unsafe { probe(ns, inum)? };

    let (parent_at, max_instances_at, max_watches_at, width) = (
        config!(charge.ns_ucounts),
        config!(charge.ns_max_instances),
        config!(charge.ns_max_watches),
        config!(charge.max_width),
    );
    let end = max(max_instances_at, max_watches_at) + width;
    let span = staging.get_mut(..(end - parent_at) as usize)?;
    // SAFETY: probe reads fault safely.
    unsafe { bpf_probe_read_kernel_buf(ns.wrapping_add(parent_at as usize), span) }.ok()?;
    level.max_instances = count(word(span, max_instances_at - parent_at, width));
    level.max_watches = count(word(span, max_watches_at - parent_at, width));
    Some(word(span, 0, 8) as *const u8)
}

#[inline(always)]
fn max(a: u32, b: u32) -> u32 {
    if a > b {
        a
    } else {
        b
    }
}

/// A little-endian integer of `width` bytes (4 or 8) at `at` in `bytes`;
/// 0 past its end (the loader's checks keep every field inside).
#[inline(always)]
fn word(bytes: &[u8], at: u32, width: u32) -> u64 {
    let at = at as usize;
    match width {
        8 => bytes.get(at..at + 8).map_or(0, |b| {
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }),
        _ => bytes.get(at..at + 4).map_or(0, |b| {
            u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
    }
}

/// A counter or cap as the record carries it: the kernel's signed value,
/// clamped to 0..=u32::MAX (a cap can be set to at most INT_MAX).
#[inline(always)]
fn count(raw: u64) -> u32 {
    let value = raw as i64;
    if value < 0 {
        0
    } else if value > u32::MAX as i64 {
        u32::MAX
    } else {
        value as u32
    }
}
