//! The guest's node-scale rows (`bench.sh`'s second part): the agent's CPU
//! per snapshot and peak RSS with the counts kept by the kernel's events
//! (fexit) and with every watch read from fdinfo, at each size, and the
//! soak's drift. Virtual time: guest instructions under QEMU -icount.
use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::bench::{median, results::cell};

/// The kernel command line words for the node rows: sizes in watches, how
/// long each agent is measured, how long the soak runs (virtual seconds).
pub fn init_env(sizes: &[u64], seconds: u32, soak_seconds: u32) -> String {
    let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
    format!(
        "inotify_trace_bench_node={} inotify_trace_bench_node_seconds={seconds} inotify_trace_bench_soak={soak_seconds}",
        sizes.join(",")
    )
}

/// One size: per way of counting, the medians over the rounds.
#[derive(Debug, Serialize)]
pub struct NodeRow {
    pub watches: u64,
    /// `kept` (fexit's kept counts) or `scan` (`--no-kept-counts`).
    pub modes: BTreeMap<String, AgentCost>,
}

#[derive(Debug, Default, Serialize)]
pub struct AgentCost {
    pub rounds: usize,
    /// Whether the agent said its snapshots came from kept counts.
    pub kept: bool,
    /// The agent's CPU per snapshot, virtual ms (instructions / 1e6).
    pub cpu_ms_per_snapshot: f64,
    pub peak_rss_mib: f64,
    /// Each round's CPU ms per snapshot and peak RSS MiB.
    #[serde(skip)]
    cpu_samples: Vec<f64>,
    #[serde(skip)]
    rss_samples: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct Soak {
    /// Watchers that came and went.
    pub turns: u64,
    pub kept: bool,
    pub reconciliations: u64,
    /// The last reconciliation's drift, and how many said one.
    pub drift: u64,
    pub drift_warnings: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct NodeBench {
    pub rows: Vec<NodeRow>,
    pub soak: Option<Soak>,
    /// Why an agent did not start, if one did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl NodeBench {
    /// Reads one `@@vm bench` line's words after `bench`, if it is one of
    /// the node rows'; `Ok(false)` when it is another kind.
    pub fn read(&mut self, words: &[&str]) -> Result<bool> {
        let number = |word: &str| -> Result<f64> {
            word.parse::<f64>()
                .with_context(|| format!("a node bench figure {word:?}"))
        };
        match words {
            ["node", watches, mode, _round, "kept", kept, "snapshots", n, "cpu_ns", cpu, "hwm_kb", hwm] =>
            {
                let watches = number(watches)? as u64;
                let row = match self.rows.iter_mut().position(|r| r.watches == watches) {
                    Some(at) => &mut self.rows[at],
                    None => {
                        self.rows.push(NodeRow {
                            watches,
                            modes: BTreeMap::new(),
                        });
                        self.rows.last_mut().expect("just pushed")
                    }
                };
                let cost = row.modes.entry((*mode).to_owned()).or_default();
                let snapshots = number(n)?;
                if snapshots < 1.0 {
                    bail!("no snapshot in a node bench round: {}", words.join(" "));
                }
                cost.kept = *kept == "1";
                cost.cpu_samples.push(number(cpu)? / snapshots / 1e6);
                cost.rss_samples.push(number(hwm)? / 1024.0);
                cost.rounds = cost.cpu_samples.len();
                cost.cpu_ms_per_snapshot = median(&cost.cpu_samples);
                cost.peak_rss_mib = median(&cost.rss_samples);
                Ok(true)
            }
            ["soak", "turns", turns, "kept", kept, "reconciliations", r, "drift", drift, "drift_warnings", warnings] =>
            {
                self.soak = Some(Soak {
                    turns: number(turns)? as u64,
                    kept: *kept == "1",
                    reconciliations: number(r)? as u64,
                    drift: number(drift)? as u64,
                    drift_warnings: number(warnings)? as u64,
                });
                Ok(true)
            }
            ["agent-failed", why @ ..] => {
                self.failed = Some(why.join(" "));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The rows as a table, and the soak's line.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "\nThe agent at node scale in the guest (virtual ms: instructions / 1e6):\n\n| watches | kept counts: CPU ms/snapshot | peak RSS MiB | fdinfo scan: CPU ms/snapshot | peak RSS MiB |\n|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let (kept, scan) = (row.modes.get("kept"), row.modes.get("scan"));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                row.watches,
                cell(kept.filter(|k| k.kept).map(|k| k.cpu_ms_per_snapshot)),
                cell(kept.map(|k| k.peak_rss_mib)),
                cell(scan.map(|s| s.cpu_ms_per_snapshot)),
                cell(scan.map(|s| s.peak_rss_mib)),
            ));
        }
        if let (Some(small), Some(large)) = (self.rows.first(), self.rows.last()) {
            let kept = |row: &NodeRow| row.modes.get("kept").map(|k| k.cpu_ms_per_snapshot);
            if let (Some(a), Some(b)) = (kept(small), kept(large)) {
                out.push_str(&format!(
                    "\nkept counts: {:.2}x the CPU per snapshot at {} watches as at {} (target: within 2x)\n",
                    b / a,
                    large.watches,
                    small.watches
                ));
            }
        }
        if let Some(soak) = &self.soak {
            out.push_str(&format!(
                "soak: {} watchers came and went, {} reconciliations, last drift {}, drifts reported {} (target: 0)\n",
                soak.turns, soak.reconciliations, soak.drift, soak.drift_warnings
            ));
        }
        if let Some(why) = &self.failed {
            out.push_str(&format!("an agent did not start: {why}\n"));
        }
        out
    }
}
