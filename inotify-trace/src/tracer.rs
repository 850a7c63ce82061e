//! Loading the eBPF object, configuring its filters and attaching its
//! programs: the only stage that needs root.
use std::fmt;

use anyhow::{Context as _, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{FExit, TracePoint},
    Ebpf, EbpfLoader,
};
use aya_log::EbpfLogger;
use inotify_trace_common::{
    Comm, Config, Syscall, TaskLayout, CONFIG_GLOBAL, MAP_CGROUPS, MAP_COMMS, MAP_EVENTS,
    MAP_FOLLOW, MAP_LOST, MAP_PIDS,
};

use crate::{kernel_btf, preflight, selection::Selection};

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/inotify-trace"));

/// How the programs hook into the syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// The first the kernel allows of fexit, the exit tracepoint alone, and
    /// enter+exit.
    Auto,
    /// fexit programs (BPF trampolines) on the syscalls' functions: no other
    /// syscall of the node pays (kernel 5.5+ with BTF; not where the kernel
    /// forbids trampolines, e.g. when locked down).
    Fexit,
    /// The first the kernel allows of the exit tracepoint alone and
    /// enter+exit: `auto` without fexit.
    Tracepoint,
    /// The exit tracepoint alone, arguments read from the saved registers
    /// (kernel 5.15+, x86_64 and arm64).
    Exit,
    /// Enter and exit tracepoints with a per-thread map (any kernel).
    EnterExit,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Auto => "auto",
            AttachMode::Fexit => "fexit",
            AttachMode::Tracepoint => "tracepoint",
            AttachMode::Exit => "exit tracepoint alone",
            AttachMode::EnterExit => "enter+exit tracepoints",
        })
    }
}

/// How the kernel side traces (what it traces is a [`Selection`]).
pub struct TracerOptions {
    pub ring_size: u32,
    pub attach: AttachMode,
    /// Trace only the tracer's descendants (a command it starts), followed
    /// across forks in the kernel.
    pub follow: bool,
    /// Forward the eBPF programs' aya-log messages to the `log` crate.
    pub kernel_logs: bool,
    /// Records carry the caller's euid, user namespace and cgroup id (off
    /// only for the benchmark's measure of what they cost).
    pub attribution: bool,
}

/// Loaded and attached programs; dropping it detaches them.
pub struct Tracer {
    ebpf: Ebpf,
    kernel_logs: Option<EbpfLogger<&'static dyn log::Log>>,
    /// The mode actually in use (never `Auto`).
    pub mode: AttachMode,
    /// How the programs learn who the caller is.
    pub caller_source: CallerSource,
    pub tracefs_mounted: bool,
    /// Why `auto` did not use fexit (said with `--verbose`).
    pub fexit_refused: Option<String>,
}

/// Where the programs read the caller's pid, tid, comm and uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerSource {
    /// Plain loads from the task_struct, at offsets from the kernel's BTF
    /// (exit-only mode): the cheapest.
    TaskStruct,
    /// The kernel's helper calls, and why.
    Helpers(String),
}

impl fmt::Display for CallerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerSource::TaskStruct => {
                f.write_str("from task_struct (offsets from the kernel's BTF)")
            }
            CallerSource::Helpers(why) => write!(f, "with helper calls ({why})"),
        }
    }
}

/// The programs that follow a traced command's descendants, and their
/// `sched` tracepoints.
const FOLLOW_PROGRAMS: [(&str, &str); 2] = [
    ("process_exit", "sched_process_exit"),
    ("process_fork", "sched_process_fork"),
];

