//! `cargo xtask vm --bench`: what each attach mode costs, measured in a
//! guest whose clocks count instructions (QEMU `-icount shift=0`: one
//! virtual ns per guest instruction, one vCPU), so tens of ns are not lost in
//! the noise of a shared machine. The guest's `bench.sh` interleaves the
//! configurations round by round; this reads its `@@vm bench` lines and
//! prints the medians. These figures are instruction counts in a guest, not
//! real time: `cargo xtask bench` measures real time on this machine.
use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;

use super::{kernels::Kernel, node_bench::NodeBench, qemu::Console};
use crate::bench::{
    median,
    results::{cell, LoadFigures},
};

/// The configurations, in the order the guest runs them each round.
pub const MODES: [&str; 4] = ["none", "tracepoint", "tracepoint-no-charge", "fexit"];

/// One configuration's samples.
#[derive(Default)]
struct Samples {
    getppid: Vec<f64>,
    add: Vec<f64>,
    /// The tracer's CPU per traced event, virtual ns.
    tracer_per_event: Vec<f64>,
    refused: Option<String>,
}

/// The kernel command line words that make the guest benchmark.
pub fn init_env(rounds: u32, calls: u32) -> String {
    format!("inotify_trace_bench={rounds} inotify_trace_bench_calls={calls}")
}

/// The guest's figures: per configuration, and each tracer's tax over
/// none (virtual ns).
#[derive(Serialize)]
pub struct GuestBench {
    pub kernel: &'static str,
    pub clock: &'static str,
    pub modes: BTreeMap<&'static str, Mode>,
    pub getppid_tax_ns: Tax,
    pub add_watch_overhead_ns: Tax,
    /// What reading the inotify charge adds to a traced add_watch
    /// (tracepoint mode, with it less without it).
    pub charge_ns: Option<f64>,
    /// The agent at node scale, and the soak.
    pub node: NodeBench,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Mode {
    Refused {
        refused: String,
    },
    Measured {
        rounds: usize,
        getppid_ns: f64,
        add_watch_ns: f64,
        tracer_cpu_ns_per_event: f64,
    },
}

#[derive(Serialize)]
pub struct Tax {
    pub tracepoint: Option<f64>,
    pub fexit: Option<f64>,
}

/// The medians per configuration, from the guest's console; fails when the
/// guest did not finish or a line cannot be read.
pub fn results(kernel: &Kernel, console: &Console) -> Result<GuestBench> {
    if let Some(problem) = &console.problem {
        bail!("the benchmark guest failed: {problem}");
    }
    let mut by_mode: Vec<(&str, Samples)> =
        MODES.iter().map(|m| (*m, Samples::default())).collect();
    let mut node = NodeBench::default();
    for line in &console.lines {
        let Some(rest) = line.strip_prefix("bench ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if node.read(&words)? {
            continue;
        }
        let Some(samples) = by_mode
            .iter_mut()
            .find(|(m, _)| Some(m) == words.first())
            .map(|(_, s)| s)
        else {
            bail!("a bench line of no known configuration: {line}");
        };
        match &words[2..] {
            ["refused", why @ ..] => samples.refused = Some(why.join(" ")),
            ["getppid", getppid, "add", add, "tracer_ticks", ticks] => {
                let (Ok(g), Ok(a), Ok(ticks)) = (
                    LoadFigures::parse(getppid),
                    LoadFigures::parse(add),
                    ticks.parse::<f64>(),
                ) else {
                    bail!("an unreadable bench line: {line}");
                };
                samples.getppid.push(g.ns_per_call);
                samples.add.push(a.ns_per_call);
                // USER_HZ ticks of 10 ms, in the guest's (virtual) time.
                samples.tracer_per_event.push(ticks * 1e7 / a.calls);
            }
            _ => bail!("an unreadable bench line: {line}"),
        }
    }
    let modes: BTreeMap<&'static str, Mode> = by_mode
        .into_iter()
        .map(|(mode, s)| {
            let figures = match s.refused {
                Some(refused) => Mode::Refused { refused },
                None => Mode::Measured {
                    rounds: s.add.len(),
                    getppid_ns: median(&s.getppid),
                    add_watch_ns: median(&s.add),
                    tracer_cpu_ns_per_event: median(&s.tracer_per_event),
                },
            };
            (mode, figures)
        })
        .collect();
    let figure = |mode: &str, pick: fn(&Mode) -> Option<f64>| modes.get(mode).and_then(pick);
    let over_none = |mode: &str, pick: fn(&Mode) -> Option<f64>| {
        Some(figure(mode, pick)? - figure("none", pick)?)
    };
    let tax = |pick: fn(&Mode) -> Option<f64>| Tax {
        tracepoint: over_none("tracepoint", pick),
        fexit: over_none("fexit", pick),
    };
    let charge_ns = figure("tracepoint", Mode::add_watch_ns)
        .zip(figure("tracepoint-no-charge", Mode::add_watch_ns))
        .map(|(with, without)| with - without);
    Ok(GuestBench {
        charge_ns,
        kernel: kernel.package,
        clock:
            "virtual ns: guest instructions under QEMU -icount shift=0, one vCPU (not real time)",
        getppid_tax_ns: tax(Mode::getppid_ns),
        add_watch_overhead_ns: tax(Mode::add_watch_ns),
        modes,
        node,
    })
}

impl Mode {
    fn getppid_ns(&self) -> Option<f64> {
        match self {
            Mode::Measured { getppid_ns, .. } => Some(*getppid_ns),
            Mode::Refused { .. } => None,
        }
    }

    fn add_watch_ns(&self) -> Option<f64> {
        match self {
            Mode::Measured { add_watch_ns, .. } => Some(*add_watch_ns),
            Mode::Refused { .. } => None,
        }
    }
}

impl GuestBench {
    /// The figures as a table, said to be instruction counts.
    pub fn table(&self) -> String {
        let mut out = format!(
            "In a guest ({}), {}:\n\n| configuration | getppid ns | add_watch ns | tracer CPU ns/event |\n|---|---|---|---|\n",
            self.kernel, self.clock,
        );
        for name in MODES {
            let Some(mode) = self.modes.get(name) else {
                continue;
            };
            match mode {
                Mode::Refused { refused } => {
                    out.push_str(&format!("| {name} | refused: {refused} | | |\n"))
                }
                Mode::Measured {
                    getppid_ns,
                    add_watch_ns,
                    tracer_cpu_ns_per_event,
                    ..
                } => out.push_str(&format!(
                    "| {name} | {} | {} | {} |\n",
                    cell(Some(*getppid_ns)),
                    cell(Some(*add_watch_ns)),
                    cell(Some(*tracer_cpu_ns_per_event)),
                )),
            }
        }
        out.push_str(&format!(
            "\ngetppid tax: tracepoint {} ns, fexit {} ns; add_watch overhead: tracepoint {} ns, fexit {} ns; the charge's read adds {} ns to a traced add_watch (tracepoint; target: its instructions counted)\n",
            cell(self.getppid_tax_ns.tracepoint),
            cell(self.getppid_tax_ns.fexit),
            cell(self.add_watch_overhead_ns.tracepoint),
            cell(self.add_watch_overhead_ns.fexit),
            cell(self.charge_ns),
        ));
        out.push_str(&self.node.table());
        out
    }
}
