//! `cargo xtask bench`: the figures issue #6 asks for, from one run, printed
//! as a table and written to target/bench/results.json. Nothing is asserted:
//! the targets are read from the full run (`--smoke` is the seconds-long
//! version CI runs so that the command cannot rot).
//!
//! The tracer is pinned to CPU 0 and every load loop to CPU 1, as the
//! figures in the notes were measured; configurations are interleaved round
//! by round so that drift of the machine spreads over all of them.
mod node;
pub mod results;
mod traced;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::cmd;
use results::{
    Balance, FexitHere, Getppid, LoadFigures, Loss, Machine, Memory, MemoryRow, OverheadRow,
    ReportSpeed, Results, Speed, Storm, SummaryFigures, TracerCost, UsageFigures, UsageTime,
};
use traced::{peak_rss_kib, vm_hwm_kib, Traced};

struct Sizes {
    rounds: usize,
    calls: u64,
    one_producer: u64,
    two_producers: u64,
    rss_events: u64,
    getppid_calls: u64,
    holders: u64,
    /// Distinct pids, and distinct paths, in the memory runs.
    memory_pids: u64,
    memory_paths: u64,
    /// Watches held at node scale, the rounds `usage` and its peer run,
    /// and the agent's snapshots counted.
    node_watches: &'static [u64],
    node_rounds: usize,
    node_snapshots: u32,
}

const FULL: Sizes = Sizes {
    rounds: 9,
    calls: 1_000_000,
    one_producer: 2_000_000,
    two_producers: 1_000_000,
    rss_events: 10_000_000,
    getppid_calls: 5_000_000,
    holders: 1000,
    memory_pids: 200_000,
    memory_paths: 1_000_000,
    node_watches: &[50_000, 180_000],
    node_rounds: 5,
    node_snapshots: 10,
};

const SMOKE: Sizes = Sizes {
    rounds: 1,
    calls: 20_000,
    one_producer: 50_000,
    two_producers: 20_000,
    rss_events: 100_000,
    getppid_calls: 100_000,
    holders: 50,
    memory_pids: 2_000,
    memory_paths: 20_000,
    node_watches: &[2_000],
    node_rounds: 1,
    node_snapshots: 2,
};

/// The bpftrace equivalents: per-event output with the path (stashed at
/// entry, as bpftrace has no task registers at exit), and in-kernel counting.
const BPFTRACE_PRINT: &str = r#"tracepoint:syscalls:sys_enter_inotify_add_watch { @path[tid] = args->pathname; }
tracepoint:syscalls:sys_exit_inotify_add_watch /@path[tid]/ { printf("%d %d %d %s %d %s\n", pid, tid, uid, comm, args->ret, str(@path[tid])); delete(@path[tid]); }"#;
const BPFTRACE_COUNT: &str =
    r#"tracepoint:syscalls:sys_exit_inotify_add_watch { @[comm, args->ret] = count(); }"#;

struct Bench {
    tracer: PathBuf,
    load: PathBuf,
    dir: PathBuf,
    watched: String,
    bpftrace: PathBuf,
}