/// Whether the exit-only programs can read a call's arguments on the
/// architecture this is built for (as the eBPF crate's `REGS_AT_EXIT`).
const REGS_AT_EXIT_ARCH: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The syscalls whose programs are attached (the common crate's table
/// names each one's programs).
const HOOKS: [Syscall; 4] = Syscall::ALL;

/// Where a syscall's programs attach.
trait Hook: Copy {
    fn exit_tracepoint(self) -> String;
    fn enter_tracepoint(self) -> String;
    /// Whether this kernel has it (an optional one may be missing).
    fn present(self) -> bool;
}

impl Hook for Syscall {
    fn exit_tracepoint(self) -> String {
        format!("sys_exit_{}", self.name())
    }

    fn enter_tracepoint(self) -> String {
        format!("sys_enter_{}", self.name())
    }

    fn present(self) -> bool {
        !self.optional() || preflight::tracepoint_exists("syscalls", &self.exit_tracepoint())
    }
}

impl Tracer {
    pub fn start(options: &TracerOptions, selection: &Selection) -> Result<Tracer> {
        preflight::check_privileges()?;
        preflight::check_bpf()?;
        let tracefs_mounted = preflight::ensure_tracefs()?;
        let tracepoints: Vec<String> = HOOKS
            .iter()
            .filter(|h| !h.optional())
            .flat_map(|h| [h.exit_tracepoint(), h.enter_tracepoint()])
            .collect();
        preflight::check_tracepoints("syscalls", &tracepoints)?;
        let fork_child_pid_offset = match options.follow {
            true => fork_child_pid_offset()?,
            false => 0,
        };
        raise_memlock_limit();
        keep_large_buffers_returnable();

        let (task, mut caller_source) = match kernel_btf::running_kernel_task_layout() {
            Ok(layout) => (layout, CallerSource::TaskStruct),
            Err(e) => (
                TaskLayout::default(),
                CallerSource::Helpers(format!("no task_struct layout in the kernel's BTF: {e:#}")),
            ),
        };
        let config = Config {
            tracer_pid: std::process::id(),
            filter_pids: u32::from(!selection.pids.is_empty()),
            filter_comms: u32::from(!selection.comms.is_empty()),
            failed_only: u32::from(selection.failed_only),
            wakeup_threshold: wakeup_threshold(options.ring_size),
            follow: u32::from(options.follow),
            fork_child_pid_offset,
            task,
            // The cgroup filter needs the cgroup id read.
            attribution: u32::from(options.attribution || !selection.cgroups.is_empty()),
            filter_cgroups: u32::from(!selection.cgroups.is_empty()),
            ..Config::default()
        };
        let mut fexit_refused = None;
        if matches!(options.attach, AttachMode::Auto | AttachMode::Fexit) {
            match fexit_object(&config, options, selection) {
                Ok((ebpf, helpers)) => {
                    return Tracer::finish(
                        ebpf,
                        options,
                        helpers.unwrap_or(caller_source),
                        tracefs_mounted,
                        AttachMode::Fexit,
                        None,
                    )
                }
                Err(e) if options.attach == AttachMode::Fexit => return Err(e),
                Err(e) => fexit_refused = Some(format!("{e:#}")),
            }
        }
        // A fresh object: nothing of a failed fexit attempt stays loaded or
        // attached.
        let mut ebpf = load_object(&config, options)?;
        fill_filters(&mut ebpf, selection)?;
        if options.attach != AttachMode::EnterExit
            && config.task.known != 0
            && !exit_programs_load(&mut ebpf)
        {
            // A kernel whose verifier refuses the task_struct loads may still
            // take the exit-only programs with helpers: try that before
            // falling back to enter+exit.
            let helpers_only = Config {
                task: TaskLayout::default(),
                ..config
            };
            let mut with_helpers = load_object(&helpers_only, options)?;
            fill_filters(&mut with_helpers, selection)?;
            if exit_programs_load(&mut with_helpers) {
                caller_source =
                    CallerSource::Helpers("the kernel refused the task_struct reads".to_owned());
                ebpf = with_helpers;
            }
            // Otherwise it was not the task reads: this kernel has no
            // exit-only mode at all (no bpf_task_pt_regs before 5.15). The
            // object loaded with the layout stays: the enter+exit programs'
            // probe reads of the credentials (euid, user namespace) use its
            // offsets.
        }
        let mode = attach(&mut ebpf, options.attach)?;
        if mode == AttachMode::EnterExit {
            // The enter+exit programs always use the helpers.
            caller_source = CallerSource::Helpers("enter+exit mode".to_owned());
        }
        Tracer::finish(
            ebpf,
            options,
            caller_source,
            tracefs_mounted,
            mode,
            fexit_refused,
        )
    }

    /// Starts the logs and the fork following of an object whose filters
    /// are filled and whose syscall programs are attached.
    fn finish(
        mut ebpf: Ebpf,
        options: &TracerOptions,
        caller_source: CallerSource,
        tracefs_mounted: bool,
        mode: AttachMode,
        fexit_refused: Option<String>,
    ) -> Result<Tracer> {
        let kernel_logs = match options.kernel_logs {
            true => Some(EbpfLogger::init(&mut ebpf).context("reading the eBPF programs' logs")?),
            false => None,
        };
        if options.follow {
            follow_own_children(&mut ebpf)?;
        }
        Ok(Tracer {
            ebpf,
            kernel_logs,
            mode,
            caller_source,
            tracefs_mounted,
            fexit_refused,
        })
    }

    /// Passes on what the eBPF programs logged (with `--verbose`).
    pub fn flush_kernel_logs(&mut self) {
        if let Some(logger) = &mut self.kernel_logs {
            logger.flush();
        }
    }

    /// The ring buffer the programs write records to.
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let map = self.ebpf.take_map(MAP_EVENTS).context("no EVENTS map")?;
        Ok(RingBuf::try_from(map)?)
    }

    /// The per-CPU count of records that did not fit in the ring.
    pub fn take_lost_counter(&mut self) -> Result<PerCpuArray<MapData, u64>> {
        let map = self.ebpf.take_map(MAP_LOST).context("no LOST map")?;
        Ok(PerCpuArray::try_from(map)?)
    }
}

