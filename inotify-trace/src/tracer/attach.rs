//! Loading and attaching programs: the fexit programs on the syscalls'
//! functions, the syscall tracepoints of the exit-only and enter+exit modes,
//! and the fork following of a traced command; a refusal says why, with the
//! kernel's errno ([`Refused`]) and the verifier's reason.
use anyhow::{Context as _, Result};
use aya::{
    maps::HashMap,
    programs::{FExit, TracePoint},
    Ebpf,
};
use inotify_trace_common::{Config, Syscall, MAP_FOLLOW};

use super::{
    object::{exit_programs_load, fill_filters, load_object},
    AttachMode, CallerSource, TracerOptions,
};
use crate::{preflight, selection::Selection};

/// The programs that follow a traced command's descendants, and their
/// `sched` tracepoints.
pub(super) const FOLLOW_PROGRAMS: [(&str, &str); 2] = [
    ("process_exit", "sched_process_exit"),
    ("process_fork", "sched_process_fork"),
];

/// Whether the exit-only programs can read a call's arguments on the
/// architecture this is built for (as the eBPF crate's `REGS_AT_EXIT`).
pub(super) const REGS_AT_EXIT_ARCH: bool =
    cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The syscalls whose programs are attached (the common crate's table
/// names each one's programs).
pub(super) const HOOKS: [Syscall; 4] = Syscall::ALL;

/// Where a syscall's programs attach.
pub(super) trait Hook: Copy {
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
pub(super) fn fexit_object(
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
        let function = format!("{prefix}{}", hook.name());
        attach_fexit_to(ebpf, hook.fexit_program(), &function, &btf)?;
    }
    Ok(())
}

/// Loads the fexit program `name` on the kernel function `function` and
/// attaches it; the error says why not (a [`Refused`] where the kernel
/// refused).
pub(super) fn attach_fexit_to(
    ebpf: &mut Ebpf,
    name: &str,
    function: &str,
    btf: &aya::Btf,
) -> Result<()> {
    let program: &mut FExit = ebpf
        .program_mut(name)
        .with_context(|| format!("no program {name} in the eBPF object"))?
        .try_into()?;
    program
        .load(function, btf)
        .map_err(|e| refused("fexit", function, e))?;
    program
        .attach()
        .map_err(|e| refused("fexit", function, e))?;
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
pub(super) fn refused(
    what: &'static str,
    function: &str,
    e: aya::programs::ProgramError,
) -> anyhow::Error {
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

pub(super) fn attach(ebpf: &mut Ebpf, wanted: AttachMode) -> Result<AttachMode> {
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
pub(super) fn follow_own_children(ebpf: &mut Ebpf) -> Result<()> {
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

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut TracePoint> {
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?;
    Ok(program.try_into()?)
}

/// Loads a program unless it already is.
pub(super) fn load(ebpf: &mut Ebpf, name: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
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
