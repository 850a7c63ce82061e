//! Building one record (header + path) and sending it to userspace.
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, bpf_probe_read_user_str_bytes,
};
use inotify_trace_common::{
    EventHeader, FLAG_PATH_TRUNCATED, FLAG_PATH_UNREADABLE, HEADER_SIZE, PATH_CAPTURE_MAX,
};

use crate::filter::Caller;
use crate::maps::{config, EVENTS, LOST, SCRATCH};

/// What a program knows about a call once it has returned.
pub struct Call {
    pub kind: u32,
    pub flags: u32,
    pub fd: i32,
    pub ret: i64,
    pub arg: u32,
    /// The caller's path argument, for calls that have one.
    pub path: Option<*const u8>,
}

/// Sends one record; counts it in `LOST` when the ring buffer is full.
#[inline(always)]
pub fn emit(caller: &Caller, pid_tgid: u64, call: &Call) {
    if send(caller, pid_tgid, call).is_err() {
        count_lost();
    }
}

#[inline(always)]
fn send(caller: &Caller, pid_tgid: u64, call: &Call) -> Result<(), i32> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: a per-CPU slot; a tracepoint program is not preempted on its CPU.
    let bytes = unsafe { &mut (*scratch).bytes };

    let mut flags = call.flags;
    let mut path_len = 0usize;
    if let Some(path) = call.path {
        let (header, rest) = bytes.split_at_mut(HEADER_SIZE);
        let _ = header;
        // SAFETY: reading user memory is what the helper is for; it faults
        // safely on a bad pointer.
        match unsafe { bpf_probe_read_user_str_bytes(path, rest) } {
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

    let header = EventHeader {
        kind: call.kind,
        flags,
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid: caller.pid,
        tid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        fd: call.fd,
        ret: call.ret,
        arg: call.arg,
        path_len: path_len as u32,
        comm: caller.comm,
    };
    // SAFETY: the scratch buffer is 8-aligned and longer than a header.
    unsafe { core::ptr::write(bytes.as_mut_ptr() as *mut EventHeader, header) };

    let record = bytes.get(..HEADER_SIZE + path_len).ok_or(-1)?;
    EVENTS.output::<[u8]>(record, wakeup_flag())
}

/// Adaptive wakeups: waking the reader costs about a microsecond per event,
/// so records accumulate (the reader polls on a short timer) until enough
/// bytes wait that a burst could fill the ring before the next poll.
#[inline(always)]
fn wakeup_flag() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= config().wakeup_threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
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
