//! Loading the eBPF object, configuring its filters and attaching its
//! programs: the only stage that needs root. This module is the attach-mode
//! ladder (fexit, the exit tracepoint alone, enter+exit: the first the kernel
//! takes); `object` loads the object with its configuration and fills its
//! filter maps, `attach` loads and attaches programs and says why the kernel
//! refused one, `process` tunes this process for loading.
mod attach;
pub mod kept;
mod object;
mod process;

use std::fmt;

use anyhow::{Context as _, Result};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use aya_log::EbpfLogger;
use inotify_trace_common::{ChargeLayout, Config, TaskLayout, MAP_EVENTS, MAP_LOST};

use self::{
    attach::{attach, fexit_object, follow_own_children, Hook as _, HOOKS},
    object::{exit_programs_load, fill_filters, load_object},
};
use crate::{kernel_btf, preflight, selection::Selection};

/// The eBPF object built by build.rs.
pub(super) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/inotify-trace"));

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
    /// Records carry the inotify charge after each call (off only for the
    /// benchmark's measure of what it costs).
    pub charge: bool,
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
    /// Why records carry no charge, if they do not (said with `--verbose`).
    pub no_charge: Option<String>,
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
            true => preflight::fork_child_pid_offset()?,
            false => 0,
        };
        process::raise_memlock_limit();
        process::keep_large_buffers_returnable();

        let (task, mut caller_source) = match kernel_btf::running_kernel_task_layout() {
            Ok(layout) => (layout, CallerSource::TaskStruct),
            Err(e) => (
                TaskLayout::default(),
                CallerSource::Helpers(format!("no task_struct layout in the kernel's BTF: {e:#}")),
            ),
        };
        let (charge, no_charge) = match options.charge {
            false => (ChargeLayout::UNKNOWN, Some("off (--no-charge)".to_owned())),
            true => match kernel_btf::running_kernel_charge_layout() {
                Ok(layout) => (layout, None),
                Err(e) => (
                    ChargeLayout::UNKNOWN,
                    Some(format!("not found in the kernel's BTF: {e:#}")),
                ),
            },
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
            charge,
            ..Config::default()
        };
        let mut fexit_refused = None;
        if matches!(options.attach, AttachMode::Auto | AttachMode::Fexit) {
            match fexit_object(&config, options, selection) {
                Ok((ebpf, helpers)) => {
                    let tracer = Tracer::finish(
                        ebpf,
                        options,
                        helpers.unwrap_or(caller_source),
                        tracefs_mounted,
                        AttachMode::Fexit,
                        None,
                    )?;
                    return Ok(Tracer {
                        no_charge,
                        ..tracer
                    });
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
        let tracer = Tracer::finish(
            ebpf,
            options,
            caller_source,
            tracefs_mounted,
            mode,
            fexit_refused,
        )?;
        Ok(Tracer {
            no_charge,
            ..tracer
        })
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
            no_charge: None,
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

#[cfg(test)]
mod tests {
    use super::{
        attach::{FOLLOW_PROGRAMS, HOOKS},
        EBPF_OBJECT,
    };

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
}
