//! The eBPF object: loaded with the loader's configuration (its programs
//! not yet), and its filter maps filled from the selection.
use anyhow::{Context as _, Result};
use aya::{maps::HashMap, Ebpf, EbpfLoader};
use inotify_trace_common::{
    Comm, Config, CONFIG_GLOBAL, MAP_CGROUPS, MAP_COMMS, MAP_EVENTS, MAP_KEPT_FREED,
    MAP_KEPT_WATCHES, MAP_PIDS,
};

use super::{
    attach::{load, Hook as _, HOOKS},
    TracerOptions, EBPF_OBJECT,
};
use crate::selection::Selection;

/// Loads the eBPF object with this configuration (programs not yet).
pub(super) fn load_object(config: &Config, options: &TracerOptions) -> Result<Ebpf> {
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
        // The agent's kept counts load their own object: here unused, at
        // their smallest (an LRU map is preallocated).
        .map_max_entries(MAP_KEPT_WATCHES, 1)
        .map_max_entries(MAP_KEPT_FREED, 1)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object failed")
}

/// Whether every present syscall's exit-only program loads.
pub(super) fn exit_programs_load(ebpf: &mut Ebpf) -> bool {
    HOOKS
        .iter()
        .filter(|h| h.present())
        .all(|h| load(ebpf, h.exit_program()).is_ok())
}

pub(super) fn fill_filters(ebpf: &mut Ebpf, selection: &Selection) -> Result<()> {
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
        for id in crate::pods::cgroupfs::ids_below(&selection.cgroups)? {
            cgroups
                .insert(id, 1, 0)
                .context("filling the cgroup filter (more than 16384 cgroups?)")?;
        }
    }
    Ok(())
}
