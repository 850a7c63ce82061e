//! `cargo xtask bench`: the figures issue #6 asks for, from one run, printed
//! as a table and written to target/bench/results.json. Nothing is asserted:
//! the targets are read from the full run (`--smoke` is the seconds-long
//! version CI runs so that the command cannot rot).
//!
//! The tracer is pinned to CPU 0 and every load loop to CPU 1, as the
//! figures in the notes were measured; configurations are interleaved round
//! by round so that drift of the machine spreads over all of them.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use crate::cmd;

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
    let mut results = json!({
        "date": String::from_utf8_lossy(&Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ").output()?.stdout).trim(),
        "machine": { "cores": std::thread::available_parallelism().map_or(0, |n| n.get()), "kernel": kernel() },
        "command": if smoke { "cargo xtask bench --smoke" } else { "cargo xtask bench" },
        "smoke": smoke,
    });

    cmd::step(&format!(
        "inotify_add_watch overhead: {} rounds of {} calls per configuration",
        sizes.rounds, sizes.calls
    ));
    results["add_watch_ns"] = bench.overhead(&sizes)?;
    results["attribution_ns"] = attribution_cost(&results["add_watch_ns"]);
    cmd::step("events made, received and lost");
    let (loss, recording) = bench.loss(&sizes)?;
    results["events"] = loss;
    cmd::step(&format!(
        "a storm of {} ENOSPC in a user namespace whose watch cap is 0",
        sizes.one_producer
    ));
    results["storm"] = bench.storm(&sizes)?;
    cmd::step("an unrelated syscall (getppid) with and without the tracer attached");
    results["getppid_ns"] = bench.getppid(&sizes)?;
    cmd::step(&format!(
        "the tracer's CPU and memory over {} events",
        sizes.rss_events
    ));
    results["tracer"] = bench.tracer_cost(&sizes)?;
    cmd::step("report speed over the recording");
    results["report"] = bench.report_speed(&recording)?;
    let _ = std::fs::remove_file(&recording);
    cmd::step(&format!(
        "usage with {} extra processes holding instances",
        sizes.holders
    ));
    results["usage"] = bench.usage_time(&sizes)?;
    cmd::step(&format!(
        "memory: {} distinct pids, then {} distinct paths (live and report)",
        sizes.memory_pids, sizes.memory_paths
    ));
    results["memory"] = bench.memory(&sizes)?;
    results["fexit_here"] = bench.fexit_here()?;
    // fexit's cost where the kernel allows it, in a guest whose clocks count
    // instructions (tens of ns are noise in real time on this machine).
    let (rounds, calls) = if smoke { (1, 5_000) } else { (5, 50_000) };
    cmd::step("the attach modes in a 6.1 guest under QEMU -icount (instructions, not real time)");
    results["guest"] = crate::vm::bench(&[], rounds, calls)?;

    let path = bench.dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
    print_table(&results);
    println!("\n{}", crate::vm::bench_table(&results["guest"]));
    println!("(written to {})", path.display());
    Ok(())
}