/// Each CPU wakes the reader once it has sent this many bytes since it last
/// did: a sixteenth of the ring, shared between the CPUs, so that all of
/// them together cannot fill the rest before the reader drains it.
fn wakeup_threshold(ring_size: u32) -> u64 {
    let cpus = aya::util::online_cpus().map_or(1, |cpus| cpus.len().max(1)) as u64;
    (u64::from(ring_size) / 16 / cpus).max(1)
}

/// Loads the eBPF object with this configuration (programs not yet).
fn load_object(config: &Config, options: &TracerOptions) -> Result<Ebpf> {
    // With kernel logs off, level 0 turns every aya-log statement into code
    // the verifier prunes.
    let log_level: u8 = if options.kernel_logs {
        aya_log::Level::Debug as u8
    } else {
        0
    };
    EbpfLoader::new()
        .override_global(CONFIG_GLOBAL, config, true)
        .override_global(aya_log::LEVEL, &log_level, false)
        .map_max_entries(MAP_EVENTS, options.ring_size)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object failed")
}

/// Whether every present syscall's exit-only program loads.
fn exit_programs_load(ebpf: &mut Ebpf) -> bool {
    HOOKS
        .iter()
        .filter(|h| h.present())
        .all(|h| load(ebpf, h.exit_program()).is_ok())
}

fn fill_filters(ebpf: &mut Ebpf, selection: &Selection) -> Result<()> {
    let mut pids: HashMap<_, u32, u8> =
        HashMap::try_from(ebpf.map_mut(MAP_PIDS).context("no PIDS map")?)?;
    for pid in &selection.pids {
        pids.insert(pid, 1, 0).context("filling the pid filter")?;
    }
    let mut comms: HashMap<_, Comm, u8> =
        HashMap::try_from(ebpf.map_mut(MAP_COMMS).context("no COMMS map")?)?;
    for comm in selection.comm_keys() {
        comms
            .insert(comm, 1, 0)
            .context("filling the comm filter")?;
    }
    if !selection.cgroups.is_empty() {
        let mut cgroups: HashMap<_, u64, u8> =
            HashMap::try_from(ebpf.map_mut(MAP_CGROUPS).context("no CGROUPS map")?)?;
        for id in cgroup_ids(&selection.cgroups)? {
            cgroups
                .insert(id, 1, 0)
                .context("filling the cgroup filter (more than 16384 cgroups?)")?;
        }
    }
    Ok(())
}

