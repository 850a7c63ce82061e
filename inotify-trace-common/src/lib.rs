//! The one definition of what the eBPF programs send to userspace and of how
//! userspace configures them.
//!
//! A record in the `EVENTS` ring buffer is an [`EventHeader`], then
//! `charge_levels` [`ChargeLevel`]s (the inotify budget as the kernel
//! charged it after the call), then `path_len` bytes of path (no NUL).
//! Records are variable-sized so that ring space is proportional to what
//! they carry. The same bytes are what a
//! recording stores, so the layout below is a file format too: fields are only
//! ever appended at the end (and `HEADER_SIZE` checked), kinds and flags keep
//! their numbers forever. All integers are in the host's byte order, which is
//! little-endian on every architecture this tool is built for.
#![no_std]

/// What call a record describes: its number on the wire and its name in
/// every output (JSON `type`, the summary's `call`, a diagnosis's `call`)
/// are defined here and nowhere else.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Kind {
    /// One `inotify_add_watch(fd, path, mask)` call. `ret` is the watch
    /// descriptor or `-errno`.
    AddWatch = 1,
    /// One `inotify_init()` or `inotify_init1(flags)` call. `ret` is the new
    /// fd or `-errno`; `arg` holds the flags (only with [`FLAG_INIT1`]).
    Init = 2,
    /// One `inotify_rm_watch(fd, wd)` call; `arg` holds `wd`.
    RmWatch = 3,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 3] = [Kind::AddWatch, Kind::Init, Kind::RmWatch];

    /// The kind a record's `kind` field names, if any.
    pub const fn from_wire(kind: u32) -> Option<Kind> {
        match kind {
            1 => Some(Kind::AddWatch),
            2 => Some(Kind::Init),
            3 => Some(Kind::RmWatch),
            _ => None,
        }
    }

    /// The name outputs use (`add_watch`, `init`, `rm_watch`); serde's
    /// `snake_case` gives the same, which a unit test holds to.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::AddWatch => "add_watch",
            Kind::Init => "init",
            Kind::RmWatch => "rm_watch",
        }
    }

    /// The syscall (or syscalls) behind the kind, as people know them.
    pub const fn syscall(self) -> &'static str {
        match self {
            Kind::AddWatch => Syscall::AddWatch.name(),
            // Both of `Syscall::Init` and `Syscall::Init1`, as one kind.
            Kind::Init => "inotify_init/init1",
            Kind::RmWatch => Syscall::RmWatch.name(),
        }
    }
}

/// The syscalls traced, each named once here: the kernel's name (its
/// tracepoints are `sys_enter_<name>` and `sys_exit_<name>`, the metrics'
/// `syscall` label), the kind of its records, and the eBPF programs of each
/// attach mode (their names in the object, which the loader attaches and a
/// unit test finds there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    AddWatch,
    RmWatch,
    Init1,
    Init,
}