impl Bench {
    /// ns per inotify_add_watch, per configuration: medians and ratios.
    fn overhead(&self, sizes: &Sizes) -> Result<Value> {
        let record = self.dir.join("overhead.rec");
        let record = record.to_str().unwrap();
        let mut configs: Vec<(&str, Option<Vec<String>>)> = vec![
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
        let rows: Vec<Value> = configs
            .iter()
            .zip(&samples)
            .map(|((name, _), samples)| {
                let ratios: Vec<f64> = samples.iter().zip(baseline).map(|(s, b)| s / b).collect();
                json!({
                    "name": name,
                    "median": median(samples),
                    "ratio": median(&ratios),
                    "samples": samples,
                })
            })
            .collect();
        Ok(Value::Array(rows))
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
        ns_per_call(&out)
    }

    /// Made vs received vs lost, with one and with two producers; returns
    /// the one-producer recording for the report benchmark.
    fn loss(&self, sizes: &Sizes) -> Result<(Value, PathBuf)> {
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
        let row = |made: u64, s: &Value| {
            let (received, lost) = (
                s["events"].as_u64().unwrap_or(0),
                s["lost"].as_u64().unwrap_or(0),
            );
            json!({ "made": made, "received": received, "lost": lost, "balanced": made == received + lost })
        };
        Ok((
            json!({
                "one_producer": row(one_made, &one_summary),
                "two_producers": row(two_made, &two_summary),
                "one_producer_tracer_cpu_ns_per_event": one_cost.cpu_ns as f64 / one_made as f64,
            }),
            one,
        ))
    }

    fn summary_of(&self, recording: &Path) -> Result<Value> {
        let out = cmd::output(
            Command::new(&self.tracer)
                .args(["report", "--json"])
                .arg(recording),
        )?;
        Ok(serde_json::from_str(out.trim())?)
    }

    fn getppid(&self, sizes: &Sizes) -> Result<Value> {
        let mut without = Vec::new();
        let mut with = Vec::new();
        let calls = sizes.getppid_calls.to_string();
        let run = || -> Result<f64> {
            ns_per_call(&cmd::output(
                Command::new(&self.load).args(["getppid", &calls, "1"]),
            )?)
        };
        for _ in 0..sizes.rounds {
            without.push(run()?);
            let traced = Traced::start(&self.tracer_args(&["-q"]))?;
            with.push(run()?);
            traced.stop()?;
        }
        let (a, b) = (median(&without), median(&with));
        Ok(json!({ "no_tracer": a, "tracer_attached": b, "extra": b - a }))
    }

    /// Whether this kernel takes fexit programs (this machine kind's does
    /// not: then the tracer's one-line refusal).
    fn fexit_here(&self) -> Result<Value> {
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
        Ok(match out.status.success() {
            true => json!({ "allowed": true }),
            false => json!({
                "allowed": false,
                "why": String::from_utf8_lossy(&out.stderr).trim(),
            }),
        })
    }

    /// CPU per event and peak RSS, early in a long run and at its end.
    fn tracer_cost(&self, sizes: &Sizes) -> Result<Value> {
        let record = self.dir.join("long.rec");
        let traced = self.recording(&record)?;
        let chunk = sizes.rss_events / 10;
        self.add_loop(chunk)?;
        std::thread::sleep(Duration::from_millis(100));
        let early_kib = vm_hwm_kib(traced.child.id());
        for _ in 1..10 {
            self.add_loop(chunk)?;
        }
        let cost = traced.stop()?;
        let _ = std::fs::remove_file(&record);
        let events = 10 * (chunk + 1);
        Ok(json!({
            "events": events,
            "cpu_ns_per_event": cost.cpu_ns as f64 / events as f64,
            "peak_rss_mib_after_10pct": early_kib.map(|k| k as f64 / 1024.0),
            "peak_rss_mib": cost.max_rss_kib as f64 / 1024.0,
        }))
    }

    /// `report` for the summary alone, and with every event as JSON.
    fn report_speed(&self, recording: &Path) -> Result<Value> {
        let events = self.summary_of(recording)?["events"].as_u64().unwrap_or(0);
        let mut out = serde_json::Map::new();
        out.insert("events".to_owned(), json!(events));
        let runs: [(&str, &[&str]); 2] = [
            ("summary", &["report", "--json"]),
            ("events_json", &["report", "--events", "--json"]),
        ];
        for (name, args) in runs {
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
            out.insert(
                name.to_owned(),
                json!({ "seconds": s, "events_per_second": events as f64 / s }),
            );
        }
        Ok(Value::Object(out))
    }

    fn usage_time(&self, sizes: &Sizes) -> Result<Value> {
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
            let usage: Value = serde_json::from_str(out.trim())?;
            instances = usage["instances"].as_array().map_or(0, Vec::len);
        }
        drop(holders.stdin.take());
        holders.wait()?;
        Ok(
            json!({ "extra_processes": sizes.holders, "instances_seen": instances, "seconds": median(&seconds) }),
        )
    }
}

impl Bench {
    /// One process failing with ENOSPC as fast as it can (issue 13): calls
    /// per second, events made/received/lost, and the tracer's CPU per
    /// failing event, to compare with a successful one's.
    fn storm(&self, sizes: &Sizes) -> Result<Value> {
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
        let ns = ns_per_call(&out)?;
        let summary = self.summary_of(&record)?;
        let _ = std::fs::remove_file(&record);
        let made = sizes.one_producer + 1;
        Ok(json!({
            "made": made,
            "received": summary["events"],
            "lost": summary["lost"],
            "calls_per_second": 1e9 / ns,
            "tracer_cpu_ns_per_event": cost.cpu_ns as f64 / made as f64,
            "diagnoses": summary["diagnoses"].as_array().map_or(0, Vec::len),
        }))
    }

