//! The benchmark's figures, typed: what `results.json` holds and what the
//! table prints, one field each (a renamed figure is a compile error, not a
//! "-" in the table). Also the few figures read back from the tracer's and
//! the load generator's JSON.
use serde::{de::IgnoredAny, Deserialize, Serialize};

use crate::vm::GuestBench;

#[derive(Serialize)]
pub struct Results {
    pub date: String,
    pub machine: Machine,
    pub command: &'static str,
    pub smoke: bool,
    /// In the table's order.
    pub add_watch_ns: Vec<OverheadRow>,
    /// What reading the caller's euid, user namespace and cgroup id adds.
    pub attribution_ns: Option<f64>,
    /// What reading the inotify charge adds.
    pub charge_ns: Option<f64>,
    pub events: Loss,
    pub storm: Storm,
    pub getppid_ns: Getppid,
    pub tracer: TracerCost,
    pub report: ReportSpeed,
    pub usage: UsageTime,
    pub memory: Memory,
    pub node: super::node::NodeScale,
    pub fexit_here: FexitHere,
    pub guest: GuestBench,
}

#[derive(Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
}

/// One configuration of the add_watch loop.
#[derive(Serialize)]
pub struct OverheadRow {
    pub name: &'static str,
    /// ns per call, the median of the rounds.
    pub median: f64,
    /// The median of each round's ratio to that round's no-tracer run.
    pub ratio: f64,
    pub samples: Vec<f64>,
}

#[derive(Serialize)]
pub struct Loss {
    pub one_producer: Balance,
    pub two_producers: Balance,
    pub one_producer_tracer_cpu_ns_per_event: f64,
}

#[derive(Serialize)]
pub struct Balance {
    pub made: u64,
    pub received: u64,
    pub lost: u64,
    pub balanced: bool,
}

impl Balance {
    pub fn of(made: u64, summary: &SummaryFigures) -> Balance {
        Balance {
            made,
            received: summary.events,
            lost: summary.lost,
            balanced: made == summary.events + summary.lost,
        }
    }
}

#[derive(Serialize)]
pub struct Storm {
    pub made: u64,
    pub received: u64,
    pub lost: u64,
    pub calls_per_second: f64,
    pub tracer_cpu_ns_per_event: f64,
    pub diagnoses: usize,
}

#[derive(Serialize)]
pub struct Getppid {
    pub no_tracer: f64,
    pub tracer_attached: f64,
    pub extra: f64,
}

#[derive(Serialize)]
pub struct TracerCost {
    pub events: u64,
    pub cpu_ns_per_event: f64,
    pub peak_rss_mib_after_10pct: Option<f64>,
    pub peak_rss_mib: f64,
}

#[derive(Serialize)]
pub struct ReportSpeed {
    pub events: u64,
    pub summary: Speed,
    pub events_json: Speed,
}

#[derive(Serialize)]
pub struct Speed {
    pub seconds: f64,
    pub events_per_second: f64,
}

#[derive(Serialize)]
pub struct UsageTime {
    pub extra_processes: u64,
    pub instances_seen: usize,
    pub seconds: f64,
}

#[derive(Serialize)]
pub struct Memory {
    pub pid_max: u64,
    pub distinct_pids: MemoryRow,
    pub distinct_paths: MemoryRow,
    pub synthetic_pids: MemoryRow,
}

#[derive(Serialize)]
pub struct MemoryRow {
    pub events: u64,
    pub lost: u64,
    pub processes: u64,
    /// In the top process.
    pub distinct_paths: Option<u64>,
    pub live_peak_rss_mib: Option<f64>,
    pub report_peak_rss_mib: Option<f64>,
    pub report_top20_peak_rss_mib: Option<f64>,
}