impl Syscall {
    /// Every syscall traced.
    pub const ALL: [Syscall; 4] = [
        Syscall::AddWatch,
        Syscall::RmWatch,
        Syscall::Init1,
        Syscall::Init,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Syscall::AddWatch => "inotify_add_watch",
            Syscall::RmWatch => "inotify_rm_watch",
            Syscall::Init1 => "inotify_init1",
            Syscall::Init => "inotify_init",
        }
    }

    pub const fn kind(self) -> Kind {
        match self {
            Syscall::AddWatch => Kind::AddWatch,
            Syscall::RmWatch => Kind::RmWatch,
            Syscall::Init1 | Syscall::Init => Kind::Init,
        }
    }

    /// The syscall a record is of (`FLAG_INIT1` tells the two inits apart).
    pub const fn of_record(kind: Kind, flags: u32) -> Syscall {
        match kind {
            Kind::AddWatch => Syscall::AddWatch,
            Kind::RmWatch => Syscall::RmWatch,
            Kind::Init if flags & FLAG_INIT1 != 0 => Syscall::Init1,
            Kind::Init => Syscall::Init,
        }
    }

    /// How many arguments it takes (the enter program stashes them).
    pub const fn args(self) -> usize {
        match self {
            Syscall::AddWatch => 3,
            Syscall::RmWatch => 2,
            Syscall::Init1 => 1,
            Syscall::Init => 0,
        }
    }

    /// The fexit program (on the syscall's function).
    pub const fn fexit_program(self) -> &'static str {
        match self {
            Syscall::AddWatch => "add_watch_fexit",
            Syscall::RmWatch => "rm_watch_fexit",
            Syscall::Init1 => "init1_fexit",
            Syscall::Init => "init_fexit",
        }
    }

    /// The exit-only program (arguments read from the saved registers).
    pub const fn exit_program(self) -> &'static str {
        match self {
            Syscall::AddWatch => "add_watch_exit",
            Syscall::RmWatch => "rm_watch_exit",
            Syscall::Init1 => "init1_exit",
            Syscall::Init => "init_exit",
        }
    }

    /// The enter program of enter+exit mode; none for a syscall without
    /// arguments, whose exit-only program serves both modes.
    pub const fn enter_program(self) -> Option<&'static str> {
        match self {
            Syscall::AddWatch => Some("add_watch_enter"),
            Syscall::RmWatch => Some("rm_watch_enter"),
            Syscall::Init1 => Some("init1_enter"),
            Syscall::Init => None,
        }
    }

    /// The exit program of enter+exit mode.
    pub const fn exit_stashed_program(self) -> &'static str {
        match self {
            Syscall::AddWatch => "add_watch_exit_stashed",
            Syscall::RmWatch => "rm_watch_exit_stashed",
            Syscall::Init1 => "init1_exit_stashed",
            Syscall::Init => Syscall::Init.exit_program(),
        }
    }

    /// Whether a kernel may lack it (arm64 has no `inotify_init`).
    pub const fn optional(self) -> bool {
        matches!(self, Syscall::Init)
    }
}

/// The path was longer than [`PATH_CAPTURE_MAX`] bytes and was cut there.
pub const FLAG_PATH_TRUNCATED: u32 = 1 << 0;
/// The path could not be read from user memory (e.g. a bad pointer: the call
/// then returns EFAULT); `path_len` is 0.
pub const FLAG_PATH_UNREADABLE: u32 = 1 << 1;
/// The call's arguments were not known at syscall exit (only in enter+exit
/// mode, for a call that entered before the tracer attached): `fd`, `arg` and
/// the path are missing.
pub const FLAG_ARGS_MISSING: u32 = 1 << 2;
/// A [`Kind::Init`] record came from `inotify_init1` (so `arg` is its flags).
pub const FLAG_INIT1: u32 = 1 << 3;
/// The caller's credentials could not be read (the kernel's BTF did not say
/// where they are): `euid` and `user_ns` are 0, not the caller's. Also set
/// by userspace on records of the first layout ([`HEADER_SIZE_V1`]), which
/// had neither.
pub const FLAG_CRED_MISSING: u32 = 1 << 4;
/// The caller's cgroup id could not be read: `cgroup_id` is 0. Also set by
/// userspace on records of the first layout.
pub const FLAG_CGROUP_MISSING: u32 = 1 << 5;
/// The charge could not be read (the kernel's BTF did not say where it is,
/// a read failed, or a failed init whose caller's level cannot be found):
/// `charge_levels` is 0. Also set by userspace on records of the first two
/// layouts, which had no charge.
pub const FLAG_CHARGE_MISSING: u32 = 1 << 6;
/// The charge is the caller's own (user namespace, effective uid) level,
/// not an instance's: a failed `inotify_init`, which made no instance.
pub const FLAG_CHARGE_OF_CALLER: u32 = 1 << 7;
/// The levels were cut at [`MAX_CHARGE_LEVELS`]: the instance's user
/// namespace is nested deeper than that.
pub const FLAG_CHARGE_CUT: u32 = 1 << 8;

/// Levels of a charge carried at most: the instance's user namespace and
/// seven ancestors (the kernel allows 32 levels of nesting; a node's
/// containers use one or two).
pub const MAX_CHARGE_LEVELS: usize = 8;

