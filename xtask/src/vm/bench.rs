//! `cargo xtask vm --bench`: what each attach mode costs, measured in a
//! guest whose clocks count instructions (QEMU `-icount shift=0`: one
//! virtual ns per guest instruction, one vCPU), so tens of ns are not lost in
//! the noise of a shared machine. The guest's `bench.sh` interleaves the
//! configurations round by round; this reads its `@@vm bench` lines and
//! prints the medians. These figures are instruction counts in a guest, not
//! real time: `cargo xtask bench` measures real time on this machine.
use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{kernels::Kernel, qemu::Console};

/// The configurations, in the order the guest runs them each round.
pub const MODES: [&str; 3] = ["none", "tracepoint", "fexit"];

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

fn ns_per_call(json: &str) -> Option<(f64, f64)> {
    let v: Value = serde_json::from_str(json).ok()?;
    Some((v["calls"].as_f64()?, v["ns_per_call"].as_f64()?))
}

fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// The medians per configuration, from the guest's console; fails when the
/// guest did not finish or a line cannot be read.
pub fn results(kernel: &Kernel, console: &Console) -> Result<Value> {
    if let Some(problem) = &console.problem {
        bail!("the benchmark guest failed: {problem}");
    }
    let mut by_mode: Vec<(&str, Samples)> =
        MODES.iter().map(|m| (*m, Samples::default())).collect();
    for line in &console.lines {
        let Some(rest) = line.strip_prefix("bench ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
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
                let (Some((_, g)), Some((calls, a)), Ok(ticks)) =
                    (ns_per_call(getppid), ns_per_call(add), ticks.parse::<f64>())
                else {
                    bail!("an unreadable bench line: {line}");
                };
                samples.getppid.push(g);
                samples.add.push(a);
                // USER_HZ ticks of 10 ms, in the guest's (virtual) time.
                samples.tracer_per_event.push(ticks * 1e7 / calls);
            }
            _ => bail!("an unreadable bench line: {line}"),
        }
    }
    let mut modes = serde_json::Map::new();
    for (mode, s) in &by_mode {
        modes.insert(
            (*mode).to_owned(),
            match &s.refused {
                Some(why) => json!({ "refused": why }),
                None => json!({
                    "rounds": s.add.len(),
                    "getppid_ns": median(&s.getppid),
                    "add_watch_ns": median(&s.add),
                    "tracer_cpu_ns_per_event": median(&s.tracer_per_event),
                }),
            },
        );
    }
    let figure = |mode: &str, key: &str| modes.get(mode).and_then(|m| m[key].as_f64());
    let over_none = |mode: &str, key: &str| Some(figure(mode, key)? - figure("none", key)?);
    Ok(json!({
        "kernel": kernel.package,
        "clock": "virtual ns: guest instructions under QEMU -icount shift=0, one vCPU (not real time)",
        "modes": modes,
        "getppid_tax_ns": { "tracepoint": over_none("tracepoint", "getppid_ns"), "fexit": over_none("fexit", "getppid_ns") },
        "add_watch_overhead_ns": { "tracepoint": over_none("tracepoint", "add_watch_ns"), "fexit": over_none("fexit", "add_watch_ns") },
    }))
}

/// The figures as a table, said to be instruction counts.
pub fn table(results: &Value) -> String {
    let mut out = format!(
        "In a guest ({}), {}:\n\n| configuration | getppid ns | add_watch ns | tracer CPU ns/event |\n|---|---|---|---|\n",
        results["kernel"].as_str().unwrap_or("?"),
        results["clock"].as_str().unwrap_or("?"),
    );
    let cell = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.1}"));
    for mode in MODES {
        let m = &results["modes"][mode];
        match m["refused"].as_str() {
            Some(why) => out.push_str(&format!("| {mode} | refused: {why} | | |\n")),
            None => out.push_str(&format!(
                "| {mode} | {} | {} | {} |\n",
                cell(&m["getppid_ns"]),
                cell(&m["add_watch_ns"]),
                cell(&m["tracer_cpu_ns_per_event"]),
            )),
        }
    }
    out.push_str(&format!(
        "\ngetppid tax: tracepoint {} ns, fexit {} ns; add_watch overhead: tracepoint {} ns, fexit {} ns\n",
        cell(&results["getppid_tax_ns"]["tracepoint"]),
        cell(&results["getppid_tax_ns"]["fexit"]),
        cell(&results["add_watch_overhead_ns"]["tracepoint"]),
        cell(&results["add_watch_overhead_ns"]["fexit"]),
    ));
    out
}
