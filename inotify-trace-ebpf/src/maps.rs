//! Every map and global of the program, in one place. Names are those of
//! `inotify_trace_common::MAP_*`, which userspace uses to find them.
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use inotify_trace_common::{
    ChargeLayout, Comm, Config, KeptConfig, KeptWatches, TaskLayout, CGROUP_FILTER_CAPACITY,
    CHARGE_LEVEL_SIZE, FILTER_CAPACITY, FOLLOW_CAPACITY, HEADER_SIZE, KEPT_CAPACITY,
    KEPT_FREED_CAPACITY, MAX_CHARGE_LEVELS, PATH_READ_BUF,
};

/// Written by the loader before load (`CONFIG_GLOBAL`); read-only afterwards,
/// so the verifier treats it as a constant and prunes disabled filters.
#[unsafe(no_mangle)]
pub static CONFIG: Config = Config {
    tracer_pid: 0,
    filter_pids: 0,
    filter_comms: 0,
    failed_only: 0,
    wakeup_threshold: 0,
    follow: 0,
    fork_child_pid_offset: 0,
    task: TaskLayout::UNKNOWN,
    attribution: 0,
    filter_cgroups: 0,
    fexit_by_probe: 0,
    reserved: 0,
    charge: ChargeLayout::UNKNOWN,
};

/// One of the loader's settings. The volatile read stops the compiler from
/// folding the zero initializer into the code (the verifier folds the real
/// value); reading one field, not the whole struct, keeps the hot path to
/// the loads it needs.
macro_rules! config {
    ($($field:ident).+) => {
        // SAFETY: CONFIG is a plain static; reading a field is always valid.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!($crate::maps::CONFIG.$($field).+)) }
    };
}
pub(crate) use config;

/// The kept counts' settings (`kept`), written by the agent before load.
#[unsafe(no_mangle)]
pub static KEPT_CONFIG: KeptConfig = KeptConfig {
    learn_tgid: 0,
    learn_fd: 0,
    task_tgid: 0,
    file_f_op: 0,
    file_private_data: 0,
    mark_group: 0,
    group_ops: 0,
    add_mark_params: 0,
};

/// One of the kept counts' settings (as `config!`).
macro_rules! kept_config {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        // SAFETY: as in `config!`.
        let value = unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!($crate::maps::KEPT_CONFIG.$field))
        };
        value
    }};
}
pub(crate) use kept_config;

/// Not preallocated (`BPF_F_NO_PREALLOC`): an entry per instance that
/// changed since attach, so the memory follows the node's instances, not
/// the capacity.
#[map]
pub static KEPT_WATCHES: HashMap<u64, KeptWatches> =
    HashMap::with_max_entries(KEPT_CAPACITY, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// LRU, so a burst of releases between two looks never fails an insert
/// (the oldest would be the ones the agent has seen go anyway); an LRU map
/// is preallocated, hence smaller than the instances followed.
#[map]
pub static KEPT_FREED: LruHashMap<u64, u8> = LruHashMap::with_max_entries(KEPT_FREED_CAPACITY, 0);

#[map]
pub static KEPT_LEARNED: Array<u64> = Array::with_max_entries(2, 0);

/// The size here is a placeholder: the loader sets it (`--ring-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static PIDS: HashMap<u32, u8> = HashMap::with_max_entries(FILTER_CAPACITY, 0);

/// Tasks (tids) of a followed command; a process is followed when its tgid
/// is here. Filled by the fork program, emptied by the exit program.
#[map]
pub static FOLLOW: HashMap<u32, u8> = HashMap::with_max_entries(FOLLOW_CAPACITY, 0);

#[map]
pub static COMMS: HashMap<Comm, u8> = HashMap::with_max_entries(FILTER_CAPACITY, 0);

#[map]
pub static CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(CGROUP_FILTER_CAPACITY, 0);

/// Where a record is built before it is copied into the ring buffer: too
/// large for the 512-byte BPF stack, and building it here lets the ring
/// receive only the bytes actually used. Also this CPU's count of bytes
/// sent since it last woke the reader (`record::wakeup_flag`).
#[repr(C, align(8))]
pub struct Scratch {
    /// Header, charge levels, path.
    pub bytes: [u8; HEADER_SIZE + MAX_CHARGE_LEVELS * CHARGE_LEVEL_SIZE + PATH_READ_BUF],
    pub unsignalled: u64,
    /// When this CPU last woke the reader for a failing call
    /// (`record::wakeup_flag`), CLOCK_BOOTTIME ns.
    pub failure_woken_ns: u64,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Where a span of a kernel structure is read before its fields are picked
/// out (`charge`): one read of the span costs less than one per field.
#[repr(C, align(8))]
pub struct Staging {
    pub bytes: [u8; STAGING_SIZE],
}

/// The largest span read at once; the loader checks each fits.
pub const STAGING_SIZE: usize = inotify_trace_common::CHARGE_SPAN_MAX;

#[map]
pub static STAGING: PerCpuArray<Staging> = PerCpuArray::with_max_entries(1, 0);

/// The first three arguments of a call in flight, saved at syscall entry
/// (enter+exit mode).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StashedArgs {
    pub args: [u64; 3],
}

/// Keyed by pid_tgid. Sized for many threads in a call at once; an entry is
/// removed at exit, and LRU eviction keeps a thread killed mid-call from
/// leaking one.
#[map]
pub static STASH: aya_ebpf::maps::LruHashMap<u64, StashedArgs> =
    aya_ebpf::maps::LruHashMap::with_max_entries(16384, 0);