/// One level of an inotify charge: what a (user namespace, uid) holds and
/// may hold, read from the kernel's own counters (`struct ucounts`) after
/// the call. The kernel raises each level in turn, innermost first, and
/// fails the call at the first level that is full.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct ChargeLevel {
    /// Inode number of the level's user namespace.
    pub user_ns: u32,
    /// The uid charged at this level, as the initial namespace sees it (at
    /// an ancestor level, the owner of the namespace below).
    pub uid: u32,
    pub watches: u32,
    pub instances: u32,
    /// The namespace's caps (`user.max_inotify_watches`, `..._instances`;
    /// in the initial namespace, the `fs.inotify.max_user_*` sysctls).
    pub max_watches: u32,
    pub max_instances: u32,
}

/// The longest span of a `struct ucounts` or a `struct user_namespace` the
/// programs read at once (the loader refuses a layout that needs more).
pub const CHARGE_SPAN_MAX: usize = 128;

/// Size of a [`ChargeLevel`] on the wire.
pub const CHARGE_LEVEL_SIZE: usize = 24;
const _: () = assert!(core::mem::size_of::<ChargeLevel>() == CHARGE_LEVEL_SIZE);

/// Path bytes captured at most. The kernel refuses paths of PATH_MAX (4096,
/// NUL included) or more with ENAMETOOLONG, so every path it accepts fits.
pub const PATH_CAPTURE_MAX: usize = 4096;
/// Size of the buffer the eBPF side reads the path into: one byte more than
/// the capture limit (to see that a path is longer) plus the NUL.
pub const PATH_READ_BUF: usize = PATH_CAPTURE_MAX + 2;

/// The fixed part of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// A [`Kind`], as its number.
    pub kind: u32,
    /// A set of `FLAG_*` values.
    pub flags: u32,
    /// `CLOCK_BOOTTIME` at syscall exit, in nanoseconds.
    pub time_ns: u64,
    /// Thread group id: what userspace calls the pid.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The caller's real uid as seen from the initial user namespace.
    pub uid: u32,
    /// The inotify fd the call used (`-1` for [`Kind::Init`]).
    pub fd: i32,
    /// The syscall's return value.
    pub ret: i64,
    /// `mask` for add_watch, `flags` for init1, `wd` for rm_watch.
    pub arg: u32,
    /// Number of path bytes following this header.
    pub path_len: u32,
    /// The thread's comm, NUL-padded (the kernel keeps 15 bytes).
    pub comm: [u8; 16],
    // Appended in the second layout (80 bytes): who the kernel charges.
    /// The caller's effective uid as seen from the initial user namespace:
    /// the uid an instance it creates is charged to.
    pub euid: u32,
    /// Inode number of the caller's user namespace (`/proc/PID/ns/user`):
    /// the scope whose `user.max_inotify_*` caps apply first.
    pub user_ns: u32,
    /// The caller's cgroup v2 id: the inode number of its directory in the
    /// cgroup2 mount.
    pub cgroup_id: u64,
    // Appended in the third layout (88 bytes): the charge.
    /// How many [`ChargeLevel`]s follow the header (before the path).
    pub charge_levels: u32,
    /// Always 0 (keeps the header a multiple of 8 bytes).
    pub reserved: u32,
}

/// Size of [`EventHeader`] on the wire.
pub const HEADER_SIZE: usize = 88;
/// Size of the second layout's header, which ended at `cgroup_id`:
/// recordings made before the charge was appended hold it.
pub const HEADER_SIZE_V2: usize = 80;
/// Size of the first layout's header, which ended at `comm`: recordings
/// made before `euid`, `user_ns` and `cgroup_id` were appended hold it.
pub const HEADER_SIZE_V1: usize = 64;
const _: () = assert!(core::mem::size_of::<EventHeader>() == HEADER_SIZE);
/// The largest record the eBPF side can emit.
pub const RECORD_MAX: usize =
    HEADER_SIZE + MAX_CHARGE_LEVELS * CHARGE_LEVEL_SIZE + PATH_CAPTURE_MAX;