    /// Peak RSS of the live tracer and of `report`: for many distinct pids
    /// (live, as many as this machine's pid_max lets exist in one session;
    /// in a report, a synthetic recording of `memory_pids`), and for one
    /// process passing many distinct paths (live and report).
    fn memory(&self, sizes: &Sizes) -> Result<Value> {
        let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")?
            .trim()
            .parse()?;
        // Pids wrap at pid_max: stay well under it to count distinct ones.
        let live_pids = sizes.memory_pids.min(pid_max * 3 / 4);
        let live_runs: [(&str, Vec<String>); 2] = [
            (
                "distinct_pids",
                vec![
                    "many-pids".into(),
                    live_pids.to_string(),
                    self.watched.clone(),
                ],
            ),
            (
                "distinct_paths",
                vec!["distinct-paths".into(), sizes.memory_paths.to_string()],
            ),
        ];
        let mut out = serde_json::Map::new();
        out.insert("pid_max".to_owned(), json!(pid_max));
        for (name, load) in live_runs {
            let record = self.dir.join(format!("{name}.rec"));
            let traced = self.recording(&record)?;
            cmd::output(Command::new(&self.load).args(&load))?;
            let live = traced.stop()?;
            out.insert(name.to_owned(), self.memory_row(&record, live.max_rss_kib)?);
        }
        let record = self.dir.join("synthetic-pids.rec");
        cmd::output(Command::new(&self.load).args([
            "synth-recording",
            record.to_str().context("non-UTF-8 path")?,
            &sizes.memory_pids.to_string(),
        ]))?;
        out.insert("synthetic_pids".to_owned(), self.memory_row(&record, 0)?);
        Ok(Value::Object(out))
    }

    /// What a recording holds, the live tracer's peak RSS (0: not live),
    /// and the peak RSS of reporting on it, in full and with `--top 20`.
    fn memory_row(&self, record: &Path, live_kib: u64) -> Result<Value> {
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
        let summary: Value = serde_json::from_str(out.trim())?;
        let _ = std::fs::remove_file(record);
        let mib = |kib: u64| (kib > 0).then(|| kib as f64 / 1024.0);
        let listed = summary["processes"].as_array().map_or(0, Vec::len) as u64;
        Ok(json!({
            "events": summary["events"],
            "lost": summary["lost"],
            "processes": listed + summary["processes_omitted"].as_u64().unwrap_or(0),
            "distinct_paths": summary["processes"][0]["distinct_paths"],
            "live_peak_rss_mib": mib(live_kib),
            "report_peak_rss_mib": mib(all),
            "report_top20_peak_rss_mib": mib(top),
        }))
    }
}

/// Runs a command to its end, output discarded; its peak RSS.
fn peak_rss_kib(command: &mut Command) -> Result<u64> {
    let child = command.stdout(Stdio::null()).spawn()?;
    let pid = child.id() as i32;
    // SAFETY: waits for our own child and reads its rusage.
    unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::wait4(pid, &mut status, 0, &mut usage) < 0 || status != 0 {
            bail!("{command:?} failed");
        }
        Ok(usage.ru_maxrss as u64)
    }
}

/// A tracer (ours or bpftrace) on CPU 0, started and waited for.
struct Traced {
    child: Child,
}

struct Cost {
    cpu_ns: u64,
    max_rss_kib: u64,
}

impl Traced {
    fn start(args: &[String]) -> Result<Traced> {
        let mut command = match cmd::on_path("taskset") {
            Some(taskset) => {
                let mut c = Command::new(taskset);
                c.args(["-c", "0"]).args(args);
                c
            }
            None => {
                let mut c = Command::new(&args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {args:?}"))?;
        // inotify-trace says "attached" on stderr; bpftrace, "Attaching".
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("attached") || line.contains("Attaching") {
                    let _ = tx.send(());
                }
            }
        });
        let is_bpftrace = args[0].ends_with("bpftrace");
        if is_bpftrace {
            // bpftrace announces itself on stdout; its probes are in place
            // once it has compiled: give it time.
            std::thread::sleep(Duration::from_secs(3));
        } else if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            bail!("{args:?} did not attach");
        }
        Ok(Traced { child })
    }

    /// SIGINT, then the child's own rusage.
    fn stop(self) -> Result<Cost> {
        let pid = self.child.id() as i32;
        // SAFETY: signals and waits for our own child.
        unsafe {
            libc::kill(pid, libc::SIGINT);
            let mut status = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::wait4(pid, &mut status, 0, &mut usage) < 0 {
                bail!("waiting for the tracer failed");
            }
            let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
            Ok(Cost {
                cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime),
                max_rss_kib: usage.ru_maxrss as u64,
            })
        }
    }
}

fn ns_per_call(out: &str) -> Result<f64> {
    let value: Value =
        serde_json::from_str(out.trim()).with_context(|| format!("load generator said {out:?}"))?;
    value["ns_per_call"].as_f64().context("no ns_per_call")
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    // taskset execs the tracer, so the pid is the tracer's.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix("VmHWM:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default()
}