/// The ids of the `--cgroup`s and of every cgroup below them now: the
/// inode numbers of their directories in the cgroup2 mount.
fn cgroup_ids(paths: &[String]) -> Result<Vec<u64>> {
    use std::os::unix::fs::MetadataExt;
    let mut ids = Vec::new();
    for path in paths {
        let mut pending = vec![crate::pods::cgroupfs::selected_dir(path)?];
        while let Some(dir) = pending.pop() {
            // A cgroup removed while walking is simply not there.
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            ids.push(meta.ino());
            for entry in std::fs::read_dir(&dir)?.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
    }
    Ok(ids)
}

/// The prefix of the syscalls' functions on this architecture (the
/// functions fexit programs hook: `__x64_sys_inotify_add_watch`, ...).
const SYSCALL_FUNCTION_PREFIX: Option<&str> = if cfg!(target_arch = "x86_64") {
    Some("__x64_sys_")
} else if cfg!(target_arch = "aarch64") {
    Some("__arm64_sys_")
} else {
    None
};

/// An object with its filters filled and its fexit programs attached, with
/// the caller's identity read from the task_struct, or (`Some` source) with
/// helpers where the kernel does not take those reads in fexit programs
/// (before 5.11 there is no `bpf_get_current_task_btf`); else why fexit is
/// not possible here.
fn fexit_object(
    config: &Config,
    options: &TracerOptions,
    selection: &Selection,
) -> Result<(Ebpf, Option<CallerSource>)> {
    let attempt = |config: &Config| -> Result<Ebpf> {
        let mut ebpf = load_object(config, options)?;
        fill_filters(&mut ebpf, selection)?;
        attach_fexit(&mut ebpf)?;
        Ok(ebpf)
    };
    let first = match attempt(config) {
        Ok(ebpf) => return Ok((ebpf, None)),
        // EPERM (trampolines locked away, as on this machine kind) is the
        // same for every variant; the verifier's EACCES or an unknown
        // helper's EINVAL may not be.
        Err(e)
            if e.downcast_ref::<Refused>()
                .is_some_and(|r| r.errno == nix::errno::Errno::EPERM) =>
        {
            return Err(e)
        }
        Err(e) => e,
    };
    // Older kernels refuse what newer ones take (5.10: no
    // bpf_get_current_task_btf, and its BTF declares the argument's pt_regs
    // only forward): probe reads there.
    let by_probe = Config {
        fexit_by_probe: 1,
        ..*config
    };
    if let Ok(ebpf) = attempt(&by_probe) {
        let why = "the kernel takes no BTF-typed loads in fexit programs";
        return Ok((ebpf, Some(CallerSource::Helpers(why.to_owned()))));
    }
    Err(first)
}

/// Loads and attaches the fexit program of every syscall this kernel has;
/// the error says why not (the kernel's errno where it refused).
fn attach_fexit(ebpf: &mut Ebpf) -> Result<()> {
    let prefix = SYSCALL_FUNCTION_PREFIX
        .context("fexit is not built for this architecture (only x86_64 and arm64)")?;
    let btf = aya::Btf::from_sys_fs()
        .context("fexit needs the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
    for hook in HOOKS.into_iter().filter(|h| h.present()) {
        let name = hook.fexit_program();
        let function = format!("{prefix}{}", hook.name());
        let program: &mut FExit = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name} in the eBPF object"))?
            .try_into()?;
        program
            .load(&function, &btf)
            .map_err(|e| refused("fexit", &function, e))?;
        program
            .attach()
            .map_err(|e| refused("fexit", &function, e))?;
    }
    Ok(())
}

/// The kernel refused to load or attach a program: which kind, on which
/// function, with which errno, and the verifier's reason where it gave one.
/// Typed, so that a caller tells EPERM (trampolines locked away) from the
/// verifier's refusals by the errno itself, not by the message's words.
#[derive(Debug, thiserror::Error)]
#[error("{what} refused by the kernel ({errno:?}) on {function}{}", verifier_text(.verifier))]
pub struct Refused {
    what: &'static str,
    function: String,
    pub errno: nix::errno::Errno,
    verifier: Option<String>,
}

fn verifier_text(verifier: &Option<String>) -> String {
    verifier
        .as_ref()
        .map_or_else(String::new, |why| format!(": the verifier says {why:?}"))
}

/// A [`Refused`] for a refusal with an errno, else what went wrong, naming
/// the function.
fn refused(what: &'static str, function: &str, e: aya::programs::ProgramError) -> anyhow::Error {
    use aya::programs::ProgramError;
    let (errno, verifier) = match &e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => (
            io_error.raw_os_error(),
            verifier_reason(&verifier_log.to_string()),
        ),
        ProgramError::SyscallError(e) => (e.io_error.raw_os_error(), None),
        _ => (None, None),
    };
    match errno {
        Some(errno) => anyhow::Error::new(Refused {
            what,
            function: function.to_owned(),
            errno: nix::errno::Errno::from_raw(errno),
            verifier,
        }),
        None => anyhow::Error::new(e).context(format!("{what} on {function}")),
    }
}

