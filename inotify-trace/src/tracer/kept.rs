//! The kept counts, kernel side: the programs of the eBPF crate's `kept.rs`
//! loaded in an object of their own (the agent's, beside its tracer),
//! attached in the order that leaves no event uncounted, and read: which
//! fds hold which instance (a `task_file` iterator) and how many watches
//! each instance gained and lost since attach (a map), per instance, never
//! per watch. Turning that into counts is `usage::kept`'s job.
use std::{
    collections::HashMap,
    io::Read as _,
    os::fd::{AsFd as _, AsRawFd as _},
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData},
    programs::Iter,
    Btf, Ebpf, EbpfLoader,
};
use inotify_trace_common::{
    KeptConfig, KeptFd, KeptWatches, CONFIG_GLOBAL, KEPT_CONFIG_GLOBAL, KEPT_FD_SIZE, MAP_CGROUPS,
    MAP_EVENTS, MAP_FOLLOW, MAP_KEPT_FREED, MAP_KEPT_LEARNED, MAP_KEPT_WATCHES,
};

use super::{
    attach::{attach_fexit_to, refused},
    process, EBPF_OBJECT,
};
use crate::{kernel_btf, preflight};

// The kernel functions the programs attach to (in every kernel of the
// matrix's BTF: 5.10, 6.1, 6.12, and 6.18).

/// By the function's parameter count (its return value follows them).
const MARK_ADDED: [(&str, &str); 2] = [
    ("kept_mark_added4", "fsnotify_add_mark_locked"),
    ("kept_mark_added5", "fsnotify_add_mark_locked"),
];
const MARK_FREEING: (&str, &str) = ("kept_mark_freeing", "inotify_freeing_mark");
const GROUP_FREED: (&str, &str) = ("kept_group_freed", "inotify_free_group_priv");
const ITERATOR: &str = "kept_fds";

/// The programs attached, and the maps they keep.
pub struct KernelCounts {
    /// Owns the programs and their links: dropping it detaches them.
    ebpf: Ebpf,
    watches: BpfHashMap<MapData, u64, KeptWatches>,
    freed: BpfHashMap<MapData, u64, u8>,
}

