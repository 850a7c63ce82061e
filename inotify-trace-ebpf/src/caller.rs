//! Who made the call: the current task's pid, tid, comm, uids, user
//! namespace and cgroup.
//!
//! The helpers that return these (`bpf_get_current_pid_tgid`, `_comm` and
//! `_uid_gid`) cost a call and a return each, and on kernels with return
//! thunks (the SRSO "safe RET" mitigation on AMD, for one) a return is dear:
//! the three cost ~80 ns per event here, measured with perf. Where the
//! loader found the `task_struct` layout in the kernel's BTF
//! (`Config::task`), the exit-only programs read the same fields with plain
//! loads through the task pointer they hold anyway for the saved registers.
//! The verifier checks each load against the kernel's BTF (offset, size),
//! so a wrong offset is refused at load time, never read.
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
    generated::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_task,
        bpf_get_current_task_btf,
    },
};
use inotify_trace_common::{EventHeader, FLAG_CGROUP_MISSING, FLAG_CRED_MISSING};

use crate::maps::config;

/// Where the calling task's identity is read from.
#[derive(Clone, Copy)]
pub enum Caller {
    /// The current `task_struct` (from `bpf_get_current_task_btf`).
    Task(*const u8),
    Helpers,
}

/// The current task, as a BTF-typed pointer the verifier lets us load from.
#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: no arguments; the result is the running task.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// The current task's address, for probe reads (any kernel, any program).
#[inline(always)]
pub fn current_task_any() -> *const u8 {
    // SAFETY: no arguments; the result is the running task.
    unsafe { bpf_get_current_task() as *const u8 }
}

impl Caller {
    /// The current task read through `task` when the layout is known.
    #[inline(always)]
    pub fn from_task(task: *const u8) -> Caller {
        if config!(task.known) != 0 {
            Caller::Task(task)
        } else {
            Caller::Helpers
        }
    }

    /// `tgid << 32 | tid`, as `bpf_get_current_pid_tgid` returns it.
    #[inline(always)]
    pub fn pid_tgid(self) -> u64 {
        match self {
            Caller::Task(task) => {
                let (pid, tgid) = (config!(task.pid), config!(task.tgid));
                // SAFETY: `task` is the current task_struct (see `field`).
                let (tid, tgid): (u32, u32) = unsafe { (field(task, pid), field(task, tgid)) };
                (u64::from(tgid) << 32) | u64::from(tid)
            }
            Caller::Helpers => bpf_get_current_pid_tgid(),
        }
    }

    /// Writes the comm (16 bytes, NUL-padded) into `header`; false when it
    /// could not be read.
    ///
    /// # Safety
    /// `header` must be valid for writes and 8-aligned (as an `EventHeader`
    /// is: its comm starts at byte 48).
    #[inline(always)]
    pub unsafe fn write_comm(self, header: *mut EventHeader) -> bool {
        // SAFETY: the caller's guarantee; the comm is 16 bytes.
        let comm = unsafe { core::ptr::addr_of_mut!((*header).comm) };
        match self {
            // Two 8-byte loads and stores: a byte array copied as such is
            // sixteen of each in BPF. The kernel pads the comm with NULs.
            Caller::Task(task) => {
                let offset = config!(task.comm);
                let words = comm as *mut u64;
                // SAFETY: `task` is the current task_struct (see `field`);
                // `comm` is 8-aligned.
                unsafe {
                    *words = field(task, offset);
                    *words.add(1) = field(task, offset + 8);
                    // As the helper does: 15 bytes and a NUL, whatever a
                    // kernel keeps past them.
                    *(comm as *mut u8).add(15) = 0;
                }
                true
            }
            // SAFETY: the helper writes at most 16 bytes, NUL-padded.
            Caller::Helpers => unsafe { bpf_get_current_comm(comm.cast(), 16) == 0 },
        }
    }