/// The verifier's reason for a refusal: the last two lines of its log that
/// are not its closing statistics (the second often says why the last
/// failed), at most 300 characters.
fn verifier_reason(log: &str) -> Option<String> {
    let reason: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
        })
        .collect();
    let last_two = &reason[reason.len().saturating_sub(2)..];
    (!last_two.is_empty()).then(|| last_two.join(" / ").chars().take(300).collect())
}

fn attach(ebpf: &mut Ebpf, wanted: AttachMode) -> Result<AttachMode> {
    let hooks: Vec<Syscall> = HOOKS.into_iter().filter(|h| h.present()).collect();
    let exit_alone = match wanted {
        AttachMode::EnterExit => false,
        AttachMode::Fexit => unreachable!("fexit is attached by attach_fexit"),
        AttachMode::Exit if !REGS_AT_EXIT_ARCH => anyhow::bail!(
            "--attach exit reads a call's arguments from saved registers, which this build does \
             only on x86_64 and arm64: use --attach enter-exit"
        ),
        AttachMode::Exit => true,
        // Kernels before 5.15 (no bpf_task_pt_regs) refuse the exit-only
        // programs at load time; on other architectures than these two the
        // programs cannot read the arguments (syscall_args.rs in the eBPF
        // crate) and would load but report nothing.
        AttachMode::Auto | AttachMode::Tracepoint => REGS_AT_EXIT_ARCH && exit_programs_load(ebpf),
    };
    for hook in hooks {
        if exit_alone {
            load(ebpf, hook.exit_program()).with_context(|| {
                format!(
                    "the exit-only program {} did not load; try --attach enter-exit",
                    hook.exit_program()
                )
            })?;
            attach_one(
                ebpf,
                hook.exit_program(),
                "syscalls",
                &hook.exit_tracepoint(),
            )?;
            continue;
        }
        load(ebpf, hook.exit_stashed_program())?;
        // Exit first: an enter whose exit is not yet attached would leave a
        // stash entry behind.
        attach_one(
            ebpf,
            hook.exit_stashed_program(),
            "syscalls",
            &hook.exit_tracepoint(),
        )?;
        if let Some(enter) = hook.enter_program() {
            load(ebpf, enter)?;
            attach_one(ebpf, enter, "syscalls", &hook.enter_tracepoint())?;
        }
    }
    Ok(if exit_alone {
        AttachMode::Exit
    } else {
        AttachMode::EnterExit
    })
}

/// Follows the tracer's own descendants: the tracer is the first member of
/// `FOLLOW` (its own calls are excluded by pid), and the fork program adds
/// every task a member forks, so the command it starts next is followed from
/// its first instruction.
fn follow_own_children(ebpf: &mut Ebpf) -> Result<()> {
    for (program, tracepoint) in FOLLOW_PROGRAMS {
        load(ebpf, program)?;
        attach_one(ebpf, program, "sched", tracepoint)?;
    }
    let mut follow: HashMap<_, u32, u8> =
        HashMap::try_from(ebpf.map_mut(MAP_FOLLOW).context("no FOLLOW map")?)?;
    follow
        .insert(std::process::id(), 1, 0)
        .context("adding the tracer to the follow map")?;
    Ok(())
}

/// Where `child_pid` is in a `sched_process_fork` record on this kernel.
fn fork_child_pid_offset() -> Result<u32> {
    let path = format!(
        "{}/events/sched/sched_process_fork/format",
        preflight::TRACEFS
    );
    let format = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (following a command needs it)"))?;
    field_offset(&format, "child_pid").with_context(|| format!("no child_pid field in {path}"))
}