impl KernelCounts {
    /// Loads and attaches the programs; the error says why they cannot run
    /// here (the kernel's refusal, with its errno, or what its BTF lacks).
    pub fn attach() -> Result<KernelCounts> {
        preflight::check_privileges()?;
        let layout = kernel_btf::running_kernel_kept_layout()
            .context("the kernel's BTF lacks what the kept counts read")?;
        // The programs learn what an inotify file and group are from one of
        // our own, by its fd; it is closed once they have.
        let learner = nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC)
            .context("opening an inotify instance to learn from")?;
        let config = KeptConfig {
            learn_tgid: std::process::id(),
            learn_fd: learner.as_fd().as_raw_fd() as u32,
            ..layout
        };
        process::raise_memlock_limit();
        // The tracer's maps are unused here: each at its smallest.
        let mut ebpf = EbpfLoader::new()
            .override_global(KEPT_CONFIG_GLOBAL, &config, true)
            .override_global(
                CONFIG_GLOBAL,
                &inotify_trace_common::Config::default(),
                true,
            )
            // The smallest ring buffer the kernel takes: a page.
            .map_max_entries(MAP_EVENTS, procfs::page_size() as u32)
            .map_max_entries(MAP_FOLLOW, 1)
            .map_max_entries(MAP_CGROUPS, 1)
            .map_max_entries("STASH", 1)
            .load(EBPF_OBJECT)
            .context("loading the eBPF object failed")?;
        let btf = Btf::from_sys_fs().context("the kept counts need the kernel's BTF")?;
        // Removals and releases first: every watch made from here on is
        // seen going.
        attach_fexit(&mut ebpf, MARK_FREEING, &btf)?;
        attach_fexit(&mut ebpf, GROUP_FREED, &btf)?;
        let iterator: &mut Iter = ebpf
            .program_mut(ITERATOR)
            .context("no iterator in the eBPF object")?
            .try_into()?;
        iterator
            .load("task_file", &btf)
            .map_err(|e| refused("a task_file iterator", "bpf_iter_task_file", e))?;
        let mut counts = KernelCounts {
            watches: take_map(&mut ebpf, MAP_KEPT_WATCHES)?,
            freed: take_map(&mut ebpf, MAP_KEPT_FREED)?,
            ebpf,
        };
        counts.fds()?;
        let learned: Array<_, u64> = Array::try_from(
            counts
                .ebpf
                .map(MAP_KEPT_LEARNED)
                .context("no KEPT_LEARNED map")?,
        )?;
        let (f_op, ops) = (learned.get(&0, 0)?, learned.get(&1, 0)?);
        if f_op == 0 || ops == 0 {
            // The iterator names processes by the host's pids.
            bail!("the fd iterator did not find this process's own inotify fd (in a pid namespace of its own? the agent needs the host's: hostPID)");
        }
        drop(learner);
        let added = MARK_ADDED[(config.add_mark_params == 5) as usize];
        attach_fexit(&mut counts.ebpf, added, &btf)?;
        Ok(counts)
    }

    /// Every inotify fd on the machine and its instance, from the iterator:
    /// the kernel walks each process's fd table (per fd, not per watch).
    pub fn fds(&mut self) -> Result<Vec<KeptFd>> {
        let iterator: &mut Iter = self
            .ebpf
            .program_mut(ITERATOR)
            .context("no iterator in the eBPF object")?
            .try_into()?;
        let link = iterator.attach().context("attaching the fd iterator")?;
        let link = iterator.take_link(link)?;
        let mut file = link.into_file().context("opening the fd iterator")?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .context("reading the fd iterator")?;
        let mut fds: Vec<KeptFd> = bytes
            .chunks_exact(KEPT_FD_SIZE)
            .map(|record| {
                let (tgid, rest) = record.split_at(4);
                let (fd, group) = rest.split_at(4);
                KeptFd {
                    tgid: u32::from_ne_bytes(tgid.try_into().expect("4 bytes")),
                    fd: u32::from_ne_bytes(fd.try_into().expect("4 bytes")),
                    group: u64::from_ne_bytes(group.try_into().expect("8 bytes")),
                }
            })
            .collect();
        // A thread with a files table of its own is listed beside its
        // process, with the same pid.
        fds.sort_unstable_by_key(|f| (f.tgid, f.fd));
        fds.dedup_by_key(|f| (f.tgid, f.fd));
        Ok(fds)
    }

    /// Watches added less watches removed since attach, per instance asked
    /// for (0 for one the programs saw nothing of).
    pub fn changes(&self, groups: impl Iterator<Item = u64>) -> HashMap<u64, i64> {
        groups.map(|group| (group, self.change(group))).collect()
    }

    /// One instance's change (as [`Self::changes`]).
    pub fn change(&self, group: u64) -> i64 {
        self.watches
            .get(&group, 0)
            .map_or(0, |w| w.added as i64 - w.removed as i64)
    }

    /// The instances released since the last call (their addresses may
    /// already be a new instance's).
    pub fn take_freed(&mut self) -> Vec<u64> {
        let freed: Vec<u64> = self.freed.keys().flatten().collect();
        for group in &freed {
            let _ = self.freed.remove(group);
        }
        freed
    }
}

fn attach_fexit(ebpf: &mut Ebpf, (name, function): (&str, &str), btf: &Btf) -> Result<()> {
    attach_fexit_to(ebpf, name, function, btf)
}

fn take_map<V: aya::Pod>(ebpf: &mut Ebpf, name: &str) -> Result<BpfHashMap<MapData, u64, V>> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("no {name} map"))?;
    Ok(BpfHashMap::try_from(map)?)
}