pub fn run(smoke: bool) -> Result<()> {
    let sizes = if smoke { SMOKE } else { FULL };
    // Every run compares with its peers: installed here when missing.
    crate::packages::ensure(&crate::packages::BENCH)?;
    let release = cmd::build_release_bins()?;
    let dir = cmd::target_dir()?.join("bench");
    std::fs::create_dir_all(&dir)?;
    // The watched directory has a short path, as in the notes' figures: the
    // kernel's path lookup is part of every call, and a deep path would
    // inflate the baseline and flatter the ratio.
    let watched = PathBuf::from("/tmp/inotify-bench");
    std::fs::create_dir_all(&watched)?;
    let bench = Bench {
        tracer: release.join("inotify-trace"),
        load: release.join("inotify-load"),
        watched: watched.to_str().context("non-UTF-8 path")?.to_owned(),
        dir,
        bpftrace: cmd::on_path("bpftrace").context("bpftrace is not on PATH after its install")?,
    };
    let date = cmd::output(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))?;
    let machine = Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: kernel(),
    };
    cmd::step(&format!(
        "inotify_add_watch overhead: {} rounds of {} calls per configuration",
        sizes.rounds, sizes.calls
    ));
    let add_watch_ns = bench.overhead(&sizes)?;
    let attribution_ns = cost_of(&add_watch_ns, 1, 2);
    let charge_ns = cost_of(&add_watch_ns, 1, 3);
    cmd::step("events made, received and lost");
    let (events, recording) = bench.loss(&sizes)?;
    cmd::step(&format!(
        "a storm of {} ENOSPC in a user namespace whose watch cap is 0",
        sizes.one_producer
    ));
    let storm = bench.storm(&sizes)?;
    cmd::step("an unrelated syscall (getppid) with and without the tracer attached");
    let getppid_ns = bench.getppid(&sizes)?;
    cmd::step(&format!(
        "the tracer's CPU and memory over {} events",
        sizes.rss_events
    ));
    let tracer = bench.tracer_cost(&sizes)?;
    cmd::step("report speed over the recording");
    let report = bench.report_speed(&recording)?;
    let _ = std::fs::remove_file(&recording);
    cmd::step(&format!(
        "usage with {} extra processes holding instances",
        sizes.holders
    ));
    let usage = bench.usage_time(&sizes)?;
    cmd::step(&format!(
        "memory: {} distinct pids, then {} distinct paths (live and report)",
        sizes.memory_pids, sizes.memory_paths
    ));
    let memory = bench.memory(&sizes)?;
    let node = node::run(
        &bench.tracer,
        sizes.node_watches,
        sizes.node_rounds,
        sizes.node_snapshots,
    )?;
    let fexit_here = bench.fexit_here()?;
    // fexit's cost where the kernel allows it, in a guest whose clocks count
    // instructions (tens of ns are noise in real time on this machine).
    let (rounds, calls) = if smoke { (1, 5_000) } else { (5, 50_000) };
    cmd::step("the attach modes in a 6.1 guest under QEMU -icount (instructions, not real time)");
    let node_sizes = match smoke {
        true => &crate::vm::NODE_SMOKE,
        false => &crate::vm::NODE_FULL,
    };
    let guest = crate::vm::bench(&[], rounds, calls, node_sizes)?;
    let results = Results {
        date: date.trim().to_owned(),
        machine,
        command: match smoke {
            true => "cargo xtask bench --smoke",
            false => "cargo xtask bench",
        },
        smoke,
        add_watch_ns,
        attribution_ns,
        charge_ns,
        events,
        storm,
        getppid_ns,
        tracer,
        report,
        usage,
        memory,
        node,
        fexit_here,
        guest,
    };

    let path = bench.dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
    results.print();
    println!("\n{}", results.guest.table());
    println!("(written to {})", path.display());
    Ok(())
}

/// Only the node-scale rows: `cargo xtask bench --node`.
pub fn run_node(smoke: bool) -> Result<()> {
    let sizes = if smoke { SMOKE } else { FULL };
    crate::packages::ensure(&crate::packages::BENCH)?;
    let release = cmd::build_release_bins()?;
    let scale = node::run(
        &release.join("inotify-trace"),
        sizes.node_watches,
        sizes.node_rounds,
        sizes.node_snapshots,
    )?;
    scale.print();
    Ok(())
}