/// The `offset:` of a field in a tracepoint format file.
fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';');
        let declaration = parts.next()?.strip_prefix("field:")?;
        if declaration.split_whitespace().last()? != field {
            return None;
        }
        parts.find_map(|p| p.trim().strip_prefix("offset:")?.parse().ok())
    })
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut TracePoint> {
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?;
    Ok(program.try_into()?)
}

/// Loads a program unless it already is.
fn load(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    let program = program(ebpf, name)?;
    if program.fd().is_ok() {
        return Ok(());
    }
    program
        .load()
        .with_context(|| format!("the kernel refused the eBPF program {name}"))
}

fn attach_one(ebpf: &mut Ebpf, name: &str, category: &str, tracepoint: &str) -> Result<()> {
    program(ebpf, name)?
        .attach(category, tracepoint)
        .with_context(|| format!("attaching {name} to {category}/{tracepoint}"))?;
    Ok(())
}

/// Loading reads the kernel's BTF twice, 5+ MB each time (ours for the
/// task_struct offsets, aya's for relocations). Once the first such buffer
/// is freed, glibc raises its mmap threshold to that size, so the second
/// lands in the heap and, with the trim threshold raised too, stays in the
/// tracer's RSS for the whole session (~11 MB here). A fixed threshold
/// keeps big buffers in their own mappings, returned when freed.
fn keep_large_buffers_returnable() {
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
fn raise_memlock_limit() {
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

#[cfg(test)]
mod tests {
    use super::{field_offset, EBPF_OBJECT, FOLLOW_PROGRAMS, HOOKS};

    /// A program renamed on one side only fails here, not for a user.
    #[test]
    fn every_program_the_loader_attaches_is_in_the_embedded_object() {
        let object = aya_obj::Object::parse(EBPF_OBJECT).expect("the embedded eBPF object parses");
        let wanted = HOOKS
            .iter()
            .flat_map(|h| {
                [
                    Some(h.fexit_program()),
                    Some(h.exit_program()),
                    h.enter_program(),
                    Some(h.exit_stashed_program()),
                ]
            })
            .flatten()
            .chain(FOLLOW_PROGRAMS.map(|(program, _)| program));
        for name in wanted {
            assert!(
                object.programs.contains_key(name),
                "the loader attaches {name}, which the eBPF object lacks; it has {:?}",
                object.programs.keys().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn finds_child_pid_in_old_and_new_fork_formats() {
        // Kernels before 6.10 embed the comms; later ones use __data_loc.
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;";
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;";
        assert_eq!(field_offset(old, "child_pid"), Some(44));
        assert_eq!(field_offset(new, "child_pid"), Some(20));
        assert_eq!(field_offset(new, "parent_pid"), Some(12));
        assert_eq!(field_offset(new, "pid"), None);
    }

    /// A refusal reads as it always did, and the caller finds its errno
    /// through any context added on the way up.
    #[test]
    fn a_refusal_keeps_its_words_and_its_errno_through_context() {
        use anyhow::Context as _;
        let refusal = super::Refused {
            what: "fexit",
            function: "__x64_sys_inotify_add_watch".to_owned(),
            errno: nix::errno::Errno::EPERM,
            verifier: None,
        };
        assert_eq!(
            refusal.to_string(),
            "fexit refused by the kernel (EPERM) on __x64_sys_inotify_add_watch"
        );
        let wrapped = Err::<(), _>(anyhow::Error::new(refusal))
            .context("attaching")
            .unwrap_err();
        assert_eq!(
            wrapped.downcast_ref::<super::Refused>().map(|r| r.errno),
            Some(nix::errno::Errno::EPERM)
        );
        let verifier = super::Refused {
            what: "fexit",
            function: "f".to_owned(),
            errno: nix::errno::Errno::EACCES,
            verifier: Some("R1 invalid mem access".to_owned()),
        };
        assert_eq!(
            verifier.to_string(),
            "fexit refused by the kernel (EACCES) on f: the verifier says \"R1 invalid mem access\""
        );
    }
}