#[derive(Serialize)]
pub struct FexitHere {
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What the benchmark reads of `report --json`.
#[derive(Deserialize)]
pub struct SummaryFigures {
    pub events: u64,
    pub lost: u64,
    #[serde(default)]
    pub processes: Vec<ProcessFigures>,
    #[serde(default)]
    pub processes_omitted: u64,
    #[serde(default)]
    pub diagnoses: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
pub struct ProcessFigures {
    pub distinct_paths: u64,
}

/// What the benchmark reads of `usage --json`.
#[derive(Deserialize)]
pub struct UsageFigures {
    pub instances: Vec<IgnoredAny>,
}

/// What a load generator (`inotify-load`) prints.
#[derive(Deserialize)]
pub struct LoadFigures {
    pub calls: f64,
    pub ns_per_call: f64,
}

impl LoadFigures {
    pub fn parse(out: &str) -> anyhow::Result<LoadFigures> {
        use anyhow::Context as _;
        serde_json::from_str(out.trim()).with_context(|| format!("load generator said {out:?}"))
    }
}

/// One decimal, or "-" where the figure is missing.
pub fn cell(figure: Option<f64>) -> String {
    figure.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
}

impl Results {
    /// The table of real-time figures (the guest's follow, as instructions).
    pub fn print(&self) {
        let f = |x: f64| cell(Some(x));
        println!();
        println!("Real time on this machine (wall clock; the machine is shared, so configurations run interleaved):");
        println!(
            "inotify-trace benchmark, {}, {} cores, kernel {}, `{}`",
            self.date, self.machine.cores, self.machine.kernel, self.command
        );
        println!("inotify_add_watch, ns per call (median), ratio to no tracer (median of rounds)      target");
        for row in &self.add_watch_ns {
            let target = match row.name.starts_with("inotify-trace") {
                true => "<= 1.5x (stretch 1.35x)",
                false => "",
            };
            println!(
                "  {:<30} {:>8} {:>6.2}x   {target}",
                row.name,
                f(row.median),
                row.ratio
            );
        }
        println!(
            "  attribution (euid, user ns, cgroup id) adds {} ns per call (median of rounds)   target: <= 10 ns",
            cell(self.attribution_ns)
        );
        println!(
            "  the charge (the kernel's counters, every level) adds {} ns per call (median of rounds)   target: < 15 ns",
            cell(self.charge_ns)
        );
        let e = &self.events;
        for (name, row, target) in [
            ("one producer", &e.one_producer, "0 lost"),
            ("two producers", &e.two_producers, "made = received + lost"),
        ] {
            println!(
                "events, {name:<14} made {:>9}  received {:>9}  lost {:>7}  balanced {}   target: {target}",
                row.made, row.received, row.lost, row.balanced
            );
        }
        let st = &self.storm;
        println!(
            "storm of ENOSPC: {:.0} calls/s, made {} received {} lost {}, {} diagnoses; tracer {} ns CPU per failing event (one producer, successes: {}; target within 2x)",
            st.calls_per_second,
            st.made,
            st.received,
            st.lost,
            st.diagnoses,
            f(st.tracer_cpu_ns_per_event),
            f(e.one_producer_tracer_cpu_ns_per_event)
        );
        let g = &self.getppid_ns;
        println!(
            "getppid ns per call: no tracer {}, tracer attached {} (+{})",
            f(g.no_tracer),
            f(g.tracer_attached),
            f(g.extra)
        );
        let t = &self.tracer;
        println!(
            "tracer over {} events: {} ns CPU per event (target <= 400); peak RSS {} MiB after 10%, {} MiB at the end (target <= 64, flat)",
            t.events,
            f(t.cpu_ns_per_event),
            cell(t.peak_rss_mib_after_10pct),
            f(t.peak_rss_mib)
        );
        let p = &self.report;
        for (name, speed) in [
            ("report (summary)", &p.summary),
            ("report --events --json", &p.events_json),
        ] {
            println!(
                "{name}: {} events in {:.3} s = {:.2} M events/s (target >= 2)",
                p.events,
                speed.seconds,
                speed.events_per_second / 1e6
            );
        }
        let u = &self.usage;
        println!(
            "usage --json with {} extra processes: {:.3} s, {} instances seen (target < 1 s)",
            u.extra_processes, u.seconds, u.instances_seen
        );
        let m = &self.memory;
        for (name, row) in [
            ("live, distinct pids", &m.distinct_pids),
            ("report, synthetic pids", &m.synthetic_pids),
            ("one process, distinct paths", &m.distinct_paths),
        ] {
            println!(
                "memory, {name}: {} processes, {} events, {} lost, {} distinct paths in the top process; peak RSS live {} MiB, report {} MiB, report --top 20 {} MiB (target < 64)",
                row.processes,
                row.events,
                row.lost,
                row.distinct_paths.map_or("-".to_owned(), |n| n.to_string()),
                cell(row.live_peak_rss_mib),
                cell(row.report_peak_rss_mib),
                cell(row.report_top20_peak_rss_mib)
            );
        }
        println!(
            "(pid_max here is {}: a live session cannot see more distinct pids at once)",
            m.pid_max
        );
        self.node.print();
        match &self.fexit_here.why {
            None => println!("fexit: allowed on this kernel (`auto` uses it)"),
            Some(why) => println!(
                "fexit: not on this kernel, so the figures above are the tracepoint modes' ({why})"
            ),
        }
    }
}