impl Bench {
    /// ns per inotify_add_watch, per configuration: medians and ratios.
    fn overhead(&self, sizes: &Sizes) -> Result<Vec<OverheadRow>> {
        let record = self.dir.join("overhead.rec");
        let record = record.to_str().unwrap();
        let mut configs: Vec<(&'static str, Option<Vec<String>>)> = vec![
            ("no tracer", None),
            (
                "inotify-trace -q --record",
                Some(self.tracer_args(&["-q", "--record", record, "--force"])),
            ),
            // The same without reading the caller's euid, user namespace
            // and cgroup id: the difference is what attribution costs.
            (
                "  same, without attribution",
                Some(self.tracer_args(&["-q", "--record", record, "--force", "--no-attribution"])),
            ),
            // And without reading the inotify charge.
            (
                "  same, without the charge",
                Some(self.tracer_args(&["-q", "--record", record, "--force", "--no-charge"])),
            ),
        ];
        let bpftrace = self.bpftrace.to_str().context("non-UTF-8 path")?.to_owned();
        configs.push((
            "bpftrace printf with path",
            Some(vec![bpftrace.clone(), "-e".into(), BPFTRACE_PRINT.into()]),
        ));
        configs.push((
            "bpftrace count in kernel",
            Some(vec![bpftrace, "-e".into(), BPFTRACE_COUNT.into()]),
        ));
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        for _ in 0..sizes.rounds {
            for (i, (_, tracer)) in configs.iter().enumerate() {
                let traced = match tracer {
                    Some(args) => Some(Traced::start(args)?),
                    None => None,
                };
                samples[i].push(self.add_loop(sizes.calls)?);
                if let Some(traced) = traced {
                    traced.stop()?;
                }
            }
        }
        let _ = std::fs::remove_file(record);
        // The ratio is the median of each round's ratio to that round's
        // no-tracer run: the two ran seconds apart, so the machine's slow
        // drift (a few percent over minutes, in a VM) cancels out.
        let baseline = &samples[0];
        // An array, not an object: the rows keep this order in the table.
        let rows = configs
            .iter()
            .zip(&samples)
            .map(|((name, _), samples)| {
                let ratios: Vec<f64> = samples.iter().zip(baseline).map(|(s, b)| s / b).collect();
                OverheadRow {
                    name,
                    median: median(samples),
                    ratio: median(&ratios),
                    samples: samples.clone(),
                }
            })
            .collect();
        Ok(rows)
    }

    /// Our tracer, quiet, recording to `file` (replaced if it exists).
    fn recording(&self, file: &Path) -> Result<Traced> {
        let file = file.to_str().context("non-UTF-8 path")?;
        Traced::start(&self.tracer_args(&["-q", "--record", file, "--force"]))
    }

    fn tracer_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![self.tracer.to_str().unwrap().to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    }

    /// One add_watch loop on CPU 1: ns per call.
    fn add_loop(&self, calls: u64) -> Result<f64> {
        let out = cmd::output(Command::new(&self.load).args([
            "add-loop",
            &calls.to_string(),
            &self.watched,
            "1",
        ]))?;
        Ok(LoadFigures::parse(&out)?.ns_per_call)
    }