/// Settings the loader writes into the eBPF object's read-only data before
/// loading it. Being constant at load time, the verifier prunes the branches
/// of filters that are off, so they cost nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The tracer's own pid: its calls are never reported.
    pub tracer_pid: u32,
    /// Non-zero: only pids present in the `PIDS` map pass.
    pub filter_pids: u32,
    /// Non-zero: only comms present in the `COMMS` map pass.
    pub filter_comms: u32,
    /// Non-zero: only calls that returned an error pass.
    pub failed_only: u32,
    /// Each CPU wakes the reader once it has put this many bytes in the
    /// ring since it last did; until then the reader picks records up on
    /// its poll timer.
    pub wakeup_threshold: u64,
    /// Non-zero: only processes in the `FOLLOW` map pass (a command started
    /// by the tracer and everything it forks).
    pub follow: u32,
    /// Offset of `child_pid` in the `sched/sched_process_fork` record, read
    /// from its format file: the layout changed across kernel versions.
    pub fork_child_pid_offset: u32,
    /// Where the caller's identity is in the kernel's `task_struct`.
    pub task: TaskLayout,
    /// Non-zero: records carry the caller's effective uid, user namespace
    /// and cgroup id (always, but for the benchmark that measures what
    /// reading them costs).
    pub attribution: u32,
    /// Non-zero: only callers whose cgroup id is in the `CGROUPS` map pass
    /// (`--cgroup`: a cgroup and its descendants at start).
    pub filter_cgroups: u32,
    /// Non-zero: the fexit programs read the syscall's `pt_regs` pointer, the
    /// registers and the caller's credentials with `bpf_probe_read_kernel`
    /// and the caller's ids with helpers, for kernels that take no BTF-typed
    /// loads there (5.10: no `bpf_get_current_task_btf`, and its BTF
    /// declares that argument's `pt_regs` only forward: "arg0 type FWD is
    /// not a struct").
    pub fexit_by_probe: u32,
    /// Keeps the structure free of padding (below); always 0.
    pub reserved: u32,
    /// Where the inotify charge is, from a call's fd to the kernel's
    /// counters.
    pub charge: ChargeLayout,
}

/// Byte offsets (and widths) the programs follow from an inotify fd to the
/// charge of its instance, found by the loader in the kernel's BTF:
/// `task->files->fdt->fd[fd]` is the file, its `private_data` the
/// `fsnotify_group`, whose `inotify_data.ucounts` is the charged (user
/// namespace, uid) level; from a level, `ns` is its namespace, whose
/// `ucount_max[]` are the caps and whose `ucounts` is the level above.
/// `known == 0`: records carry no charge ([`FLAG_CHARGE_MISSING`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChargeLayout {
    /// Non-zero when the offsets below are valid.
    pub known: u32,
    /// `task_struct.files`.
    pub task_files: u32,
    /// `files_struct.fdt`.
    pub files_fdt: u32,
    /// `fdtable.max_fds` (an fd at or above it is no file).
    pub fdt_max_fds: u32,
    /// `fdtable.fd` (an array of `struct file *`).
    pub fdt_fd: u32,
    /// `file.private_data` (for an inotify file, its `fsnotify_group`).
    pub file_private_data: u32,
    /// `fsnotify_group.inotify_data.ucounts`.
    pub group_ucounts: u32,
    /// `ucounts.ns`.
    pub ucounts_ns: u32,
    /// `ucounts.uid`.
    pub ucounts_uid: u32,
    /// `ucounts.ucount[UCOUNT_INOTIFY_INSTANCES]`.
    pub ucounts_instances: u32,
    /// `ucounts.ucount[UCOUNT_INOTIFY_WATCHES]`.
    pub ucounts_watches: u32,
    /// The width of those counters: 4 (`atomic_t`, before 5.14) or 8
    /// (`atomic_long_t`).
    pub counter_width: u32,
    /// `user_namespace.ucounts`: the level above (NULL in the initial
    /// namespace).
    pub ns_ucounts: u32,
    /// `user_namespace.ucount_max[UCOUNT_INOTIFY_INSTANCES]`.
    pub ns_max_instances: u32,
    /// `user_namespace.ucount_max[UCOUNT_INOTIFY_WATCHES]`.
    pub ns_max_watches: u32,
    /// The width of the caps: 4 (`int`, before 5.14) or 8 (`long`).
    pub max_width: u32,
    /// `user_namespace.ns.inum`: a level's namespace's inode number.
    pub ns_inum: u32,
    /// `task_struct.cred`, `cred.uid`, `cred.euid`: for a failed init, whose
    /// level is the caller's own when its real and effective uids agree.
    pub task_cred: u32,
    pub cred_uid: u32,
    pub cred_euid: u32,
    /// `cred.ucounts` (the caller's own level, for a failed init), 0 where
    /// `struct cred` has none (before 5.14).
    pub cred_ucounts: u32,
    /// Always 0.
    pub reserved: u32,
}

