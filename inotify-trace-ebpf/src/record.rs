//! Building one record (header + path) and sending it to userspace.
//!
//! Every field is written in place, in a per-CPU scratch buffer, and only
//! the bytes used are copied into the ring: no header is built on the stack
//! and copied, and the comm goes from the kernel straight to its place (a
//! `[u8; 16]` moved around costs byte-by-byte copies in BPF). Who the
//! caller is comes from `caller`.
use core::ptr::addr_of_mut;

use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_user_str_bytes};
use inotify_trace_common::{
    ChargeLevel, EventHeader, Kind, CHARGE_LEVEL_SIZE, FLAG_PATH_TRUNCATED, FLAG_PATH_UNREADABLE,
    HEADER_SIZE, MAX_CHARGE_LEVELS, PATH_CAPTURE_MAX, PATH_READ_BUF,
};

use crate::caller::Caller;
use crate::charge::{write_charge, Whose};
use crate::filter::{cgroup_traced, comm_traced};
use crate::maps::{config, Scratch, EVENTS, LOST, SCRATCH};

/// What a program knows about a call once it has returned.
pub struct Call {
    pub kind: Kind,
    pub flags: u32,
    pub fd: i32,
    pub ret: i64,
    pub arg: u32,
    /// The caller's path argument, for calls that have one.
    pub path: Option<*const u8>,
    /// Whose charge the record carries.
    pub whose: Whose,
}

/// A record being built for the current task.
pub struct Record {
    scratch: *mut Scratch,
    caller: Caller,
}

impl Record {
    /// Starts a record: writes the caller's comm into place and applies
    /// the comm filter; `None` when filtered out (or no scratch buffer).
    #[inline(always)]
    pub fn start(caller: Caller) -> Option<Record> {
        let scratch = SCRATCH.get_ptr_mut(0)?;
        // SAFETY: a per-CPU slot, 8-aligned and longer than a header; a
        // tracepoint program is not preempted on its CPU.
        let header = unsafe { addr_of_mut!((*scratch).bytes) as *mut EventHeader };
        // SAFETY: as above.
        if !unsafe { caller.write_comm(header) } {
            return None;
        }
        // SAFETY: written just above.
        comm_traced(unsafe { &(*header).comm }).then_some(Record { scratch, caller })
    }

    /// Fills in the call and sends the record, unless the cgroup filter
    /// turns it away; counts it in `LOST` when the ring buffer is full.
    #[inline(always)]
    pub fn send(self, pid_tgid: u64, call: &Call) {
        if self.try_send(pid_tgid, call).is_err() {
            count_lost();
        }
    }

    #[inline(always)]
    fn try_send(self, pid_tgid: u64, call: &Call) -> Result<(), i32> {
        // SAFETY: as in `start`.
        let bytes = unsafe { &mut (*self.scratch).bytes };
        // Who is charged comes first: the cgroup filter needs the cgroup
        // id, and a call it turns away should not cost the path's read.
        let charged = {
            // SAFETY: as in `start`.
            let header = unsafe { &mut *(bytes.as_mut_ptr() as *mut EventHeader) };
            let missing = self.caller.write_charged(header);
            if !cgroup_traced(header.cgroup_id) {
                return Ok(());
            }
            missing
        };
        // The charge after the call, then the path after it.
        // SAFETY: the scratch holds MAX_CHARGE_LEVELS levels after the
        // header (an 8-aligned offset).
        let (levels, charge_flags) = unsafe {
            let levels = bytes.as_mut_ptr().add(HEADER_SIZE) as *mut ChargeLevel;
            write_charge(self.caller, call.whose, levels)
        };
        let levels = if levels as usize > MAX_CHARGE_LEVELS {
            MAX_CHARGE_LEVELS
        } else {
            levels as usize
        };
        let path_at = HEADER_SIZE + levels * CHARGE_LEVEL_SIZE;
        let mut flags = call.flags | charged | charge_flags;
        let mut path_len = 0usize;
        if let Some(path) = call.path {
            let buffer = bytes.get_mut(path_at..path_at + PATH_READ_BUF).ok_or(-1)?;
            // SAFETY: reading user memory is what the helper is for; it
            // faults safely on a bad pointer.
            match unsafe { bpf_probe_read_user_str_bytes(path, buffer) } {
                Ok(read) => {
                    path_len = read.len();
                    if path_len > PATH_CAPTURE_MAX {
                        path_len = PATH_CAPTURE_MAX;
                        flags |= FLAG_PATH_TRUNCATED;
                    }
                }
                Err(_) => flags |= FLAG_PATH_UNREADABLE,
            }
        }
        // SAFETY: as in `start`.
        let header = unsafe { &mut *(bytes.as_mut_ptr() as *mut EventHeader) };
        header.kind = call.kind as u32;
        header.flags = flags;
        // SAFETY: no arguments.
        let now = unsafe { bpf_ktime_get_boot_ns() };
        header.time_ns = now;
        header.pid = (pid_tgid >> 32) as u32;
        header.tid = pid_tgid as u32;
        header.fd = call.fd;
        header.ret = call.ret;
        header.arg = call.arg;
        header.path_len = path_len as u32;
        header.charge_levels = levels as u32;
        header.reserved = 0;

        let record = bytes.get(..path_at + path_len).ok_or(-1)?;
        // SAFETY: as in `start`.
        let (unsignalled, failure_woken_ns) = unsafe {
            (
                &mut (*self.scratch).unsignalled,
                &mut (*self.scratch).failure_woken_ns,
            )
        };
        let urgent = limit_failure(call.ret)
            && now.wrapping_sub(*failure_woken_ns) >= FAILURE_WAKEUP_EVERY_NS;
        if urgent {
            *failure_woken_ns = now;
        }
        let wakeup = wakeup_flag(unsignalled, record.len(), urgent);
        EVENTS.output::<[u8]>(record, wakeup)
    }
}

/// A call failed because a limit is used up: ENOSPC (watches) or EMFILE
/// (instances). The reader wants these at once, to look at `/proc` while
/// the failing process may still be there.
#[inline(always)]
fn limit_failure(ret: i64) -> bool {
    ret == -28 || ret == -24
}

/// A storm of failures wakes the reader at most this often per CPU: a
/// wakeup costs about a microsecond, and one is enough for the reader to
/// drain everything before it.
const FAILURE_WAKEUP_EVERY_NS: u64 = 1_000_000;

/// Adaptive wakeups: waking the reader costs about a microsecond per event,
/// so records accumulate (the reader polls on a short timer) until this CPU
/// has sent `wakeup_threshold` bytes since it last woke the reader: the
/// loader splits a sixteenth of the ring between the CPUs, early enough that
/// a burst cannot fill the rest before the reader drains it. Counting per
/// CPU, rather than asking the ring how full it is (`bpf_ringbuf_query`),
/// saves a helper call and a cache line the reader keeps writing: ~25 ns
/// per event. A failure for a limit wakes the reader at once (see
/// [`limit_failure`]).
#[inline(always)]
fn wakeup_flag(unsignalled: &mut u64, record_len: usize, urgent: bool) -> u64 {
    let pending = *unsignalled + record_len as u64;
    if urgent || pending >= config!(wakeup_threshold) {
        *unsignalled = 0;
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        *unsignalled = pending;
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
fn count_lost() {
    if let Some(lost) = LOST.get_ptr_mut(0) {
        // SAFETY: per-CPU counter; no other writer on this CPU meanwhile.
        unsafe { *lost += 1 };
    }
}