    /// Made vs received vs lost, with one and with two producers; returns
    /// the one-producer recording for the report benchmark.
    fn loss(&self, sizes: &Sizes) -> Result<(Loss, PathBuf)> {
        let one = self.dir.join("one-producer.rec");
        let traced = self.recording(&one)?;
        self.add_loop(sizes.one_producer)?;
        let one_cost = traced.stop()?;
        let one_summary = self.summary_of(&one)?;
        // One init per producer, then its add_watch calls.
        let one_made = sizes.one_producer + 1;

        let two = self.dir.join("two-producers.rec");
        let traced = self.recording(&two)?;
        let producers: Vec<Child> = ["0", "1"]
            .iter()
            .map(|cpu| {
                Command::new(&self.load)
                    .args([
                        "add-loop",
                        &sizes.two_producers.to_string(),
                        &self.watched,
                        cpu,
                    ])
                    .stdout(Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        for mut producer in producers {
            producer.wait()?;
        }
        traced.stop()?;
        let two_summary = self.summary_of(&two)?;
        let _ = std::fs::remove_file(&two);
        let two_made = 2 * (sizes.two_producers + 1);
        Ok((
            Loss {
                one_producer: Balance::of(one_made, &one_summary),
                two_producers: Balance::of(two_made, &two_summary),
                one_producer_tracer_cpu_ns_per_event: one_cost.cpu_ns as f64 / one_made as f64,
            },
            one,
        ))
    }

    fn summary_of(&self, recording: &Path) -> Result<SummaryFigures> {
        let out = cmd::output(
            Command::new(&self.tracer)
                .args(["report", "--json"])
                .arg(recording),
        )?;
        Ok(serde_json::from_str(out.trim())?)
    }

    fn getppid(&self, sizes: &Sizes) -> Result<Getppid> {
        let mut without = Vec::new();
        let mut with = Vec::new();
        let calls = sizes.getppid_calls.to_string();
        let run = || -> Result<f64> {
            let out = cmd::output(Command::new(&self.load).args(["getppid", &calls, "1"]))?;
            Ok(LoadFigures::parse(&out)?.ns_per_call)
        };
        for _ in 0..sizes.rounds {
            without.push(run()?);
            let traced = Traced::start(&self.tracer_args(&["-q"]))?;
            with.push(run()?);
            traced.stop()?;
        }
        let (a, b) = (median(&without), median(&with));
        Ok(Getppid {
            no_tracer: a,
            tracer_attached: b,
            extra: b - a,
        })
    }

    /// Whether this kernel takes fexit programs (this machine kind's does
    /// not: then the tracer's one-line refusal).
    fn fexit_here(&self) -> Result<FexitHere> {
        let out = Command::new(&self.tracer)
            .args([
                "--attach",
                "fexit",
                "-q",
                "-d",
                "1ms",
                "--comm",
                "nobody-at-all",
            ])
            .output()?;
        let allowed = out.status.success();
        Ok(FexitHere {
            allowed,
            why: (!allowed).then(|| String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        })
    }

    /// CPU per event and peak RSS, early in a long run and at its end.
    fn tracer_cost(&self, sizes: &Sizes) -> Result<TracerCost> {
        let record = self.dir.join("long.rec");
        let traced = self.recording(&record)?;
        let chunk = sizes.rss_events / 10;
        self.add_loop(chunk)?;
        std::thread::sleep(Duration::from_millis(100));
        let early_kib = vm_hwm_kib(traced.pid());
        for _ in 1..10 {
            self.add_loop(chunk)?;
        }
        let cost = traced.stop()?;
        let _ = std::fs::remove_file(&record);
        let events = 10 * (chunk + 1);
        Ok(TracerCost {
            events,
            cpu_ns_per_event: cost.cpu_ns as f64 / events as f64,
            peak_rss_mib_after_10pct: early_kib.map(|k| k as f64 / 1024.0),
            peak_rss_mib: cost.max_rss_kib as f64 / 1024.0,
        })
    }

    /// `report` for the summary alone, and with every event as JSON.
    fn report_speed(&self, recording: &Path) -> Result<ReportSpeed> {
        let events = self.summary_of(recording)?.events;
        let speed = |args: &[&str]| -> Result<Speed> {
            let mut seconds = Vec::new();
            for _ in 0..3 {
                let started = Instant::now();
                let status = Command::new(&self.tracer)
                    .args(args)
                    .arg(recording)
                    .stdout(Stdio::null())
                    .status()?;
                if !status.success() {
                    bail!("report failed on {}", recording.display());
                }
                seconds.push(started.elapsed().as_secs_f64());
            }
            let s = median(&seconds);
            Ok(Speed {
                seconds: s,
                events_per_second: events as f64 / s,
            })
        };
        Ok(ReportSpeed {
            events,
            summary: speed(&["report", "--json"])?,
            events_json: speed(&["report", "--events", "--json"])?,
        })
    }

    fn usage_time(&self, sizes: &Sizes) -> Result<UsageTime> {
        let mut holders = Command::new(&self.load)
            .args(["hold", &sizes.holders.to_string(), &self.watched])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut ready = String::new();
        BufReader::new(holders.stdout.take().unwrap()).read_line(&mut ready)?;
        let mut seconds = Vec::new();
        let mut instances = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let out = cmd::output(Command::new(&self.tracer).args(["usage", "--json"]))?;
            seconds.push(started.elapsed().as_secs_f64());
            let usage: UsageFigures = serde_json::from_str(out.trim())?;
            instances = usage.instances.len();
        }
        drop(holders.stdin.take());
        holders.wait()?;
        Ok(UsageTime {
            extra_processes: sizes.holders,
            instances_seen: instances,
            seconds: median(&seconds),
        })
    }
}

impl Bench {
    /// One process failing with ENOSPC as fast as it can (issue 13): calls
    /// per second, events made/received/lost, and the tracer's CPU per
    /// failing event, to compare with a successful one's.
    fn storm(&self, sizes: &Sizes) -> Result<Storm> {
        let record = self.dir.join("storm.rec");
        let traced = self.recording(&record)?;
        let script = format!(
            "echo 0 > /proc/sys/user/max_inotify_watches && exec '{}' fail-loop {} '{}' 1",
            self.load.display(),
            sizes.one_producer,
            self.watched
        );
        let out = cmd::output(Command::new("unshare").args(["-U", "-r", "sh", "-c", &script]))?;
        let cost = traced.stop()?;
        let ns = LoadFigures::parse(&out)?.ns_per_call;
        let summary = self.summary_of(&record)?;
        let _ = std::fs::remove_file(&record);
        let made = sizes.one_producer + 1;
        Ok(Storm {
            made,
            received: summary.events,
            lost: summary.lost,
            calls_per_second: 1e9 / ns,
            tracer_cpu_ns_per_event: cost.cpu_ns as f64 / made as f64,
            diagnoses: summary.diagnoses.len(),
        })
    }

    /// Peak RSS of the live tracer and of `report`: for many distinct pids
    /// (live, as many as this machine's pid_max lets exist in one session;
    /// in a report, a synthetic recording of `memory_pids`), and for one
    /// process passing many distinct paths (live and report).
    fn memory(&self, sizes: &Sizes) -> Result<Memory> {
        let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")?
            .trim()
            .parse()?;
        // Pids wrap at pid_max: stay well under it to count distinct ones.
        let live_pids = sizes.memory_pids.min(pid_max * 3 / 4);
        let live = |name: &str, load: &[String]| -> Result<MemoryRow> {
            let record = self.dir.join(format!("{name}.rec"));
            let traced = self.recording(&record)?;
            cmd::output(Command::new(&self.load).args(load))?;
            let live = traced.stop()?;
            self.memory_row(&record, live.max_rss_kib)
        };
        let distinct_pids = live(
            "distinct_pids",
            &[
                "many-pids".into(),
                live_pids.to_string(),
                self.watched.clone(),
            ],
        )?;
        let distinct_paths = live(
            "distinct_paths",
            &["distinct-paths".into(), sizes.memory_paths.to_string()],
        )?;
        let record = self.dir.join("synthetic-pids.rec");
        cmd::output(Command::new(&self.load).args([
            "synth-recording",
            record.to_str().context("non-UTF-8 path")?,
            &sizes.memory_pids.to_string(),
        ]))?;
        Ok(Memory {
            pid_max,
            distinct_pids,
            distinct_paths,
            synthetic_pids: self.memory_row(&record, 0)?,
        })
    }

    /// What a recording holds, the live tracer's peak RSS (0: not live),
    /// and the peak RSS of reporting on it, in full and with `--top 20`.
    fn memory_row(&self, record: &Path, live_kib: u64) -> Result<MemoryRow> {
        let report =
            |args: &[&str]| peak_rss_kib(Command::new(&self.tracer).args(args).arg(record));
        let all = report(&["report", "--json"])?;
        let top = report(&["report", "--json", "--top", "20"])?;
        // The top process only: a child's peak RSS counts its parent's RSS
        // at fork, so this process must not grow by parsing a large summary.
        let out = cmd::output(
            Command::new(&self.tracer)
                .args(["report", "--json", "--top", "1"])
                .arg(record),
        )?;
        let summary: SummaryFigures = serde_json::from_str(out.trim())?;
        let _ = std::fs::remove_file(record);
        let mib = |kib: u64| (kib > 0).then(|| kib as f64 / 1024.0);
        Ok(MemoryRow {
            events: summary.events,
            lost: summary.lost,
            processes: summary.processes.len() as u64 + summary.processes_omitted,
            distinct_paths: summary.processes.first().map(|p| p.distinct_paths),
            live_peak_rss_mib: mib(live_kib),
            report_peak_rss_mib: mib(all),
            report_top20_peak_rss_mib: mib(top),
        })
    }
}

/// The median (of an even count, the mean of the middle two; NaN of none).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default()
}

/// What one part of the tracer's work adds per call (reading the caller's
/// euid, user namespace and cgroup id; reading the charge): the median,
/// over rounds, of the traced run (row `with`) minus the same run without
/// it (row `without`), run seconds apart, so drift cancels.
fn cost_of(rows: &[OverheadRow], with: usize, without: usize) -> Option<f64> {
    let differences: Vec<f64> = rows
        .get(with)?
        .samples
        .iter()
        .zip(&rows.get(without)?.samples)
        .map(|(with, without)| with - without)
        .collect();
    (!differences.is_empty()).then(|| median(&differences))
}