impl ChargeLayout {
    /// No offset known: records carry no charge.
    pub const UNKNOWN: ChargeLayout = ChargeLayout {
        known: 0,
        task_files: 0,
        files_fdt: 0,
        fdt_max_fds: 0,
        fdt_fd: 0,
        file_private_data: 0,
        group_ucounts: 0,
        ucounts_ns: 0,
        ucounts_uid: 0,
        ucounts_instances: 0,
        ucounts_watches: 0,
        counter_width: 0,
        ns_ucounts: 0,
        ns_max_instances: 0,
        ns_max_watches: 0,
        max_width: 0,
        ns_inum: 0,
        task_cred: 0,
        cred_uid: 0,
        cred_euid: 0,
        cred_ucounts: 0,
        reserved: 0,
    };
}

/// Byte offsets in the running kernel's structures, found by the loader in
/// the kernel's BTF: the exit-only programs read the caller's pid, tid, comm,
/// uids, user namespace and cgroup from its `task_struct` with a few loads
/// instead of helper calls; the other programs read the credentials with
/// `bpf_probe_read_kernel` at the same offsets. `known == 0`: the programs
/// use the helpers, and records lack the credentials.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    /// Non-zero when the offsets below are valid.
    pub known: u32,
    /// `task_struct.pid` (the thread id).
    pub pid: u32,
    /// `task_struct.tgid` (what userspace calls the pid).
    pub tgid: u32,
    /// `task_struct.comm` (`char[16]`).
    pub comm: u32,
    /// `task_struct.cred` (the credentials the task acts with).
    pub cred: u32,
    /// `cred.uid`, as the kernel stores it: the initial namespace's view.
    pub cred_uid: u32,
    /// `cred.euid`, likewise.
    pub cred_euid: u32,
    /// `cred.user_ns` (a `struct user_namespace *`).
    pub cred_user_ns: u32,
    /// `user_namespace.ns.inum`: the namespace's inode number.
    pub user_ns_inum: u32,
    /// Non-zero when the cgroup offsets below are valid (they changed more
    /// across kernels than the rest: `kernfs_node.id` is a u64 since 5.5).
    pub cgroup_known: u32,
    /// `task_struct.cgroups` (a `struct css_set *`).
    pub cgroups: u32,
    /// `css_set.dfl_cgrp`: the task's cgroup on the v2 hierarchy.
    pub dfl_cgrp: u32,
    /// `cgroup.kn`, its kernfs node.
    pub cgroup_kn: u32,
    /// `kernfs_node.id`: the cgroup id (its directory's inode number).
    pub kernfs_id: u32,
}

impl TaskLayout {
    /// No offset known: the programs use the helpers (and mark what only
    /// the offsets could give as missing).
    pub const UNKNOWN: TaskLayout = TaskLayout {
        known: 0,
        pid: 0,
        tgid: 0,
        comm: 0,
        cred: 0,
        cred_uid: 0,
        cred_euid: 0,
        cred_user_ns: 0,
        user_ns_inum: 0,
        cgroup_known: 0,
        cgroups: 0,
        dfl_cgrp: 0,
        cgroup_kn: 0,
        kernfs_id: 0,
    };
}

// No padding anywhere in Config: every byte the loader writes is a field.
const _: () = assert!(core::mem::size_of::<Config>() == 104 + 88);