    /// Writes who the kernel charges for the call into `header`: the real
    /// and effective uids (as the initial user namespace sees them), the
    /// user namespace's inode number and the cgroup v2 id. Returns the
    /// `FLAG_*` bits of what could not be read.
    #[inline(always)]
    pub fn write_charged(self, header: &mut EventHeader) -> u32 {
        if config!(attribution) == 0 {
            header.uid = self.uid();
            return FLAG_CRED_MISSING | FLAG_CGROUP_MISSING;
        }
        match self {
            Caller::Task(task) => {
                let CredOffsets {
                    cred,
                    uid,
                    euid,
                    user_ns,
                    inum,
                } = cred_offsets();
                // SAFETY: `task` is the current task_struct, whose `cred`
                // and its user namespace stay alive while it runs (see
                // `field`).
                unsafe {
                    let cred: *const u8 = field(task, cred);
                    header.uid = field(cred, uid);
                    header.euid = field(cred, euid);
                    let user_ns: *const u8 = field(cred, user_ns);
                    header.user_ns = field(user_ns, inum);
                }
                header.cgroup_id = if config!(task.cgroup_known) != 0 {
                    // task->cgroups->dfl_cgrp->kn->id: four loads where the
                    // helper costs a call and a (thunked) return.
                    let (cgroups, dfl_cgrp, kn, id) = (
                        config!(task.cgroups),
                        config!(task.dfl_cgrp),
                        config!(task.cgroup_kn),
                        config!(task.kernfs_id),
                    );
                    // SAFETY: as above: the task's css_set, its cgroup and
                    // kernfs node are alive while the task runs.
                    unsafe {
                        let css_set: *const u8 = field(task, cgroups);
                        let cgroup: *const u8 = field(css_set, dfl_cgrp);
                        let kn: *const u8 = field(cgroup, kn);
                        field(kn, id)
                    }
                } else {
                    // SAFETY: no arguments.
                    unsafe { bpf_get_current_cgroup_id() }
                };
                0
            }
            Caller::Helpers => {
                // SAFETY: no arguments.
                header.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
                match credentials_by_probe() {
                    Some((uid, euid, user_ns)) => {
                        (header.uid, header.euid, header.user_ns) = (uid, euid, user_ns);
                        0
                    }
                    None => {
                        header.uid = bpf_get_current_uid_gid() as u32;
                        (header.euid, header.user_ns) = (0, 0);
                        FLAG_CRED_MISSING
                    }
                }
            }
        }
    }
}

impl Caller {
    /// The real uid alone, as the initial user namespace sees it (records
    /// without attribution: the benchmark's baseline).
    #[inline(always)]
    fn uid(self) -> u32 {
        match self {
            Caller::Task(task) => {
                let (cred, uid) = (config!(task.cred), config!(task.cred_uid));
                // SAFETY: as in `write_charged`.
                unsafe {
                    let cred: *const u8 = field(task, cred);
                    field(cred, uid)
                }
            }
            Caller::Helpers => bpf_get_current_uid_gid() as u32,
        }
    }
}

/// Where the credentials are: `task_struct.cred`, then in `cred` the uids
/// and the user namespace, and in that its inode number.
struct CredOffsets {
    cred: u32,
    uid: u32,
    euid: u32,
    user_ns: u32,
    inum: u32,
}

#[inline(always)]
fn cred_offsets() -> CredOffsets {
    CredOffsets {
        cred: config!(task.cred),
        uid: config!(task.cred_uid),
        euid: config!(task.cred_euid),
        user_ns: config!(task.cred_user_ns),
        inum: config!(task.user_ns_inum),
    }
}

/// The current task's real uid, effective uid and user namespace inode,
/// read with `bpf_probe_read_kernel` at the offsets the loader found (the
/// programs that cannot hold a BTF-typed task pointer); `None` when the
/// offsets are unknown or a read fails.
#[inline(always)]
fn credentials_by_probe() -> Option<(u32, u32, u32)> {
    if config!(task.known) == 0 {
        return None;
    }
    let CredOffsets {
        cred,
        uid,
        euid,
        user_ns,
        inum,
    } = cred_offsets();
    // SAFETY: probe reads fault safely; the offsets come from this kernel's
    // BTF, so each read lands on the field it names.
    unsafe {
        let cred: *const u8 = probe(current_task_any(), cred)?;
        let uid = probe(cred, uid)?;
        let euid = probe(cred, euid)?;
        let user_ns: *const u8 = probe(cred, user_ns)?;
        Some((uid, euid, probe(user_ns, inum)?))
    }
}

/// A `T` at `offset` bytes into a kernel structure, by probe read.
///
/// # Safety
/// None beyond the helper's: a bad address makes it fail, not fault.
#[inline(always)]
pub unsafe fn probe<T>(base: *const u8, offset: u32) -> Option<T> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T) }.ok()
}

/// A `T` at `offset` bytes into a kernel structure.
///
/// # Safety
/// `base` must be a BTF-typed kernel pointer: the verifier then checks the
/// load against the structure's BTF and the JIT makes it fault-safe. The
/// volatile read keeps the load exactly `size_of::<T>()` bytes wide, which
/// the verifier compares with the field's size.
#[inline(always)]
pub unsafe fn field<T>(base: *const u8, offset: u32) -> T {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(base.add(offset as usize) as *const T) }
}