/// What reading the caller's euid, user namespace and cgroup id adds per
/// call: the median, over rounds, of the traced run minus the same run
/// without attribution (run seconds apart, so drift cancels).
fn attribution_cost(rows: &Value) -> Value {
    let samples = |i: usize| -> Vec<f64> {
        rows[i]["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect()
    };
    let differences: Vec<f64> = samples(1)
        .iter()
        .zip(samples(2))
        .map(|(with, without)| with - without)
        .collect();
    if differences.is_empty() {
        return Value::Null;
    }
    json!(median(&differences))
}

fn print_table(r: &Value) {
    let f = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
    };
    println!();
    println!("Real time on this machine (wall clock; the machine is shared, so configurations run interleaved):");
    println!(
        "inotify-trace benchmark, {}, {} cores, kernel {}, `{}`",
        r["date"].as_str().unwrap_or(""),
        r["machine"]["cores"],
        r["machine"]["kernel"].as_str().unwrap_or(""),
        r["command"].as_str().unwrap_or("")
    );
    println!("inotify_add_watch, ns per call (median), ratio to no tracer (median of rounds)      target");
    for row in r["add_watch_ns"].as_array().into_iter().flatten() {
        let name = row["name"].as_str().unwrap_or("");
        match row.get("median") {
            Some(m) => {
                let target = if name.starts_with("inotify-trace") {
                    "<= 1.5x (stretch 1.35x)"
                } else {
                    ""
                };
                println!(
                    "  {name:<30} {:>8} {:>6.2}x   {target}",
                    f(m),
                    row["ratio"].as_f64().unwrap_or(f64::NAN)
                );
            }
            None => println!("  {name:<30} {}", row["note"].as_str().unwrap_or("")),
        }
    }
    println!(
        "  attribution (euid, user ns, cgroup id) adds {} ns per call (median of rounds)   target: <= 10 ns",
        f(&r["attribution_ns"])
    );
    let e = &r["events"];
    for (name, key, target) in [
        ("one producer", "one_producer", "0 lost"),
        ("two producers", "two_producers", "made = received + lost"),
    ] {
        let row = &e[key];
        println!(
            "events, {name:<14} made {:>9}  received {:>9}  lost {:>7}  balanced {}   target: {target}",
            row["made"], row["received"], row["lost"], row["balanced"]
        );
    }
    let st = &r["storm"];
    println!(
        "storm of ENOSPC: {:.0} calls/s, made {} received {} lost {}, {} diagnoses; tracer {} ns CPU per failing event (one producer, successes: {}; target within 2x)",
        st["calls_per_second"].as_f64().unwrap_or(f64::NAN),
        st["made"],
        st["received"],
        st["lost"],
        st["diagnoses"],
        f(&st["tracer_cpu_ns_per_event"]),
        f(&e["one_producer_tracer_cpu_ns_per_event"])
    );
    let g = &r["getppid_ns"];
    println!(
        "getppid ns per call: no tracer {}, tracer attached {} (+{})",
        f(&g["no_tracer"]),
        f(&g["tracer_attached"]),
        f(&g["extra"])
    );
    let t = &r["tracer"];
    println!(
        "tracer over {} events: {} ns CPU per event (target <= 400); peak RSS {} MiB after 10%, {} MiB at the end (target <= 64, flat)",
        t["events"], f(&t["cpu_ns_per_event"]), f(&t["peak_rss_mib_after_10pct"]), f(&t["peak_rss_mib"])
    );
    let p = &r["report"];
    for (name, key) in [
        ("report (summary)", "summary"),
        ("report --events --json", "events_json"),
    ] {
        println!(
            "{name}: {} events in {:.3} s = {:.2} M events/s (target >= 2)",
            p["events"],
            p[key]["seconds"].as_f64().unwrap_or(f64::NAN),
            p[key]["events_per_second"].as_f64().unwrap_or(0.0) / 1e6
        );
    }
    let u = &r["usage"];
    println!(
        "usage --json with {} extra processes: {:.3} s, {} instances seen (target < 1 s)",
        u["extra_processes"],
        u["seconds"].as_f64().unwrap_or(f64::NAN),
        u["instances_seen"]
    );
    let m = &r["memory"];
    for (name, key) in [
        ("live, distinct pids", "distinct_pids"),
        ("report, synthetic pids", "synthetic_pids"),
        ("one process, distinct paths", "distinct_paths"),
    ] {
        let row = &m[key];
        println!(
            "memory, {name}: {} processes, {} events, {} lost, {} distinct paths in the top process; peak RSS live {} MiB, report {} MiB, report --top 20 {} MiB (target < 64)",
            row["processes"],
            row["events"],
            row["lost"],
            row["distinct_paths"],
            f(&row["live_peak_rss_mib"]),
            f(&row["report_peak_rss_mib"]),
            f(&row["report_top20_peak_rss_mib"])
        );
    }
    println!(
        "(pid_max here is {}: a live session cannot see more distinct pids at once)",
        m["pid_max"]
    );
    match r["fexit_here"]["allowed"].as_bool() {
        Some(true) => println!("fexit: allowed on this kernel (`auto` uses it)"),
        _ => println!(
            "fexit: not on this kernel, so the figures above are the tracepoint modes' ({})",
            r["fexit_here"]["why"].as_str().unwrap_or("?")
        ),
    }
}