/// Name of the global holding the [`Config`].
pub const CONFIG_GLOBAL: &str = "CONFIG";
/// Ring buffer of records.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU count of records that did not fit in the ring buffer.
pub const MAP_LOST: &str = "LOST";
/// Pids (tgids) to trace when `filter_pids` is set; value unused.
pub const MAP_PIDS: &str = "PIDS";
/// Comms (NUL-padded to 16 bytes) to trace when `filter_comms` is set.
pub const MAP_COMMS: &str = "COMMS";
/// Processes (and threads) descending from a traced command.
pub const MAP_FOLLOW: &str = "FOLLOW";
/// Entries the pid and comm filter maps can hold.
pub const FILTER_CAPACITY: u32 = 1024;
/// Cgroup ids (`--cgroup`, with descendants) to trace when `filter_cgroups`
/// is set; value unused.
pub const MAP_CGROUPS: &str = "CGROUPS";
/// Entries the cgroup filter map can hold: a node's whole kubepods tree.
pub const CGROUP_FILTER_CAPACITY: u32 = 16384;
/// Tasks the follow map can hold at once (entries go when a task exits).
pub const FOLLOW_CAPACITY: u32 = 65536;

/// The settings of the kept counts (`KEPT_CONFIG_GLOBAL`): the agent's
/// per-instance watch counts kept up to date by the kernel's own events
/// (`inotify-trace-ebpf/src/kept.rs`), so that a snapshot reads a map, not
/// every watch's fdinfo line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeptConfig {
    /// The agent's pid and the fd of an inotify instance it opened for the
    /// programs to learn what an inotify file and group look like (their
    /// `f_op` and `ops`), without reading kernel symbols.
    pub learn_tgid: u32,
    pub learn_fd: u32,
    /// `task_struct.tgid`.
    pub task_tgid: u32,
    /// `file.f_op`.
    pub file_f_op: u32,
    /// `file.private_data` (an inotify file's `fsnotify_group`).
    pub file_private_data: u32,
    /// `fsnotify_mark.group`.
    pub mark_group: u32,
    /// `fsnotify_group.ops`.
    pub group_ops: u32,
    /// How many parameters `fsnotify_add_mark_locked` has (5 before 5.17's
    /// rework, 4 after): which of two programs the agent attaches (the
    /// return value follows the parameters in the fexit context).
    pub add_mark_params: u32,
}

/// Name of the global holding the [`KeptConfig`].
pub const KEPT_CONFIG_GLOBAL: &str = "KEPT_CONFIG";
/// Per inotify group (its kernel address): watches added and removed since
/// the programs were attached.
pub const MAP_KEPT_WATCHES: &str = "KEPT_WATCHES";
/// Groups released since the agent last looked (their address may be
/// reused by a new instance).
pub const MAP_KEPT_FREED: &str = "KEPT_FREED";
/// What the programs learned from the agent's own instance: `[f_op, ops]`.
pub const MAP_KEPT_LEARNED: &str = "KEPT_LEARNED";
/// Instances the kept counts follow at once.
pub const KEPT_CAPACITY: u32 = 65536;
/// Releases noted between two snapshots (past it the oldest are forgotten,
/// and a reconciliation finds what that cost).
pub const KEPT_FREED_CAPACITY: u32 = 16384;

/// Watches added to and removed from one group since attach; both only
/// grow (an atomic add each, which every kernel's BPF has).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeptWatches {
    pub added: u64,
    pub removed: u64,
}

/// One inotify fd, as the kept counts' task_file iterator writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeptFd {
    pub tgid: u32,
    pub fd: u32,
    /// The instance's `fsnotify_group` (a kernel address: the identity of
    /// the instance, never shown).
    pub group: u64,
}

/// Size of [`KeptFd`] in the iterator's output.
pub const KEPT_FD_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<KeptFd>() == KEPT_FD_SIZE);
const _: () = assert!(core::mem::size_of::<KeptConfig>() == 32);

/// A comm as the kernel stores it: at most 15 bytes, NUL-padded to 16.
pub type Comm = [u8; 16];

/// Builds the kernel's form of a comm from a name, keeping its first 15 bytes
/// as the kernel does (`TASK_COMM_LEN` is 16 with the NUL).
pub fn comm_key(name: &[u8]) -> Comm {
    let mut key = [0u8; 16];
    let len = if name.len() < 15 { name.len() } else { 15 };
    let mut i = 0;
    while i < len {
        key[i] = name[i];
        i += 1;
    }
    key
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain old data: repr(C), integer fields only, no padding bytes
    // (the size assertion above pins the layout).
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above (u32 and u64 fields, sizes asserted).
    unsafe impl aya::Pod for super::KeptConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KeptWatches {}
}
